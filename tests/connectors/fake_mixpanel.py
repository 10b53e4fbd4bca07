"""A local Mixpanel project on an ephemeral loopback port: the ingestion API's ``/import``,
``/engage`` and ``/groups`` and the app API's ``/api/app/me``, answering as Mixpanel documents
them.

- ``/import`` authenticates with basic auth: a service account (username and secret) together
  with ``project_id``, or the project token as the username with an empty password and no
  ``project_id``; otherwise a 401 ``{"code": 401, "error": "Invalid credentials", "status":
  "Unauthorized"}``. A batch holds at most 2000 events and 10 MB of JSON (else 400 / 413). With
  ``strict=1`` each event is validated (a name; ``time`` in seconds or milliseconds, from 1971 to
  an hour ahead; a ``distinct_id`` that is not a placeholder; a ``$insert_id`` of at most 36
  letters, digits and dashes): the valid ones are imported, and the answer is a 400 with
  ``failed_records`` when any failed, else ``{"code": 200, "num_records_imported": N, "status":
  "OK"}``.
- Imported events are de-duplicated as Mixpanel's queries do: the same name, distinct_id, time
  and ``$insert_id`` is one event, its latest version.
- ``/engage`` and ``/groups`` take a JSON array of at most 2000 updates, each with the project
  token as ``$token``, and answer 200 either way: ``{"status": 1, "error": null}`` with
  ``verbose=1``, or ``{"status": 0, "error": ...}``.
- ``inject`` answers the n-th request to a path with what a test wants instead (a 429 with
  ``Retry-After``, a 503), before anything is imported; ``lose_answer`` makes the n-th
  ``/import`` import its events and answer 503 anyway, as when an answer is lost on the way.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

PROJECT_ID = "2195193"
USERNAME = "railyard-import.1f2e3d.mp-service-account"
SECRET = "s3cr3t-9f8e7d6c5b4a"
TOKEN = "0f3c1d2b8e9a4c5d6e7f8a9b0c1d2e3f"
MAX_EVENTS = 2000
MAX_BYTES = 10 * 1024 * 1024
MAX_UPDATES = 2000
PLACEHOLDERS = {"anon", "anonymous", "nil", "none", "null", "n/a"}
INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
EARLIEST_MS = 31536000000  # 1971-01-01
RATE_LIMITED: Answer = (
    429,
    {"Retry-After": "1"},
    {
        "code": 429,
        "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
        "status": "Too Many Requests",
    },
)
UNAVAILABLE: Answer = (503, {}, {"code": 503, "error": "Service Unavailable", "status": "Error"})


@dataclass
class FakeMixpanel:
    url: str = ""
    project_id: str = PROJECT_ID
    username: str = USERNAME
    secret: str = SECRET
    token: str = TOKEN
    # path -> {n: answer}: the n-th request to the path (from 1) gets that answer instead.
    inject: dict[str, dict[int, Answer]] = field(default_factory=dict)
    # The n-th /import requests that import their events but answer 503.
    lose_answer: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    # $insert_id -> a message: the event fails validation as Mixpanel would fail it.
    refuse: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # Every event imported, duplicates included, in order.
    received: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        number = self.counts[request.path] = self.counts.get(request.path, 0) + 1
        injected = self.inject.get(request.path, {}).get(number)
        if injected is not None:
            return injected
        if request.path == "/import" and request.method == "POST":
            answer = self.import_events(request)
            return UNAVAILABLE if number in self.lose_answer else answer
        if request.path in ("/engage", "/groups") and request.method == "POST":
            return self.update(request)
        if request.path == "/api/app/me" and request.method == "GET":
            return self.me(request)
        return 404, {}, {"error": "Not found"}

    # --- /import -------------------------------------------------------------------------------

    def import_events(self, request: Request) -> Answer:
        if not self.import_authenticated(request):
            return 401, {}, {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}
        if len(request.body) > MAX_BYTES:
            limit = f"request exceeds max limit of {MAX_BYTES} bytes"
            return 413, {}, {"code": 413, "error": limit, "status": "Request Entity Too Large"}
        events = request.json()
        if not isinstance(events, list):
            return 400, {}, {"code": 400, "error": "data must be a JSON array", "status": "Bad"}
        if len(events) > MAX_EVENTS:
            error = f"request has {len(events)} events; the limit is {MAX_EVENTS}"
            return 400, {}, {"code": 400, "error": error, "status": "Bad Request"}
        failed = []
        imported = 0
        for index, event in enumerate(events):
            problem = self.invalid(event) if request.param("strict") == "1" else None
            if problem is not None:
                insert_id = (event.get("properties") or {}).get("$insert_id")
                failed.append({"index": index, "$insert_id": insert_id, **problem})
                continue
            self.received.append(event)
            imported += 1
        if failed:
            return (
                400,
                {},
                {
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "failed_records": failed,
                    "num_records_imported": imported,
                    "status": "Bad Request",
                },
            )
        return 200, {}, {"code": 200, "num_records_imported": imported, "status": "OK"}

    def import_authenticated(self, request: Request) -> bool:
        given = basic_auth(request)
        if request.param("project_id") is not None:
            return given == (self.username, self.secret) and (
                request.param("project_id") == self.project_id
            )
        return given == (self.token, "")

    def invalid(self, event: Any) -> dict[str, str] | None:
        properties = event.get("properties") if isinstance(event, dict) else None
        if not isinstance(properties, dict):
            return {"field": "properties", "message": "'properties' must be an object"}
        if not isinstance(event.get("event"), str) or not event["event"]:
            return {"field": "event", "message": "'event' must be a non-empty string"}
        moment = properties.get("time")
        now_ms = time.time() * 1000
        if not isinstance(moment, int | float):
            return {"field": "properties.time", "message": "'properties.time' is required"}
        moment_ms = moment if moment >= 10**11 else moment * 1000
        if not EARLIEST_MS <= moment_ms <= now_ms + 3600 * 1000:
            return {"field": "properties.time", "message": "'properties.time' is out of range"}
        distinct_id = properties.get("distinct_id")
        if not isinstance(distinct_id, str) or distinct_id.lower() in PLACEHOLDERS:
            return {"field": "properties.distinct_id", "message": "invalid distinct_id"}
        insert_id = properties.get("$insert_id")
        if not isinstance(insert_id, str) or not INSERT_ID.match(insert_id):
            message = "'properties.$insert_id' must be at most 36 letters, digits or dashes"
            return {"field": "properties.$insert_id", "message": message}
        if insert_id in self.refuse:
            return {"field": "properties", "message": self.refuse[insert_id]}
        return None

    def events(self) -> list[dict[str, Any]]:
        """The project's events as its reports count them: duplicates as one, the latest."""
        kept: dict[tuple[Any, ...], dict[str, Any]] = {}
        for event in self.received:
            properties = event["properties"]
            identity = (
                event["event"],
                properties["distinct_id"],
                properties["time"],
                properties["$insert_id"],
            )
            kept.pop(identity, None)
            kept[identity] = event
        return list(kept.values())

    # --- /engage, /groups ----------------------------------------------------------------------

    def update(self, request: Request) -> Answer:
        updates = request.json()
        if not isinstance(updates, list) or not updates:
            return 200, {}, {"status": 0, "error": "data, missing or empty"}
        if len(updates) > MAX_UPDATES:
            return 200, {}, {"status": 0, "error": f"more than {MAX_UPDATES} updates"}
        if any(update.get("$token") != self.token for update in updates):
            return 200, {}, {"status": 0, "error": "token, missing or invalid"}
        for update in updates:
            if request.path == "/engage":
                profile = self.profiles.setdefault(str(update["$distinct_id"]), {})
            else:
                identity = (str(update["$group_key"]), str(update["$group_id"]))
                profile = self.groups.setdefault(identity, {})
            profile.update(update.get("$set") or {})
        return 200, {}, {"status": 1, "error": None}

    # --- /api/app/me ---------------------------------------------------------------------------

    def me(self, request: Request) -> Answer:
        if basic_auth(request) != (self.username, self.secret):
            return 401, {}, {"status": "error", "error": "Invalid credentials"}
        project = {"id": int(self.project_id), "name": "Production", "organization_id": 7824561}
        return (
            200,
            {},
            {
                "status": "ok",
                "results": {
                    "id": 4815162342,
                    "name": "railyard-import",
                    "projects": {self.project_id: project},
                },
            },
        )


def basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    return user, password


@contextmanager
def mixpanel_server() -> Iterator[FakeMixpanel]:
    fake = FakeMixpanel()
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
