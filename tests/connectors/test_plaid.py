"""The plaid manifest connector through the API and the real sync engine, against a local Plaid
that answers as its /transactions/sync API documents it (``fake_plaid``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncengine.models import Record
from tests.connectors.api_sync import CONNECTIONS, connection_create, counts, retry, streams, sync
from tests.connectors.fake_plaid import (
    ACCESS_TOKEN,
    ACCOUNT_IDS,
    CLIENT_ID,
    INTERNAL_ERROR,
    SECRET,
    THROTTLED,
    FakePlaid,
    plaid_server,
    transaction,
    transaction_id,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def plaid(settings) -> Iterator[FakePlaid]:
    """The fake with 25 transactions on two accounts; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with plaid_server() as fake:
        yield fake


def create_connection(api, fake: FakePlaid, **credentials: Any) -> str:
    return connection_create(
        api,
        "plaid",
        name="Bank",
        config={"apiBase": fake.url},
        credentials={
            "clientId": CLIENT_ID,
            "secret": SECRET,
            "accessToken": ACCESS_TOKEN,
            **credentials,
        },
    )


def stored(connection_id: str) -> dict[str, dict[str, Any]]:
    """The stored transactions by key."""
    return {
        record.key: record.data
        for record in Record.objects.filter(
            stream__connection_id=connection_id, stream__entity="transactions"
        )
    }


def test_catalog_lists_plaid(api):
    response = api.get("/api/v1/integrations/connectors/plaid")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("BANKING", "BETA")
    assert body["entities"] == ["accounts", "transactions"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["accessToken", "clientId", "secret"]


def test_discovery_offers_incremental_reads_from_the_sync_cursor(api, plaid):
    connection_id = create_connection(api, plaid)

    response = api.get(f"/api/v1/integrations/connections/{connection_id}/entities")

    assert response.status_code == 200, response.content
    entities = {entity["name"]: entity for entity in response.json()["data"]}
    transactions = entities["transactions"]
    assert transactions["cursorField"] is None
    assert "INCREMENTAL" in transactions["syncModes"]
    assert "_deleted" in {field["name"] for field in transactions["fields"]}


def test_full_then_incremental_sync_reads_added_modified_and_removed(api, plaid):
    # Given an Item with 2 accounts and 25 transactions
    connection_id = create_connection(api, plaid)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every transaction is stored once, read in pages of 10 from no cursor on, each page
    # asking from the cursor the one before handed back
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        "accounts": {"created": 2, "updated": 0, "unchanged": 0, "read": 2},
        "transactions": {"created": 25, "updated": 0, "unchanged": 0, "read": 25},
    }
    assert len(stored(connection_id)) == 25
    bodies = plaid.syncs()
    assert [body["count"] for body in bodies] == [10, 10, 10]
    assert "cursor" not in bodies[0]
    assert all(body["client_id"] == CLIENT_ID for body in bodies)
    # And the cursor Plaid handed back last is the stream's cursor
    assert streams(api, connection_id)["transactions"]["cursor"] == plaid.cursor
    saved = plaid.cursor

    # Given two transactions modified, one added and one removed at Plaid
    plaid.modify(4, amount=99.5, pending=False)
    plaid.modify(20, merchant_name="Renamed")
    plaid.add(transaction(26))
    plaid.remove(7)
    plaid.requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL", entities=["transactions"])

    # Then one request from the saved cursor reads the four changes: the removed transaction
    # is kept marked _deleted
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "transactions": {"created": 1, "updated": 3, "unchanged": 0, "read": 4}
    }
    assert [body.get("cursor") for body in plaid.syncs()] == [saved]
    records = stored(connection_id)
    assert len(records) == 26
    assert records[transaction_id(4)]["amount"] == 99.5
    assert records[transaction_id(20)]["merchant_name"] == "Renamed"
    assert records[transaction_id(7)] == {
        "account_id": ACCOUNT_IDS[1],
        "transaction_id": transaction_id(7),
        "_deleted": True,
    }
    assert [key for key, data in records.items() if data.get("_deleted")] == [transaction_id(7)]
    assert streams(api, connection_id)["transactions"]["cursor"] == plaid.cursor

    # And a sync with nothing new asks once and reads nothing
    plaid.requests.clear()
    idle = sync(api, connection_id, "INCREMENTAL", entities=["transactions"])
    assert counts(idle) == {"transactions": {"created": 0, "updated": 0, "unchanged": 0, "read": 0}}
    assert [body.get("cursor") for body in plaid.syncs()] == [plaid.cursor]


def test_a_429_and_a_500_mid_read_lose_and_duplicate_no_transaction(api, plaid, waits):
    # Given Plaid throttles the second page once (no Retry-After: the default second is
    # waited) and then fails the third with a 500
    connection_id = create_connection(api, plaid)
    plaid.inject = {2: THROTTLED, 4: INTERNAL_ERROR}

    # When transactions are synced: the 429 is waited out, the 500 puts the job back in the queue
    first = sync(api, connection_id, entities=["transactions"])
    assert waits == [1.0]
    assert first["status"] == "QUEUED", first
    assert "500: INTERNAL_SERVER_ERROR: an unexpected error occurred" in first["error"]
    assert len(stored(connection_id)) == 20
    # Plaid's cursor is saved only once a read is through
    assert streams(api, connection_id)["transactions"]["cursor"] is None

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it reads again from where it started, and stores each transaction once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {
        "transactions": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}
    }
    assert sorted(stored(connection_id)) == [transaction_id(n) for n in range(1, 26)]
    assert ["cursor" in body for body in plaid.syncs()[-3:]] == [False, True, True]
    assert streams(api, connection_id)["transactions"]["cursor"] == plaid.cursor


def test_data_changed_during_pagination_restarts_the_read_from_its_first_cursor(api, plaid):
    # Given a transaction is added at Plaid while the first page is being read
    connection_id = create_connection(api, plaid)
    plaid.after[1] = lambda: plaid.add(transaction(26))

    # When transactions are synced
    job = sync(api, connection_id, entities=["transactions"])

    # Then the second page is refused, the read starts over without a cursor, and each of the
    # 26 transactions is stored once (the first ten are read twice, unchanged the second time)
    assert job["status"] == "COMPLETED", job
    assert counts(job) == {
        "transactions": {"created": 26, "updated": 0, "unchanged": 10, "read": 36}
    }
    assert len(stored(connection_id)) == 26
    assert ["cursor" in body for body in plaid.syncs()] == [False, True, False, True, True]
    assert streams(api, connection_id)["transactions"]["cursor"] == plaid.cursor


def test_connection_test_shows_plaids_error_code_and_message(api, plaid):
    good = create_connection(api, plaid)
    revoked = create_connection(api, plaid, accessToken="access-sandbox-00000000-0000")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{revoked}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert (
        "400: INVALID_ACCESS_TOKEN: provided access token is in an invalid format"
        in (failed["error"])
    )
    assert [r.path for r in plaid.requests] == ["/accounts/get", "/accounts/get"]
