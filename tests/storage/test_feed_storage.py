"""Received feed files in a bucket (FEED_STORAGE_URL=s3://...): an upload through the real
gateway and a pull from a partner's bucket are stored there and nowhere on disk, ingested from
there with exact counts, reprocessed from there; the temporary downloads readers need are gone
afterwards. Without a URL, the folder FEED_STORAGE_DIR as before."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from config.retention import Pruned
from config.storage import FolderStorage, StorageUnavailable
from connectors.models import Connection
from syncengine.choices import FeedFileSource, FeedFileStatus, JobStatus, JobTrigger
from syncengine.feeds.ingest import feed_file_ingest
from syncengine.feeds.pull import pull_files
from syncengine.feeds.services import feed_file_receive, feed_files_purge
from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.connectors.storage_support import tcp_listener
from tests.factories import IntegrationFactory
from tests.sftpgateway import conftest as gateway_conftest
from tests.sftpgateway.conftest import paramiko_sftp
from tests.storage.conftest import Bucket, files_under
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C, VIN_A, VIN_B, VIN_C

pytestmark = pytest.mark.django_db(transaction=True)

# The gateway's fixtures, available here under their own names.
sftp_settings = gateway_conftest.sftp_settings
host_key = gateway_conftest.host_key
dispatched = gateway_conftest.dispatched
gateway = gateway_conftest.gateway
port = gateway_conftest.port
feed = gateway_conftest.feed

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = vauto_rows(ROW_A, ROW_B, ROW_C).encode()


def run_ingestion(feed_file_id: str) -> FeedFile:
    """What the worker does with the file's task."""
    feed_file_ingest(feed_file_id=feed_file_id)
    return FeedFile.objects.get(pk=feed_file_id)


def test_an_sftp_upload_is_stored_in_the_bucket_and_ingested_from_it(
    feeds_bucket: Bucket, feed, port, dispatched, scratch, settings
):
    # Given a partner uploading an inventory of three vehicles over the gateway
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(io.BytesIO(INVENTORY), "inventory.csv")

    # Then the stored copy is an object of the bucket, under the configured prefix, and no
    # copy was kept on this machine's disk
    feed_file = FeedFile.objects.get()
    assert dispatched == [str(feed_file.pk)]
    assert feeds_bucket.objects() == [f"received/{feed_file.stored_path}"]
    assert feeds_bucket.read(f"received/{feed_file.stored_path}") == INVENTORY
    assert feed_file.sha256 == hashlib.sha256(INVENTORY).hexdigest()
    assert files_under(Path(settings.FEED_STORAGE_DIR)) == []

    # When the worker ingests it
    done = run_ingestion(str(feed_file.pk))

    # Then every row was read from the bucket's copy, with exact counts
    assert done.status == FeedFileStatus.COMPLETED, done.error
    assert (done.records_total, done.records_created, done.records_errors) == (3, 3, 0)
    assert (done.records_updated, done.records_unchanged, done.records_removed) == (0, 0, 0)
    assert sorted(str(vin) for vin in Vehicle.objects.values_list("vin", flat=True)) == sorted(
        [VIN_A, VIN_B, VIN_C]
    )
    assert done.job is not None
    assert done.job.status == JobStatus.COMPLETED
    # and the temporary download it was read from is gone
    assert files_under(scratch) == []


def test_a_file_in_the_bucket_is_reprocessed_from_it_and_one_gone_is_refused(
    feeds_bucket: Bucket, feed, port, dispatched, api, scratch
):
    # Given an applied upload, stored in the bucket
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(io.BytesIO(INVENTORY), "inventory.csv")
    original = run_ingestion(dispatched[0])
    url = f"/api/v1/integrations/{feed.integration.pk}/logs/{original.pk}/reprocess"

    # When it is reprocessed (forced: read again, whatever an earlier run found)
    response = api.post(url, {"force": True}, format="json")

    # Then the new run reads the bucket's copy again: the same three vehicles, unchanged
    assert response.status_code == 202, response.content
    rerun = run_ingestion(dispatched[-1])
    assert rerun.pk != original.pk
    assert rerun.stored_path == original.stored_path
    assert rerun.status == FeedFileStatus.COMPLETED, rerun.error
    assert (rerun.records_total, rerun.records_unchanged, rerun.records_created) == (3, 3, 0)
    assert files_under(scratch) == []

    # When the object is gone from the bucket
    feeds_bucket.server.client().delete_object(
        Bucket=feeds_bucket.name, Key=f"received/{original.stored_path}"
    )
    refused = api.post(url, {}, format="json")

    # Then reprocessing is refused with a readable error, and no run was queued
    assert refused.status_code == 400, refused.content
    assert "gone" in refused.json()["error"]["message"]
    assert FeedFile.objects.count() == 2


