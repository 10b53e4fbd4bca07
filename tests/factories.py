"""factory_boy factories for the models tests build on."""

import factory

from accounts.models import Account, Dealership, User
from connectors.models import Connection
from integrations.choices import DataType
from integrations.models import Integration


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    account = factory.SubFactory(AccountFactory)


class DealershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dealership

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Dealer {n} Motors")
    timezone = "America/Chicago"


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    account = factory.SubFactory(AccountFactory)
    connector_id = "vauto"
    name = factory.Sequence(lambda n: f"Connection {n}")


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    account = factory.SubFactory(AccountFactory)
    dealership = factory.SubFactory(DealershipFactory, account=factory.SelfAttribute("..account"))
    name = factory.Sequence(lambda n: f"Feed {n}")
    type = "vauto"
    data_type = DataType.INVENTORY
