"""The manifest engine: checking manifests (errors by field), and what a manifest connector does
against a local HTTP server: each pagination type, date windows, each authentication, error
classification, redirects, the request budget and the egress policy."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from accounts.services import Actor
from connectors import http
from connectors.choices import ConnectorCategory
from connectors.declarative import shipped
from connectors.declarative.connector import DeclarativeConnector, connector_class
from connectors.declarative.manifest import (
    ManifestError,
    manifest_check,
    manifest_errors,
    manifest_load,
    manifest_schema,
)
from connectors.registry import ConnectorError, get_connector
from connectors.services import connection_create, connection_credentials_rotate
from tests.connectors.fakehttp import Answer, Request, json_server

Route = Any  # Callable[[Request], Answer]


@dataclass
class FakeApi:
    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()

    def answer(request: Request) -> Answer:
        api.requests.append(request)
        route = api.routes.get(request.path)
        return route(request) if route else (404, {}, {"message": "No such path"})

    with json_server(answer) as url:
        api.url = url
        yield api


ITEMS = [{"id": n, "updated": f"2025-01-{n:02d}T00:00:00Z"} for n in range(1, 26)]


def manifest(**changes: Any) -> dict[str, Any]:
    """A small manifest of one stream, ``items``; ``stream`` changes merge into the stream."""
    stream = {"name": "items", "path": "/items", "primaryKey": "id", **changes.pop("stream", {})}
    return {
        "id": "test_items",
        "name": "Test Items",
        "category": "API",
        "config": {"properties": {"baseUrl": {"type": "string"}}, "required": ["baseUrl"]},
        "credentials": {"properties": {"token": {"type": "string"}}},
        "baseUrl": "{{ config.baseUrl }}",
        "streams": [stream],
        **changes,
    }


def source(api: FakeApi, checked: dict[str, Any], **credentials: Any) -> DeclarativeConnector:
    manifest_check(checked)
    return connector_class(checked)(config={"baseUrl": api.url}, credentials=credentials)


def read_all(connector: DeclarativeConnector, **kwargs: Any) -> list[dict[str, Any]]:
    return [record for batch in connector.read("items", **kwargs) for record in batch.records]


def ok(body: Any, headers: dict[str, str] | None = None) -> Answer:
    return 200, headers or {}, body


# --- checking manifests --------------------------------------------------------------------


def test_missing_fields_are_reported_each_by_name():
    assert manifest_errors({"id": "acme"}) == {
        "baseUrl": ["This field is required."],
        "category": ["This field is required."],
        "name": ["This field is required."],
        "streams": ["This field is required."],
    }


def test_wrong_values_and_unknown_fields_are_reported_at_their_path():
    errors = manifest_errors(
        manifest(
            category="SPACESHIPS",
            authentication={"type": "oauth2", "grantType": "refresh_token", "clientId": "x"},
            rateLimit={"requests": 0, "seconds": 60},
            stream={"recordsPath": "data", "pagination": {"type": "pages"}, "primaryKey": []},
        )
    )

    assert set(errors) == {
        "category",
        "authentication.tokenUrl",
        "authentication.clientSecret",
        "authentication.refreshTokenCredential",
        "rateLimit.requests",
        "streams.0.recordsPath",
        "streams.0.pagination.type",
        "streams.0.primaryKey",
    }
    assert errors["streams.0.recordsPath"] == ["Unknown field."]
    assert errors["authentication.tokenUrl"] == ["This field is required."]
    assert "'pages' is not one of" in errors["streams.0.pagination.type"][0]


def test_templates_and_paging_must_name_what_the_manifest_declares():
    errors = manifest_errors(
        manifest(
            baseUrl="{{ config.host }}/v1",
            headers={"X-Key": "{{ credentials.apiKey }}", "X-Page": "{{ page.size }}"},
            streams=[
                {
                    "name": "items",
                    "path": "/items",
                    "primaryKey": "id",
                    "params": {"since": "{{ cursor }}", "size": "{{ page.size }}"},
                    "pagination": {"type": "page", "pageSize": 50},
                },
                {
                    "name": "items",
                    "path": "/other",
                    "primaryKey": "key",
                    "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
                },
            ],
        )
    )

    assert errors == {
        "baseUrl": ["{{ config.host }}: config declares no 'host'."],
        "headers": [
            "{{ credentials.apiKey }}: credentials declare no 'apiKey'.",
            "{{ page.size }} cannot be used here.",
        ],
        "streams.0.cursor": ["{{ cursor }} is used, so the stream needs a cursor."],
        "streams.0.pagination": [
            "page paging needs {{ page.number }} in the stream's path, params or body."
        ],
        "streams.1.name": ["Stream 0 is named 'items' too."],
        "streams.1.primaryKey": ["'key' is not a field of the stream's schema."],
    }


def test_text_that_is_not_yaml_is_reported_with_its_line():
    with pytest.raises(ManifestError) as error:
        manifest_load("id: acme\nstreams: [\n  - name", source="Manifest acme.yaml")

    assert error.value.errors == {"_": ["Not YAML or JSON at line 3, column 3."]}
    assert error.value.message.startswith("Manifest acme.yaml is invalid: _: Not YAML")


def test_a_json_manifest_loads_like_a_yaml_one():
    assert manifest_load(json.dumps(manifest()))["streams"][0]["name"] == "items"


def test_the_schema_knows_every_connector_category():
    assert manifest_schema()["properties"]["category"]["enum"] == list(ConnectorCategory.values)


def test_an_invalid_shipped_manifest_stops_the_start(monkeypatch, tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("id: broken\nname: Broken\ncategory: API\n")
    monkeypatch.setattr(shipped, "MANIFEST_DIR", tmp_path)

    with pytest.raises(ImproperlyConfigured) as error:
        shipped.shipped_connectors()

    assert str(error.value) == (
        "Manifest broken.yaml is invalid: baseUrl: This field is required.; "
        "streams: This field is required."
    )


def test_shipped_manifests_are_in_the_catalog_with_their_streams():
    quickbooks = get_connector("quickbooks")
    assert quickbooks is not None
    connector = quickbooks(config={"realmId": "1"}, credentials={})

    specs = connector.discover()

    assert [spec.name for spec in specs] == ["customers", "invoices", "payments"]
    customers = specs[0]
    assert (customers.primary_key, customers.cursor_field, customers.ordered) == (
        ["Id"],
        "updatedAt",
        True,
    )
    assert customers.fields == [
        "Id",
        "SyncToken",
        "DisplayName",
        "CompanyName",
        "PrimaryEmailAddr",
        "Balance",
        "Active",
        "MetaData",
        "updatedAt",
    ]
    typed = {spec.name: (spec.type, spec.nullable) for spec in customers.field_specs}
    assert typed["Id"] == ("string", False)
    assert typed["CompanyName"] == ("string", True)
    assert typed["Balance"] == ("number", True)
    assert typed["updatedAt"] == ("string", True)
    assert connector.count("customers") is None
    shopify = get_connector("shopify")
    assert shopify is not None
    assert {spec.ordered for spec in shopify(config={}, credentials={}).discover()} == {False}


def test_config_values_in_a_path_are_percent_encoded(fake_api):
    fake_api.routes["/folders/..%2Fadmin%3Fall%3D1/items"] = lambda r: ok([ITEMS[0]])
    checked = manifest(
        config={"properties": {"baseUrl": {}, "folder": {}}},
        stream={"path": "/folders/{{ config.folder }}/items"},
    )
    manifest_check(checked)
    connector = connector_class(checked)(
        config={"baseUrl": fake_api.url, "folder": "../admin?all=1"}, credentials={}
    )

    assert read_all(connector) == [ITEMS[0]]
    assert [(r.path, r.query) for r in fake_api.requests] == [
        ("/folders/..%2Fadmin%3Fall%3D1/items", {})
    ]


# --- pagination ----------------------------------------------------------------------------


def test_page_numbers_until_a_short_page(fake_api):
    def pages(request: Request) -> Answer:
        page, size = int(request.param("page") or 0), int(request.param("per_page") or 0)
        return ok({"data": ITEMS[(page - 1) * size : page * size]})

    fake_api.routes["/items"] = pages
    connector = source(
        fake_api,
        manifest(
            stream={
                "params": {"page": "{{ page.number }}", "per_page": "{{ page.size }}"},
                "recordSelector": "data",
                "pagination": {"type": "page", "pageSize": 100},
            }
        ),
    )

    batches = list(connector.read("items", batch_size=10))

    assert [len(batch.records) for batch in batches] == [10, 10, 5]
    assert [r.param("page") for r in fake_api.requests] == ["1", "2", "3"]
    assert {r.param("per_page") for r in fake_api.requests} == {"10"}


def test_cursor_paging_in_a_post_body(fake_api):
    # A search API that takes its paging in a JSON body, HubSpot style
    def search(request: Request) -> Answer:
        body = request.json()
        start = int(body.get("after") or 0)
        chunk = ITEMS[start : start + body["limit"]]
        following = start + len(chunk)
        paging = {"next": {"after": str(following)}} if following < len(ITEMS) else {}
        return ok({"results": chunk, "paging": paging})

    fake_api.routes["/items/search"] = search
    connector = source(
        fake_api,
        manifest(
            stream={
                "path": "/items/search",
                "method": "POST",
                "body": {"limit": "{{ page.size }}", "after": "{{ page.cursor }}", "sorts": []},
                "recordSelector": "results",
                "pagination": {"type": "cursor", "pageSize": 10, "cursorPath": "paging.next.after"},
            }
        ),
    )

    records = read_all(connector)

    assert [record["id"] for record in records] == list(range(1, 26))
    assert [r.json() for r in fake_api.requests] == [
        {"limit": 10, "sorts": []},
        {"limit": 10, "after": "10", "sorts": []},
        {"limit": 10, "after": "20", "sorts": []},
    ]
    assert {r.method for r in fake_api.requests} == {"POST"}


def test_a_next_link_in_the_body_is_followed_as_given(fake_api):
    # Salesforce style: a relative nextRecordsUrl until done
    def first(request: Request) -> Answer:
        return ok({"records": ITEMS[:10], "nextRecordsUrl": "/items/next?locator=01gD-10"})

    def rest(request: Request) -> Answer:
        return ok({"records": ITEMS[10:], "done": True})

    fake_api.routes |= {"/items": first, "/items/next": rest}
    connector = source(
        fake_api,
        manifest(
            stream={
                "params": {"q": "SELECT Id FROM Item"},
                "recordSelector": "records",
                "pagination": {"type": "nextLink", "nextLinkPath": "nextRecordsUrl"},
            }
        ),
    )

    assert len(read_all(connector)) == 25
    assert [(r.path, r.param("q"), r.param("locator")) for r in fake_api.requests] == [
        ("/items", "SELECT Id FROM Item", None),
        ("/items/next", None, "01gD-10"),
    ]


def test_a_link_header_to_another_origin_is_not_followed(fake_api):
    fake_api.routes["/items"] = lambda r: ok(
        ITEMS[:1], {"Link": '<https://elsewhere.example/items?page_info=2>; rel="next"'}
    )
    connector = source(
        fake_api,
        manifest(
            authentication={"type": "bearer", "token": "{{ credentials.token }}"},
            stream={"pagination": {"type": "linkHeader"}},
        ),
        token="t0k",
    )

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is False
    assert "elsewhere.example/items leaves http://127.0.0.1" in error.value.message
    assert len(fake_api.requests) == 1


# --- date windows --------------------------------------------------------------------------


def windowed(fake_api: FakeApi) -> DeclarativeConnector:
    def between(request: Request) -> Answer:
        start = request.param("start_date")
        return ok({"items": [{"id": f"{start}", "updated": start}]})

    fake_api.routes["/items"] = between
    return source(
        fake_api,
        manifest(
            stream={
                "params": {"start_date": "{{ window.start }}", "end_date": "{{ window.end }}"},
                "recordSelector": "items",
                "cursor": {"field": "updated", "type": "datetime", "ordered": True},
                "window": {"days": 31, "start": "2025-01-01T00:00:00Z"},
            }
        ),
    )


@time_machine.travel(datetime(2025, 4, 15, 12, tzinfo=UTC), tick=False)
def test_a_full_read_is_split_into_windows_up_to_now(fake_api):
    connector = windowed(fake_api)

    read_all(connector)

    assert [(r.param("start_date"), r.param("end_date")) for r in fake_api.requests] == [
        ("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"),
        ("2025-02-01T00:00:00Z", "2025-03-04T00:00:00Z"),
        ("2025-03-04T00:00:00Z", "2025-04-04T00:00:00Z"),
        ("2025-04-04T00:00:00Z", "2025-04-15T12:00:00Z"),
    ]
    assert type(connector).filters_by_date is True


@time_machine.travel(datetime(2025, 4, 15, 12, tzinfo=UTC), tick=False)
def test_an_incremental_read_starts_its_windows_at_the_cursor(fake_api):
    records = read_all(windowed(fake_api), cursor="2025-03-20T06:00:00Z")

    assert [(r.param("start_date"), r.param("end_date")) for r in fake_api.requests] == [
        ("2025-03-20T06:00:00Z", "2025-04-15T12:00:00Z")
    ]
    # The one record sits at the cursor itself: not newer, so not read again
    assert records == []


@time_machine.travel(datetime(2025, 4, 15, 12, tzinfo=UTC), tick=False)
def test_a_date_range_bounds_the_windows(fake_api):
    read_all(windowed(fake_api), date_range=(date(2025, 2, 20), date(2025, 3, 25)))

    assert [(r.param("start_date"), r.param("end_date")) for r in fake_api.requests] == [
        ("2025-02-20T00:00:00Z", "2025-03-23T00:00:00Z"),
        ("2025-03-23T00:00:00Z", "2025-03-26T00:00:00Z"),
    ]


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authentication", "sent"),
    [
        (
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "value": "{{ credentials.token }}",
            },
            ("header", "x-api-key", "s3cret"),
        ),
        (
            {
                "type": "apiKey",
                "in": "query",
                "name": "api_key",
                "value": "{{ credentials.token }}",
            },
            ("query", "api_key", "s3cret"),
        ),
        (
            {"type": "bearer", "token": "{{ credentials.token }}"},
            ("header", "authorization", "Bearer s3cret"),
        ),
        (
            {"type": "basic", "username": "ann", "password": "{{ credentials.token }}"},
            ("header", "authorization", "Basic " + base64.b64encode(b"ann:s3cret").decode()),
        ),
    ],
)
def test_each_authentication_sends_its_secret(fake_api, authentication, sent):
    fake_api.routes["/items"] = lambda r: ok([])
    connector = source(fake_api, manifest(authentication=authentication), token="s3cret")

    read_all(connector)

    where, name, value = sent
    request = fake_api.requests[0]
    assert (request.headers.get(name) if where == "header" else request.param(name)) == value


def test_an_empty_secret_is_an_error_before_any_request(fake_api):
    connector = source(
        fake_api, manifest(authentication={"type": "bearer", "token": "{{ credentials.token }}"})
    )

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is False
    assert "{{ credentials.token }} is not set" in error.value.message
    assert fake_api.requests == []


def test_oauth2_client_credentials_with_the_client_in_the_body(fake_api):
    issued: list[dict[str, str]] = []

    def token(request: Request) -> Answer:
        issued.append(request.form())
        return ok({"access_token": f"at-{len(issued)}", "token_type": "Bearer", "expires_in": 600})

    fake_api.routes |= {"/oauth/token": token, "/items": lambda r: ok([ITEMS[0]])}
    checked = manifest(
        credentials={"properties": {"clientId": {}, "clientSecret": {}}},
        authentication={
            "type": "oauth2",
            "grantType": "client_credentials",
            "tokenUrl": "{{ config.baseUrl }}/oauth/token",
            "clientId": "{{ credentials.clientId }}",
            "clientSecret": "{{ credentials.clientSecret }}",
            "clientAuthentication": "body",
            "scopes": ["items:read", "items:list"],
            "tokenParams": {"audience": "https://api.example"},
        },
    )
    connector = source(fake_api, checked, clientId="app-1", clientSecret="shh")

    read_all(connector)
    read_all(connector)

    # One token for both reads (it lasts 10 minutes), sent as a bearer token
    assert issued == [
        {
            "grant_type": "client_credentials",
            "scope": "items:read items:list",
            "audience": "https://api.example",
            "client_id": "app-1",
            "client_secret": "shh",
        }
    ]
    items = [r for r in fake_api.requests if r.path == "/items"]
    assert [r.headers["authorization"] for r in items] == ["Bearer at-1", "Bearer at-1"]
    assert "authorization" not in fake_api.requests[0].headers


# --- errors, redirects, budget ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("retryable", "status", "expected"),
    [
        (None, 500, True),
        (None, 429, True),
        (None, 404, False),
        ([503, 408], 500, False),
        ([503, 408], 503, True),
        ([503, 408], 408, True),
        (["4xx"], 409, True),
    ],
)
def test_the_manifest_says_which_error_statuses_are_retryable(
    fake_api, waits, retryable, status, expected
):
    fake_api.routes["/items"] = lambda r: (
        status,
        {"Retry-After": "0"},
        {"message": f"says {status}"},
    )
    changes = {"errors": {"retryable": retryable}} if retryable is not None else {}
    connector = source(fake_api, manifest(**changes))

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is expected
    assert f"says {status}" in error.value.message


def test_a_redirect_is_not_followed(fake_api):
    fake_api.routes["/items"] = lambda r: (302, {"Location": "/elsewhere"}, {})
    fake_api.routes["/elsewhere"] = lambda r: ok([])
    connector = source(
        fake_api,
        manifest(authentication={"type": "apiKey", "in": "header", "name": "X-Key", "value": "k"}),
    )

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is False
    assert "a redirect to http://127.0.0.1" in error.value.message
    assert [r.path for r in fake_api.requests] == ["/items"]


@pytest.mark.django_db
def test_the_request_budget_waits_for_its_next_window(fake_api, monkeypatch):
    # Given a budget of 2 requests a second and a stream of three pages
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(http, "sleep", sleep)
    fake_api.routes["/items"] = lambda r: ok(ITEMS[int(r.param("offset") or 0) :][:10])
    connector = source(
        fake_api,
        manifest(
            rateLimit={"requests": 2, "seconds": 1},
            stream={
                "params": {"offset": "{{ page.offset }}", "limit": "{{ page.size }}"},
                "pagination": {"type": "offset", "pageSize": 10},
            },
        ),
    )

    # When it is read
    records = read_all(connector)

    # Then the third request waited for the next second
    assert len(records) == 25
    assert slept == [1]
    assert len(fake_api.requests) == 3


@pytest.mark.django_db
def test_a_budget_used_up_for_long_is_a_retryable_error(fake_api):
    fake_api.routes["/items"] = lambda r: ok(ITEMS[int(r.param("offset") or 0) :][:10])
    connector = source(
        fake_api,
        manifest(
            rateLimit={"requests": 1, "seconds": 3600, "key": "{{ config.baseUrl }}"},
            stream={
                "params": {"offset": "{{ page.offset }}", "limit": "{{ page.size }}"},
                "pagination": {"type": "offset", "pageSize": 10},
            },
        ),
    )

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is True
    assert "request budget of Test Items (1 per 3600s) is used up" in error.value.message
    assert len(fake_api.requests) == 1


# --- the egress policy -----------------------------------------------------------------------


@pytest.fixture
def production_default(settings):
    """The egress policy of an installation that configured nothing."""
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    return settings


def test_a_manifest_on_loopback_is_refused_by_default_and_never_contacted(
    fake_api, production_default
):
    fake_api.routes["/items"] = lambda r: ok([])
    connector = source(fake_api, manifest())

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is False
    assert "refused by the egress policy: 127.0.0.1 is a loopback address" in error.value.message
    assert fake_api.requests == []


# --- rotated credentials ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rotated_credential_replaces_only_the_value_it_rotated(tenant, other_tenant, monkeypatch):
    monkeypatch.setenv("RAILYARD_CONNECTOR_QB_REFRESH", "rt-1")

    def create(account, token: str, connector_id: str = "quickbooks"):
        credentials = {"clientId": "a", "clientSecret": "b", "refreshToken": token}
        if connector_id == "http_json":
            credentials = {"authType": "bearer", "token": token}
        return connection_create(
            account=account,
            actor=Actor.system(),
            connector_id=connector_id,
            name="Books",
            config={"realmId": "1"} if connector_id == "quickbooks" else {"baseUrl": "http://x"},
            credentials=credentials,
        )

    holder = create(tenant.account, "rt-1")
    other = create(other_tenant.account, "rt-other")
    reference = create(tenant.account, "${RAILYARD_CONNECTOR_QB_REFRESH}")
    unrelated = create(tenant.account, "rt-1", connector_id="http_json")

    rotated = connection_credentials_rotate(
        connector_id="quickbooks", key="refreshToken", previous="rt-1", current="rt-2"
    )
    again = connection_credentials_rotate(
        connector_id="quickbooks", key="refreshToken", previous="rt-1", current="rt-3"
    )

    assert (rotated, again) == (1, 0)
    for connection in (holder, other, reference, unrelated):
        connection.refresh_from_db()
    assert holder.stored_credentials()["refreshToken"] == "rt-2"
    assert other.stored_credentials()["refreshToken"] == "rt-other"
    assert reference.stored_credentials()["refreshToken"] == "${RAILYARD_CONNECTOR_QB_REFRESH}"
    assert unrelated.stored_credentials()["token"] == "rt-1"


# --- cursors in the API's own format, restarted queries ------------------------------------


def test_a_cursor_is_sent_in_its_format_and_microsoft_json_dates_are_times(fake_api):
    # Xero style: the cursor travels in If-Modified-Since, the records carry /Date(ms+zzzz)/
    def modified(request: Request) -> Answer:
        return ok(
            {
                "Things": [
                    {"id": 1, "Updated": "/Date(1735725600000+0000)/"},  # 2025-01-01T10:00:00Z
                    {"id": 2, "Updated": "/Date(1735729200500+1300)/"},  # 11:00:00.5Z
                ]
            }
        )

    fake_api.routes["/items"] = modified
    connector = source(
        fake_api,
        manifest(
            stream={
                "headers": {"If-Modified-Since": "{{ cursor }}"},
                "recordSelector": "Things",
                "addFields": {"updatedAt": {"path": "Updated", "type": "datetime"}},
                "schema": {"properties": {"id": {"type": "integer"}, "Updated": {}}},
                "cursor": {
                    "field": "updatedAt",
                    "type": "datetime",
                    "format": "%Y-%m-%dT%H:%M:%S",
                },
            }
        ),
    )

    first = list(connector.read("items"))
    later = list(connector.read("items", cursor="2025-01-01T10:30:00.250+00:00"))

    assert [r["updatedAt"] for r in first[0].records] == [
        "2025-01-01T10:00:00+00:00",
        "2025-01-01T11:00:00.500000+00:00",
    ]
    assert first[-1].cursor == "2025-01-01T11:00:00.500000+00:00"
    # No header before the first sync; then the cursor to the second, as Xero wants it
    assert [r.headers.get("if-modified-since") for r in fake_api.requests] == [
        None,
        "2025-01-01T10:30:00",
    ]
    assert [record["id"] for batch in later for record in batch.records] == [2]


def test_a_cursor_sent_as_epoch_milliseconds(fake_api):
    fake_api.routes["/items"] = lambda r: ok([])
    connector = source(
        fake_api,
        manifest(
            stream={
                "params": {"since": "{{ cursor }}"},
                "cursor": {
                    "field": "updated",
                    "type": "datetime",
                    "format": "unix_ms",
                    "start": "2025-01-01T00:00:00Z",
                },
            }
        ),
    )

    read_all(connector)
    read_all(connector, cursor="2025-01-02T00:00:00.123Z")

    assert [r.param("since") for r in fake_api.requests] == ["1735689600000", "1735776000123"]


def capped_search(cap: int, items: list[dict[str, Any]]) -> Route:
    """A search API sorted by ``updated`` that pages no further than ``cap`` records into one
    query (HubSpot: 10,000) and filters inclusively from ``since``."""

    def search(request: Request) -> Answer:
        body = request.json()
        start = int(body.get("after") or 0)
        if start >= cap:
            return 400, {}, {"status": "error", "message": "after beyond the limit"}
        rows = [item for item in items if item["updated"] >= body["since"]]
        rows.sort(key=lambda item: (item["updated"], item["id"]))
        chunk = rows[start : start + body["limit"]]
        following = start + len(chunk)
        paging = {"next": {"after": str(following)}} if following < len(rows) else {}
        return ok({"results": chunk, "paging": paging})

    return search


def restarting(fake_api: FakeApi, cap: int, items: list[dict[str, Any]]) -> DeclarativeConnector:
    fake_api.routes["/items/search"] = capped_search(cap, items)
    return source(
        fake_api,
        manifest(
            stream={
                "path": "/items/search",
                "method": "POST",
                "body": {
                    "limit": "{{ page.size }}",
                    "after": "{{ page.cursor }}",
                    "since": "{{ cursor }}",
                },
                "recordSelector": "results",
                "cursor": {
                    "field": "updated",
                    "type": "datetime",
                    "start": "2025-01-01T00:00:00Z",
                    "ordered": True,
                },
                "pagination": {
                    "type": "cursor",
                    "pageSize": 5,
                    "cursorPath": "paging.next.after",
                    "restartAfter": 10,
                },
            }
        ),
    )


def test_a_capped_query_is_restarted_from_its_last_cursor_without_a_record_twice(fake_api):
    # Given 25 items; items 9 to 12 share one update time, across the 10th record's boundary
    items = [dict(item) for item in ITEMS]
    for item in items[8:12]:
        item["updated"] = "2025-01-09T00:00:00Z"

    # When they are read through a search that pages at most 10 records into a query
    records = read_all(restarting(fake_api, 10, items))

    # Then each is read once, the query restarted (inclusively) from the 10th record's time
    assert [record["id"] for record in records] == list(range(1, 26))
    assert [(r.json()["since"], r.json().get("after")) for r in fake_api.requests] == [
        ("2025-01-01T00:00:00Z", None),
        ("2025-01-01T00:00:00Z", "5"),
        ("2025-01-09T00:00:00Z", None),
        ("2025-01-09T00:00:00Z", "5"),
        ("2025-01-18T00:00:00Z", None),
        ("2025-01-18T00:00:00Z", "5"),
    ]


def test_a_capped_query_that_cannot_move_its_cursor_is_an_error(fake_api):
    # Given 15 items updated at one instant, after the stream's start
    items = [{"id": n, "updated": "2025-01-05T00:00:00Z"} for n in range(1, 16)]

    # When they are read 10 at most per query: the restarted query finds only those 10 again
    with pytest.raises(ConnectorError) as error:
        read_all(restarting(fake_api, 10, items))

    assert error.value.retryable is False
    assert "more than 10 records share the cursor value '2025-01-05T00:00:00Z'" in (
        error.value.message
    )
    assert [r.json()["since"] for r in fake_api.requests] == [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
        "2025-01-05T00:00:00Z",
        "2025-01-05T00:00:00Z",
    ]


def test_a_cursor_format_and_a_restart_need_what_they_work_on():
    errors = manifest_errors(
        manifest(
            stream={
                "cursor": {"field": "id", "type": "number", "format": "unix"},
                "pagination": {"type": "cursor", "cursorPath": "next", "restartAfter": 100},
                "params": {"after": "{{ page.cursor }}"},
            }
        )
    )

    assert errors == {
        "streams.0.cursor.format": ["Only a datetime cursor has a format."],
        "streams.0.pagination.restartAfter": [
            "Restarting a query needs a cursor, sent as {{ cursor }} in the path, params or body."
        ],
    }


# --- the API's own cursor, several lists of records, deletions, error codes ----------------


def sync_api(api: FakeApi, changes: list[dict[str, Any]], *, mutate_once: bool = False) -> None:
    """``POST /sync`` of a sync API: the cursor is a position in ``changes`` (a change is a record
    with ``kind`` added, modified or removed); pages of ``count``; with ``mutate_once`` the
    second request is refused once as if the data changed during the pagination."""
    refused: list[bool] = []

    def answer(request: Request) -> Answer:
        body = request.json()
        if mutate_once and not refused and body.get("cursor"):
            refused.append(True)
            return 400, {}, {"error_code": "MUTATION_DURING_PAGINATION", "error_message": "Again."}
        start = int(body.get("cursor") or 0)
        page = changes[start : start + body["count"]]
        lists: dict[str, list[dict[str, Any]]] = {"added": [], "modified": [], "removed": []}
        for change in page:
            lists[change["kind"]].append({k: v for k, v in change.items() if k != "kind"})
        following = start + len(page)
        return ok({**lists, "next": str(following), "more": following < len(changes)})

    api.routes["/sync"] = answer


def syncing(**pagination: Any) -> dict[str, Any]:
    return manifest(
        errors={"codePath": "error_code", "messagePath": "error_message"},
        stream={
            "path": "/sync",
            "method": "POST",
            "body": {"cursor": "{{ cursor }}", "count": "{{ page.size }}"},
            "recordSelector": ["added", "modified"],
            "deletedRecordSelector": "removed",
            "cursor": {"responsePath": "next"},
            "pagination": {"type": "responseCursor", "hasMorePath": "more", **pagination},
        },
    )


def test_a_cursor_taken_from_the_answer_pages_and_is_each_batchs_cursor(fake_api):
    # Given 7 changes: 5 added, then one modified and one removed
    changes = [{"kind": "added", "id": n, "v": 1} for n in range(1, 6)]
    changes += [{"kind": "modified", "id": 2, "v": 2}, {"kind": "removed", "id": 4}]
    sync_api(fake_api, changes)
    connector = source(fake_api, syncing(pageSize=3))

    # When it is read from the start
    batches = list(connector.read("items", batch_size=100))

    # Then each request sends the cursor the answer before handed back, until "more" is false,
    # and each batch carries the cursor after it
    assert [r.json().get("cursor") for r in fake_api.requests] == [None, "3", "6"]
    assert [batch.cursor for batch in batches] == ["3", "6", "7"]
    assert [batch.records for batch in batches] == [
        [{"id": 1, "v": 1}, {"id": 2, "v": 1}, {"id": 3, "v": 1}],
        [{"id": 4, "v": 1}, {"id": 5, "v": 1}, {"id": 2, "v": 2}],
        [{"id": 4, "_deleted": True}],
    ]

    # And a read from the last cursor asks once; with nothing new, it yields no batch
    fake_api.requests.clear()
    assert list(connector.read("items", cursor="7")) == []
    assert [r.json().get("cursor") for r in fake_api.requests] == ["7"]


def test_a_last_page_without_records_still_moves_the_cursor(fake_api):
    fake_api.routes["/sync"] = lambda r: ok({"added": [], "next": "later", "more": False})
    connector = source(fake_api, syncing())

    batches = list(connector.read("items", cursor="now"))

    assert [(batch.records, batch.cursor) for batch in batches] == [([], "later")]


def test_a_record_listed_twice_in_one_answer_is_read_as_its_last_listing(fake_api):
    fake_api.routes["/sync"] = lambda r: ok(
        {
            "added": [{"id": 1, "v": 1}, {"id": 2, "v": 1}],
            "modified": [{"id": 1, "v": 2}],
            "removed": [{"id": 2}],
            "next": "c1",
            "more": False,
        }
    )

    records = read_all(source(fake_api, syncing()))

    assert records == [{"id": 1, "v": 2}, {"id": 2, "_deleted": True}]


def test_a_stream_keeping_the_apis_cursor_discovers_no_cursor_field_and_a_deleted_mark():
    connector = connector_class(syncing())(
        config={"baseUrl": "https://api.example"}, credentials={}
    )

    [spec] = connector.discover()

    assert (spec.cursor_field, spec.ordered) == (None, False)
    assert [(field.name, field.type) for field in spec.field_specs] == [("_deleted", "boolean")]
    assert connector.sync_modes == ["FULL", "INCREMENTAL", "SNAPSHOT"]


def test_an_error_code_of_restart_on_starts_the_read_over_from_its_cursor(fake_api):
    # Given an API that refuses the second page once: its data changed during the pagination
    changes = [{"kind": "added", "id": n} for n in range(1, 6)]
    sync_api(fake_api, changes, mutate_once=True)
    connector = source(fake_api, syncing(pageSize=2, restartOn=["MUTATION_DURING_PAGINATION"]))

    # When it is read from the start
    batches = list(connector.read("items"))

    # Then the read starts over from no cursor, and reads the first page again
    assert [r.json().get("cursor") for r in fake_api.requests] == [None, "2", None, "2", "4"]
    assert [batch.cursor for batch in batches] == ["2", "2", "4", "5"]
    assert [record["id"] for batch in batches for record in batch.records] == [1, 2, 1, 2, 3, 4, 5]


def test_a_read_that_keeps_restarting_is_a_retryable_error_with_the_apis_code(fake_api):
    fake_api.routes["/sync"] = lambda r: (
        400,
        {},
        {"error_code": "MUTATION_DURING_PAGINATION", "error_message": "Data changed."},
    )
    connector = source(fake_api, syncing(restartOn=["MUTATION_DURING_PAGINATION"]))

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is True
    assert "answered 400: MUTATION_DURING_PAGINATION: Data changed." in error.value.message
    assert "started over 3 times" in error.value.message
    assert len(fake_api.requests) == 4


def test_an_error_code_not_to_restart_on_fails_the_read_as_its_status_says(fake_api):
    fake_api.routes["/sync"] = lambda r: (
        400,
        {},
        {"error_code": "INVALID_ACCESS_TOKEN", "error_message": "Bad token."},
    )
    connector = source(fake_api, syncing(restartOn=["MUTATION_DURING_PAGINATION"]))

    with pytest.raises(ConnectorError) as error:
        read_all(connector)

    assert error.value.retryable is False
    assert error.value.message == (
        f"{fake_api.url}/sync answered 400: INVALID_ACCESS_TOKEN: Bad token."
    )
    assert len(fake_api.requests) == 1


def test_has_more_ends_any_paging(fake_api):
    fake_api.routes["/items"] = lambda r: ok({"items": ITEMS[:10], "has_more": False})
    checked = manifest(
        stream={
            "params": {"page": "{{ page.number }}", "size": "{{ page.size }}"},
            "recordSelector": "items",
            "pagination": {"type": "page", "pageSize": 10, "hasMorePath": "has_more"},
        }
    )

    assert len(read_all(source(fake_api, checked))) == 10
    assert len(fake_api.requests) == 1


def test_a_cursor_from_the_answer_and_its_paging_need_what_they_work_on():
    both = manifest_errors(manifest(stream={"cursor": {"field": "id", "responsePath": "next"}}))
    assert both == {"streams.0.cursor": ["Give only one of: field; responsePath."]}

    errors = manifest_errors(
        manifest(
            stream={
                "cursor": {"responsePath": "next", "type": "string"},
                "pagination": {"type": "responseCursor", "restartOn": ["AGAIN"]},
            }
        )
    )
    assert errors == {"streams.0.pagination.hasMorePath": ["This field is required."]}

    errors = manifest_errors(
        manifest(
            stream={
                "cursor": {"responsePath": "next", "type": "string"},
                "pagination": {
                    "type": "responseCursor",
                    "hasMorePath": "more",
                    "restartOn": ["AGAIN"],
                },
                "window": {"days": 7, "start": "2025-01-01"},
                "params": {"from": "{{ window.start }}"},
            }
        )
    )
    assert errors == {
        "streams.0.cursor.type": [
            "A cursor taken from the answer is only sent back: it has no type, format or order."
        ],
        "streams.0.cursor.responsePath": [
            "Send the API's cursor back as {{ cursor }} in the path, params, body or headers."
        ],
        "streams.0.pagination.restartOn": [
            "Error codes are read at errors.codePath, which the manifest does not give."
        ],
        "streams.0.window": ["Date windows need a cursor field, not the API's cursor."],
    }

    paging = manifest_errors(
        manifest(stream={"pagination": {"type": "responseCursor", "hasMorePath": "more"}})
    )
    assert paging == {
        "streams.0.pagination.type": [
            "responseCursor paging needs the stream's cursor taken from the answer "
            "(cursor.responsePath)."
        ]
    }


def test_an_inclusive_cursor_keeps_the_records_at_it(fake_api):
    # Given an API filtering by day, inclusively
    fake_api.routes["/items"] = lambda r: ok(
        [
            {"id": 1, "day": "2025-01-04"},
            {"id": 2, "day": "2025-01-05"},
            {"id": 3, "day": "2025-01-05"},
        ]
    )
    cursor = {"field": "day", "start": "2025-01-01"}
    plain = source(
        fake_api, manifest(stream={"cursor": cursor, "params": {"from": "{{ cursor }}"}})
    )
    inclusive = source(
        fake_api,
        manifest(
            stream={"cursor": {**cursor, "inclusive": True}, "params": {"from": "{{ cursor }}"}}
        ),
    )

    # When each reads after 2025-01-05: the records of that day are kept only by the inclusive one
    assert read_all(plain, cursor="2025-01-05") == []
    assert [r["id"] for r in read_all(inclusive, cursor="2025-01-05")] == [2, 3]
    assert [r.param("from") for r in fake_api.requests] == ["2025-01-05", "2025-01-05"]


def test_an_object_inside_a_longer_template_string_is_its_json_text():
    from connectors.declarative import templates

    context = {"record": {"id": 7, "tags": ["a", "b"]}}

    assert templates.render("{{ record }}", context) == {"id": 7, "tags": ["a", "b"]}
    assert templates.render("data={{ record }}", context) == 'data={"id":7,"tags":["a","b"]}'
    assert templates.render("tags {{ record.tags }}", context) == 'tags ["a","b"]'
