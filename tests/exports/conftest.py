"""Inventories and record-store entities for the export data tests (SQLite or PostgreSQL,
whichever DATABASE_URL names)."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from accounts.services import Actor
from connectors.services import connection_create
from syncengine.models import Record, Vehicle
from syncengine.sync.store import RecordStoreWriter, stream_for
from tests.factories import AccountFactory, ConnectionFactory, IntegrationFactory

SEEN = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC)


def add_vehicle(integration: Any, key: str, **fields: Any) -> Vehicle:
    values: dict[str, Any] = {
        "vin": key,
        "make": "Ford",
        "model": "F-150",
        "year": 2022,
        "price": Decimal("31999.00"),
        "status": "active",
        "features": [],
        "photo_urls": [],
        "extra": {},
    }
    values.update(fields)
    return Vehicle.objects.create(
        account_id=integration.account_id,
        integration=integration,
        dealership=integration.dealership,
        key=key,
        first_seen_at=SEEN,
        last_seen_at=SEEN,
        **values,
    )


def put_records(
    account: Any, entity: str, rows: list[tuple[str, Any]], *, connection: Any = None
) -> None:
    """Write records through the store's own writer, as a sync would."""
    owner = connection or ConnectionFactory(account=account, connector_id="postgres")
    stream = stream_for(account_id=account.pk, connection_id=owner.pk, entity=entity)
    RecordStoreWriter(stream, strategy="merge", now=SEEN).write(rows)
    assert Record.objects.filter(stream=stream).count() >= len({key for key, _ in rows})


@pytest.fixture
def account(db):
    return AccountFactory(name="Northwind Motors")


@pytest.fixture
def integration(account):
    return IntegrationFactory(account=account)


def storage_connection(tenant: Any, connector_id: str, config: dict, credentials: dict) -> Any:
    """A connection of ``tenant`` made through the service, as the API would."""
    return connection_create(
        account=tenant.account,
        actor=Actor.system(),
        connector_id=connector_id,
        name=f"{connector_id} files",
        config=config,
        credentials=credentials,
    )


def sftp_connection_to(tenant: Any, server: Any, directory: Path) -> Any:
    """An ``sftp`` connection to the test sshd, in ``directory``, with a pinned host key."""
    return storage_connection(
        tenant,
        "sftp",
        {
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "hostKey": server.host_key,
            "directory": str(directory),
        },
        {"privateKey": server.private_key},
    )


def s3_bucket_with_connection(tenant: Any, server: Any, prefix: str) -> tuple[str, Any]:
    """A new bucket on the moto server and an ``s3`` connection of ``tenant`` to it."""
    bucket = f"{prefix}-{secrets.token_hex(4)}"
    server.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region}
    )
    connection = storage_connection(
        tenant,
        "s3",
        {"bucket": bucket, "region": server.region, "endpointUrl": server.endpoint},
        server.admin,
    )
    return bucket, connection


# The real storage servers (moto's S3, Azurite, OpenSSH sshd), each started once per test run.
from tests.servers import azurite, moto_s3, sshd  # noqa: E402, F401
