from celery import shared_task
from django.conf import settings

from accounts import services


@shared_task
def events_prune() -> int:
    """Housekeeping: drop events older than ``EVENT_RETENTION_DAYS``."""
    return services.events_prune(older_than_days=settings.EVENT_RETENTION_DAYS)
