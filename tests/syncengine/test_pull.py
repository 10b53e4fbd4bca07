"""Pulling files over SFTP into an integration's file pipeline, against the real gateway.

Integration A (a vauto feed) receives its partner's uploads over the gateway. Integration B (a
vauto feed too) has an sftp_pull source connection that logs into the gateway as A's partner,
with the gateway's pinned host key, and pulls what A received.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from config.crypto import encrypt_json
from connectors.models import Connection
from connectors.registry import ConnectorError
from integrations.models import Integration
from syncengine.choices import FeedFileSource, JobStatus, JobTrigger
from syncengine.feeds.ingest import feed_file_ingest
from syncengine.feeds.pull import PullResult, pull_files
from syncengine.models import FeedFile, PulledFile, SyncJob
from syncengine.sync.runner import sync_job_run
from tests.connectors.test_sftp_pull import (
    BASE_MTIME,
    pin_of,
    upload,
)
from tests.sftpgateway import conftest as gateway_conftest
from tests.sftpgateway.conftest import HOST, Feed, create_feed, make_ed25519_key

pytestmark = pytest.mark.django_db(transaction=True)

# The gateway's fixtures, made available to this module under their own names.
private_cache = gateway_conftest.private_cache
sftp_settings = gateway_conftest.sftp_settings
host_key = gateway_conftest.host_key
dispatched = gateway_conftest.dispatched
gateway = gateway_conftest.gateway
port = gateway_conftest.port
feed = gateway_conftest.feed


@dataclass
class Puller:
    """Integration B and its sftp_pull connection into A's SFTP folder."""

    integration: Integration
    connection: Connection
    source: Feed
    port: int

    def upload(self, files: dict[str, tuple[bytes, int]], folder: str = "") -> None:
        upload(self.source, self.port, files, folder)

    def configure(self, **config: Any) -> None:
        self.connection.config = {**self.connection.config, **config}
        self.connection.save(update_fields=["config"])

    def pull(self, should_stop=lambda: False) -> PullResult:
        job = SyncJob.objects.create(
            account_id=self.integration.account_id,
            integration=self.integration,
            trigger=JobTrigger.MANUAL,
            status=JobStatus.RUNNING,
        )
        self.job = job
        try:
            return pull_files(
                job=job,
                integration=self.integration,
                connection=self.connection,
                should_stop=should_stop,
            )
        finally:
            # As the job runner does: one running job per integration at a time.
            SyncJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)

    def feed_files(self) -> list[FeedFile]:
        return list(FeedFile.objects.filter(integration=self.integration).order_by("received_at"))

    def job_log(self) -> list[dict[str, str]]:
        return SyncJob.objects.get(pk=self.job.pk).log


