"""What an operator sees and does in the admin: records the engine writes are read-only pages with
buttons that call the services; JSON is shown as tables; filters and links narrow the lists to
one integration; deleted integrations stay out of the way until asked for."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Event
from accounts.services import Actor, event_record
from integrations.models import Integration
from integrations.services.integrations import integration_delete
from syncengine.choices import JobKind, JobStatus
from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.console.conftest import finish_file, make_job
from tests.exports.factories import ExportFactory
from tests.factories import DealershipFactory, IntegrationFactory
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def result_list(response) -> str:
    """The rows of a changelist (not its filters)."""
    html = response.content.decode()
    start = html.index('<table id="result_list"')
    return html[start : html.index("</table>", start)]


def file_page(feed_file: FeedFile) -> str:
    return reverse("admin:syncengine_feedfile_change", args=[feed_file.pk])


def job_page(job: SyncJob) -> str:
    return reverse("admin:syncengine_syncjob_change", args=[job.pk])


# --- received files -----------------------------------------------------------------------------


def test_a_received_file_is_a_read_only_page_with_its_counts_as_a_table(operator, feed, receive):
    feed_file = finish_file(
        receive(feed),
        records_total=120,
        records_created=7,
        records_updated=3,
        records_unchanged=110,
        records_errors=2,
        error_samples=[
            {
                "row": 14,
                "severity": "error",
                "field": "vin",
                "value": "NOTAVIN",
                "reason": "not a VIN",
                "values": {"VIN": "NOTAVIN", "Stock #": "B7"},
            }
        ],
        warnings=["2 rows had no price"],
    )

    page = operator.get(file_page(feed_file))
    posted = operator.post(file_page(feed_file), {"records_created": "9999"})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert 'name="records_created"' not in html
    assert '<label class="inline">Records unchanged:</label>' in html
    assert '<div class="readonly">110</div>' in html
    assert "<td>NOTAVIN</td><td>not a VIN</td>" in html
    assert "2 rows had no price" in html
    assert '"records_created"' not in html
    assert "{&quot;" not in html
    assert "Reprocess with the current mappings" in html
    assert posted.status_code == 403
    feed_file.refresh_from_db()
    assert feed_file.records_created == 7


def test_the_reprocess_button_queues_the_same_file_again(operator, feed, receive):
    original = finish_file(receive(feed), records_total=1, records_created=1)

    response = operator.post(file_page(original), {"_operator_action": "reprocess"}, follow=True)

    copy = FeedFile.objects.exclude(pk=original.pk).get()
    assert response.status_code == 200
    assert "Queued 1 file(s) for reprocessing." in response.content.decode()
    assert (copy.source, copy.status, copy.stored_path) == (
        "reprocess",
        "received",
        original.stored_path,
    )
    run = SyncJob.objects.get(feed_files=copy)
    assert (run.trigger, run.status) == ("reprocess", JobStatus.QUEUED)
    assert AuditEntry.objects.filter(resource_id=str(copy.pk), action="reprocessed").exists()
    # The copy names its original, and the original its copy.
    copy_html = operator.get(file_page(copy)).content.decode()
    original_html = operator.get(file_page(original)).content.decode()
    assert file_page(original) in copy_html
    assert file_page(copy) in original_html


def test_the_reprocess_action_of_the_list_queues_each_selected_file(operator, feed, receive):
    first, second = receive(feed), receive(feed, filename="second.csv")

    response = operator.post(
        reverse("admin:syncengine_feedfile_changelist"),
        {"action": "reprocess_forced", "_selected_action": [str(first.pk), str(second.pk)]},
        follow=True,
    )

    copies = FeedFile.objects.filter(source="reprocess")
    assert "Queued 2 file(s) for reprocessing." in response.content.decode()
    assert sorted(copies.values_list("filename", flat=True)) == ["inventory.csv", "second.csv"]
    assert all(copy.force for copy in copies)


def test_a_viewer_sees_no_buttons_and_cannot_operate(viewer, feed, receive):
    feed_file = receive(feed)

    page = viewer.get(file_page(feed_file))
    button = viewer.post(file_page(feed_file), {"_operator_action": "reprocess"})
    listed = viewer.get(reverse("admin:syncengine_feedfile_changelist"))

    assert page.status_code == 200
    assert "_operator_action" not in page.content.decode()
    assert button.status_code == 403
    assert 'value="reprocess"' not in listed.content.decode()
    assert FeedFile.objects.count() == 1


def test_the_files_list_tells_copies_from_originals_and_filters_them(operator, feed, receive):
    changed = finish_file(receive(feed, filename="monday.csv"), records_created=4)
    same = finish_file(receive(feed, filename="tuesday.csv"), records_unchanged=4)
    operator.post(file_page(changed), {"_operator_action": "reprocess"})
    changelist = reverse("admin:syncengine_feedfile_changelist")

    everything = operator.get(changelist).content.decode()
    copies = operator.get(changelist, {"source__exact": "reprocess"}).content.decode()
    unchanged = operator.get(changelist, {"unchanged": "yes"}).content.decode()

    assert everything.count('class="railyard-source-reprocess"') == 1
    assert everything.count('class="railyard-source-sftp"') == 2
    assert "monday.csv" in copies
    assert "tuesday.csv" not in copies
    assert "railyard-source-sftp" not in copies
    assert "tuesday.csv" in unchanged
    assert "monday.csv" not in unchanged
    assert same.records_unchanged == 4


# --- jobs ---------------------------------------------------------------------------------------


def test_a_job_page_shows_stats_and_log_as_tables(operator, tenant, feed):
    job = make_job(
        account=tenant.account,
        integration=feed,
        status=JobStatus.COMPLETED,
        stats={
            "orders": {
                "created": 5,
                "updated": 2,
                "unchanged": 40,
                "deleted": 0,
                "errors": 1,
                "skipped": 0,
                "read": 48,
                "errorSamples": [{"key": None, "reason": "no primary key"}],
            },
            "customers": {"created": 0, "updated": 9, "read": 9},
        },
        log=[
            {"at": "2025-03-01T08:30:00+00:00", "level": "info", "message": "Queued by Ops."},
            {"at": "2025-03-01T08:31:00+00:00", "level": "error", "message": "Stripe said 500"},
        ],
    )

    page = operator.get(job_page(job))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert 'class="railyard-table railyard-stats"' in html
    assert '<th scope="row">orders</th>' in html
    assert "no primary key" in html
    assert 'class="railyard-table railyard-log"' in html
    assert '<tr class="railyard-level-error">' in html
    assert "Stripe said 500" in html
    assert "errorSamples" not in html
    assert "{&quot;" not in html
    assert "Run again" in html


def test_a_running_job_page_shows_its_progress_and_follows_it(operator, tenant, feed):
    job = make_job(
        account=tenant.account,
        integration=feed,
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        progress={"recordsDone": 420, "recordsTotal": 1000, "entitiesDone": 0, "entity": "orders"},
    )

    html = operator.get(job_page(job)).content.decode()
    feed_answer = operator.get(reverse("admin:operations-jobs"), {"job": str(job.pk)}).json()

    assert 'aria-valuenow="42"' in html
    assert f'data-poll-url="{reverse("admin:operations-jobs")}?job={job.pk}"' in html
    assert "42% · 420 of 1,000 records (orders)" in html
    assert "Cancel this job" in html
    assert "Run again" not in html
    assert feed_answer["jobs"][0]["percent"] == 42
    assert feed_answer["jobs"][0]["status"] == "RUNNING"


def test_the_cancel_button_cancels_a_queued_job(operator, tenant, feed):
    job = make_job(account=tenant.account, integration=feed)

    response = operator.post(job_page(job), {"_operator_action": "cancel"}, follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert "Cancelled 1 job(s)" in response.content.decode()
    assert "Cancel this job" not in response.content.decode()


def test_a_finished_file_run_runs_again_as_a_reprocess(operator, feed, receive):
    feed_file = finish_file(receive(feed), records_created=1)

    response = operator.post(
        reverse("admin:syncengine_syncjob_changelist"),
        {"action": "rerun", "_selected_action": [str(feed_file.job_id)]},
        follow=True,
    )

    rerun = SyncJob.objects.exclude(feed_files=feed_file).get()
    assert (rerun.kind, rerun.trigger, rerun.status) == (JobKind.FILE, "reprocess", "QUEUED")
    assert rerun.feed_files.get().stored_path == feed_file.stored_path
    assert "queued again as" in response.content.decode()


def test_a_finished_export_run_runs_again_and_a_busy_one_says_so(operator, tenant):
    export = ExportFactory(account=tenant.account, name="Nightly contracts")
    done = make_job(
        account=tenant.account, kind=JobKind.EXPORT, export=export, status=JobStatus.FAILED
    )

    first = operator.post(job_page(done), {"_operator_action": "rerun"}, follow=True)
    second = operator.post(job_page(done), {"_operator_action": "rerun"}, follow=True)

    runs = SyncJob.objects.filter(export=export, status=JobStatus.QUEUED)
    assert runs.count() == 1
    assert "queued again as" in first.content.decode()
    assert "already queued" in second.content.decode()


def test_a_sync_runs_again_through_the_integrations_sync(operator, tenant, monkeypatch):
    from connectors import registry
    from tests.syncengine.memory import Dataset, MemoryConnector, connection_for

    monkeypatch.setitem(registry._REGISTRY, MemoryConnector.id, MemoryConnector)
    connection = connection_for(tenant, Dataset(records={"customers": []}), name="console")
    integration = IntegrationFactory(
        account=tenant.account, type="test_memory", source_connection=connection, dealership=None
    )
    done = make_job(account=tenant.account, integration=integration, status=JobStatus.COMPLETED)

    operator.post(job_page(done), {"_operator_action": "rerun"})

    rerun = SyncJob.objects.exclude(pk=done.pk).get()
    assert (rerun.integration, rerun.kind, rerun.status) == (integration, "sync", "QUEUED")
    integration.refresh_from_db()
    assert integration.latest_job_id == rerun.pk


# --- integrations -------------------------------------------------------------------------------


def test_deleted_integrations_are_hidden_until_asked_for(operator, tenant):
    live = IntegrationFactory(account=tenant.account, name="Live feed")
    gone = IntegrationFactory(account=tenant.account, name="Gone feed")
    integration_delete(integration=gone, actor=Actor.system())
    changelist = reverse("admin:integrations_integration_changelist")

    default = operator.get(changelist).content.decode()
    deleted = operator.get(changelist, {"deleted": "yes"}).content.decode()
    everything = operator.get(changelist, {"deleted": "all"}).content.decode()

    assert live.name in default
    assert gone.name not in default
    assert gone.name in deleted
    assert live.name not in deleted
    assert gone.name in everything
    assert live.name in everything


def test_a_deleted_integration_is_read_only_and_restored_by_its_button(operator, tenant):
    gone = IntegrationFactory(account=tenant.account, name="Gone feed")
    integration_delete(integration=gone, actor=Actor.system())
    page_url = reverse("admin:integrations_integration_change", args=[gone.pk])

    page = operator.get(page_url).content.decode()
    operator.post(page_url, {"_operator_action": "restore"})

    assert 'name="_save"' not in page
    assert "Restore this integration" in page
    assert Integration.objects.filter(pk=gone.pk).exists()
    assert AuditEntry.objects.filter(integration_id=gone.pk, action="restored").exists()
    assert Event.objects.filter(integration_id=gone.pk, type="integration.restored").exists()


def test_an_integration_page_reads_as_definitions_and_links_to_its_records(
    operator, tenant, feed, receive
):
    Integration.objects.filter(pk=feed.pk).update(
        config={"global": {"timezone": "America/Chicago"}, "tasks": [{"type": "rename"}]},
        sync_settings={"strategy": "overwrite"},
    )
    receive(feed)
    other = IntegrationFactory(account=tenant.account)
    receive(other, filename="not-this-one.csv")

    page = operator.get(reverse("admin:integrations_integration_change", args=[feed.pk]))

    html = page.content.decode()
    assert '<dt>global</dt><dd><dl class="railyard-dl"><dt>timezone</dt>' in html
    assert "<dt>timezone</dt><dd>America/Chicago</dd>" in html
    assert "<dt>tasks</dt><dd><table" in html
    assert "<td>rename</td>" in html
    assert "<td>strategy</td><td>overwrite</td><td>the integration</td>" in html
    assert "<td>sold_grace_syncs</td><td>2</td><td>default</td>" in html
    assert "<textarea" not in html
    files_url = (
        reverse("admin:syncengine_feedfile_changelist") + f"?integration__id__exact={feed.pk}"
    )
    assert f'<a href="{files_url}">1 received files</a>' in html
    assert f"?integration_id={feed.pk}" in html  # its events and audit trail
    listed = operator.get(files_url).content.decode()
    assert "inventory.csv" in listed
    assert "not-this-one.csv" not in listed


def test_renaming_and_pausing_an_integration_goes_through_the_service(operator, tenant, feed):
    page_url = reverse("admin:integrations_integration_change", args=[feed.pk])

    response = operator.post(
        page_url,
        {
            "name": "Lakeside vAuto (paused)",
            "state": "inactive",
            "flows-TOTAL_FORMS": "0",
            "flows-INITIAL_FORMS": "0",
            "flows-MIN_NUM_FORMS": "0",
            "flows-MAX_NUM_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content
    feed.refresh_from_db()
    assert (feed.name, feed.state) == ("Lakeside vAuto (paused)", "inactive")
    entry = AuditEntry.objects.get(integration_id=feed.pk, action="updated")
    assert entry.changes["state"] == {"before": "active", "after": "inactive"}


def test_the_delete_action_deletes_softly(operator, tenant, feed):
    response = operator.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "soft_delete", "_selected_action": [str(feed.pk)]},
        follow=True,
    )

    assert "Deleted 1 integration(s)." in response.content.decode()
    assert Integration.all_objects.get(pk=feed.pk).deleted_at is not None
    assert not Integration.objects.filter(pk=feed.pk).exists()


# --- vehicles -----------------------------------------------------------------------------------


def _vehicle(integration, key: str, dealership=None) -> Vehicle:
    now = timezone.now()
    return Vehicle.objects.create(
        account_id=integration.account_id,
        integration=integration,
        dealership=dealership or integration.dealership,
        key=key,
        vin=key,
        make="Ford",
        model="Bronco",
        year=2024,
        first_seen_at=now,
        last_seen_at=now,
    )


def test_vehicles_filter_by_integration_and_dealership(operator, tenant, feed):
    downtown = DealershipFactory(account=tenant.account, name="Downtown Ford")
    other_feed = IntegrationFactory(account=tenant.account, dealership=downtown)
    _vehicle(feed, "1FMDE5BH0RLA00001")
    _vehicle(other_feed, "1FMDE5BH0RLA00002")
    changelist = reverse("admin:syncengine_vehicle_changelist")

    everything = operator.get(changelist).content.decode()
    by_integration = operator.get(changelist, {"integration__id__exact": str(feed.pk)})
    by_dealership = operator.get(changelist, {"dealership__id__exact": str(downtown.pk)})

    assert "1FMDE5BH0RLA00001" in everything
    assert "1FMDE5BH0RLA00002" in everything
    assert "Lakeside vAuto (Acme Auto Group)" in everything  # the integration filter's choice
    assert "Downtown Ford" in everything  # the dealership filter's choice
    assert "1FMDE5BH0RLA00001" in by_integration.content.decode()
    assert "1FMDE5BH0RLA00002" not in by_integration.content.decode()
    assert "1FMDE5BH0RLA00002" in by_dealership.content.decode()
    assert "1FMDE5BH0RLA00001" not in by_dealership.content.decode()


def test_a_vehicle_page_has_no_save_button(operator, feed):
    vehicle = _vehicle(feed, "1FMDE5BH0RLA00003")

    page = operator.get(reverse("admin:syncengine_vehicle_change", args=[vehicle.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "1FMDE5BH0RLA00003" in page.content.decode()


# --- webhook deliveries and events --------------------------------------------------------------


def test_a_webhook_delivery_shows_its_event_and_is_redelivered_by_its_button(
    operator, tenant, api, settings
):
    settings.WEBHOOK_ALLOW_HTTP = True
    created = api.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}, format="json"
    )
    assert created.status_code == 201, created.content
    event_record(
        account=tenant.account,
        type="integration.sync.completed",
        payload={"jobId": "job-7", "stats": {"orders": {"created": 3}}},
    )
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempt_count=8)
    page_url = reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])

    page = operator.get(page_url)
    response = operator.post(page_url, {"_operator_action": "redeliver"}, follow=True)

    html = page.content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html
    assert "<dt>jobId</dt><dd>job-7</dd>" in html
    assert "<dt>created</dt><dd>3</dd>" in html
    assert "1 deliveries queued again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.trigger) == ("pending", "redelivery")


def test_an_events_payload_and_an_audit_entrys_changes_read_as_tables(operator, tenant, feed):
    event = event_record(
        account=tenant.account,
        type="integration.paused",
        integration_id=feed.pk,
        payload={"integration": {"id": str(feed.pk), "name": feed.name}, "failures": 5},
    )
    other = IntegrationFactory(account=tenant.account)
    event_record(
        account=tenant.account, type="integration.sync.failed", integration_id=other.pk, payload={}
    )
    integration_delete(integration=feed, actor=Actor.system())
    entry = AuditEntry.objects.get(integration_id=feed.pk, action="deleted")

    event_html = operator.get(
        reverse("admin:accounts_event_change", args=[event.pk])
    ).content.decode()
    entry_html = operator.get(
        reverse("admin:accounts_auditentry_change", args=[entry.pk])
    ).content.decode()
    listed = result_list(
        operator.get(reverse("admin:accounts_event_changelist"), {"integration_id": str(feed.pk)})
    )

    assert "<dt>failures</dt><dd>5</dd>" in event_html
    assert f"<dt>name</dt><dd>{feed.name}</dd>" in event_html
    assert "<td>deletedAt</td><td><span" in entry_html  # before: empty, after: the moment
    assert "integration.paused" in listed
    assert "integration.deleted" in listed
    assert "integration.sync.failed" not in listed


def test_an_accounts_own_connector_is_read_only_and_deleted_only_when_unused(operator, tenant):
    from accounts.models import AuditEntry
    from connectors.models import Connection, CustomConnector

    manifest = {
        "id": "lot_api",
        "name": "Lot API",
        "category": "API",
        "config": {"properties": {"apiUrl": {"type": "string"}}, "required": ["apiUrl"]},
        "baseUrl": "{{ config.apiUrl }}",
        "authentication": {"type": "none"},
        "streams": [
            {"name": "lots", "path": "/lots", "recordSelector": "data", "primaryKey": "id"}
        ],
    }
    created = tenant.client.post(
        "/api/v1/integrations/connectors", {"manifest": manifest}, format="json"
    )
    assert created.status_code == 201, created.content
    custom = CustomConnector.objects.get(account=tenant.account, connector_id="lot_api")
    Connection.objects.create(
        account=tenant.account, connector_id="lot_api", name="Lots", config={"apiUrl": "x"}
    )
    url = f"/admin/connectors/customconnector/{custom.pk}/change/"

    page = operator.get(url)
    listing = operator.get(
        "/admin/connectors/connection/",
        {"account__id__exact": str(tenant.account.pk), "connector_id__exact": "lot_api"},
    )
    delete = f"/admin/connectors/customconnector/{custom.pk}/delete/"
    refused = operator.post(delete, {"post": "yes"})

    body = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in body
    assert "1 connection" in body
    assert "/lots" in body
    assert listing.status_code == 200
    assert "Lots" in listing.content.decode()
    assert refused.status_code == 403
    assert CustomConnector.objects.filter(pk=custom.pk).exists()

    Connection.objects.filter(connector_id="lot_api").delete()
    deleted = operator.post(delete, {"post": "yes"})

    assert deleted.status_code == 302
    assert not CustomConnector.objects.filter(pk=custom.pk).exists()
    assert AuditEntry.objects.filter(resource_type="connector", action="deleted").exists()


def test_a_flow_page_shows_its_settings_and_saves_only_name_and_switch_through_the_service(
    operator, tenant, feed
):
    from accounts.models import AuditEntry
    from integrations.models import Flow

    flow = Flow.objects.create(
        account=tenant.account,
        integration=feed,
        name="Nightly",
        settings={"steps": [{"kind": "import", "limit": 500}]},
    )
    url = f"/admin/integrations/flow/{flow.pk}/change/"

    page = operator.get(url)
    saved = operator.post(url, {"name": "Nightly run", "disabled": "on"})

    body = page.content.decode()
    assert page.status_code == 200
    assert "<textarea" not in body
    assert "limit" in body
    assert "500" in body
    assert saved.status_code == 302
    flow.refresh_from_db()
    assert (flow.name, flow.disabled) == ("Nightly run", True)
    assert flow.settings == {"steps": [{"kind": "import", "limit": 500}]}
    assert AuditEntry.objects.filter(resource_type="flow", resource_id=flow.pk).exists()
