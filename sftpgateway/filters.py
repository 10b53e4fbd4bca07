import django_filters

from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity


class SftpActivityFilter(django_filters.FilterSet):
    event = django_filters.MultipleChoiceFilter(choices=ActivityEvent.choices)

    class Meta:
        model = SftpActivity
        fields: list[str] = []
