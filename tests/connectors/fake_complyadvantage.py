"""A local ComplyAdvantage on an ephemeral loopback port: the REST API's list of searches,
answering as ComplyAdvantage documents it.

- Every request carries the account's API key as ``Authorization: Token <api key>``; a missing
  or unknown one is a 401 ``{"code": 401, "status": "failure", "message": ...}``.
- ``GET /searches`` takes ``offset`` and ``limit`` (at most 100) and ``created_at_from`` (a day,
  inclusive). It answers ``{"code": 200, "status": "success", "content": {"data": [...]}}``,
  newest search first; a page shorter than the limit is the last.
- ``created_at`` is written ``2025-04-01 08:00:00`` (UTC).
- A throttled request is a 429 with an empty body; a Retry-After is sent where a test says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

API_KEY = "Wq4fRm0eXbJ2Tn8sLk5vHc7dYa3pGu1z"
MAX_LIMIT = 100
FIRST_CREATED = datetime(2025, 4, 1, 8, 0, 0)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")
THROTTLED: Answer = (429, {"Retry-After": "3"}, None)


def error(status: int, message: str) -> Answer:
    return status, {}, {"code": status, "status": "failure", "message": message}


def created_at(number: int) -> str:
    """Every six hours from 2025-04-01 08:00:00 on: four searches a day."""
    return (FIRST_CREATED + timedelta(hours=6 * (number - 1))).strftime("%Y-%m-%d %H:%M:%S")


def search(number: int, **changes: Any) -> dict[str, Any]:
    created = changes.pop("created_at", created_at(number))
    return {
        "id": 1_051_192_000 + number,
        "ref": f"1745{number:06d}-Ab{number:02d}cDe",
        "searcher_id": 8421,
        "assignee_id": 8421,
        "filters": {
            "types": ["sanction", "warning", "pep", "adverse-media"],
            "birth_year": 1960 + number,
            "exact_match": False,
            "fuzziness": 0.6,
        },
        "match_status": "no_match" if number % 3 else "potential_match",
        "risk_level": "unknown",
        "search_term": f"Customer {number}",
        "submitted_term": f"Customer {number}",
        "client_ref": f"CUST{number:06d}",
        "total_hits": 0 if number % 3 else 2,
        "total_matches": 0 if number % 3 else 2,
        "total_blacklist_hits": 0,
        "created_at": created,
        "updated_at": created,
        "tags": [],
        "labels": [],
        "search_profile": {"name": "Onboarding", "slug": "onboarding"},
        **changes,
    }


@dataclass
class FakeComplyAdvantage:
    url: str = ""
    searches: list[dict[str, Any]] = field(default_factory=list)
    inject: dict[int, Answer] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def listed(self) -> list[tuple[str | None, str | None, str | None]]:
        """(created_at_from, offset, limit) of each request of the list."""
        return [
            (r.param("created_at_from"), r.param("offset"), r.param("limit"))
            for r in self.requests
            if r.path == "/searches"
        ]

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        number = len(self.requests)
        if number in self.inject:
            return self.inject[number]
        if request.headers.get("authorization") != f"Token {API_KEY}":
            return error(401, "API Key is invalid or was not provided")
        if request.path != "/searches" or request.method != "GET":
            return error(404, "Not Found")
        return self.list(request)

    def list(self, request: Request) -> Answer:
        try:
            offset = int(request.param("offset") or 0)
            limit = int(request.param("limit") or MAX_LIMIT)
        except ValueError:
            return error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            return error(400, f"limit must be 1 to {MAX_LIMIT} and offset at least 0")
        rows = sorted(self.searches, key=lambda row: (row["created_at"], row["id"]), reverse=True)
        since = request.param("created_at_from")
        if since is not None:
            if not DAY.match(since):
                return error(400, "created_at_from must be a date")
            rows = [row for row in rows if row["created_at"] >= since]
        chunk = rows[offset : offset + limit]
        return 200, {}, {"code": 200, "status": "success", "content": {"data": chunk}}


@contextmanager
def complyadvantage_server(count: int = 25) -> Iterator[FakeComplyAdvantage]:
    fake = FakeComplyAdvantage(searches=[search(number) for number in range(1, count + 1)])
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
