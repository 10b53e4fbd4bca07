import django_filters

from exports.choices import ExportFormat, ExportState
from exports.models import Export


class IntegrationExportFilter(django_filters.FilterSet):
    format = django_filters.ChoiceFilter(choices=ExportFormat.choices)
    state = django_filters.ChoiceFilter(choices=ExportState.choices)

    class Meta:
        model = Export
        fields: list[str] = []


class ExportFilter(IntegrationExportFilter):
    integrationId = django_filters.UUIDFilter(field_name="integration_id")

    class Meta(IntegrationExportFilter.Meta):
        pass
