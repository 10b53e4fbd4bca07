"""The quickbooks manifest connector through the API and the real sync engine, against a local
QuickBooks Online that answers as Intuit documents it (``fake_quickbooks``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from accounts.models import AuditEntry
from connectors.declarative import auth
from connectors.models import Connection
from connectors.services import resolve_credentials
from syncengine.models import Record
from tests.connectors.api_sync import CONNECTIONS, connection_create, counts, retry, streams, sync
from tests.connectors.fake_quickbooks import (
    CLIENT_ID,
    CLIENT_SECRET,
    DST_STARTS,
    FIRST_REFRESH_TOKEN,
    REALM_ID,
    FakeQuickBooks,
    fault,
    quickbooks_server,
    records,
    touch,
)

pytestmark = pytest.mark.django_db
ALL = {"customers": 25, "invoices": 12, "payments": 7}


@pytest.fixture
def quickbooks(monkeypatch, settings) -> Iterator[FakeQuickBooks]:
    """The fake, whose clock the connector's token expiry also reads; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with quickbooks_server() as fake:
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakeQuickBooks, **credentials: Any) -> str:
    return connection_create(
        api,
        "quickbooks",
        name="Books",
        config={"realmId": REALM_ID, "apiBase": fake.url, "tokenUrl": fake.tokens_url},
        credentials={
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "refreshToken": FIRST_REFRESH_TOKEN,
            **credentials,
        },
    )


def test_catalog_lists_quickbooks(api):
    response = api.get("/api/v1/integrations/connectors/quickbooks")

    assert response.status_code == 200
    body = response.json()["data"]
    assert body["category"] == "ACCOUNTING"
    assert body["entities"] == ["customers", "invoices", "payments"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["clientId", "clientSecret", "refreshToken"]
    assert body["configSchema"]["required"] == ["realmId"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, quickbooks):
    # Given a company with 25 customers, 12 invoices and 7 payments
    connection_id = create_connection(api, quickbooks)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once, read in pages of 10 by Intuit's query endpoint
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        entity: {"created": count, "updated": 0, "unchanged": 0, "read": count}
        for entity, count in ALL.items()
    }
    assert Record.objects.filter(stream__connection_id=connection_id).count() == 44
    customer_queries = [q for q in quickbooks.queries() if "FROM Customer" in q]
    first_sync = (
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2000-01-01T00:00:00+00:00'"
    )
    assert customer_queries == [
        f"{first_sync} ORDERBY Metadata.LastUpdatedTime STARTPOSITION {start} MAXRESULTS 10"
        for start in (1, 11, 21)
    ]
    # The cursor is the newest LastUpdatedTime in UTC (customer 25, PDT in the company's zone)
    saved = streams(api, connection_id)
    assert saved["customers"]["cursor"] == "2025-03-09T01:00:00+00:00"
    assert saved["customers"]["recordCount"] == 25

    # Given two customers edited, one added and one invoice added in QuickBooks
    later = DST_STARTS + timedelta(days=3)
    customers = quickbooks.data["Customer"]
    touch(customers[3], later, DisplayName="Renamed 4")
    touch(customers[20], later + timedelta(minutes=1), Balance=42)
    new_customer = records("Customer", 1, first=26)[0]
    touch(new_customer, later + timedelta(minutes=2))
    customers.append(new_customer)
    new_invoice = records("Invoice", 1, first=13)[0]
    touch(new_invoice, later)
    quickbooks.data["Invoice"].append(new_invoice)
    quickbooks.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then only what changed since each entity's cursor is read and written
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "customers": {"created": 1, "updated": 2, "unchanged": 0, "read": 3},
        "invoices": {"created": 1, "updated": 0, "unchanged": 0, "read": 1},
        "payments": {"created": 0, "updated": 0, "unchanged": 0, "read": 0},
    }
    assert quickbooks.queries()[0] == (
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2025-03-09T01:00:00+00:00' "
        "ORDERBY Metadata.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 10"
    )
    assert Record.objects.filter(stream__connection_id=connection_id).count() == 46
    record = api.get(f"{CONNECTIONS}/{connection_id}/records?entity=customers&key=4").json()
    assert record["data"][0]["data"]["DisplayName"] == "Renamed 4"
    assert record["data"][0]["data"]["SyncToken"] == "1"


