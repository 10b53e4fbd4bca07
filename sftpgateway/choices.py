from django.db import models


class ActivityEvent(models.TextChoices):
    """What happened on the gateway, as listed by ``GET .../sftp/activity``."""

    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Failed login"
    BAN = "ban", "Address banned"
    UNBAN = "unban", "Ban lifted"
    UPLOAD = "upload", "Upload"
    UPLOAD_FAILED = "upload_failed", "Failed upload"
    PARTIAL = "partial", "Partial upload"
    REFUSED = "refused", "Refused request"
    DISCONNECTED = "disconnected", "Disconnected by the gateway"


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    PUBLIC_KEY = "publickey", "Public key"


class DefenderEventKind(models.TextChoices):
    """What the defender scores against a source address (each kind has its own setting)."""

    LOGIN_FAILED = "login_failed", "wrong password"
    UNKNOWN_USER = "unknown_user", "unknown username"
    NO_LOGIN = "no_login", "connection closed without logging in"
    LIMIT_EXCEEDED = "limit_exceeded", "connection over the per-address limits"
