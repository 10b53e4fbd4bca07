from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "QUEUED", "Queued"
    RUNNING = "RUNNING", "Running"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


class JobKind(models.TextChoices):
    """What a run does. Each kind supplies its work and the side effects of its transitions
    (``syncengine.jobs.lifecycle.RunKind``); the lifecycle is the same for all."""

    SYNC = "sync", "Connector sync"
    FILE = "file", "Feed file"
    EXPORT = "export", "Export run"
    FILE_IMPORT = "import", "File import run"


class JobTrigger(models.TextChoices):
    FILE = "file", "File received"
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    REPROCESS = "reprocess", "Reprocess"


class FeedFileStatus(models.TextChoices):
    """Where a received file is. The three ``completed`` states were applied to the store:
    with warnings, some imported rows had a value left empty because it could not be read;
    with errors, some rows were not imported (and there may be warnings too)."""

    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_WARNINGS = "completed_with_warnings", "Completed with warnings"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    PARTIAL = "partial", "Partial upload"


# A file that ended in one of these was applied to the store: its run succeeded, for the
# integration as for webhooks ("processed"), whatever rows it rejected or values it left empty.
FEED_FILE_PROCESSED: frozenset[str] = frozenset(
    {
        FeedFileStatus.COMPLETED,
        FeedFileStatus.COMPLETED_WITH_WARNINGS,
        FeedFileStatus.COMPLETED_WITH_ERRORS,
    }
)


class FeedFileSource(models.TextChoices):
    SFTP = "sftp", "SFTP gateway"
    # A file taken by a pull from any connection that feeds files (sftp_pull, sftp, s3, azure_blob).
    PULL = "sftp_pull", "Pulled from storage (SFTP, S3, Azure Blob)"
    REPROCESS = "reprocess", "Reprocess"


class VehicleStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SOLD = "sold", "Sold"
    REMOVED = "removed", "Removed"


class VehicleCondition(models.TextChoices):
    NEW = "new", "New"
    USED = "used", "Used"
    CPO = "cpo", "Certified pre-owned"


class ChangeType(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    SOLD = "sold", "Sold"
    REMOVED = "removed", "Removed"
    REACTIVATED = "reactivated", "Reactivated"
