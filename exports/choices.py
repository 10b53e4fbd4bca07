from django.db import models


class ExportFormat(models.TextChoices):
    CSV = "CSV", "Comma-separated values"
    JSON = "JSON", "JSON"
    PARQUET = "PARQUET", "Apache Parquet"
    XML = "XML", "XML"


class ExportFrequency(models.TextChoices):
    HOURLY = "HOURLY", "Hourly"
    DAILY = "DAILY", "Daily"
    WEEKLY = "WEEKLY", "Weekly"
    MONTHLY = "MONTHLY", "Monthly"


class ExportState(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    PAUSED = "PAUSED", "Paused"


class DestinationType(models.TextChoices):
    S3 = "S3", "Amazon S3"
    AZURE_BLOB = "AZURE_BLOB", "Azure Blob Storage"
    LOCAL = "LOCAL", "Local storage"
    SFTP = "SFTP", "SFTP server"


class FilterOperator(models.TextChoices):
    GTE = "gte", "Greater than or equal"
    GT = "gt", "Greater than"
    LTE = "lte", "Less than or equal"
    LT = "lt", "Less than"
    EQ = "eq", "Equal"
    NE = "ne", "Not equal"
    IN = "in", "One of a list"
    CONTAINS = "contains", "Contains (text: a substring, any case; lists: an element)"
    IS_NULL = "isNull", "Missing or null (true), or present (false)"
