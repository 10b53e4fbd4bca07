import django_filters

from accounts.models import AuditEntry, Event
from config.api.datetimes import IsoDateTimeFilter


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(field_name="type", help_text="Exact event type.")
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    integration_id = django_filters.UUIDFilter(field_name="integration_id")
    since = IsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="ISO 8601 (UTC offset at most ±15:59); events at or after it.",
    )

    class Meta:
        model = Event
        fields: list[str] = []


class AuditEntryFilter(django_filters.FilterSet):
    resourceType = django_filters.CharFilter(field_name="resource_type")
    resourceId = django_filters.CharFilter(field_name="resource_id")
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    action = django_filters.CharFilter(field_name="action")
    since = IsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="ISO 8601 (UTC offset at most ±15:59); entries at or after it.",
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []
