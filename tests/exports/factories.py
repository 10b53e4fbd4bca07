import datetime as dt

import factory

from exports.choices import ExportFormat, ExportFrequency
from exports.models import Export
from tests.factories import AccountFactory


class ExportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Export

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Export {n}")
    format = ExportFormat.CSV
    entities = factory.LazyFunction(lambda: ["contracts"])
    filter = factory.LazyFunction(dict)
    frequency = ExportFrequency.DAILY
    time = dt.time(2, 0)
    destination = factory.LazyFunction(lambda: {"type": "S3", "bucket": "exports-bucket"})
