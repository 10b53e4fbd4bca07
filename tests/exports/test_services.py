import datetime as dt

import pytest
import time_machine

from accounts.models import AuditEntry
from accounts.services import Actor
from config.api.errors import InvalidInput
from exports.models import Export
from exports.services import export_create, export_update
from tests.exports.factories import ExportFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC)


def test_create_checks_the_destination_itself_when_called_without_the_api(tenant):
    with pytest.raises(InvalidInput) as raised:
        export_create(
            account=tenant.account,
            actor=Actor.system(),
            name="Direct",
            format="CSV",
            entities=["contracts"],
            destination={"type": "SFTP"},
        )

    assert raised.value.details == {
        "destination.connectionId": ["This field is required for SFTP destinations."]
    }
    assert not Export.objects.exists()
    assert not AuditEntry.objects.filter(resource_type="export").exists()


@time_machine.travel(NOW, tick=False)
def test_update_merges_into_the_stored_row_not_a_stale_copy(tenant):
    export = ExportFactory(account=tenant.account, frequency="DAILY", time=dt.time(2, 0))
    stale = Export.objects.get(pk=export.pk)
    export_update(export=export, actor=Actor.system(), time=dt.time(4, 0))

    updated = export_update(export=stale, actor=Actor.system(), timezone="Europe/London")

    assert (updated.time, updated.timezone) == (dt.time(4, 0), "Europe/London")
    # 04:00 BST on 16 June is 03:00 UTC.
    assert updated.next_run_at == dt.datetime(2025, 6, 16, 3, 0, tzinfo=dt.UTC)
    entries = AuditEntry.objects.filter(resource_id=str(export.pk)).order_by("id")
    assert [set(e.changes) for e in entries] == [
        {"time", "next_run_at"},
        {"timezone", "next_run_at"},
    ]