def test_a_429_and_a_503_mid_read_lose_and_duplicate_no_customer(api, quickbooks, waits):
    # Given Intuit throttles the second page once (Retry-After 3) and then fails the third
    # with a 503 (the retried second page is the third API request)
    connection_id = create_connection(api, quickbooks)
    throttled = fault("SERVICE", "003001", "message=ThrottleExceeded; errorCode=003001", "")
    quickbooks.inject = {
        2: (429, {"Retry-After": "3"}, throttled),
        4: (503, {}, fault("SERVICE", "10000", "Service Unavailable", "")),
    }

    # When customers are synced: the 429 is waited out, the 503 puts the job back in the queue
    first = sync(api, connection_id, entities=["customers"])
    assert waits == [3.0]
    assert first["status"] == "QUEUED", first
    assert "503" in first["error"]
    assert Record.objects.filter(stream__connection_id=connection_id).count() == 20

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it resumes after its last committed page: 25 customers, each created once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"customers": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    keys = Record.objects.filter(stream__connection_id=connection_id).values_list("key", flat=True)
    assert sorted(keys, key=int) == [str(n) for n in range(1, 26)]
    assert quickbooks.queries()[4].startswith(
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2025-03-08T19:00:00+00:00'"
    )


def test_an_expiring_access_token_is_refreshed_and_the_rotated_token_stored(api, quickbooks):
    # Given the access token's hour runs out after the first page
    connection_id = create_connection(api, quickbooks)
    quickbooks.after[1] = lambda: setattr(quickbooks, "now", quickbooks.now + 3_600)

    # When customers are synced
    job = sync(api, connection_id, entities=["customers"])

    # Then a new access token is obtained before the second page, and all 25 are read
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["customers"]["created"] == 25
    assert len(quickbooks.token_requests) == 2
    tokens = [r.headers["authorization"] for r in quickbooks.api_requests]
    assert tokens[0] != tokens[1] == tokens[2]
    # And the refresh token Intuit rotated with each refresh is the one stored, encrypted
    connection = Connection.objects.get(pk=connection_id)
    assert quickbooks.refresh_token != FIRST_REFRESH_TOKEN
    assert resolve_credentials(connection)["refreshToken"] == quickbooks.refresh_token
    assert quickbooks.refresh_token not in connection.credentials_encrypted
    assert FIRST_REFRESH_TOKEN not in connection.credentials_encrypted
    assert connection.credential_keys == ["clientId", "clientSecret", "refreshToken"]
    rotations = AuditEntry.objects.filter(resource_id=connection_id, action="updated")
    assert [entry.changes for entry in rotations] == [
        {"credentials": {"before": {"refreshToken": "***"}, "after": {"refreshToken": "***"}}}
    ] * 2
    assert quickbooks.refresh_token not in str(api.get("/api/v1/audit").json())

    # And the next sync works with the stored one (the first is no longer accepted)
    again = sync(api, connection_id, "INCREMENTAL", entities=["customers"])
    assert again["status"] == "COMPLETED", again
    assert [r.form()["refresh_token"] for r in quickbooks.token_requests][-1] == (
        "AB11780000000a0RefreshToken3"
    )


def test_a_401_mid_read_gets_a_new_token_and_the_page_again(api, quickbooks):
    connection_id = create_connection(api, quickbooks)
    quickbooks.after[2] = quickbooks.revoke_access_tokens

    job = sync(api, connection_id, entities=["customers"])

    assert job["status"] == "COMPLETED", job
    assert job["stats"]["customers"]["created"] == 25
    assert len(quickbooks.token_requests) == 2
    # The third page answered 401; it was asked again with a new access token
    starts = [query.split("STARTPOSITION ")[1].split()[0] for query in quickbooks.queries()]
    assert starts == ["1", "11", "21", "21"]
    tokens = [request.headers["authorization"] for request in quickbooks.api_requests]
    assert tokens[0] == tokens[1] == tokens[2] != tokens[3]


def test_a_refused_refresh_token_fails_the_test_and_the_sync_for_good(api, quickbooks):
    connection_id = create_connection(api, quickbooks, refreshToken="AB11780000000a0Revoked")

    job = sync(api, connection_id)
    tested = api.post(f"{CONNECTIONS}/{connection_id}/test").json()["data"]

    assert tested["success"] is False
    assert "invalid_grant" in tested["error"]
    assert "authorize the connection again" in tested["error"]
    assert job["status"] == "FAILED"
    assert "authorize the connection again" in job["error"]
    assert quickbooks.api_requests == []


def test_connection_test_asks_for_the_company_info(api, quickbooks):
    connection_id = create_connection(api, quickbooks)

    response = api.post(f"{CONNECTIONS}/{connection_id}/test")

    assert response.status_code == 200
    assert response.json()["data"]["success"] is True
    assert [r.path for r in quickbooks.api_requests] == [
        f"/v3/company/{REALM_ID}/companyinfo/{REALM_ID}"
    ]
    assert quickbooks.api_requests[0].param("minorversion") == "75"


def test_config_needs_a_numeric_realm_id(api, quickbooks):
    response = api.post(
        CONNECTIONS,
        {
            "connectorId": "quickbooks",
            "name": "Books",
            "config": {"realmId": "acme"},
            "credentials": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
        },
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {"config.realmId", "credentials.refreshToken"}
