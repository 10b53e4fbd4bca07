"""The hubspot manifest connector through the API and the real sync engine, against a local
HubSpot that answers as its CRM v3 search API documents it (``fake_hubspot``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.declarative import auth
from syncengine.models import Record
from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_hubspot import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAX_RESULTS,
    REFRESH_TOKEN,
    START,
    THROTTLED,
    FakeHubSpot,
    error,
    hubspot_server,
    millis,
    objects,
    touch,
)

pytestmark = pytest.mark.django_db
ALL = {"contacts": 25, "companies": 12, "deals": 7}


@pytest.fixture
def hubspot(monkeypatch, settings) -> Iterator[FakeHubSpot]:
    """The fake, whose clock the connector's token expiry also reads; syncs read pages of 10."""
    settings.SYNC_BATCH_SIZE = 10
    with hubspot_server() as fake:
        monkeypatch.setattr(auth, "clock", lambda: fake.now)
        yield fake


def create_connection(api, fake: FakeHubSpot, **credentials: Any) -> str:
    return connection_create(
        api,
        "hubspot",
        name="CRM",
        config={"apiBase": fake.url, "tokenUrl": fake.tokens_url},
        credentials={
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "refreshToken": REFRESH_TOKEN,
            **credentials,
        },
    )


def since(body: dict[str, Any]) -> str:
    return str(body["filterGroups"][0]["filters"][0]["value"])


def test_catalog_lists_hubspot(api):
    response = api.get("/api/v1/integrations/connectors/hubspot")

    assert response.status_code == 200
    body = response.json()["data"]
    assert (body["category"], body["status"]) == ("CRM", "BETA")
    assert body["entities"] == ["contacts", "companies", "deals"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["clientId", "clientSecret", "refreshToken"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, hubspot):
    # Given an account with 25 contacts, 12 companies and 7 deals
    connection_id = create_connection(api, hubspot)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once, searched in pages of 10 from the start date on
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        entity: {"created": count, "updated": 0, "unchanged": 0, "read": count}
        for entity, count in ALL.items()
    }
    assert {entity: stored(connection_id, entity) for entity in ALL} == ALL
    searches = hubspot.searches("contacts")
    assert [(since(body), body.get("after"), body["limit"]) for body in searches] == [
        ("0", None, 10),
        ("0", "10", 10),
        ("0", "20", 10),
    ]
    assert searches[0]["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert hubspot.searches("deals")[0]["filterGroups"][0]["filters"][0]["propertyName"] == (
        "hs_lastmodifieddate"
    )
    newest = hubspot.data["contacts"][-1]["updatedAt"]
    assert streams(api, connection_id)["contacts"]["cursor"] == newest

    # Given two contacts edited, one contact created and one deal edited in HubSpot
    later = START + timedelta(days=3)
    contacts = hubspot.data["contacts"]
    touch("contacts", contacts[3], later, lastname="Byron")
    touch("contacts", contacts[20], later + timedelta(minutes=1), phone="+44 20 7946 0000")
    created = objects("contacts", 1, first=26)[0]
    touch("contacts", created, later + timedelta(minutes=2))
    contacts.append(created)
    touch("deals", hubspot.data["deals"][0], later, dealstage="closedwon")
    hubspot.api_requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then each search starts at its entity's cursor (inclusively; the record at it is not
    # read again) and only the changes are read
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "contacts": {"created": 1, "updated": 2, "unchanged": 0, "read": 3},
        "companies": {"created": 0, "updated": 0, "unchanged": 0, "read": 0},
        "deals": {"created": 0, "updated": 1, "unchanged": 0, "read": 1},
    }
    assert since(hubspot.searches("contacts")[0]) == str(
        millis(START + timedelta(minutes=30 * 25, milliseconds=25))
    )
    assert stored(connection_id, "contacts") == 26
    record = api.get(f"{CONNECTIONS}/{connection_id}/records?entity=contacts&key=4").json()
    assert record["data"][0]["data"]["properties"]["lastname"] == "Byron"


