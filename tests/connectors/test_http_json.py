"""The generic REST source against a real HTTP server on an ephemeral local port."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors import http
from connectors.http_json import HttpJsonConnector
from connectors.registry import ConnectorError, EntitySpec
from tests.connectors.fakehttp import Answer, json_server
from tests.connectors.fakehttp import Request as Recorded

Route = Callable[[Recorded], Answer]


@dataclass
class FakeApi:
    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()

    def answer(request: Recorded) -> Answer:
        api.requests.append(request)
        route = api.routes.get(request.path)
        return route(request) if route else (404, {}, {"message": "No such path"})

    with json_server(answer) as url:
        api.url = url
        yield api


ITEMS = [
    {"id": n, "name": f"Item {n}", "updated_at": f"2025-01-{n:02d}T00:00:00Z"} for n in range(1, 26)
]


def connector(api: FakeApi, entity: dict[str, Any], **credentials: Any) -> HttpJsonConnector:
    return HttpJsonConnector(
        config={"baseUrl": api.url, "entities": {"items": entity}, "timeoutSeconds": 5},
        credentials=credentials,
    )


def read_all(source: HttpJsonConnector, **kwargs: Any) -> list[Any]:
    return list(source.read("items", **kwargs))


def ok(body: Any, headers: dict[str, str] | None = None) -> Answer:
    return 200, headers or {}, body


def test_records_path_and_no_pagination(fake_api):
    # Given an API that wraps its records
    fake_api.routes["/items"] = lambda r: ok({"data": {"items": ITEMS[:3]}, "total": 3})
    source = connector(fake_api, {"path": "/items", "recordsPath": "data.items"})

    # When reading
    batches = read_all(source)

    # Then one batch holds the wrapped records
    assert [record["id"] for batch in batches for record in batch.records] == [1, 2, 3]
    assert len(fake_api.requests) == 1


def test_discover_lists_the_configured_entities(fake_api):
    source = HttpJsonConnector(
        config={
            "baseUrl": fake_api.url,
            "entities": {
                "items": {"path": "/items", "cursorField": "updated_at"},
                "users": {"path": "/users", "primaryKey": "uuid"},
            },
        },
        credentials={},
    )

    assert source.discover() == [
        EntitySpec(name="items", primary_key=["id"], cursor_field="updated_at", ordered=False),
        EntitySpec(name="users", primary_key=["uuid"], cursor_field=None, ordered=False),
    ]


def test_page_number_pagination(fake_api):
    def pages(request: Recorded) -> Answer:
        page, size = int(request.param("page") or 1), int(request.param("size") or 10)
        return ok(ITEMS[(page - 1) * size : page * size])

    fake_api.routes["/items"] = pages
    source = connector(
        fake_api,
        {"path": "/items", "pagination": {"type": "page", "sizeParam": "size", "pageSize": 10}},
    )

    batches = read_all(source)

    assert [len(batch.records) for batch in batches] == [10, 10, 5]
    assert [r.param("page") for r in fake_api.requests] == ["1", "2", "3"]
    assert {r.param("size") for r in fake_api.requests} == {"10"}


def test_offset_pagination(fake_api):
    def window(request: Recorded) -> Answer:
        offset, limit = int(request.param("offset") or 0), int(request.param("limit") or 10)
        return ok({"results": ITEMS[offset : offset + limit]})

    fake_api.routes["/items"] = window
    source = connector(
        fake_api,
        {
            "path": "items",
            "recordsPath": "results",
            "pagination": {"type": "offset", "pageSize": 10},
        },
    )

    records = [record for batch in read_all(source) for record in batch.records]

    assert [record["id"] for record in records] == list(range(1, 26))
    assert [r.param("offset") for r in fake_api.requests] == ["0", "10", "20"]


def test_cursor_pagination(fake_api):
    def by_cursor(request: Recorded) -> Answer:
        start = int(request.param("after") or 0)
        chunk = ITEMS[start : start + 10]
        next_cursor = str(start + 10) if start + 10 < len(ITEMS) else None
        return ok({"items": chunk, "meta": {"next": next_cursor}})

    fake_api.routes["/items"] = by_cursor
    source = connector(
        fake_api,
        {
            "path": "/items",
            "recordsPath": "items",
            "pagination": {"type": "cursor", "cursorParam": "after", "nextCursorPath": "meta.next"},
        },
    )

    batches = read_all(source)

    assert sum(len(batch.records) for batch in batches) == 25
    assert [r.param("after") for r in fake_api.requests] == [None, "10", "20"]


def test_link_header_pagination_follows_rel_next(fake_api):
    def linked(request: Recorded) -> Answer:
        page = int(request.param("p") or 1)
        links = [f'</items?p={page - 1}>; rel="prev"'] if page > 1 else []
        if page < 3:
            # Relative target, several relation types and a quoted title with a comma.
            links.append(f'</items?p={page + 1}>; title="more, please"; rel="next last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return ok(ITEMS[(page - 1) * 10 : page * 10], headers)

    fake_api.routes["/items"] = linked
    source = connector(fake_api, {"path": "/items", "pagination": {"type": "link"}})

    batches = read_all(source)

    assert sum(len(batch.records) for batch in batches) == 25
    assert [r.param("p") for r in fake_api.requests] == [None, "2", "3"]


def test_link_to_another_origin_is_not_followed(fake_api):
    fake_api.routes["/items"] = lambda r: ok(
        ITEMS[:1], {"Link": '<https://elsewhere.example/items?p=2>; rel="next"'}
    )
    source = connector(
        fake_api, {"path": "/items", "pagination": {"type": "link"}}, authType="bearer", token="t"
    )

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is False
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize(
    ("credentials", "header", "expected"),
    [
        ({"authType": "bearer", "token": "tok123"}, "authorization", "Bearer tok123"),
        (
            {"authType": "basic", "username": "ann", "password": "s3cret"},
            "authorization",
            "Basic " + base64.b64encode(b"ann:s3cret").decode(),
        ),
        (
            {"authType": "api_key", "apiKeyHeader": "X-Api-Key", "apiKey": "k-42"},
            "x-api-key",
            "k-42",
        ),
        ({"authType": "none"}, "authorization", None),
    ],
)
def test_each_auth_type_sends_its_header(fake_api, credentials, header, expected):
    fake_api.routes["/items"] = lambda r: ok([])
    source = connector(fake_api, {"path": "/items"}, **credentials)

    read_all(source)

    assert fake_api.requests[0].headers.get(header) == expected


def test_configured_headers_are_sent(fake_api):
    fake_api.routes["/items"] = lambda r: ok([])
    source = HttpJsonConnector(
        config={
            "baseUrl": fake_api.url,
            "entities": {"items": {"path": "/items"}},
            "headers": {"X-Tenant": "acme"},
        },
        credentials={},
    )

    read_all(source)

    assert fake_api.requests[0].headers["x-tenant"] == "acme"


def test_bearer_without_token_is_not_retryable_and_sends_nothing(fake_api):
    source = connector(fake_api, {"path": "/items"}, authType="bearer")

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is False
    assert "token" in error.value.message
    assert fake_api.requests == []


def test_incremental_sends_the_cursor_and_drops_records_at_or_below_it(fake_api):
    # Given an API whose filter is inclusive
    def since(request: Recorded) -> Answer:
        cutoff = request.param("updated_since") or ""
        return ok([item for item in ITEMS if str(item["updated_at"]) >= cutoff])

    fake_api.routes["/items"] = since
    source = connector(
        fake_api,
        {"path": "/items", "cursorField": "updated_at", "incrementalParam": "updated_since"},
    )

    # When reading from the cursor of item 20
    batches = read_all(source, cursor="2025-01-20T00:00:00Z")

    # Then item 20 itself is not read again, and the batch cursor is the newest record's
    assert [record["id"] for record in batches[0].records] == [21, 22, 23, 24, 25]
    assert batches[0].cursor == "2025-01-25T00:00:00Z"
    assert fake_api.requests[0].param("updated_since") == "2025-01-20T00:00:00Z"


def test_batch_cursor_is_the_highest_so_far(fake_api):
    shuffled = [ITEMS[4], ITEMS[1], ITEMS[0], ITEMS[2]]

    def pages(request: Recorded) -> Answer:
        page = int(request.param("page") or 1)
        return ok(shuffled[(page - 1) * 2 : page * 2])

    fake_api.routes["/items"] = pages
    source = connector(
        fake_api,
        {
            "path": "/items",
            "cursorField": "updated_at",
            "pagination": {"type": "page", "pageSize": 2},
        },
    )

    batches = read_all(source)

    assert [batch.cursor for batch in batches] == ["2025-01-05T00:00:00Z"] * 2


def test_rate_limit_is_retried_after_retry_after(fake_api, waits):
    answers: list[Answer] = [(429, {"Retry-After": "1"}, {"message": "slow down"})]
    fake_api.routes["/items"] = lambda r: answers.pop() if answers else ok(ITEMS[:2])
    source = connector(fake_api, {"path": "/items"})

    batches = read_all(source)

    assert len(batches[0].records) == 2
    assert waits == [1.0]
    assert len(fake_api.requests) == 2


def test_persistent_rate_limit_is_a_retryable_error(fake_api, waits):
    fake_api.routes["/items"] = lambda r: (429, {"Retry-After": "0"}, {"message": "slow down"})
    source = connector(fake_api, {"path": "/items"})

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is True
    assert "429" in error.value.message
    assert len(fake_api.requests) == 4
    assert waits == [0.0, 0.0, 0.0]


def test_retry_after_accepts_http_dates_and_is_capped():
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))

    assert 3.0 <= http.retry_after_seconds(soon) <= 5.0
    assert http.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert http.retry_after_seconds("3600") == http.MAX_RETRY_WAIT_SECONDS
    assert http.retry_after_seconds(None) == http.DEFAULT_RETRY_WAIT_SECONDS


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (401, False), (403, False), (404, False), (422, False)],
)
def test_error_statuses_say_whether_a_retry_helps(fake_api, status, retryable):
    fake_api.routes["/items"] = lambda r: (status, {}, {"error": f"server says {status}"})
    source = connector(fake_api, {"path": "/items"})

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is retryable
    assert f"server says {status}" in error.value.message


def test_timeout_is_retryable(fake_api):
    def slow(request: Recorded) -> Answer:
        time.sleep(1.0)
        return ok([])

    fake_api.routes["/items"] = slow
    source = HttpJsonConnector(
        config={
            "baseUrl": fake_api.url,
            "entities": {"items": {"path": "/items"}},
            "timeoutSeconds": 0.2,
        },
        credentials={},
    )

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is True
    assert "timed out" in error.value.message


def test_refused_connection_is_retryable(fake_api):
    closed = HttpJsonConnector(
        config={"baseUrl": "http://127.0.0.1:9", "entities": {"items": {"path": "/items"}}},
        credentials={},
    )

    with pytest.raises(ConnectorError) as error:
        read_all(closed)

    assert error.value.retryable is True


@pytest.mark.parametrize(
    ("errno", "retryable"), [(socket.EAI_NONAME, False), (socket.EAI_AGAIN, True)]
)
def test_a_name_that_does_not_exist_is_not_retryable_a_resolver_failure_is(
    monkeypatch, errno, retryable
):
    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(errno, "faked lookup")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)  # no lookup leaves the machine
    source = HttpJsonConnector(
        config={"baseUrl": "https://api.example.test", "entities": {"items": {"path": "/items"}}},
        credentials={},
    )

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is retryable
    assert "does not resolve" in error.value.message


def test_records_path_that_is_not_an_array_is_not_retryable(fake_api):
    fake_api.routes["/items"] = lambda r: ok({"data": {"count": 3}})
    source = connector(fake_api, {"path": "/items", "recordsPath": "data.items"})

    with pytest.raises(ConnectorError) as error:
        read_all(source)

    assert error.value.retryable is False


def test_connection_test_reports_latency_and_version(fake_api):
    fake_api.routes["/items"] = lambda r: ok([], {"X-Api-Version": "v7"})
    source = connector(
        fake_api,
        {"path": "/items", "pagination": {"type": "page", "sizeParam": "size"}},
        authType="bearer",
        token="tok",
    )

    result = source.test()

    assert result.success is True
    assert result.version == "v7"
    assert result.permissions == ["read"]
    assert result.latency_ms >= 0
    assert fake_api.requests[0].param("size") == "1"


def test_connection_test_failure_is_a_result_not_an_exception(fake_api):
    fake_api.routes["/items"] = lambda r: (401, {}, {"message": "bad token"})
    source = connector(fake_api, {"path": "/items"}, authType="bearer", token="nope")

    result = source.test()

    assert result.success is False
    assert result.error is not None
    assert "bad token" in result.error


def test_config_schema_requires_an_http_base_url():
    assert "baseUrl" in HttpJsonConnector.validate_config({})
    assert "baseUrl" in HttpJsonConnector.validate_config({"baseUrl": "file:///etc/passwd"})
    assert (
        HttpJsonConnector.validate_config(
            {"baseUrl": "https://api.example.com", "entities": {"items": {"path": "/items"}}}
        )
        == {}
    )
