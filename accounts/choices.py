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


class EventType(models.TextChoices):
    """The domain events (``accounts.models.Event``), by name; each is deliverable to webhooks."""

    INTEGRATION_CREATED = "integration.created", "Integration created"
    INTEGRATION_UPDATED = "integration.updated", "Integration updated"
    INTEGRATION_DELETED = "integration.deleted", "Integration deleted"
    INTEGRATION_RESTORED = "integration.restored", "Integration restored"
    INTEGRATION_INSTALLED = "integration.installed", "Integration installed"
    INTEGRATION_UNINSTALLED = "integration.uninstalled", "Integration uninstalled"
    INTEGRATION_CONNECTED = "integration.connected", "Connection tested and connected"
    INTEGRATION_PAUSED = "integration.paused", "Integration paused after failed runs"
    SYNC_STARTED = "integration.sync.started", "Run started"
    SYNC_COMPLETED = "integration.sync.completed", "Run completed"
    SYNC_FAILED = "integration.sync.failed", "Run failed"
    FILE_RECEIVED = "integration.file.received", "Feed file received"
    FILE_REJECTED = "integration.file.rejected", "Feed file rejected"
    FILE_PROCESSED = "integration.file.processed", "Feed file processed"
    FILE_FAILED = "integration.file.failed", "Feed file failed"
    EXPORT_STARTED = "integration.export.started", "Export run started"
    EXPORT_COMPLETED = "integration.export.completed", "Export run completed"
    EXPORT_FAILED = "integration.export.failed", "Export run failed"
    WEBHOOK_TEST = "webhook.test", "Webhook test"
    WEBHOOK_DISABLED = "webhook.disabled", "Webhook endpoint disabled"
