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


class ApiKeyScope(models.TextChoices):
    """What an API key may do. Each scope includes the ones before it: admin ⊇ write ⊇ read."""

    READ = "read", "Read: safe methods only (GET, HEAD, OPTIONS)"
    WRITE = "write", "Write: read, and create, change and delete resources"
    ADMIN = "admin", "Admin: write, and manage the account's API keys"

    def includes(self, required: str) -> bool:
        """Whether a key of this scope may do what ``required`` allows."""
        order = list(ApiKeyScope)
        return order.index(self) >= order.index(ApiKeyScope(required))
