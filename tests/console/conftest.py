"""Operators and the records they look at: a feed integration with received files, jobs in
every state, and clients for a staff superuser and for a staff user who may only view."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from syncengine.choices import JobKind, JobStatus
from syncengine.feeds.services import feed_file_receive
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile, SyncJob
from tests.factories import DealershipFactory, IntegrationFactory, UserFactory

CSV = "VIN,Stock #,Year,Make,Model,Price\r\n1FTFW1E50PFA00001,A1,2023,Ford,F-150,51999\r\n"


@pytest.fixture(autouse=True)
def _feed_storage(settings, tmp_path):
    settings.FEED_STORAGE_DIR = tmp_path / "feeds"


@pytest.fixture
def operator(db) -> Client:
    """A staff superuser: sees everything, may operate everything."""
    client = Client()
    client.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def viewer(db) -> Client:
    """A staff user who may view the engine's records and integrations, and change nothing."""
    user = UserFactory(account=None, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=[
                "view_feedfile",
                "view_syncjob",
                "view_integration",
                "view_vehicle",
            ]
        )
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def feed(tenant):
    """A vAuto feed of the tenant."""
    dealership = DealershipFactory(account=tenant.account, name="Lakeside Ford")
    return IntegrationFactory(
        account=tenant.account, dealership=dealership, type="vauto", name="Lakeside vAuto"
    )


@pytest.fixture
def receive(tmp_path):
    """Receive ``content`` for ``integration`` as the gateway does; returns its row."""
    counter = {"n": 0}

    def _receive(integration, content: str = CSV, filename: str = "inventory.csv") -> FeedFile:
        counter["n"] += 1
        data = content.encode()
        source = tmp_path / f"upload-{counter['n']}.csv"
        source.write_bytes(data)
        return feed_file_receive(
            integration=integration,
            source_path=source,
            filename=filename,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    return _receive


def finish_file(feed_file: FeedFile, *, status: str = "completed", **counts: Any) -> FeedFile:
    """Record an outcome on a file (and end its run), as an ingestion would."""
    FeedFile.objects.filter(pk=feed_file.pk).update(
        status=status, processed_at=feed_file.received_at, **counts
    )
    job_status = JobStatus.FAILED if status in ("failed", "rejected") else JobStatus.COMPLETED
    SyncJob.objects.filter(feed_files=feed_file).update(
        status=job_status,
        started_at=feed_file.received_at,
        completed_at=feed_file.received_at,
    )
    feed_file.refresh_from_db()
    return feed_file


def make_job(
    *, account, status: str = JobStatus.QUEUED, kind: str = JobKind.SYNC, **fields: Any
) -> SyncJob:
    """A run row through the lifecycle, then moved to ``status`` with ``fields``."""
    owner = {
        key: fields.pop(key)
        for key in ("integration", "connection", "export", "file_import")
        if key in fields
    }
    job = lifecycle.run_create(
        kind=kind, dispatch=False, account_id=account.pk, trigger="manual", **owner
    )
    SyncJob.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


def page_charts(html: str) -> dict[str, Any]:
    """The chart document the dashboard's script draws from."""
    found = re.search(
        r'<script id="railyard-charts" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "the dashboard carries no chart document"
    return json.loads(found.group(1))


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)
