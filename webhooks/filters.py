import django_filters

from config.api.datetimes import IsoDateTimeFilter
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookDelivery


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    eventType = django_filters.CharFilter(
        field_name="message__event_type", help_text="Exact event type."
    )
    since = IsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="ISO 8601 (UTC offset at most ±15:59); deliveries created at or after it.",
    )

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []
