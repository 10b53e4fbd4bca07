import django_filters

from syncengine.choices import FeedFileStatus, VehicleCondition, VehicleStatus
from syncengine.models import FeedFile, Vehicle


class FeedFileFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FeedFileStatus.choices)

    class Meta:
        model = FeedFile
        fields: list[str] = []


class VehicleFilter(django_filters.FilterSet):
    dealershipId = django_filters.UUIDFilter(field_name="dealership_id")
    integrationId = django_filters.UUIDFilter(field_name="integration_id")
    status = django_filters.ChoiceFilter(choices=VehicleStatus.choices)
    vin = django_filters.CharFilter(field_name="vin", lookup_expr="iexact")
    stockNumber = django_filters.CharFilter(field_name="stock_number")
    make = django_filters.CharFilter(field_name="make", lookup_expr="iexact")
    model = django_filters.CharFilter(field_name="model", lookup_expr="iexact")
    year = django_filters.NumberFilter(field_name="year")
    condition = django_filters.ChoiceFilter(choices=VehicleCondition.choices)
    minPrice = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    maxPrice = django_filters.NumberFilter(field_name="price", lookup_expr="lte")

    class Meta:
        model = Vehicle
        fields: list[str] = []
