"""Query filters of the list endpoints. The documented names are snake_case; camelCase works too."""

import django_filters

from integrations.choices import DataType, IntegrationState, IntegrationStatus
from integrations.models import FileImport, Flow, Integration


class IntegrationFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=IntegrationState.choices)
    status = django_filters.ChoiceFilter(choices=IntegrationStatus.choices)
    source_app_id = django_filters.UUIDFilter(field_name="source_connection_id")
    sourceAppId = django_filters.UUIDFilter(field_name="source_connection_id")
    destination_app_id = django_filters.UUIDFilter(field_name="destination_connection_id")
    destinationAppId = django_filters.UUIDFilter(field_name="destination_connection_id")
    data_type = django_filters.ChoiceFilter(field_name="data_type", choices=DataType.choices)
    dataType = django_filters.ChoiceFilter(field_name="data_type", choices=DataType.choices)
    type = django_filters.CharFilter(field_name="type")
    dealershipId = django_filters.UUIDFilter(field_name="dealership_id")
    dealership_id = django_filters.UUIDFilter(field_name="dealership_id")

    class Meta:
        model = Integration
        fields: list[str] = []


class FileImportFilter(django_filters.FilterSet):
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    connectionId = django_filters.UUIDFilter(field_name="connection_id")

    class Meta:
        model = FileImport
        fields: list[str] = []


class FlowFilter(django_filters.FilterSet):
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    disabled = django_filters.BooleanFilter()

    class Meta:
        model = Flow
        fields: list[str] = []