def test_a_pulled_file_is_downloaded_to_a_temporary_folder_and_stored_in_the_bucket(
    feeds_bucket: Bucket, moto_s3, tenant, api, scratch, settings
):
    # Given a partner's own bucket, read through an s3 connection of the tenant
    partner = Bucket(server=moto_s3, name=f"partner-{os.getpid()}-{id(api)}", prefix="")
    moto_s3.client().create_bucket(
        Bucket=partner.name, CreateBucketConfiguration={"LocationConstraint": moto_s3.region}
    )
    partner.put("outbound/inventory.csv", INVENTORY)
    created = api.post(
        "/api/v1/integrations/connections",
        {
            "connectorId": "s3",
            "name": "Partner bucket",
            "config": {
                "bucket": partner.name,
                "prefix": "outbound",
                "region": moto_s3.region,
                "endpointUrl": moto_s3.endpoint,
                "pattern": "*.csv",
            },
            "credentials": moto_s3.admin,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    job = SyncJob.objects.create(
        account=tenant.account,
        integration=integration,
        trigger=JobTrigger.MANUAL,
        status=JobStatus.RUNNING,
    )

    # When the integration pulls it
    result = pull_files(
        job=job,
        integration=integration,
        connection=Connection.objects.get(pk=created.json()["data"]["connectionId"]),
        should_stop=lambda: False,
    )
    SyncJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)

    # Then it is stored in Railyard's bucket, nothing stays in the download folder or on disk
    assert (result.taken, result.failed) == (1, 0), result.errors
    feed_file = FeedFile.objects.get(integration=integration)
    assert feed_file.source == FeedFileSource.PULL
    assert feeds_bucket.read(f"received/{feed_file.stored_path}") == INVENTORY
    assert files_under(scratch) == []
    assert files_under(Path(settings.FEED_STORAGE_DIR)) == []

    # and it is ingested from there
    done = run_ingestion(str(feed_file.pk))
    assert (done.status, done.records_total, done.records_created) == ("completed", 3, 3)


def test_a_local_copy_is_removed_however_the_block_ends(feeds_bucket: Bucket, tenant, scratch):
    # Given a file stored in the bucket
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    feeds_bucket.put("received/a/b/inventory.csv", INVENTORY)
    feed_file = FeedFile(
        account=tenant.account, integration=integration, stored_path="a/b/inventory.csv"
    )

    # When a reader takes a local copy, and when one fails while reading it
    with feed_file.local_copy() as local:
        seen = (local.read_bytes(), local.parent.parent == scratch)
    with pytest.raises(RuntimeError), feed_file.local_copy() as local:
        raise RuntimeError("the reader failed")

    # Then it read the stored bytes from a file of its own, and nothing is left behind
    assert seen == (INVENTORY, True)
    assert files_under(scratch) == []
    # and a file the bucket no longer has is a FileNotFoundError, as on disk
    missing = FeedFile(account=tenant.account, integration=integration, stored_path="gone.csv")
    with pytest.raises(FileNotFoundError), missing.local_copy():
        pass
    assert missing.has_stored_copy is False
    assert feed_file.has_stored_copy is True


# --- the default: a folder ---------------------------------------------------------------------


def test_without_a_url_the_feed_store_is_the_folder_feed_storage_dir(settings, tmp_path, tenant):
    # Given the default configuration, and FEED_STORAGE_DIR moved
    settings.FEED_STORAGE_DIR = tmp_path / "elsewhere"
    storage = storages["feeds"]
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    source = tmp_path / "upload.csv"
    source.write_bytes(INVENTORY)

    # When a file is received
    feed_file = feed_file_receive(
        integration=integration,
        source_path=source,
        filename="upload.csv",
        size=len(INVENTORY),
        sha256=hashlib.sha256(INVENTORY).hexdigest(),
    )

    # Then it is a hard link in that folder, and the row names it relative to the folder
    assert isinstance(storage, FolderStorage)
    stored = tmp_path / "elsewhere" / feed_file.stored_path
    assert stored.read_bytes() == INVENTORY
    assert stored.stat().st_ino == source.stat().st_ino
    with feed_file.local_copy() as local:
        assert local == stored  # read in place, no copy
    assert stored.exists()


def _settings_in_a_process(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the interpreter running the tests, fixed arguments
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_storage_urls_select_a_bucket_or_the_folder():
    code = (
        "from config import settings; "
        "print(repr(settings.STORAGES['feeds'])); print(repr(settings.STORAGES['exports']))"
    )

    answer = _settings_in_a_process(
        code, FEED_STORAGE_URL="s3://railyard-files/received/feeds/", EXPORT_STORAGE_URL=""
    )

    assert answer.returncode == 0, answer.stderr
    feeds, exports = answer.stdout.strip().splitlines()
    assert eval(feeds) == {  # noqa: S307 - the repr of a dict of literals printed above
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "railyard-files",
            "location": "received/feeds",
            "file_overwrite": True,
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
    assert eval(exports) == {  # noqa: S307
        "BACKEND": "config.storage.FolderStorage",
        "OPTIONS": {"setting": "EXPORT_LOCAL_DIR"},
    }


@pytest.mark.parametrize("url", ["https://bucket/x", "s3:///prefix", "s3://bucket/x?acl=public"])
def test_a_storage_url_that_is_no_bucket_stops_the_start(url):
    answer = _settings_in_a_process("from config import settings", EXPORT_STORAGE_URL=url)

    assert answer.returncode != 0
    assert "ImproperlyConfigured: EXPORT_STORAGE_URL must be s3://bucket" in answer.stderr


def test_the_retention_removes_a_purged_files_object_from_the_bucket(feeds_bucket: Bucket, tenant):
    # Given two applied files in the bucket, the second the last applied one
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    received = []
    for name in ("monday.csv", "tuesday.csv"):
        source = Path(tempfile.mkdtemp()) / name
        source.write_bytes(INVENTORY)
        feed_file = feed_file_receive(
            integration=integration,
            source_path=source,
            filename=name,
            size=len(INVENTORY),
            sha256=hashlib.sha256(INVENTORY).hexdigest(),
        )
        received.append(run_ingestion(str(feed_file.pk)))
    monday, tuesday = received

    # When the received files' retention runs with a cutoff after both arrived
    pruned = feed_files_purge(cutoff=timezone.now() + timedelta(minutes=1), limit=10)

    # Then Monday's object is gone and its row says so; Tuesday's, the last applied, stays
    assert pruned == Pruned(rows=1, more=False)
    assert feeds_bucket.objects() == [f"received/{tuesday.stored_path}"]
    monday.refresh_from_db()
    assert (monday.stored_path, monday.purged_at is not None, monday.records_total) == ("", True, 3)


def test_an_unreachable_bucket_is_no_missing_file(feeds_bucket: Bucket, tenant, settings, scratch):
    # Given a stored file, and the bucket's endpoint dropping every connection
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    feeds_bucket.put("received/a/inventory.csv", INVENTORY)
    feed_file = FeedFile(
        account=tenant.account, integration=integration, stored_path="a/inventory.csv"
    )
    with tcp_listener("drop") as listener:
        settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{listener.port}"
        settings.STORAGES = {**settings.STORAGES}  # a storage built with that endpoint

        # When a reader asks for a local copy
        with pytest.raises(StorageUnavailable) as raised, feed_file.local_copy():
            pass

    # Then it is told the storage could not be read (a retry may help), not that the file is gone
    assert "could not be read" in str(raised.value)
    assert listener.accepted
    assert files_under(scratch) == []


def test_a_file_whose_bucket_does_not_answer_waits_for_a_retry(
    feeds_bucket: Bucket, tenant, settings, scratch
):
    # Given a received file in the bucket, and then the bucket's endpoint dropping connections
    integration = IntegrationFactory(account=tenant.account, type="vauto")
    source = scratch / "upload.csv"
    source.write_bytes(INVENTORY)
    received = feed_file_receive(
        integration=integration,
        source_path=source,
        filename="inventory.csv",
        size=len(INVENTORY),
        sha256=hashlib.sha256(INVENTORY).hexdigest(),
        remote_address="127.0.0.1",
    )
    endpoint = settings.AWS_S3_ENDPOINT_URL
    with tcp_listener("drop") as listener:
        settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{listener.port}"
        settings.STORAGES = {**settings.STORAGES}

        # When the worker takes it
        waiting = run_ingestion(str(received.pk))

    # Then the run waits for a retry (the file is still there), nothing was applied
    assert waiting.status == FeedFileStatus.RECEIVED
    assert waiting.job is not None
    job = waiting.job
    assert job.status == JobStatus.QUEUED
    assert "file storage did not answer" in job.error
    assert job.next_attempt_at is not None
    assert not Vehicle.objects.exists()

    # When the bucket answers again and the retry is due
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.STORAGES = {**settings.STORAGES}
    SyncJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    done = run_ingestion(str(received.pk))

    # Then it is applied
    assert done.status == FeedFileStatus.COMPLETED, done.error
    assert Vehicle.objects.count() == 3
