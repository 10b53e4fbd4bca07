"""Fixtures for the feed pipeline: a feed integration and a way to 'upload' a file to it."""

import hashlib
from pathlib import Path

import pytest
import redis
from django.conf import settings

from syncengine.feeds.ingest import feed_file_ingest
from syncengine.feeds.services import feed_file_receive
from syncengine.models import FeedFile
from tests.factories import DealershipFactory, IntegrationFactory


@pytest.fixture(autouse=True)
def _feed_storage(settings, tmp_path):
    settings.FEED_STORAGE_DIR = tmp_path / "feeds"


@pytest.fixture
def feed(tenant):
    """A vAuto feed integration of the tenant, dealership in Chicago, merge strategy."""
    dealership = DealershipFactory(account=tenant.account, timezone="America/Chicago")
    return IntegrationFactory(account=tenant.account, dealership=dealership, type="vauto")


@pytest.fixture
def upload(tmp_path):
    """Receive ``content`` as an uploaded file of ``integration`` and return its log row."""
    counter = {"n": 0}

    def _upload(integration, content, filename="inventory.csv") -> FeedFile:
        counter["n"] += 1
        data = content.encode() if isinstance(content, str) else content
        source = tmp_path / f"upload-{counter['n']}-{Path(filename).name}"
        source.write_bytes(data)
        return feed_file_receive(
            integration=integration,
            source_path=source,
            filename=filename,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            remote_address="127.0.0.1",
        )

    return _upload


@pytest.fixture
def ingest(upload):
    """Upload ``content`` and process it at once; returns the refreshed log row."""

    def _ingest(integration, content, filename="inventory.csv") -> FeedFile:
        feed_file = upload(integration, content, filename)
        feed_file_ingest(feed_file_id=str(feed_file.pk))
        feed_file.refresh_from_db()
        return feed_file

    return _ingest


VAUTO_HEADER = (
    "VIN,Stock #,New/Used,Year,Make,Model,Series,Odometer,Price,Inventory Date,Photo Url List"
)


def vauto_rows(*rows: tuple) -> str:
    """A vAuto-style CSV. Each row: vin, stock, condition, year, make, model, trim, miles, price,
    in-stock date, photos."""
    lines = [VAUTO_HEADER]
    for row in rows:
        lines.append(",".join(f'"{value}"' if "," in str(value) else str(value) for value in row))
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def memory_connector(monkeypatch, settings):
    """The in-memory connector (``tests.syncengine.memory``) registered, read in batches of
    two, with no dataset left from another test."""
    from connectors import registry
    from tests.syncengine.memory import DATASETS, MemoryConnector

    monkeypatch.setitem(registry._REGISTRY, MemoryConnector.id, MemoryConnector)
    settings.SYNC_BATCH_SIZE = 2
    DATASETS.clear()
    yield
    DATASETS.clear()


@pytest.fixture
def ingest_queue():
    """The length of the real broker's ``ingest`` queue (Redis list)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("ingest")
    yield lambda: client.llen("ingest")
    client.delete("ingest")
    client.close()