def connection_create(tenant, source: Feed, port: int, host_key_line: str, **config: Any) -> str:
    response = tenant.client.post(
        "/api/v1/integrations/connections",
        {
            "connectorId": "sftp_pull",
            "name": "Partner SFTP",
            "config": {
                "host": HOST,
                "port": port,
                "username": source.username,
                "hostKey": host_key_line,
                "pattern": "*.csv",
                **config,
            },
            "credentials": {"password": source.password},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return str(response.json()["data"]["connectionId"])


@pytest.fixture
def puller(tenant, feed, port, host_key) -> Puller:
    connection_id = connection_create(tenant, feed, port, pin_of(host_key))
    target = create_feed(tenant)
    response = tenant.client.patch(
        f"/api/v1/integrations/{target.integration.pk}",
        {"sourceAppId": connection_id},
        format="json",
    )
    assert response.status_code == 200, response.content
    return Puller(
        integration=Integration.objects.get(pk=target.integration.pk),
        connection=Connection.objects.get(pk=connection_id),
        source=feed,
        port=port,
    )


def stored_bytes(feed_file: FeedFile) -> bytes:
    return (Path(settings.FEED_STORAGE_DIR) / feed_file.stored_path).read_bytes()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


MONDAY = b"VIN,Price\n1HGCM82633A004352,12995\n"
TUESDAY = b"VIN,Price\n1HGCM82633A004352,12500\n5YJSA1E26HF000001,45000\n"


def test_takes_matching_files_oldest_first_into_the_pipeline(puller, dispatched):
    puller.upload(
        {
            "tuesday.csv": (TUESDAY, BASE_MTIME + 86_400),
            "monday.csv": (MONDAY, BASE_MTIME),
            "readme.txt": (b"not a feed", BASE_MTIME),
        }
    )

    result = puller.pull()

    assert (result.taken, result.skipped, result.failed) == (2, 0, 0)
    monday, tuesday = puller.feed_files()
    assert [monday.filename, tuesday.filename] == ["monday.csv", "tuesday.csv"]
    assert result.feed_file_ids == [str(monday.pk), str(tuesday.pk)]
    for feed_file, content in ((monday, MONDAY), (tuesday, TUESDAY)):
        assert feed_file.source == FeedFileSource.PULL
        assert feed_file.size == len(content)
        assert feed_file.sha256 == sha256(content)
        assert feed_file.remote_address == HOST
        assert stored_bytes(feed_file) == content
    assert str(monday.pk) in dispatched
    assert str(tuesday.pk) in dispatched
    pulled = {
        row.remote_path: row for row in PulledFile.objects.filter(integration=puller.integration)
    }
    assert set(pulled) == {"/monday.csv", "/tuesday.csv"}
    assert pulled["/monday.csv"].feed_file_id == monday.pk
    assert pulled["/monday.csv"].mtime == BASE_MTIME
    assert pulled["/tuesday.csv"].size == len(TUESDAY)
    # The source integration still has its files; pulling copies, it does not move.
    assert (puller.source.root / "monday.csv").read_bytes() == MONDAY
    # Nothing is left behind in the download area.
    assert list((Path(settings.FEED_STORAGE_DIR) / ".incoming").iterdir()) == []


def test_a_second_pull_takes_nothing(puller):
    puller.upload({"monday.csv": (MONDAY, BASE_MTIME), "tuesday.csv": (TUESDAY, BASE_MTIME + 60)})
    puller.pull()

    again = puller.pull()

    assert (again.taken, again.skipped, again.failed) == (0, 2, 0)
    assert len(puller.feed_files()) == 2


def test_a_changed_file_is_taken_again(puller):
    puller.upload({"inventory.csv": (MONDAY, BASE_MTIME)})
    puller.pull()
    puller.upload({"inventory.csv": (TUESDAY, BASE_MTIME + 86_400)})

    result = puller.pull()

    assert (result.taken, result.skipped) == (1, 0)
    first, second = puller.feed_files()
    assert stored_bytes(first) == MONDAY
    assert stored_bytes(second) == TUESDAY
    assert PulledFile.objects.filter(integration=puller.integration).count() == 2


def test_same_content_under_a_new_mtime_is_remembered_not_ingested(puller):
    puller.upload({"inventory.csv": (MONDAY, BASE_MTIME)})
    puller.pull()
    puller.upload({"inventory.csv": (MONDAY, BASE_MTIME + 86_400)})

    result = puller.pull()
    second_log = puller.job_log()
    third = puller.pull()

    assert (result.taken, result.skipped, result.failed) == (0, 1, 0)
    assert len(puller.feed_files()) == 1
    remembered = PulledFile.objects.get(integration=puller.integration, mtime=BASE_MTIME + 86_400)
    assert remembered.feed_file is None
    assert remembered.sha256 == sha256(MONDAY)
    assert any("same content" in line["message"] for line in second_log)
    # Remembered, so it is not even downloaded again.
    assert (third.taken, third.skipped) == (0, 1)


def test_archive_path_moves_taken_files_into_a_new_folder(puller):
    puller.configure(archivePath="done")
    puller.upload({"monday.csv": (MONDAY, BASE_MTIME), "tuesday.csv": (TUESDAY, BASE_MTIME + 60)})

    result = puller.pull()

    assert result.taken == 2
    root = puller.source.root
    assert list(root.glob("*.csv")) == []
    assert (root / "done" / "monday.csv").read_bytes() == MONDAY
    assert (root / "done" / "tuesday.csv").read_bytes() == TUESDAY
    archived = dict(
        PulledFile.objects.filter(integration=puller.integration).values_list(
            "remote_path", "archived_to"
        )
    )
    assert archived == {"/monday.csv": "/done/monday.csv", "/tuesday.csv": "/done/tuesday.csv"}
    assert puller.pull().taken == 0


def test_an_archive_failure_leaves_the_file_taken(puller):
    # A file where the archive folder should be: the move fails, the pull does not.
    puller.upload({"done": (b"in the way", BASE_MTIME), "monday.csv": (MONDAY, BASE_MTIME)})
    puller.configure(archivePath="done")

    result = puller.pull()

    assert (result.taken, result.failed) == (1, 0)
    assert (puller.source.root / "monday.csv").exists()
    pulled = PulledFile.objects.get(integration=puller.integration)
    assert pulled.archived_to == ""
    assert any(
        line["level"] == "error" and "/monday.csv" in line["message"] for line in puller.job_log()
    )
    assert puller.pull().taken == 0


def test_subfolder_and_glob_from_the_config(puller):
    puller.configure(path="/outgoing", pattern="inventory_*.csv")
    puller.upload(
        {
            "inventory_1.csv": (MONDAY, BASE_MTIME),
            "prices_1.csv": (TUESDAY, BASE_MTIME),
        },
        folder="outgoing",
    )
    puller.upload({"inventory_2.csv": (TUESDAY, BASE_MTIME)})

    result = puller.pull()

    assert result.taken == 1
    [feed_file] = puller.feed_files()
    assert feed_file.filename == "inventory_1.csv"
    assert PulledFile.objects.get().remote_path == "/outgoing/inventory_1.csv"


def test_should_stop_stops_between_files(puller):
    puller.upload(
        {
            "a.csv": (b"VIN\nA\n", BASE_MTIME),
            "b.csv": (b"VIN\nB\n", BASE_MTIME + 1),
            "c.csv": (b"VIN\nC\n", BASE_MTIME + 2),
        }
    )
    asked: list[int] = []

    def stop_after_two() -> bool:
        asked.append(1)
        return len(asked) > 2

    result = puller.pull(should_stop=stop_after_two)

    assert result.taken == 2
    assert [feed_file.filename for feed_file in puller.feed_files()] == ["a.csv", "b.csv"]
    assert puller.pull().taken == 1


def test_a_file_that_vanishes_fails_alone(puller):
    puller.upload({"a.csv": (b"VIN\nA\n", BASE_MTIME), "b.csv": (b"VIN\nB\n", BASE_MTIME + 1)})
    root = puller.source.root

    def partner_deletes_a_after_the_listing() -> bool:
        (root / "a.csv").unlink(missing_ok=True)
        return False

    result = puller.pull(should_stop=partner_deletes_a_after_the_listing)

    assert (result.taken, result.failed) == (1, 1)
    assert "/a.csv" in result.errors[0]
    assert [feed_file.filename for feed_file in puller.feed_files()] == ["b.csv"]
    assert any(
        line["level"] == "error" and "/a.csv" in line["message"] for line in puller.job_log()
    )
    assert not PulledFile.objects.filter(remote_path="/a.csv").exists()


def test_wrong_host_key_downloads_nothing(puller, tmp_path):
    puller.upload({"monday.csv": (MONDAY, BASE_MTIME)})
    puller.configure(hostKey=pin_of(make_ed25519_key(tmp_path).pkey))

    with pytest.raises(ConnectorError) as raised:
        puller.pull()

    assert raised.value.retryable is False
    assert "Host key mismatch" in raised.value.message
    assert puller.feed_files() == []
    assert not PulledFile.objects.exists()


def test_wrong_password_raises_not_retryable(puller):
    puller.upload({"monday.csv": (MONDAY, BASE_MTIME)})
    Connection.objects.filter(pk=puller.connection.pk).update(
        credentials_encrypted=encrypt_json({"password": "wrong-password"})
    )
    puller.connection.refresh_from_db()

    with pytest.raises(ConnectorError) as raised:
        puller.pull()

    assert raised.value.retryable is False
    assert puller.feed_files() == []


def test_integration_sync_through_the_api_pulls_files_as_a_job(puller, tenant, dispatched):
    puller.upload({"monday.csv": (MONDAY, BASE_MTIME), "tuesday.csv": (TUESDAY, BASE_MTIME + 1)})
    integration_id = puller.integration.pk

    response = tenant.client.post(f"/api/v1/integrations/{integration_id}/sync")
    assert response.status_code == 202, response.content
    job_id = response.json()["data"]["jobId"]
    sync_job_run(job_id)

    job = SyncJob.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.stats["files"]["created"] == 2
    assert job.stats["files"]["errors"] == 0
    assert [feed_file.filename for feed_file in puller.feed_files()] == [
        "monday.csv",
        "tuesday.csv",
    ]
    assert any("2 taken" in line["message"] for line in job.log)

    # The pulled files are runs of the integration, queued behind the pull: while they wait, a
    # new sync is refused (naming the first), and once they are applied it is accepted.
    waiting = tenant.client.post(f"/api/v1/integrations/{integration_id}/sync")
    assert waiting.status_code == 409, waiting.content
    first = puller.feed_files()[0]
    assert waiting.json()["error"]["details"]["jobId"] == [str(first.job_id)]
    for feed_file in puller.feed_files():
        feed_file_ingest(feed_file_id=str(feed_file.pk))
    assert [feed_file.attempts for feed_file in puller.feed_files()] == [1, 1]

    # Nothing new: the next run takes nothing and counts what it had already taken.
    response = tenant.client.post(f"/api/v1/integrations/{integration_id}/sync")
    sync_job_run(response.json()["data"]["jobId"])
    again = SyncJob.objects.get(pk=response.json()["data"]["jobId"])
    assert again.stats["files"]["created"] == 0
    assert again.stats["files"]["unchanged"] == 2
