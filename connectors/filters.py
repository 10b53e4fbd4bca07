import django_filters

from connectors.choices import ConnectionStatus
from connectors.models import Connection


class ConnectionFilter(django_filters.FilterSet):
    connectorId = django_filters.CharFilter(
        field_name="connector_id", help_text="Only connections of this connector."
    )
    status = django_filters.ChoiceFilter(choices=ConnectionStatus.choices)

    class Meta:
        model = Connection
        fields: list[str] = []
