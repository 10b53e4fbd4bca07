"""The tink manifest connector through the API and the real sync engine, against a local Tink
that answers as its Data API v2 documents it (``fake_tink``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.declarative import auth
from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_tink import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    THROTTLED,
    FakeTink,
    error,
    tink_server,
    transaction,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tink(monkeypatch, settings) -> Iterator[FakeTink]:
    """The fake, whose clock the connector's token expiry also reads; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with tink_server() as fake:
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakeTink, **credentials: Any) -> str:
    return connection_create(
        api,
        "tink",
        name="Bank",
        config={"apiBase": fake.url},
        credentials={
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "refreshToken": REFRESH_TOKEN,
            **credentials,
        },
    )


def test_catalog_lists_tink(api):
    response = api.get("/api/v1/integrations/connectors/tink")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("BANKING", "BETA")
    assert body["entities"] == ["accounts", "transactions"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["clientId", "clientSecret", "refreshToken"]


def test_full_then_incremental_sync_reads_from_the_last_booked_day(api, tink):
    # Given a user with 2 accounts and 25 transactions, two booked a day
    connection_id = create_connection(api, tink)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once, paged by token, booked from the start date on
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        "accounts": {"created": 2, "updated": 0, "unchanged": 0, "read": 2},
        "transactions": {"created": 25, "updated": 0, "unchanged": 0, "read": 25},
    }
    assert stored(connection_id, "transactions") == 25
    listed = tink.listed("transactions")
    assert [since for since, _ in listed] == ["2000-01-01"] * 3
    assert listed[0][1] is None
    assert None not in [token for _, token in listed[1:]]
    assert streams(api, connection_id)["transactions"]["cursor"] == "2025-04-14"

    # Given one more transaction booked on the last day, one on the next, and an older one
    # whose description changed (Tink does not report it: it was booked before the cursor)
    tink.transactions.append(transaction(26, dates={"booked": "2025-04-14", "value": "2025-04-14"}))
    tink.transactions.append(transaction(27))
    tink.transactions[0]["descriptions"] = {"original": "CARD", "display": "Renamed"}
    tink.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL", entities=["transactions"])

    # Then the last booked day is asked for again: its known transaction is unchanged, the two
    # new ones are stored
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "transactions": {"created": 2, "updated": 0, "unchanged": 1, "read": 3}
    }
    assert tink.listed("transactions") == [("2025-04-14", None)]
    assert stored(connection_id, "transactions") == 27
    assert streams(api, connection_id)["transactions"]["cursor"] == "2025-04-15"


def test_a_429_and_a_503_mid_read_lose_and_duplicate_no_transaction(api, tink, waits):
    # Given Tink throttles the second page once (Retry-After 3) and then fails the third
    connection_id = create_connection(api, tink)
    tink.inject = {2: THROTTLED, 4: error(503, "SERVICE_UNAVAILABLE", "Try again later.")}

    # When transactions are synced: the 429 is waited out, the 503 puts the job back in the queue
    first = sync(api, connection_id, entities=["transactions"])
    assert waits == [3.0]
    assert first["status"] == "QUEUED", first
    assert "503: SERVICE_UNAVAILABLE: Try again later." in first["error"]
    assert stored(connection_id, "transactions") == 20

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it reads again from the start (the API answers newest first, so nothing of a
    # failed read is safe to resume after) and stores each transaction once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {
        "transactions": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}
    }
    assert stored(connection_id, "transactions") == 25
    assert streams(api, connection_id)["transactions"]["cursor"] == "2025-04-14"


def test_an_expiring_access_token_is_refreshed(api, tink):
    # Given the user access token's two hours run out after the first page
    connection_id = create_connection(api, tink)
    tink.after[1] = lambda: setattr(tink, "now", tink.now + 7_200)

    # When transactions are synced
    job = sync(api, connection_id, entities=["transactions"])

    # Then a new access token is obtained with the refresh token before the second page
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["transactions"]["created"] == 25
    assert len(tink.token_requests) == 2
    assert {r.form()["refresh_token"] for r in tink.token_requests} == {REFRESH_TOKEN}
    assert {r.form()["client_id"] for r in tink.token_requests} == {CLIENT_ID}
    tokens = [r.headers["authorization"] for r in tink.api_requests]
    assert tokens[0] != tokens[1] == tokens[2]


def test_connection_test_lists_one_account(api, tink):
    good = create_connection(api, tink)
    revoked = create_connection(api, tink, refreshToken="revoked")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{revoked}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "refused to issue an access token" in failed["error"]
    assert [(r.path, r.param("pageSize")) for r in tink.api_requests] == [
        ("/data/v2/accounts", "1")
    ]
