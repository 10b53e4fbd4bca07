"""A local HubSpot on an ephemeral loopback port: the OAuth 2.0 token endpoint and the CRM v3
objects and search endpoints, answering as HubSpot documents them.

- Token endpoint: ``POST /oauth/v1/token`` with ``grant_type=refresh_token``, ``client_id``,
  ``client_secret`` and ``refresh_token`` as a form; it answers ``{"token_type": "bearer",
  "refresh_token", "access_token", "expires_in": 1800}`` (the refresh token is not rotated), or
  400 ``{"status": "BAD_REFRESH_TOKEN", "message": ...}``.
- Search: ``POST /crm/v3/objects/<object>/search`` with ``filterGroups`` (EQ, GT, GTE, LT, LTE
  on a date property: epoch milliseconds), ``sorts``, ``properties``, ``limit`` (at most 200)
  and ``after``; it answers ``{"total", "results", "paging": {"next": {"after", "link"}}}``,
  ``paging`` left out on the last page. A query pages at most 10,000 results deep: an ``after``
  at or beyond it is a 400 VALIDATION_ERROR.
- Objects list: ``GET /crm/v3/objects/<object>?limit=n`` (the connection test).
- An expired or unknown access token is a 401 ``{"status": "error", "category":
  "EXPIRED_AUTHENTICATION"}``; a throttled request is a 429 with ``policyName: SECONDLY`` and no
  Retry-After header.

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

CLIENT_ID = "5f2c1a9e-7b3d-4c8e-9f01-2a3b4c5d6e7f"
CLIENT_SECRET = "0d8e7f6a-5b4c-3d2e-1f0a-hubspot-secret"
REFRESH_TOKEN = "na1-6b2c-4d8e-refresh-token"
TOKEN_PATH = "/oauth/v1/token"
PREFIX = "/crm/v3/objects"
MAX_LIMIT = 200
MAX_RESULTS = 10_000
START = datetime(2025, 2, 1, 9, tzinfo=UTC)
# The property each object's modification time is searched by.
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
THROTTLED: Answer = (
    429,
    {},
    {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad4c",
        "policyName": "SECONDLY",
    },
)


def stamp(moment: datetime) -> str:
    """HubSpot's timestamps: UTC with milliseconds and a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def objects(kind: str, count: int, *, first: int = 1, minutes: float = 60) -> list[dict[str, Any]]:
    """``count`` records of an object type, ``minutes`` of modifications apart from START."""
    made = []
    for number in range(first, first + count):
        moment = START + timedelta(minutes=minutes * number, milliseconds=number)
        properties: dict[str, Any] = {
            "createdate": stamp(moment),
            "hs_object_id": str(number),
            MODIFIED[kind]: stamp(moment),
        }
        if kind == "contacts":
            properties |= {
                "email": f"contact{number}@example.com",
                "firstname": "Ada",
                "lastname": f"Lovelace {number}",
            }
        elif kind == "companies":
            properties |= {"name": f"Company {number}", "domain": f"company{number}.example"}
        else:
            properties |= {"dealname": f"Deal {number}", "amount": str(1000 * number)}
        made.append(
            {
                "id": str(number),
                "properties": properties,
                "createdAt": stamp(moment),
                "updatedAt": stamp(moment),
                "archived": False,
            }
        )
    return made


def touch(kind: str, record: dict[str, Any], moment: datetime, **changes: Any) -> None:
    """An edit in HubSpot: new property values, the modification time moves."""
    record["properties"].update(changes)
    record["properties"][MODIFIED[kind]] = stamp(moment)
    record["updatedAt"] = stamp(moment)


def error(status: int, category: str, message: str) -> Answer:
    return (
        status,
        {},
        {
            "status": "error",
            "message": message,
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
            "category": category,
        },
    )


