"""A local Tink on an ephemeral loopback port: the OAuth token endpoint and the Data API v2's
accounts and transactions, answering as Tink documents them.

- Token endpoint: ``POST /api/v1/oauth/token`` with ``grant_type=refresh_token``,
  ``refresh_token``, ``client_id`` and ``client_secret`` as a form; it answers
  ``{"access_token", "token_type": "bearer", "expires_in": 7200, "refresh_token", "scope",
  "id_hint"}`` (the refresh token is kept), or 400 ``{"errorCode": "invalid_grant", ...}``.
- ``GET /data/v2/accounts`` and ``GET /data/v2/transactions`` take ``pageSize`` (at most 100)
  and ``pageToken``; transactions also ``bookedDateGte`` (a date, inclusive). They answer
  ``{"accounts" | "transactions": [...], "nextPageToken": "..."}``, ``""`` on the last page,
  transactions newest booking first.
- An expired or unknown token is a 401 ``{"errorCode": "UNAUTHORIZED", "errorMessage": ...}``;
  a throttled request a 429 with Retry-After.

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

CLIENT_ID = "4a9b1f4c4c2a4d6e8f0a1b2c3d4e5f60"
CLIENT_SECRET = "b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2"
REFRESH_TOKEN = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjZkNT.refresh"
TOKEN_PATH = "/api/v1/oauth/token"
PREFIX = "/data/v2"
MAX_PAGE_SIZE = 100
FIRST_DAY = date(2025, 4, 1)
ACCOUNT_IDS = ["ee7ddbd178494220bb184791783f4f63", "a6bb87e57a8c4dd4874b241471a2b9e8"]
THROTTLED: Answer = (
    429,
    {"Retry-After": "3"},
    {"errorCode": "TOO_MANY_REQUESTS", "errorMessage": "Rate limit exceeded."},
)


def error(status: int, code: str, message: str) -> Answer:
    return status, {}, {"errorCode": code, "errorMessage": message}


def accounts() -> list[dict[str, Any]]:
    return [
        {
            "id": account_id,
            "name": name,
            "type": "CHECKING",
            "balances": {
                "booked": {
                    "amount": {"value": {"unscaledValue": "19012", "scale": "2"}},
                    "currencyCode": "EUR",
                }
            },
            "identifiers": {"iban": {"iban": f"DE8937040044053201300{number}"}},
            "dates": {"lastRefreshed": "2025-04-30T08:00:00Z"},
            "financialInstitutionId": "6e68cc6287704273984567b3300c5822",
            "customerSegment": "PERSONAL",
        }
        for number, (account_id, name) in enumerate(
            zip(ACCOUNT_IDS, ["Checking", "Bills"], strict=True)
        )
    ]


def booked(number: int) -> str:
    """Two transactions a day: 1 and 2 on the first day's morrow, 3 and 4 the day after..."""
    return (FIRST_DAY + timedelta(days=(number + 1) // 2)).isoformat()


def transaction(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"d8f37f7d19c240abb4ef5d5dbebae4{number:02d}",
        "accountId": ACCOUNT_IDS[number % 2],
        "amount": {"value": {"unscaledValue": str(-1000 * number), "scale": "2"}},
        "dates": {"booked": booked(number), "value": booked(number)},
        "descriptions": {"original": f"CARD PAYMENT {number}", "display": f"Shop {number}"},
        "identifiers": {"providerTransactionId": f"500015d3-acf3-48cc-9918-9e53738d3{number:03d}"},
        "merchantInformation": {"merchantName": f"Shop {number}"},
        "status": "BOOKED",
        "types": {"type": "DEFAULT"},
        "providerMutability": "MUTABILITY_UNDEFINED",
        **changes,
    }


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


@dataclass
class FakeTink:
    url: str = ""
    now: float = 1_000.0
    transactions: list[dict[str, Any]] = field(default_factory=list)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    inject: dict[int, Answer] = field(default_factory=dict)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    def listed(self, resource: str) -> list[tuple[str | None, str | None]]:
        """(bookedDateGte, pageToken) of each request of a list."""
        return [
            (r.param("bookedDateGte"), r.param("pageToken"))
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
        form = request.form()
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return error(401, "invalid_client", "Client authentication failed.")
        if form.get("grant_type") != "refresh_token":
            return error(400, "unsupported_grant_type", "Unsupported grant type.")
        if form.get("refresh_token") != REFRESH_TOKEN:
            return error(400, "invalid_grant", "The refresh token is invalid or expired.")
        self.issued += 1
        token = f"eyJhbGciOiJFUzI1NiIsImtpZCI6IjZkNT.tink.{self.issued}"
        self.access_tokens[token] = self.now + 7200
        return (
            200,
            {},
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": 7200,
                "refresh_token": REFRESH_TOKEN,
                "scope": "accounts:read,transactions:read",
                "id_hint": "John Doe",
            },
        )

    def api(self, request: Request) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) <= self.now:
            return error(401, "UNAUTHORIZED", "The access token is missing, invalid or expired.")
        resource = request.path.removeprefix(f"{PREFIX}/")
        if resource == "accounts":
            rows = accounts()
        elif resource == "transactions":
            rows = sorted(self.transactions, key=lambda row: row["dates"]["booked"], reverse=True)
            since = request.param("bookedDateGte")
            if since:
                rows = [row for row in rows if row["dates"]["booked"] >= since]
        else:
            return error(404, "NOT_FOUND", "Not found.")
        size = int(request.param("pageSize") or MAX_PAGE_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            return error(400, "INVALID_PAGE_SIZE", f"pageSize must be 1 to {MAX_PAGE_SIZE}.")
        token = request.param("pageToken")
        offset = int(base64.urlsafe_b64decode(token).decode().split(":")[1]) if token else 0
        chunk = rows[offset : offset + size]
        following = offset + len(chunk)
        next_token = page_token(following) if following < len(rows) else ""
        return 200, {}, {resource: chunk, "nextPageToken": next_token}


@contextmanager
def tink_server(count: int = 25) -> Iterator[FakeTink]:
    fake = FakeTink(transactions=[transaction(number) for number in range(1, count + 1)])
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
