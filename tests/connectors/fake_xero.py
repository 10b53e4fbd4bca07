"""A local Xero on an ephemeral loopback port: the identity server's token endpoint and the
Accounting API's Contacts, Invoices and Organisation endpoints, answering as Xero documents them.

- Token endpoint: ``POST /connect/token``, the app's client id and secret as HTTP Basic,
  ``grant_type=refresh_token&refresh_token=...``; it answers ``{"access_token", "expires_in":
  1800, "token_type": "Bearer", "refresh_token", "scope"}`` and rotates the refresh token (only
  the newest is accepted), or 400 ``{"error": "invalid_grant"}``.
- Every API request needs ``xero-tenant-id`` of a connected organisation (403 otherwise) and a
  live access token (401 ``{"Type": null, "Title": "Unauthorized", "Status": 401, "Detail":
  "TokenExpired: token expired at ..."}``).
- Lists take ``page`` (from 1), ``pageSize`` (100 by default, at most 1000), ``order``
  (``UpdatedDateUTC ASC``) and the ``If-Modified-Since`` header (UTC, records modified at or
  after it). Records carry ``UpdatedDateUTC`` as a Microsoft JSON date.
- Beyond the minute's calls: 429 with ``Retry-After`` and ``X-Rate-Limit-Problem: minute``.

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

TENANT_ID = "70784a63-d24b-46a9-a4db-0e70a274b056"
CLIENT_ID = "91E5715B1199038080D6D0296EBC1648"
CLIENT_SECRET = "m3ixN0tAReAlSeCrEtOfTheXeroApp0fTeSt"
FIRST_REFRESH_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90-refresh-1"
TOKEN_PATH = "/connect/token"
PREFIX = "/api.xro/2.0"
START = datetime(2025, 5, 1, 0, tzinfo=UTC)
THROTTLED: Answer = (
    429,
    {"Retry-After": "5", "X-Rate-Limit-Problem": "minute"},
    {"Title": "Too Many Requests", "Status": 429, "Detail": "rate limit exceeded"},
)


def microsoft_date(moment: datetime) -> str:
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def from_microsoft_date(text: str) -> datetime:
    return datetime.fromtimestamp(int(text[6:].split("+")[0].split(")")[0]) / 1000, tz=UTC)


def key(number: int) -> str:
    return str(uuid.UUID(int=number))


def contacts(count: int, *, first: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "ContactID": key(number),
            "ContactStatus": "ACTIVE",
            "Name": f"Contact {number}",
            "EmailAddress": f"contact{number}@example.com",
            "IsSupplier": False,
            "IsCustomer": True,
            "Addresses": [],
            "Phones": [],
            "UpdatedDateUTC": microsoft_date(START + timedelta(hours=number, milliseconds=number)),
        }
        for number in range(first, first + count)
    ]


def invoices(count: int, *, first: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "InvoiceID": key(1_000 + number),
            "InvoiceNumber": f"INV-{number:04d}",
            "Type": "ACCREC",
            "Contact": {"ContactID": key(1), "Name": "Contact 1"},
            "Status": "AUTHORISED",
            "LineItems": [],
            "SubTotal": 100.0 * number,
            "TotalTax": 15.0 * number,
            "Total": 115.0 * number,
            "AmountDue": 115.0 * number,
            "CurrencyCode": "NZD",
            "DateString": "2025-05-01T00:00:00",
            "UpdatedDateUTC": microsoft_date(START + timedelta(hours=2 * number)),
        }
        for number in range(first, first + count)
    ]


def touch(record: dict[str, Any], moment: datetime, **changes: Any) -> None:
    record.update(changes)
    record["UpdatedDateUTC"] = microsoft_date(moment)


@dataclass
class FakeXero:
    url: str = ""
    refresh_token: str = FIRST_REFRESH_TOKEN
    now: float = 1_000.0
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    inject: dict[int, Answer] = field(default_factory=dict)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    @property
    def tokens_url(self) -> str:
        return self.url + TOKEN_PATH

    def listed(self, resource: str) -> list[tuple[str | None, str | None]]:
        """(page, If-Modified-Since) of each request of a list."""
        return [
            (r.param("page"), r.headers.get("if-modified-since"))
            for r in self.api_requests
            if r.path == f"{PREFIX}/{resource}"
        ]

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
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 400, {}, {"error": "invalid_client"}
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return 400, {}, {"error": "unsupported_grant_type"}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {}, {"error": "invalid_grant"}
        self.issued += 1
        access_token = f"eyJhbGciOiJSUzI1NiIsImtpZCI6IjFDQUY4RTY2.xero.{self.issued}"
        self.access_tokens[access_token] = self.now + 1800
        self.refresh_token = f"a1b2c3d4e5f60718293a4b5c6d7e8f90-refresh-{self.issued + 1}"
        return (
            200,
            {},
            {
                "access_token": access_token,
                "expires_in": 1800,
                "token_type": "Bearer",
                "refresh_token": self.refresh_token,
                "scope": "offline_access accounting.transactions.read accounting.contacts.read",
            },
        )

    def api(self, request: Request) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) <= self.now:
            detail = "TokenExpired: token expired at 05/01/2025 10:00:00"
            return 401, {}, {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail}
        if request.headers.get("xero-tenant-id") != TENANT_ID:
            return (
                403,
                {},
                {
                    "Type": None,
                    "Title": "Forbidden",
                    "Status": 403,
                    "Detail": "AuthenticationUnsuccessful",
                },
            )
        resource = request.path.removeprefix(f"{PREFIX}/")
        envelope = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "Railyard tests",
            "DateTimeUTC": microsoft_date(START),
        }
        if resource == "Organisation":
            return 200, {}, envelope | {"Organisations": [{"Name": "Demo Company (NZ)"}]}
        if resource not in self.data:
            return 404, {}, {"Title": "Not Found", "Status": 404}
        rows = list(self.data[resource])
        since = request.headers.get("if-modified-since")
        if since:
            floor = datetime.fromisoformat(since).replace(tzinfo=UTC)
            rows = [row for row in rows if from_microsoft_date(row["UpdatedDateUTC"]) >= floor]
        if request.param("order") == "UpdatedDateUTC ASC":
            rows.sort(key=lambda row: from_microsoft_date(row["UpdatedDateUTC"]))
        page, size = int(request.param("page") or 1), int(request.param("pageSize") or 100)
        if not 1 <= size <= 1000:
            return 400, {}, {"Title": "Bad Request", "Status": 400, "Detail": "pageSize"}
        chunk = rows[(page - 1) * size : page * size]
        count = len(rows)
        pagination = {
            "page": page,
            "pageSize": size,
            "pageCount": -(-count // size),
            "itemCount": count,
        }
        return 200, {}, envelope | {"pagination": pagination, resource: chunk}


@contextmanager
def xero_server() -> Iterator[FakeXero]:
    fake = FakeXero(data={"Contacts": contacts(25), "Invoices": invoices(12)})
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
