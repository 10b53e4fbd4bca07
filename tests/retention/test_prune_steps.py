"""The retention of events, audit entries, SFTP activity and webhook deliveries, and what every
prune shares: the window, a bounded batch per task, the task sending itself again while more
remain, the run's numbers in the overview, 0 days keeping everything, and a run replaced by a
newer one stopping."""

from __future__ import annotations

import pytest

from accounts.models import AuditEntry, Event
from accounts.tasks import audit_prune, events_prune
from config.retention import RETENTION_KINDS, retention_overview
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import DefenderHost, SftpActivity
from sftpgateway.tasks import activity_prune
from tests.retention.conftest import days_ago, overview
from tests.webhooks import conftest as webhooks_conftest
from tests.webhooks.conftest import drain, record
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookDelivery
from webhooks.tasks import webhook_deliveries_prune

pytestmark = pytest.mark.django_db

# The webhooks' fixtures, available here under their own names.
_plain_http_allowed = webhooks_conftest._plain_http_allowed
receiver = webhooks_conftest.receiver
subscribe = webhooks_conftest.subscribe


def events(account, count: int, *, age_days: float) -> list[Event]:
    rows = [Event.objects.create(account=account, type="integration.updated") for _ in range(count)]
    Event.objects.filter(pk__in=[row.pk for row in rows]).update(created_at=days_ago(age_days))
    return rows


def test_events_past_the_window_go_a_batch_a_task_until_none_is_left(
    tenant, settings, broker, batch
):
    # Given five events older than the 90 days kept and two within them
    settings.EVENT_RETENTION_DAYS = 90
    old = events(tenant.account, 5, age_days=91)
    recent = events(tenant.account, 2, age_days=89)

    # When beat starts the prune
    pruned = events_prune()

    # Then one task removed one batch, the oldest, and sent itself again for the rest
    assert pruned == batch
    assert Event.objects.count() == 5
    waiting = broker.sent("default")
    assert [name for name, _ in waiting] == ["accounts.tasks.events_prune"]
    step = waiting[0][1]
    assert set(step) == {"run", "cutoff"}
    assert overview("events")["last_run"]["finished_at"] is None
    assert overview("events")["pruned_last_run"] == 2

    # When a worker works what the queue holds
    steps = broker.drain("default")

    # Then the prune continued to the end, and kept exactly the events within the window
    assert steps == 2
    assert sorted(Event.objects.values_list("pk", flat=True)) == sorted(e.pk for e in recent)
    assert not Event.objects.filter(pk__in=[e.pk for e in old]).exists()
    summary = overview("events")
    assert summary["retention_days"] == 90
    assert summary["rows_kept"] == 2
    assert summary["oldest_kept"] == Event.objects.earliest("created_at").created_at
    assert summary["pruned_last_run"] == 5
    assert summary["last_run"]["batches"] == 3
    assert summary["last_run"]["finished_at"] is not None
    assert summary["last_run"]["error"] == ""


def test_audit_entries_past_their_window_go_and_the_rest_stay(tenant, settings, broker):
    settings.AUDIT_RETENTION_DAYS = 365
    for age in (400, 366, 364, 1):
        entry = AuditEntry.objects.create(
            account=tenant.account, resource_type="integration", resource_id="x", action="updated"
        )
        AuditEntry.objects.filter(pk=entry.pk).update(created_at=days_ago(age))

    assert audit_prune() == 2

    assert AuditEntry.objects.filter(created_at__lt=days_ago(365)).count() == 0
    assert AuditEntry.objects.filter(resource_id="x").count() == 2
    assert broker.sent("default") == []
    assert overview("audit")["pruned_last_run"] == 2


