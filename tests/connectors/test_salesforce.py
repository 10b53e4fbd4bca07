"""The salesforce manifest connector through the API and the real sync engine, against a local
org that answers as the Salesforce REST API documents it (``fake_salesforce``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from connectors.declarative import auth
from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
    work,
)
from tests.connectors.fake_salesforce import (
    CLIENT_ID,
    CLIENT_SECRET,
    PREFIX,
    REFRESH_TOKEN,
    SESSION_SECONDS,
    START,
    UNAVAILABLE,
    FakeSalesforce,
    errors,
    salesforce_server,
    sobjects,
    stamp,
    touch,
)

pytestmark = pytest.mark.django_db
ALL = {"accounts": 25, "contacts": 12, "opportunities": 7}


@pytest.fixture
def salesforce(monkeypatch, settings) -> Iterator[FakeSalesforce]:
    """The fake, whose clock the connector's token expiry also reads; it answers batches of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with salesforce_server() as fake:
        fake.batch_size = 10
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakeSalesforce, **credentials: Any) -> str:
    return connection_create(
        api,
        "salesforce",
        name="Org",
        config={"instanceUrl": fake.url, "tokenUrl": fake.tokens_url},
        credentials={
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "refreshToken": REFRESH_TOKEN,
            **credentials,
        },
    )


def where(query: str) -> str:
    return query.split(" WHERE ")[1].split(" ORDER BY")[0]


def test_catalog_lists_salesforce(api):
    response = api.get("/api/v1/integrations/connectors/salesforce")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("CRM", "BETA")
    assert body["entities"] == ["accounts", "contacts", "opportunities"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["configSchema"]["required"] == ["instanceUrl"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, salesforce):
    # Given an org with 25 accounts, 12 contacts and 7 opportunities
    connection_id = create_connection(api, salesforce)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once: one SOQL query per object, the rest by query locator
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        entity: {"created": count, "updated": 0, "unchanged": 0, "read": count}
        for entity, count in ALL.items()
    }
    assert {entity: stored(connection_id, entity) for entity in ALL} == ALL
    assert [where(q) for q in salesforce.queries("Account")] == [
        "SystemModstamp > 1970-01-01T00:00:00Z"
    ]
    account_paths = [r.path for r in salesforce.api_requests][:3]
    assert account_paths == [
        f"{PREFIX}/query",
        f"{PREFIX}/query/01gD0000002HU6K001-10",
        f"{PREFIX}/query/01gD0000002HU6K002-10",
    ]
    newest = stamp(START + timedelta(minutes=45 * 25))
    assert streams(api, connection_id)["accounts"]["cursor"] == newest

    # Given two accounts edited, one created and one opportunity edited in the org
    later = START + timedelta(days=2, milliseconds=250)
    accounts = salesforce.data["Account"]
    touch(accounts[3], later, Name="Renamed 4")
    touch(accounts[20], later + timedelta(minutes=1), Phone="+1 415 555 0100")
    created = sobjects("Account", 1, first=26)[0]
    touch(created, later + timedelta(minutes=2))
    accounts.append(created)
    touch(salesforce.data["Opportunity"][0], later, StageName="Closed Won")
    salesforce.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then each query starts after its object's cursor, as a SOQL dateTime literal
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "accounts": {"created": 1, "updated": 2, "unchanged": 0, "read": 3},
        "contacts": {"created": 0, "updated": 0, "unchanged": 0, "read": 0},
        "opportunities": {"created": 0, "updated": 1, "unchanged": 0, "read": 1},
    }
    assert where(salesforce.queries("Account")[0]) == "SystemModstamp > 2025-04-02T02:45:00Z"
    assert stored(connection_id, "accounts") == 26
    renamed = accounts[3]["Id"]
    record = api.get(f"{CONNECTIONS}/{connection_id}/records?entity=accounts&key={renamed}")
    assert record.json()["data"][0]["data"]["Name"] == "Renamed 4"


def test_a_503_and_a_500_mid_read_lose_and_duplicate_no_account(api, salesforce, waits):
    # Given Salesforce refuses the second batch for load (503) and, on the retry, fails the
    # first request with a 500
    connection_id = create_connection(api, salesforce)
    salesforce.inject = {
        2: UNAVAILABLE,
        3: errors(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."),
    }

    # When accounts are synced: the 503 puts the job back in the queue with the first batch
    first = sync(api, connection_id, entities=["accounts"])
    assert first["status"] == "QUEUED", first
    assert "503" in first["error"]
    assert stored(connection_id, "accounts") == 10

    # And the retry meets the 500 and is retried again
    second = retry(api, connection_id, first["syncId"])
    assert second["status"] == "QUEUED", second
    assert "500" in second["error"]
    with time_machine.travel(timezone.now() + timedelta(hours=4)):
        done = work(api, connection_id, first["syncId"])

    # Then it resumes after its last committed batch: 25 accounts, each created once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"accounts": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    assert stored(connection_id, "accounts") == 25
    assert where(salesforce.queries()[-1]) == (
        f"SystemModstamp > {(START + timedelta(minutes=45 * 9)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    assert waits == []


def test_an_expiring_session_is_renewed(api, salesforce):
    # Given the session's two hours run out after the first batch
    connection_id = create_connection(api, salesforce)
    salesforce.after[1] = lambda: setattr(salesforce, "now", salesforce.now + SESSION_SECONDS)

    # When accounts are synced
    job = sync(api, connection_id, entities=["accounts"])

    # Then a new access token is obtained before the next batch (no 401 seen)
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["accounts"]["created"] == 25
    assert len(salesforce.token_requests) == 2
    tokens = [r.headers["authorization"] for r in salesforce.api_requests]
    assert len(tokens) == 3
    assert tokens[0] != tokens[1] == tokens[2]


def test_an_invalid_session_mid_read_gets_a_new_token_and_the_batch_again(api, salesforce):
    connection_id = create_connection(api, salesforce)
    salesforce.after[1] = salesforce.expire_sessions

    job = sync(api, connection_id, entities=["accounts"])

    assert job["status"] == "COMPLETED", job
    assert job["stats"]["accounts"]["created"] == 25
    assert len(salesforce.token_requests) == 2
    paths = [r.path.rsplit("/", 1)[-1] for r in salesforce.api_requests]
    assert paths == [
        "query",
        "01gD0000002HU6K001-10",
        "01gD0000002HU6K001-10",
        "01gD0000002HU6K002-10",
    ]


def test_connection_test_runs_a_one_row_query(api, salesforce):
    good = create_connection(api, salesforce)
    revoked = create_connection(api, salesforce, refreshToken="5Aep861-revoked")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{revoked}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "authorize the connection again" in failed["error"]
    assert salesforce.queries() == ["SELECT Id FROM Account LIMIT 1"]