def test_a_429_and_a_502_mid_read_lose_and_duplicate_no_contact(api, hubspot, waits):
    # Given HubSpot throttles the second page once (no Retry-After: the default second is
    # waited) and then fails the third with a 502
    connection_id = create_connection(api, hubspot)
    hubspot.inject = {
        2: THROTTLED,
        4: error(502, "BAD_GATEWAY", "Bad Gateway"),
    }

    # When contacts are synced: the 429 is waited out, the 502 puts the job back in the queue
    first = sync(api, connection_id, entities=["contacts"])
    assert waits == [1.0]
    assert first["status"] == "QUEUED", first
    assert "502" in first["error"]
    assert stored(connection_id, "contacts") == 20

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then it resumes after its last committed page: 25 contacts, each created once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"contacts": {"created": 25, "updated": 0, "unchanged": 0, "read": 25}}
    keys = Record.objects.filter(stream__connection_id=connection_id).values_list("key", flat=True)
    assert sorted(keys, key=int) == [str(n) for n in range(1, 26)]
    # The retry searched once from contact 19's time, the last one committed in full
    resumed = hubspot.searches("contacts")[-1]
    assert (since(resumed), resumed.get("after")) == (
        str(millis(START + timedelta(minutes=30 * 19, milliseconds=19))),
        None,
    )


def test_an_expiring_access_token_is_refreshed(api, hubspot):
    # Given the access token's 30 minutes run out after the first page
    connection_id = create_connection(api, hubspot)
    hubspot.after[1] = lambda: setattr(hubspot, "now", hubspot.now + 1_800)

    # When contacts are synced
    job = sync(api, connection_id, entities=["contacts"])

    # Then a new access token is obtained before the second page, and all 25 are read
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["contacts"]["created"] == 25
    assert len(hubspot.token_requests) == 2
    assert {r.form()["refresh_token"] for r in hubspot.token_requests} == {REFRESH_TOKEN}
    tokens = [r.headers["authorization"] for r in hubspot.api_requests]
    assert tokens[0] != tokens[1] == tokens[2]
    assert len(hubspot.api_requests) == 3


def test_a_401_mid_read_gets_a_new_token_and_the_page_again(api, hubspot):
    connection_id = create_connection(api, hubspot)
    hubspot.after[2] = hubspot.revoke_access_tokens

    job = sync(api, connection_id, entities=["contacts"])

    assert job["status"] == "COMPLETED", job
    assert job["stats"]["contacts"]["created"] == 25
    assert [body.get("after") for body in hubspot.searches("contacts")] == [None, "10", "20", "20"]
    assert len(hubspot.token_requests) == 2


def test_more_contacts_than_one_search_can_page_through_are_all_read_once(api, settings):
    # Given 10,050 contacts, four of them modified at the same instant across the 10,000th
    settings.SYNC_BATCH_SIZE = 200
    with hubspot_server(contacts=MAX_RESULTS + 50, companies=0, deals=0) as hubspot:
        contacts = hubspot.data["contacts"]
        for record in contacts[MAX_RESULTS - 2 : MAX_RESULTS + 2]:
            touch("contacts", record, START + timedelta(days=365))
        for number, record in enumerate(contacts[MAX_RESULTS + 2 :]):
            touch("contacts", record, START + timedelta(days=366, minutes=number))
        connection_id = create_connection(api, hubspot)

        # When they are synced in full
        job = sync(api, connection_id, entities=["contacts"])

        # Then the search is started again from the 10,000th contact's time, and every contact
        # is stored and counted once
        assert job["status"] == "COMPLETED", job
        assert counts(job) == {
            "contacts": {"created": 10_050, "updated": 0, "unchanged": 0, "read": 10_050}
        }
        assert stored(connection_id, "contacts") == 10_050
        searches = hubspot.searches("contacts")
        assert [(since(body), body.get("after")) for body in searches[49:]] == [
            ("0", "9800"),
            (str(millis(START + timedelta(days=365))), None),
        ]
        assert all(int(body.get("after") or 0) < MAX_RESULTS for body in searches)


def test_connection_test_lists_one_contact(api, hubspot):
    good = create_connection(api, hubspot)
    revoked = create_connection(api, hubspot, refreshToken="na1-revoked")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{revoked}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "missing or unknown refresh token" in failed["error"]
    assert [(r.method, r.path, r.param("limit")) for r in hubspot.api_requests] == [
        ("GET", "/crm/v3/objects/contacts", "1")
    ]
