from django.db import models


class DeliveryStatus(models.TextChoices):
    """Where one event's delivery to one endpoint stands."""

    PENDING = "pending", "Pending: waiting for its first attempt or its next retry"
    DELIVERED = "delivered", "Delivered: the endpoint answered 2xx"
    FAILED = "failed", "Failed: every attempt of the schedule failed, or the endpoint answered 410"


class DeliveryTrigger(models.TextChoices):
    """Why a delivery row exists: an event, or an operator's request to send one again."""

    EVENT = "event", "An event the endpoint subscribes to"
    REDELIVERY = "redelivery", "Redelivered on request"
    REPLAY = "replay", "Replayed on request"
    TEST = "test", "A test event"
