"""The xero manifest connector through the API and the real sync engine, against a local Xero that
answers as its Accounting API documents it (``fake_xero``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.declarative import auth
from connectors.models import Connection
from connectors.services import resolve_credentials
from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_xero import (
    CLIENT_ID,
    CLIENT_SECRET,
    FIRST_REFRESH_TOKEN,
    START,
    TENANT_ID,
    THROTTLED,
    FakeXero,
    contacts,
    key,
    touch,
    xero_server,
)

pytestmark = pytest.mark.django_db
ALL = {"contacts": 25, "invoices": 12}


@pytest.fixture
def xero(monkeypatch, settings) -> Iterator[FakeXero]:
    """The fake, whose clock the connector's token expiry also reads; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with xero_server() as fake:
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakeXero, **credentials: Any) -> str:
    return connection_create(
        api,
        "xero",
        name="Books",
        config={"tenantId": TENANT_ID, "apiBase": fake.url, "tokenUrl": fake.tokens_url},
        credentials={
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "refreshToken": FIRST_REFRESH_TOKEN,
            **credentials,
        },
    )


def test_catalog_lists_xero(api):
    response = api.get("/api/v1/integrations/connectors/xero")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("ACCOUNTING", "BETA")
    assert body["entities"] == ["contacts", "invoices"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["configSchema"]["required"] == ["tenantId"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, xero):
    # Given an organisation with 25 contacts and 12 invoices
    connection_id = create_connection(api, xero)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once, paged by number, with no If-Modified-Since
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        entity: {"created": count, "updated": 0, "unchanged": 0, "read": count}
        for entity, count in ALL.items()
    }
    assert {entity: stored(connection_id, entity) for entity in ALL} == ALL
    assert xero.listed("Contacts") == [("1", None), ("2", None), ("3", None)]
    assert {r.headers["xero-tenant-id"] for r in xero.api_requests} == {TENANT_ID}
    # The cursor is the newest UpdatedDateUTC, read from its /Date(...)/ form
    assert streams(api, connection_id)["contacts"]["cursor"] == "2025-05-02T01:00:00.025000+00:00"

    # Given two contacts edited, one added and one invoice paid in Xero
    later = START + timedelta(days=4, milliseconds=400)
    records = xero.data["Contacts"]
    touch(records[3], later, Name="Renamed 4")
    touch(records[20], later + timedelta(minutes=1), EmailAddress="new@example.com")
    added = contacts(1, first=26)[0]
    touch(added, later + timedelta(minutes=2))
    records.append(added)
    touch(xero.data["Invoices"][0], later, Status="PAID", AmountDue=0.0)
    xero.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then If-Modified-Since carries each entity's cursor to the second, and only the
    # changes are read (the record at the cursor itself is not read again)
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "contacts": {"created": 1, "updated": 2, "unchanged": 0, "read": 3},
        "invoices": {"created": 0, "updated": 1, "unchanged": 0, "read": 1},
    }
    assert xero.listed("Contacts") == [("1", "2025-05-02T01:00:00")]
    assert xero.listed("Invoices") == [("1", "2025-05-02T00:00:00")]
    assert stored(connection_id, "contacts") == 26
    record = api.get(f"{CONNECTIONS}/{connection_id}/records?entity=invoices&key={key(1001)}")
    assert record.json()["data"][0]["data"]["Status"] == "PAID"


def test_a_429_and_a_503_mid_read_lose_and_duplicate_no_contact(api, xero, waits):
    # Given Xero throttles the second page once (Retry-After 5) and then fails the third
    connection_id = create_connection(api, xero)
    xero.inject = {
        2: THROTTLED,
        4: (503, {}, {"Title": "Service Unavailable", "Status": 503}),
    }

    # When contacts are synced: the 429 is waited out, the 503 puts the job back in the queue
    first = sync(api, connection_id, entities=["contacts"])
    assert waits == [5.0]
    assert first["status"] == "QUEUED", first
    assert "503" in first["error"]
    assert stored(connection_id, "contacts") == 20

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it resumes after its last committed page: 25 contacts, each created once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"contacts": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    assert stored(connection_id, "contacts") == 25
    assert xero.listed("Contacts")[-1] == ("1", "2025-05-01T19:00:00")


def test_an_expiring_access_token_is_refreshed_and_the_rotated_token_stored(api, xero):
    # Given the access token's 30 minutes run out after the first page
    connection_id = create_connection(api, xero)
    xero.after[1] = lambda: setattr(xero, "now", xero.now + 1_800)

    # When contacts are synced
    job = sync(api, connection_id, entities=["contacts"])

    # Then a new access token is obtained before the second page, and all 25 are read
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["contacts"]["created"] == 25
    assert len(xero.token_requests) == 2
    tokens = [r.headers["authorization"] for r in xero.api_requests]
    assert tokens[0] != tokens[1] == tokens[2]
    # And the refresh token Xero rotated is the one stored, encrypted
    connection = Connection.objects.get(pk=connection_id)
    assert xero.refresh_token != FIRST_REFRESH_TOKEN
    assert resolve_credentials(connection)["refreshToken"] == xero.refresh_token
    assert xero.refresh_token not in connection.credentials_encrypted

    # And the next sync works with the stored one (the first is no longer accepted)
    again = sync(api, connection_id, "INCREMENTAL", entities=["contacts"])
    assert again["status"] == "COMPLETED", again
    assert xero.token_requests[-1].form()["refresh_token"] == (
        "a1b2c3d4e5f60718293a4b5c6d7e8f90-refresh-3"
    )


def test_connection_test_reads_the_organisation(api, xero):
    good = create_connection(api, xero)
    revoked = create_connection(api, xero, refreshToken="revoked")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{revoked}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "invalid_grant" in failed["error"]
    assert [r.path for r in xero.api_requests] == ["/api.xro/2.0/Organisation"]
