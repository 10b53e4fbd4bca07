"""Hostile input never gets a 500: a clear 4xx in the error envelope, and nothing half-applied.

- NUL characters and lone surrogates anywhere in a JSON body (values and keys, at any depth)
  are a 400 naming the path of the value; JSON nested deeper than API_MAX_JSON_DEPTH is a 400.
- A body over API_MAX_BODY_BYTES is a 413 PAYLOAD_TOO_LARGE, also sent chunked through the real
  web server (gunicorn with gunicorn.conf.py), whose own limits are checked here too.
- Date-times with impossible UTC offsets or outside the calendar once in UTC are a 400.
- NUL in the query string or a header, too many query parameters, an unknown Host: 400.
- Free text has length limits.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEntry, Event
from integrations.models import Flow
from tests.apiworld import World
from tests.worker import _database_url

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent
NUL = "\\u0000"
SURROGATE = "\\ud800"
# What a bad character looks like where the answer names a key that holds it.
SHOWN = {NUL: "\\u0000", SURROGATE: "\\ud800"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    error: dict[str, Any] = body["error"]
    return error


def send(api: Any, method: str, url: str, text: str) -> Any:
    """``text`` as the JSON body, byte for byte (escapes such as \\u0000 stay escapes)."""
    return api.generic(method, url, text, content_type="application/json")


@pytest.fixture
def world(tenant) -> World:
    return World(account=tenant.account, client=tenant.client)


# (object kind, method, URL, body with {bad} where the bad character goes, path the answer names)
BAD_CHARACTER_CASES = [
    (
        "connection",
        "PATCH",
        "/api/v1/integrations/connections/{id}",
        '{"config": {"headers": {"X": "a{bad}"}}}',
        "config.headers.X",
    ),
    (
        "connection",
        "PATCH",
        "/api/v1/integrations/connections/{id}",
        '{"config": {"headers": {"X{bad}": "a"}}}',
        "config.headers.X{shown}",
    ),
    (
        "connection",
        "PATCH",
        "/api/v1/integrations/connections/{id}",
        '{"credentials": {"apiKey": "secret{bad}secret"}}',
        "credentials.apiKey",
    ),
    (
        "import",
        "PATCH",
        "/api/v1/imports/{id}",
        '{"file": {"csv": {"columnDelimiter": "{bad}"}}}',
        "file.csv.columnDelimiter",
    ),
    (
        "import",
        "PATCH",
        "/api/v1/imports/{id}",
        '{"ftp": {"directoryPath": "/in{bad}"}}',
        "ftp.directoryPath",
    ),
    (
        "import",
        "PATCH",
        "/api/v1/imports/{id}",
        '{"mapping": {"fields": [{"extract": "VIN{bad}", "generate": "vin"}]}}',
        "mapping.fields[0].extract",
    ),
    (
        "integration",
        "PATCH",
        "/api/v1/integrations/{id}",
        '{"config": {"global": {"k": "{bad}"}}}',
        "config.global.k",
    ),
    (
        "integration",
        "PATCH",
        "/api/v1/integrations/{id}",
        '{"settings": {"a": {"b": ["x", "{bad}"]}}}',
        "settings.a.b[1]",
    ),
    ("integration", "PATCH", "/api/v1/integrations/{id}", '{"aliases": ["{bad}"]}', "aliases[0]"),
    (
        "integration",
        "PATCH",
        "/api/v1/integrations/{id}",
        '{"flowGroupings": [{"name": "{bad}"}]}',
        "flowGroupings[0].name",
    ),
    (
        "integration",
        "PATCH",
        "/api/v1/integrations/{id}",
        '{"installSteps": [{"name": "step{bad}"}]}',
        "installSteps[0].name",
    ),
    ("flow", "PATCH", "/api/v1/flows/{id}", '{"settings": {"k": "{bad}"}}', "settings.k"),
    (
        "export",
        "PATCH",
        "/api/v1/integrations/exports/{id}",
        '{"filter": {"status": "{bad}"}}',
        "filter.status",
    ),
    (
        "export",
        "PATCH",
        "/api/v1/integrations/exports/{id}",
        '{"destination": {"type": "S3", "bucket": "b{bad}"}}',
        "destination.bucket",
    ),
    (
        "integration",
        "PATCH",
        "/api/v1/mappings/{id}",
        '{"mappings": {"Stock{bad}": "stock_number"}}',
        "mappings.Stock{shown}",
    ),
    (None, "POST", "/api/v1/dealerships", '{"name": "Lot{bad}"}', "name"),
]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("kind", "method", "url", "body", "path"),
    BAD_CHARACTER_CASES,
    ids=[f"{case[1]} {case[2]} {case[4]}" for case in BAD_CHARACTER_CASES],
)
def test_nul_and_lone_surrogates_anywhere_in_json_are_400_naming_the_path(
    api, world, bad, kind, method, url, body, path
):
    if kind is not None:
        url = url.replace("{id}", world.id(kind))
    before = api.get(url).content if method == "PATCH" else None
    audit_rows = AuditEntry.objects.count()

    response = send(api, method, url, body.replace("{bad}", bad))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [path.replace("{shown}", SHOWN[bad])]
    if before is not None:
        assert api.get(url).content == before
    assert AuditEntry.objects.count() == audit_rows


def test_a_valid_surrogate_pair_is_text_like_any_other(api, world):
    url = f"/api/v1/flows/{world.id('flow')}"

    response = send(api, "PATCH", url, '{"settings": {"car": "\\ud83d\\ude97"}}')

    assert response.status_code == 200, response.content
    assert Flow.objects.get(pk=world.id("flow")).settings == {"car": "\U0001f697"}


# --- nesting depth -----------------------------------------------------------------------------


def nested(depth: int) -> str:
    """A JSON object whose ``settings`` holds containers nested ``depth`` levels in all."""
    return '{"settings": ' + '{"a": ' * (depth - 2) + "{}" + "}" * (depth - 2) + "}"


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_json_nested_deeper_than_the_limit_is_400(api, world, depth):
    url = f"/api/v1/integrations/{world.id('integration')}"
    before = api.get(url).content

    response = send(api, "PATCH", url, nested(depth))

    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["details"]["maxDepth"] == settings.API_MAX_JSON_DEPTH == 32
    assert api.get(url).content == before


def test_json_nested_up_to_the_limit_is_accepted(api, world):
    response = send(api, "PATCH", f"/api/v1/integrations/{world.id('integration')}", nested(32))

    assert response.status_code == 200, response.content


# --- body size ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_in_the_envelope(api, world):
    url = f"/api/v1/flows/{world.id('flow')}"
    body = json.dumps({"description": "x" * (settings.API_MAX_BODY_BYTES + 1)})

    response = send(api, "PATCH", url, body)

    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"maxBytes": 10 * 1024 * 1024}
    assert Flow.objects.get(pk=world.id("flow")).description == ""


@override_settings(API_MAX_BODY_BYTES=1024)
def test_the_body_limit_is_a_setting(api):
    small = api.post("/api/v1/dealerships", {"name": "x" * 100}, format="json")
    large = api.post("/api/v1/dealerships", {"name": "x" * 1100}, format="json")

    assert small.status_code == 201, small.content
    assert assert_error(large, 413, "PAYLOAD_TOO_LARGE")["details"] == {"maxBytes": 1024}


def test_a_few_megabytes_of_json_in_one_field_is_400_not_500(api, world):
    url = f"/api/v1/integrations/{world.id('integration')}"

    response = send(api, "PATCH", url, json.dumps({"settings": {"a": "x" * 3_000_000}}))

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "at most 262144" in error["details"]["settings"][0]


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/api/v1/events", "/api/v1/audit"])
@pytest.mark.parametrize(
    "since",
    [
        "2025-01-01T00:00:00+99:00",
        "2025-01-01T00:00:00+20:00",
        "2025-01-01T00:00:00-16:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2025-02-30T00:00:00Z",
    ],
)
def test_impossible_since_is_400(api, endpoint, since):
    response = api.get(endpoint, {"since": since})

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["since"]


@pytest.mark.parametrize("endpoint", ["/api/v1/events", "/api/v1/audit"])
def test_since_with_an_offset_compares_in_utc(api, world, endpoint):
    world.id("integration")  # records events and audit entries
    latest = max(
        Event.objects.latest("created_at").created_at,
        AuditEntry.objects.latest("created_at").created_at,
    )
    at = latest.astimezone(timezone.get_fixed_timezone(15 * 60 + 59))

    included = api.get(endpoint, {"since": (at - timedelta(hours=1)).isoformat()})
    excluded = api.get(endpoint, {"since": (at + timedelta(seconds=1)).isoformat()})

    assert included.status_code == excluded.status_code == 200
    assert included.json()["data"]
    assert excluded.json()["data"] == []


@pytest.mark.parametrize("value", ["2025-01-01T00:00:00+20:00", "0001-01-01T00:00:00+01:00"])
def test_an_impossible_historical_sync_start_date_is_400(api, world, value):
    url = f"/api/v1/integrations/{world.id('integration')}"

    response = api.patch(url, {"historicalSyncStartDate": value}, format="json")

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["historicalSyncStartDate"]


def test_an_impossible_offset_in_a_date_range_is_400(api, world):
    url = f"/api/v1/integrations/connections/{world.id('connection')}/sync"

    response = api.post(url, {"dateRange": {"from": "2025-01-01T00:00:00+20:00"}}, format="json")

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["dateRange.from"]


# --- the request line and headers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/api/v1/events?type=a%00b", "type"),
        ("/api/v1/integrations?name=x&sort=name%00", "sort"),
        ("/api/v1/vehicles?vin%00=1", "vin\\u0000"),
        ("/api/v1/dealerships/%00", "path"),
    ],
)
def test_nul_in_the_url_is_400(api, url, where):
    error = assert_error(api.get(url), 400, "VALIDATION_ERROR")

    assert list(error["details"]) == [where]


def test_nul_in_a_header_is_400(api):
    response = api.get("/api/v1/events", HTTP_X_REQUEST_ID="a\x00b")

    error = assert_error(response, 400, "VALIDATION_ERROR")

    assert list(error["details"]) == ["X-Request-Id"]


def test_too_many_query_parameters_is_400(api):
    url = "/api/v1/events?" + "&".join(f"p{n}=1" for n in range(1_200))

    assert_error(api.get(url), 400, "BAD_REQUEST")


def test_a_host_not_allowed_is_400_in_the_envelope(api):
    response = api.get("/api/v1/events", HTTP_HOST="intruder.example")

    assert "Host" in assert_error(response, 400, "BAD_REQUEST")["message"]


def test_unknown_paths_under_the_api_are_404_in_the_envelope(api):
    assert_error(api.get("/api/v2/events"), 404, "NOT_FOUND")
    assert_error(api.get("/api/nothing-here"), 404, "NOT_FOUND")


# --- length limits -----------------------------------------------------------------------------


def test_a_flow_description_has_a_length_limit(api, world):
    url = f"/api/v1/flows/{world.id('flow')}"

    accepted = api.patch(url, {"description": "d" * 2000}, format="json")
    refused = api.patch(url, {"description": "d" * 2001}, format="json")

    assert accepted.status_code == 200, accepted.content
    assert list(assert_error(refused, 400, "VALIDATION_ERROR")["details"]) == ["description"]
    assert Flow.objects.get(pk=world.id("flow")).description == "d" * 2000


@pytest.mark.parametrize(
    ("kind", "url", "body", "path"),
    [
        (
            "export",
            "/api/v1/integrations/exports/{id}",
            {"destination": {"type": "S3", "bucket": "b" * 64}},
            "destination.bucket",
        ),
        (
            "export",
            "/api/v1/integrations/exports/{id}",
            {"destination": {"type": "S3", "bucket": "b", "fileNameTemplate": "f" * 256}},
            "destination.fileNameTemplate",
        ),
        ("import", "/api/v1/imports/{id}", {"ftp": {"fileName": "f" * 256}}, "ftp.fileName"),
        (
            "import",
            "/api/v1/imports/{id}",
            {"mapping": {"fields": [{"extract": "e" * 256, "generate": "vin"}]}},
            "mapping.fields[0].extract",
        ),
        (
            "integration",
            "/api/v1/mappings/{id}",
            {"mappings": {"Stock": "s" * 256}},
            "mappings.Stock",
        ),
        ("integration", "/api/v1/integrations/{id}", {"name": "n" * 201}, "name"),
    ],
)
def test_free_text_inside_documents_has_length_limits(api, world, kind, url, body, path):
    url = url.replace("{id}", world.id(kind))

    response = api.patch(url, body, format="json")

    assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == [path]


# --- the real web server -----------------------------------------------------------------------


@pytest.fixture
def web_server(transactional_db) -> Iterator[tuple[str, int]]:
    """gunicorn with gunicorn.conf.py on an ephemeral loopback port, against the test database,
    with a body limit of 64 KiB."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"railyard-gunicorn-{os.getpid()}.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "API_MAX_BODY_BYTES": str(64 * 1024),
        "WEB_CONCURRENCY": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--config",
                "gunicorn.conf.py",
                "--bind",
                "127.0.0.1:0",
            ],
            cwd=BASE_DIR,
            env=environment,
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start within 60 s"
            time.sleep(0.1)
        yield "127.0.0.1", int(found[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


def request(
    server: tuple[str, int],
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    chunked: bool = False,
) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        connection.request(method, url, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def pieces(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_through_gunicorn_a_chunked_body_is_read_and_limited(web_server, tenant):
    headers = {
        "Authorization": f"Bearer {tenant.raw_key}",
        "Content-Type": "application/json",
        "Host": "localhost",
    }
    small = json.dumps({"name": "Chunked Motors"}).encode()
    large = json.dumps({"name": "x" * (64 * 1024)}).encode()

    created = request(
        web_server, "POST", "/api/v1/dealerships", headers=headers, body=pieces(small), chunked=True
    )
    refused = request(
        web_server, "POST", "/api/v1/dealerships", headers=headers, body=pieces(large), chunked=True
    )

    assert created[0] == 201, created
    assert json.loads(created[2])["data"]["name"] == "Chunked Motors"
    assert refused[0] == 413, refused
    assert json.loads(refused[2])["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert tenant.account.dealerships.count() == 1


def test_through_gunicorn_a_content_length_over_the_limit_is_413_unread(web_server, tenant):
    # The header announces 100 MB; 10 bytes follow. The answer does not wait for the rest.
    headers = {
        "Authorization": f"Bearer {tenant.raw_key}",
        "Content-Type": "application/json",
        "Content-Length": str(100 * 1024 * 1024),
        "Host": "localhost",
    }

    status, content_type, body = request(
        web_server, "POST", "/api/v1/dealerships", headers=headers, body=b'{"name": 1'
    )

    assert (status, content_type) == (413, "application/json")
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_gunicorn_limits_sit_above_any_legitimate_request(web_server, tenant):
    headers = {"Authorization": f"Bearer {tenant.raw_key}", "Host": "localhost"}
    # A URL just under the request-line limit, and a header just under the field limit, pass.
    long_url = "/api/v1/events?type=" + "t" * 8000
    big_header = {**headers, "X-Trace": "v" * 8000}

    assert request(web_server, "GET", long_url, headers=headers)[0] == 200
    assert request(web_server, "GET", "/api/v1/events", headers=big_header)[0] == 200
    # Past them gunicorn answers itself, before Railyard: 414 and 431 as its own HTML pages.
    assert request(web_server, "GET", long_url + "t" * 300, headers=headers)[:2] == (
        414,
        "text/html",
    )
    too_big = {**headers, "X-Trace": "v" * 8300}
    assert request(web_server, "GET", "/api/v1/events", headers=too_big)[:2] == (431, "text/html")
    too_many = {**headers, **{f"X-Extra-{n}": "1" for n in range(101)}}
    assert request(web_server, "GET", "/api/v1/events", headers=too_many)[:2] == (431, "text/html")