@dataclass
class FakeHubSpot:
    url: str = ""
    now: float = 1_000.0
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    # API request number (from 1, token requests not counted) -> the answer it gets instead.
    inject: dict[int, Answer] = field(default_factory=dict)
    # API request number -> called once it is answered (to move the clock...).
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    @property
    def tokens_url(self) -> str:
        return self.url + TOKEN_PATH

    def searches(self, kind: str) -> list[dict[str, Any]]:
        """The body of each search of an object type."""
        return [r.json() for r in self.api_requests if r.path == f"{PREFIX}/{kind}/search"]

    def answer(self, request: Request) -> Answer:
        if request.path == TOKEN_PATH:
            self.token_requests.append(request)
            return self.token(request)
        self.api_requests.append(request)
        number = len(self.api_requests)
        try:
            if number in self.inject:
                return self.inject[number]
            return self.api(request)
        finally:
            if number in self.after:
                self.after[number]()

    def token(self, request: Request) -> Answer:
        form = request.form()
        if request.method != "POST" or form.get("grant_type") != "refresh_token":
            return 400, {}, {"status": "BAD_GRANT_TYPE", "message": "missing or unknown grant type"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 400, {}, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}
        if form.get("refresh_token") != REFRESH_TOKEN:
            return (
                400,
                {},
                {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"},
            )
        self.issued += 1
        access_token = (
            f"CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4.{self.issued}"
        )
        self.access_tokens[access_token] = self.now + 1800
        return (
            200,
            {},
            {
                "token_type": "bearer",
                "refresh_token": REFRESH_TOKEN,
                "access_token": access_token,
                "expires_in": 1800,
            },
        )

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    def api(self, request: Request) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) <= self.now:
            return error(
                401,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 0 second(s) ago.",
            )
        kind = request.path.removeprefix(f"{PREFIX}/").removesuffix("/search")
        if kind not in self.data:
            return error(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {kind}")
        if request.method == "GET":
            limit = int(request.param("limit") or 10)
            return 200, {}, {"results": self.data[kind][:limit]}
        return self.search(kind, request.json())

    def search(self, kind: str, body: dict[str, Any]) -> Answer:
        limit = int(body.get("limit") or 10)
        if not 1 <= limit <= MAX_LIMIT:
            return error(400, "VALIDATION_ERROR", f"limit must be at most {MAX_LIMIT}")
        start = int(body.get("after") or 0)
        if start >= MAX_RESULTS:
            return error(
                400,
                "VALIDATION_ERROR",
                f"Search results are limited to {MAX_RESULTS}; the after value {start} is "
                "beyond them.",
            )
        rows = [row for row in self.data[kind] if self.matches(row, body.get("filterGroups"))]
        for sort in reversed(body.get("sorts") or []):
            rows.sort(
                key=lambda row: (self.value(row, sort["propertyName"]), int(row["id"])),
                reverse=sort.get("direction") == "DESCENDING",
            )
        page = rows[start : start + limit]
        answer: dict[str, Any] = {"total": len(rows), "results": page}
        following = start + len(page)
        if following < len(rows):
            answer["paging"] = {"next": {"after": str(following), "link": f"?after={following}"}}
        return 200, {}, answer

    def value(self, row: dict[str, Any], name: str) -> Any:
        text = row["properties"].get(name)
        if name in ("createdate", "lastmodifieddate", "hs_lastmodifieddate") and text:
            return millis(datetime.fromisoformat(text.replace("Z", "+00:00")))
        return text

    def matches(self, row: dict[str, Any], groups: list[dict[str, Any]] | None) -> bool:
        """Filter groups are ORed, the filters of a group ANDed."""
        if not groups:
            return True
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b,
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
        }
        return any(
            all(
                (value := self.value(row, item["propertyName"])) is not None
                and compare[item["operator"]](value, int(item["value"]))
                for item in group["filters"]
            )
            for group in groups
        )


@contextmanager
def hubspot_server(**counts: int) -> Iterator[FakeHubSpot]:
    sizes = {"contacts": 25, "companies": 12, "deals": 7, **counts}
    fake = FakeHubSpot(
        data={kind: objects(kind, count, minutes=30) for kind, count in sizes.items()}
    )
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
