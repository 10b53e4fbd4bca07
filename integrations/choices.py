from django.db import models


class IntegrationState(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


class IntegrationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ERRORED = "errored", "Errored"


class ImportDependencyStatus(models.TextChoices):
    READY = "ready", "Ready"
    CHECKING = "checking", "Checking"
    WAITING = "waiting", "Waiting"
    ERROR = "error", "Error"


class FrequencyUnit(models.TextChoices):
    MINUTES = "minutes", "Minutes"
    HOURS = "hours", "Hours"
    DAYS = "days", "Days"
    WEEKS = "weeks", "Weeks"
    MONTHS = "months", "Months"


class SyncStrategy(models.TextChoices):
    OVERWRITE = "overwrite", "Overwrite (the file is the whole truth)"
    MERGE = "merge", "Merge (add and update, keep missing)"
    UPDATE_ONLY = "update_only", "Update only (touch existing records)"


class DataType(models.TextChoices):
    INVENTORY = "inventory", "Vehicle inventory"
    EVENTS = "events", "Events"
    USER_PROPERTIES = "user_properties", "User properties"
    GROUP_PROPERTIES = "group_properties", "Group properties"
    CONVERSIONS = "conversions", "Conversions"
    AD_DATA = "ad_data", "Ad data"
    AUDIENCES = "audiences", "Audiences"
    CUSTOMERS = "customers", "Customers"
    INVOICES = "invoices", "Invoices"
    SUBSCRIPTIONS = "subscriptions", "Subscriptions"
    RECORDS = "records", "Generic records"


class ShareAccessLevel(models.TextChoices):
    MANAGE = "manage", "Manage"
    MONITOR = "monitor", "Monitor"


class FileType(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON"
    XML = "xml", "XML"
    XLSX = "xlsx", "Excel"


# The type of an integration that is a container of flows, imports, exports and connections
# rather than a feed or a connector's data flow: what a create naming no type, source or
# destination makes. Its own runs have nothing to read; its flows and connections do the work.
CONTAINER_TYPE = "container"
