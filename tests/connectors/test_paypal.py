"""The paypal manifest connector through the API and the real sync engine, against a local PayPal
that answers as its Transaction Search API documents it (``fake_paypal``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine

from connectors.declarative import auth
from tests.connectors.api_sync import (
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_paypal import (
    CLIENT_ID,
    CLIENT_SECRET,
    THROTTLED,
    FakePayPal,
    paypal_server,
    transactions,
)

pytestmark = pytest.mark.django_db
NOW = datetime(2025, 3, 20, 10, tzinfo=UTC)
WINDOWS = [
    ("2025-01-01T00:00:00+0000", "2025-02-01T00:00:00+0000"),
    ("2025-02-01T00:00:00+0000", "2025-03-04T00:00:00+0000"),
    ("2025-03-04T00:00:00+0000", "2025-03-20T10:00:00+0000"),
]


@pytest.fixture
def paypal(monkeypatch, settings) -> Iterator[FakePayPal]:
    """The fake at 2025-03-20 10:00 UTC, whose clock the token expiry also reads; pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with time_machine.travel(NOW, tick=False), paypal_server() as fake:
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakePayPal, secret: str = CLIENT_SECRET) -> str:
    return connection_create(
        api,
        "paypal",
        name="PayPal",
        config={"apiBase": fake.url, "startDate": "2025-01-01T00:00:00Z"},
        credentials={"clientId": CLIENT_ID, "clientSecret": secret},
    )


def test_catalog_lists_paypal(api):
    response = api.get("/api/v1/integrations/connectors/paypal")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("PAYMENTS", "BETA")
    assert body["entities"] == ["transactions"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["clientId", "clientSecret"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, paypal):
    # Given 30 transactions, one every 60 hours from 2025-01-01
    connection_id = create_connection(api, paypal)

    # When the account is synced in full
    full = sync(api, connection_id)

    # Then each is stored once, searched in windows of at most 31 days up to now, paged
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        "transactions": {"created": 30, "updated": 0, "unchanged": 0, "read": 30}
    }
    assert stored(connection_id) == 30
    assert paypal.ranges() == [
        (*WINDOWS[0], "1"),
        (*WINDOWS[0], "2"),
        (*WINDOWS[1], "1"),
        (*WINDOWS[1], "2"),
        (*WINDOWS[2], "1"),
    ]
    assert {r.param("fields") for r in paypal.api_requests} == {"all"}
    assert streams(api, connection_id)["transactions"]["cursor"] == "2025-03-14T12:00:00+00:00"

    # Given one more payment received
    paypal.data += transactions(1, first=31)
    paypal.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then one window from the cursor is searched and only the new payment is read
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "transactions": {"created": 1, "updated": 0, "unchanged": 0, "read": 1}
    }
    assert paypal.ranges() == [("2025-03-14T12:00:00+0000", "2025-03-20T10:00:00+0000", "1")]
    assert stored(connection_id) == 31


def test_a_429_and_a_503_mid_read_lose_and_duplicate_no_transaction(api, paypal, waits):
    # Given PayPal throttles the second page once and then fails the third with a 503
    connection_id = create_connection(api, paypal)
    paypal.inject = {
        2: THROTTLED,
        4: (503, {}, {"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable."}),
    }

    # When it is synced: the 429 is waited out (a second: PayPal names no wait), the 503
    # puts the job back in the queue
    first = sync(api, connection_id)
    assert waits == [1.0]
    assert first["status"] == "QUEUED", first
    assert stored(connection_id) == 13
    # Pages are not in cursor order, so no cursor is committed before the read is through
    assert streams(api, connection_id)["transactions"]["cursor"] is None

    # And it is retried: the windows are read again from the start
    done = retry(api, connection_id, first["syncId"])

    # Then all 30 transactions are stored once and counted once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {
        "transactions": {"created": 30, "updated": 0, "unchanged": 0, "read": 30}
    }
    assert stored(connection_id) == 30


def test_an_expiring_access_token_is_replaced(api, paypal):
    # Given the access token's nine hours run out after the first page
    connection_id = create_connection(api, paypal)
    paypal.after[1] = lambda: setattr(paypal, "now", paypal.now + 32_400)

    # When it is synced
    job = sync(api, connection_id)

    # Then a new token is obtained by the client-credentials grant before the second page
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["transactions"]["created"] == 30
    assert [r.form()["grant_type"] for r in paypal.token_requests] == ["client_credentials"] * 2
    tokens = [r.headers["authorization"] for r in paypal.api_requests]
    assert tokens[0] != tokens[1] == tokens[-1]


def test_a_wrong_secret_fails_the_sync_for_good(api, paypal):
    connection_id = create_connection(api, paypal, secret="wrong")

    job = sync(api, connection_id)

    assert job["status"] == "FAILED", job
    assert "invalid_client" in job["error"]
    assert paypal.api_requests == []
