from django.db import models


class ConnectorCategory(models.TextChoices):
    INVENTORY = "INVENTORY", "Inventory feeds"
    PAYMENTS = "PAYMENTS", "Payments"
    ACCOUNTING = "ACCOUNTING", "Accounting"
    CRM = "CRM", "CRM"
    BANKING = "BANKING", "Banking"
    COMPLIANCE = "COMPLIANCE", "Compliance"
    STORAGE = "STORAGE", "Storage"
    DATABASES = "DATABASES", "Databases"
    API = "API", "API"


class ConnectorStatus(models.TextChoices):
    AVAILABLE = "AVAILABLE", "Available"
    BETA = "BETA", "Beta"


class SyncMode(models.TextChoices):
    FULL = "FULL", "Full"
    INCREMENTAL = "INCREMENTAL", "Incremental"
    SNAPSHOT = "SNAPSHOT", "Snapshot"


class ConnectionStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    INACTIVE = "INACTIVE", "Inactive"
    ERROR = "ERROR", "Error"
