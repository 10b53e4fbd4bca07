from django.db import models


class ActorType(models.TextChoices):
    API_KEY = "api_key", "API key"
    USER = "user", "User"
    SYSTEM = "system", "System"


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"
    RESTORED = "restored", "Restored"
    CLONED = "cloned", "Cloned"
    REVOKED = "revoked", "Revoked"
