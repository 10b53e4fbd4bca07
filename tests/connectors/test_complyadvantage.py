"""The complyadvantage manifest connector through the API and the real sync engine, against a
local ComplyAdvantage that answers as its REST API documents it (``fake_complyadvantage``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_complyadvantage import (
    API_KEY,
    THROTTLED,
    FakeComplyAdvantage,
    complyadvantage_server,
    error,
    search,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def complyadvantage(settings) -> Iterator[FakeComplyAdvantage]:
    """The fake with 25 searches, four a day; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with complyadvantage_server() as fake:
        yield fake


def create_connection(api, fake: FakeComplyAdvantage, api_key: str = API_KEY) -> str:
    return connection_create(
        api,
        "complyadvantage",
        name="Screening",
        config={"apiBase": fake.url},
        credentials={"apiKey": api_key},
    )


def test_catalog_lists_complyadvantage_under_compliance(api):
    response = api.get("/api/v1/integrations/connectors/complyadvantage")
    compliance = api.get("/api/v1/integrations/connectors?category=COMPLIANCE")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("COMPLIANCE", "BETA")
    assert body["entities"] == ["searches"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["apiKey"]
    assert body["configSchema"]["properties"]["apiBase"]["default"] == (
        "https://api.complyadvantage.com"
    )
    assert "complyadvantage" in {c["connectorId"] for c in compliance.json()["data"]}


def test_discovery_lists_searches_keyed_by_id_with_a_created_at_cursor(api, complyadvantage):
    connection_id = create_connection(api, complyadvantage)

    response = api.get(f"{CONNECTIONS}/{connection_id}/entities")

    assert response.status_code == 200, response.content
    entities = {entity["name"]: entity for entity in response.json()["data"]}
    assert list(entities) == ["searches"]
    searches = entities["searches"]
    assert searches["primaryKey"] == ["id"]
    assert searches["cursorField"] == "created_at"
    assert "INCREMENTAL" in searches["syncModes"]
    fields = {field["name"]: field for field in searches["fields"]}
    assert fields["id"] == {"name": "id", "type": "integer", "nullable": False}
    assert fields["created_at"] == {"name": "created_at", "type": "string", "nullable": False}
    assert {"match_status", "risk_level", "total_hits", "client_ref"} <= set(fields)


def test_full_then_incremental_sync_reads_from_the_last_created_day(api, complyadvantage):
    # Given an account with 25 searches, the last one created 2025-04-07 08:00:00
    connection_id = create_connection(api, complyadvantage)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every search is stored once, paged by offset and limit with the API key as a Token
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {"searches": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    assert stored(connection_id, "searches") == 25
    assert complyadvantage.listed() == [(None, "0", "10"), (None, "10", "10"), (None, "20", "10")]
    assert {r.headers["authorization"] for r in complyadvantage.requests} == {f"Token {API_KEY}"}
    assert streams(api, connection_id)["searches"]["cursor"] == "2025-04-07 08:00:00"

    # Given a search created in the same second as the last one synced, one created later, and
    # an older one whose match status changed (not created since: a FULL sync brings it)
    complyadvantage.searches.append(search(26, created_at="2025-04-07 08:00:00"))
    complyadvantage.searches.append(search(27))
    complyadvantage.searches[0]["match_status"] = "true_positive"
    complyadvantage.requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then the last created day is asked for again: the searches created before the saved time
    # are dropped, the one at it is unchanged, and the two new ones are stored
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "searches": {"created": 2, "updated": 0, "unchanged": 1, "read": 3}
    }
    assert complyadvantage.listed() == [("2025-04-07", "0", "10")]
    assert stored(connection_id, "searches") == 27
    assert streams(api, connection_id)["searches"]["cursor"] == "2025-04-07 20:00:00"


def test_a_429_and_a_503_mid_read_lose_and_duplicate_no_search(api, complyadvantage, waits):
    # Given ComplyAdvantage throttles the second page twice (once with Retry-After 3, once with
    # the empty answer its documentation shows) and then fails the third page
    connection_id = create_connection(api, complyadvantage)
    complyadvantage.inject = {
        2: THROTTLED,
        3: (429, {}, None),
        5: error(503, "Service temporarily unavailable"),
    }

    # When searches are synced: the 429s are waited out, the 503 puts the job back in the queue
    first = sync(api, connection_id)
    assert waits == [3.0, 1.0]
    assert first["status"] == "QUEUED", first
    assert "503: Service temporarily unavailable" in first["error"]
    assert stored(connection_id, "searches") == 20

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it reads again from the start (the list is newest first, so nothing of a failed read
    # is safe to resume after) and stores each search once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"searches": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    assert stored(connection_id, "searches") == 25
    assert complyadvantage.listed()[-3:] == [
        (None, "0", "10"),
        (None, "10", "10"),
        (None, "20", "10"),
    ]
    assert streams(api, connection_id)["searches"]["cursor"] == "2025-04-07 08:00:00"


def test_connection_test_lists_one_search_and_shows_a_bad_key_refused(api, complyadvantage):
    good = create_connection(api, complyadvantage)
    bad = create_connection(api, complyadvantage, api_key="not-a-key")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{bad}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "answered 401: API Key is invalid or was not provided" in failed["error"]
    assert [(r.path, r.param("limit")) for r in complyadvantage.requests] == [
        ("/searches", "1"),
        ("/searches", "1"),
    ]
    assert [r.headers["authorization"] for r in complyadvantage.requests] == [
        f"Token {API_KEY}",
        "Token not-a-key",
    ]
