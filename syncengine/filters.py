import django_filters
from django.db.models import QuerySet

from connectors.choices import SyncMode
from syncengine.choices import (
    FeedFileStatus,
    JobKind,
    JobStatus,
    JobTrigger,
    VehicleCondition,
    VehicleStatus,
)
from syncengine.models import FeedFile, Record, SyncJob, Vehicle


class FeedFileFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FeedFileStatus.choices)

    class Meta:
        model = FeedFile
        fields: list[str] = []


class VehicleFilter(django_filters.FilterSet):
    dealershipId = django_filters.UUIDFilter(field_name="dealership_id")
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    status = django_filters.ChoiceFilter(choices=VehicleStatus.choices)
    vin = django_filters.CharFilter(
        method="filter_vin", help_text="Any case, spaces ignored (VINs are stored upper-case)."
    )
    stockNumber = django_filters.CharFilter(field_name="stock_number")
    make = django_filters.CharFilter(field_name="make", lookup_expr="iexact")
    model = django_filters.CharFilter(field_name="model", lookup_expr="iexact")
    year = django_filters.NumberFilter(field_name="year")
    condition = django_filters.ChoiceFilter(choices=VehicleCondition.choices)
    minPrice = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    maxPrice = django_filters.NumberFilter(field_name="price", lookup_expr="lte")
    currency = django_filters.CharFilter(
        field_name="currency", lookup_expr="iexact", help_text="ISO 4217 code, e.g. CAD."
    )

    class Meta:
        model = Vehicle
        fields: list[str] = []

    def filter_vin(self, queryset: QuerySet[Vehicle], name: str, value: str) -> QuerySet[Vehicle]:
        # Stored VINs are normalised (upper-case, no spaces): an exact match of the normalised
        # value uses the (account, vin) index, which UPPER(vin) = UPPER(%s) could not.
        return queryset.filter(vin="".join(value.split()).upper())


class SyncJobFilter(django_filters.FilterSet):
    """Filters of one integration's (or connection's) jobs."""

    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=JobTrigger.choices)
    mode = django_filters.ChoiceFilter(choices=SyncMode.choices)

    class Meta:
        model = SyncJob
        fields: list[str] = []


class AccountSyncJobFilter(SyncJobFilter):
    """Filters of every job of an account (``/jobs``)."""

    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    connectionId = django_filters.UUIDFilter(field_name="connection_id")
    kind = django_filters.ChoiceFilter(choices=JobKind.choices)
    exportId = django_filters.UUIDFilter(field_name="export_id")
    importId = django_filters.UUIDFilter(field_name="file_import_id")

    class Meta:
        model = SyncJob
        fields: list[str] = []


class RecordFilter(django_filters.FilterSet):
    entity = django_filters.CharFilter(field_name="stream__entity", help_text="One entity.")
    key = django_filters.CharFilter(field_name="key", help_text="The source's primary key.")

    class Meta:
        model = Record
        fields: list[str] = []
