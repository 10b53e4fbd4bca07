"""One object of every kind the API addresses by id, owned by one tenant, and the rule that
tells which kind a path parameter names.

The contract test (tests/test_schema_contract.py) sends its generated requests to these objects
so that they reach past the 404 of a random id; the tenancy walk (tests/test_tenancy_walk.py)
sends another tenant's requests to them and expects 404 with nothing changed.

A new route whose path parameter names a kind not known here makes both tests fail with a
message saying so: add the kind to ``kind_of`` and a ``_make_<kind>`` method to ``World``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import ApiKeyScope, EventType
from accounts.models import Event
from accounts.services import api_key_create, event_record
from connectors.choices import SyncMode
from exports.models import ExportFile
from syncengine.choices import ChangeType, FeedFileStatus, JobStatus, JobTrigger
from syncengine.models import (
    FeedFile,
    Record,
    Snapshot,
    SnapshotRecord,
    SyncJob,
    SyncStream,
    Vehicle,
    VehicleVersion,
)
from tests.factories import UserFactory
from webhooks.models import WebhookDelivery

# Path parameters are named after what they identify (config/api/routers.py).
_KIND_BY_PARAMETER = {
    "apiKeyId": "api_key",
    "connectionId": "connection",
    "connectorId": "connector",
    "dealershipId": "dealership",
    "eventId": "event",
    "exportId": "export",
    "fileId": "export_file",
    "flowId": "flow",
    "importId": "import",
    "integrationId": "integration",
    "jobId": "job",
    "keyId": "sftp_key",
    "logId": "feed_file",
    "revisionId": "revision",
    "runId": "export_run",
    "shareId": "share",
    "syncId": "connection_job",
    "token": "template_token",
    "vehicleId": "vehicle",
    "webhookId": "webhook",
    "deliveryId": "webhook_delivery",
}


def kind_of(path: str, parameter: str) -> str | None:
    """The kind of object ``{parameter}`` names in the OpenAPI path ``path``, or None."""
    segments = path.strip("/").split("/")
    placeholder = f"{{{parameter}}}"
    if placeholder not in segments:
        return None
    position = segments.index(placeholder)
    if parameter == "snapshotId":
        owner = "connection" if "{connectionId}" in segments[:position] else "integration"
        return f"{owner}_snapshot"
    return _KIND_BY_PARAMETER.get(parameter)


def _created(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.content
    data: dict[str, Any] = response.json()["data"]
    return data


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


class World:
    """One tenant's objects, created on first use: ``world.id("flow")`` creates a flow (with the
    integration, import and dealership it needs) the first time and answers its id ever after.

    Objects the API creates are created through the tenant's API ``client``; what only a worker
    or the gateway writes (jobs, snapshots, stored records, received files, vehicles) is written
    to the database directly.
    """

    def __init__(self, *, account: Any, client: APIClient) -> None:
        self.account = account
        self.client = client
        self.ids: dict[str, str] = {}

    def id(self, kind: str) -> str:
        if kind not in self.ids:
            make = getattr(self, f"_make_{kind}", None)
            assert make is not None, f"tests/apiworld.py cannot make a {kind!r} yet"
            self.ids[kind] = str(make())
        return self.ids[kind]

    def _post(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return _created(self.client.post(url, body or {}, format="json"))

    def _make_api_key(self) -> Any:
        # A key of its own: requests that revoke "the" key must not revoke the one in use.
        spare_key, _ = api_key_create(account=self.account, name="spare", scope=ApiKeyScope.READ)
        return spare_key.pk

    def _make_dealership(self) -> Any:
        return self._post("/api/v1/dealerships", {"name": "Main Street"})["id"]

    def _make_connection(self) -> Any:
        return self._post(
            "/api/v1/integrations/connections",
            {"connectorId": "test_shop_api", "name": "Shop", "credentials": {"apiKey": "k" * 12}},
        )["connectionId"]

    def _make_connector(self) -> Any:
        # The account's own connector (a manifest): shipped ones are the same for everyone.
        manifest = {
            "id": "walk_orders",
            "name": "Walk Orders",
            "category": "API",
            "config": {"properties": {"apiUrl": {"type": "string"}}, "required": ["apiUrl"]},
            "baseUrl": "{{ config.apiUrl }}",
            "authentication": {"type": "none"},
            "streams": [
                {"name": "orders", "path": "/orders", "recordSelector": "data", "primaryKey": "id"}
            ],
        }
        return self._post("/api/v1/integrations/connectors", {"manifest": manifest})["connectorId"]

    def _make_integration(self) -> Any:
        # A feed type: it comes with SFTP credentials, so the sftp routes have something to show.
        return self._post(
            "/api/v1/integrations",
            {"type": "vauto", "name": "Lot feed", "dealershipId": self.id("dealership")},
        )["id"]

    def _make_import(self) -> Any:
        return self._post(
            "/api/v1/imports", {"name": "Lot import", "integrationId": self.id("integration")}
        )["id"]

    def _make_flow(self) -> Any:
        return self._post(
            "/api/v1/flows",
            {
                "name": "Lot flow",
                "integrationId": self.id("integration"),
                "importId": self.id("import"),
            },
        )["id"]

    def _make_export(self) -> Any:
        return self._post(
            "/api/v1/integrations/exports",
            {
                "name": "Nightly",
                "format": "CSV",
                "entities": ["vehicles"],
                # S3 needs an s3 connection of the account; LOCAL needs none.
                "destination": {"type": "LOCAL", "path": "nightly"},
                "integrationId": self.id("integration"),
            },
        )["id"]

    def _make_export_run(self) -> Any:
        response = self.client.post(f"/api/v1/integrations/exports/{self.id('export')}/run")
        assert response.status_code == 202, response.content
        return response.json()["data"]["runId"]

    def _make_export_file(self) -> Any:
        # Only a run writes files; its first, as the run records it.
        ExportFile.objects.create(
            run_id=self.id("export_run"),
            number=1,
            entity="vehicles",
            destination_type="LOCAL",
            uri="local:nightly/vehicles.csv",
            path="vehicles.csv",
            bytes=0,
            rows=0,
            sha256="0" * 64,
        )
        return 1

    def _make_revision(self) -> Any:
        return self._post(f"/api/v1/integrations/{self.id('integration')}/revisions/create")["id"]

    def _make_share(self) -> Any:
        user = UserFactory(account=self.account)
        return self._post(
            f"/api/v1/integrations/{self.id('integration')}/ashares", {"email": user.email}
        )["id"]

    def _make_sftp_key(self) -> Any:
        return self._post(
            f"/api/v1/integrations/{self.id('integration')}/sftp/keys",
            {"name": "laptop", "publicKey": _public_key()},
        )["id"]

    def _make_template_token(self) -> Any:
        link = self._post(f"/api/v1/integrations/{self.id('integration')}/template")
        return link["signedURL"].rstrip("/").rsplit("/", 1)[-1]

    def _make_event(self) -> Any:
        self.id("integration")  # creating it records events
        event = Event.objects.filter(account=self.account).order_by("-created_at").first()
        assert event is not None
        return event.pk

    def _make_job(self) -> Any:
        return SyncJob.objects.create(
            account=self.account,
            integration_id=self.id("integration"),
            trigger=JobTrigger.MANUAL,
            status=JobStatus.RUNNING,
            started_at=timezone.now(),
        ).pk

    def _make_connection_job(self) -> Any:
        now = timezone.now()
        return SyncJob.objects.create(
            account=self.account,
            connection_id=self.id("connection"),
            trigger=JobTrigger.MANUAL,
            mode=SyncMode.SNAPSHOT,
            status=JobStatus.COMPLETED,
            started_at=now - timedelta(minutes=2),
            completed_at=now - timedelta(minutes=1),
        ).pk

    def _stored(self, owner: dict[str, str], job_id: Any) -> Any:
        """A complete snapshot of one record, and the same record in the store."""
        snapshot = Snapshot.objects.create(
            account=self.account,
            job_id=job_id,
            complete=True,
            completed_at=timezone.now(),
            entities={"orders": 1},
            record_count=1,
            **owner,
        )
        record = {"id": 1, "total": 9.5}
        SnapshotRecord.objects.create(snapshot=snapshot, entity="orders", position=0, data=record)
        stream = SyncStream.objects.create(
            account=self.account, entity="orders", last_synced_at=timezone.now(), **owner
        )
        Record.objects.create(stream=stream, key="1", data=record, content_hash=1)
        return snapshot.pk

    def _make_connection_snapshot(self) -> Any:
        owner = {"connection_id": self.id("connection")}
        return self._stored(owner, self.id("connection_job"))

    def _make_integration_snapshot(self) -> Any:
        owner = {"integration_id": self.id("integration")}
        job = SyncJob.objects.create(
            account=self.account,
            trigger=JobTrigger.MANUAL,
            mode=SyncMode.SNAPSHOT,
            status=JobStatus.COMPLETED,
            **owner,
        )
        return self._stored(owner, job.pk)

    def _make_feed_file(self) -> Any:
        now = timezone.now()
        return FeedFile.objects.create(
            account=self.account,
            integration_id=self.id("integration"),
            filename="lot.csv",
            size=120,
            received_at=now,
            processed_at=now,
            status=FeedFileStatus.COMPLETED,
            records_total=1,
            records_created=1,
            error_samples=[{"row": 2, "reason": "No VIN", "values": {"Stock": "A1"}}],
        ).pk

    def _make_vehicle(self) -> Any:
        now = timezone.now()
        vehicle = Vehicle.objects.create(
            account=self.account,
            integration_id=self.id("integration"),
            dealership_id=self.id("dealership"),
            key="1HGCM82633A004352",
            vin="1HGCM82633A004352",
            make="Honda",
            model="Accord",
            year=2021,
            first_seen_at=now,
            last_seen_at=now,
        )
        VehicleVersion.objects.create(
            vehicle=vehicle,
            feed_file_id=self.id("feed_file"),
            change_type=ChangeType.CREATED,
            changes={"make": {"before": None, "after": "Honda"}},
            created_at=now,
        )
        return vehicle.pk

    def _make_webhook(self) -> Any:
        # Loopback passes the test settings' egress policy; nothing listens on the discard port.
        return self._post(
            "/api/v1/webhooks", {"url": "https://127.0.0.1:9/hooks", "events": ["*"]}
        )["id"]

    def _make_webhook_delivery(self) -> Any:
        webhook_id = self.id("webhook")
        event_record(account=self.account, type=EventType.SYNC_COMPLETED, payload={})
        delivery = WebhookDelivery.objects.filter(webhook_id=webhook_id).order_by("id").first()
        assert delivery is not None
        return delivery.pk


def build_world(*, account: Any, client: APIClient, kinds: Any = ()) -> World:
    """A world with an object of each of ``kinds`` made already."""
    world = World(account=account, client=client)
    for kind in kinds:
        world.id(kind)
    return world