def test_sftp_activity_past_its_window_goes_and_a_ban_pointing_at_it_stays(
    tenant, settings, broker
):
    settings.SFTP_ACTIVITY_RETENTION_DAYS = 90
    old = SftpActivity.objects.create(event=ActivityEvent.LOGIN_FAILED, username="x")
    recent = SftpActivity.objects.create(event=ActivityEvent.LOGIN_FAILED, username="y")
    SftpActivity.objects.filter(pk=old.pk).update(created_at=days_ago(120))
    host = DefenderHost.objects.create(address="192.0.2.7", refused_activity=old, refused_count=4)

    assert activity_prune() == 1

    assert list(SftpActivity.objects.values_list("pk", flat=True)) == [recent.pk]
    host.refresh_from_db()
    assert (host.refused_activity_id, host.refused_count) == (None, 4)
    assert broker.sent("ingest") == []


def test_zero_days_keeps_everything(tenant, settings, broker):
    settings.AUDIT_RETENTION_DAYS = 0
    entry = AuditEntry.objects.create(
        account=tenant.account, resource_type="integration", resource_id="x", action="updated"
    )
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=days_ago(10_000))

    assert audit_prune() == 0

    assert AuditEntry.objects.filter(resource_id="x").count() == 1
    assert overview("audit")["retention_days"] == 0
    assert overview("audit")["pruned_last_run"] == 0
    assert broker.sent("default") == []


def test_a_run_replaced_by_a_newer_one_stops_and_the_newer_one_finishes(
    tenant, settings, broker, batch
):
    # Given a run that left its next step in the queue
    settings.EVENT_RETENTION_DAYS = 30
    events(tenant.account, 5, age_days=31)
    events_prune()
    [(_, first_run)] = broker.sent("default")

    # When beat starts the next run before that step is worked
    events_prune()

    # Then the first run's step does nothing, and the newer run takes the rest
    [_, (_, second_run)] = broker.sent("default")
    assert first_run["run"] != second_run["run"]
    steps = broker.drain("default")
    assert steps == 2
    assert Event.objects.count() == 0
    assert overview("events")["pruned_last_run"] == 3


@pytest.mark.django_db(transaction=True)
def test_webhook_deliveries_keep_the_pending_and_report_the_run(
    tenant, settings, subscribe, receiver, broker
):
    settings.WEBHOOK_RETENTION_DAYS = 30
    webhook, _ = subscribe(f"{receiver.url}/hook")
    for _ in range(3):
        record(tenant.account)
    drain(webhook)
    delivered = list(WebhookDelivery.objects.order_by("created_at"))
    assert {row.status for row in delivered} == {DeliveryStatus.DELIVERED}
    WebhookDelivery.objects.filter(pk=delivered[0].pk).update(created_at=days_ago(31))
    WebhookDelivery.objects.filter(pk=delivered[1].pk).update(
        created_at=days_ago(31), status=DeliveryStatus.PENDING
    )

    assert webhook_deliveries_prune() == 1

    assert sorted(WebhookDelivery.objects.values_list("pk", flat=True)) == sorted(
        [delivered[1].pk, delivered[2].pk]
    )
    assert overview("webhook_deliveries")["pruned_last_run"] == 1


def test_the_overview_names_every_kind_with_its_setting_and_numbers(tenant, settings, broker):
    events(tenant.account, 1, age_days=3)

    rows = retention_overview()

    assert [row["kind"] for row in rows] == [kind.name for kind in RETENTION_KINDS]
    assert {row["kind"] for row in rows} == {
        "feed_files",
        "runs",
        "export_runs",
        "vehicle_versions",
        "sftp_activity",
        "audit",
        "events",
        "webhook_deliveries",
    }
    for row in rows:
        assert set(row) == {
            "kind",
            "label",
            "setting",
            "retention_days",
            "rows_kept",
            "oldest_kept",
            "pruned_last_run",
            "last_run",
        }
        assert row["retention_days"] == getattr(settings, row["setting"])
    events_row = next(row for row in rows if row["kind"] == "events")
    assert events_row["rows_kept"] >= 1
    assert events_row["last_run"] is None  # no prune ran in this test
