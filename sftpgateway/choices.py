from django.db import models


class ActivityEvent(models.TextChoices):
    """What happened on the gateway, as listed by ``GET .../sftp/activity``."""

    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Failed login"
    LOCKOUT = "lockout", "Lockout"
    UPLOAD = "upload", "Upload"
    UPLOAD_FAILED = "upload_failed", "Failed upload"
    PARTIAL = "partial", "Partial upload"
    REFUSED = "refused", "Refused request"
    DISCONNECTED = "disconnected", "Disconnected by the gateway"


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    PUBLIC_KEY = "publickey", "Public key"
