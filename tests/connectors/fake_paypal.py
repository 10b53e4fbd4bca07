"""A local PayPal on an ephemeral loopback port: the OAuth 2.0 token endpoint and the Transaction
Search API, answering as PayPal documents them.

- Token endpoint: ``POST /v1/oauth2/token``, the app's client id and secret as HTTP Basic,
  ``grant_type=client_credentials``; it answers ``{"scope", "access_token", "token_type":
  "Bearer", "app_id", "expires_in": 32400, "nonce"}``, or 401 ``{"error": "invalid_client"}``.
- ``GET /v1/reporting/transactions`` needs ``start_date`` and ``end_date`` (``2025-01-01T00:00:00
  +0000``, at most 31 days apart, else a 400 INVALID_REQUEST), takes ``page_size`` (at most 500),
  ``page`` (from 1) and ``fields``; it answers ``{"transaction_details", "account_number",
  "start_date", "end_date", "last_refreshed_datetime", "page", "total_items", "total_pages",
  "links"}`` with the transactions initiated in the range.
- An unknown or expired token is a 401 ``{"error": "invalid_token"}``; a throttled request a 429
  RATE_LIMIT_REACHED (no Retry-After).

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

CLIENT_ID = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS"
CLIENT_SECRET = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL"
TOKEN_PATH = "/v1/oauth2/token"
SEARCH_PATH = "/v1/reporting/transactions"
START = datetime(2025, 1, 1, tzinfo=UTC)
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?([+-]\d{4}|Z)$")
THROTTLED: Answer = (
    429,
    {},
    {
        "name": "RATE_LIMIT_REACHED",
        "message": "Too many requests. Blocked due to rate limiting.",
        "debug_id": "90957fca61718",
    },
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def transactions(count: int, *, first: int = 0, hours: float = 60) -> list[dict[str, Any]]:
    """``count`` transactions ``hours`` apart from START."""
    made = []
    for number in range(first, first + count):
        moment = START + timedelta(hours=hours * number)
        made.append(
            {
                "transaction_info": {
                    "paypal_account_id": "6STWC2LSUYYYE",
                    "transaction_id": f"5TY05013RG{number:07d}",
                    "transaction_event_code": "T0006",
                    "transaction_initiation_date": stamp(moment),
                    "transaction_updated_date": stamp(moment),
                    "transaction_amount": {"currency_code": "USD", "value": f"{10 + number}.00"},
                    "transaction_status": "S",
                },
                "payer_info": {"account_id": "6STWC2LSUYYYE", "email_address": "buyer@example.com"},
                "shipping_info": {},
                "cart_info": {},
            }
        )
    return made


def invalid(field_name: str, issue: str) -> Answer:
    return (
        400,
        {},
        {
            "name": "INVALID_REQUEST",
            "message": "Request is not well-formed, syntactically incorrect, or violates schema.",
            "debug_id": "b2b7f0f7a3c21",
            "details": [{"field": field_name, "value": "", "location": "query", "issue": issue}],
        },
    )


@dataclass
class FakePayPal:
    url: str = ""
    now: float = 1_000.0
    data: list[dict[str, Any]] = field(default_factory=list)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    inject: dict[int, Answer] = field(default_factory=dict)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    def ranges(self) -> list[tuple[str | None, str | None, str | None]]:
        """(start_date, end_date, page) of each search."""
        return [
            (r.param("start_date"), r.param("end_date"), r.param("page")) for r in self.api_requests
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
            return (
                401,
                {},
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
            )
        if request.form().get("grant_type") != "client_credentials":
            return 400, {}, {"error": "unsupported_grant_type"}
        self.issued += 1
        token = f"A21AAFEpH4PsADK7qSS7pSRsgzfENtu-Q1ysgEDVDESseMHBYXVJYE8ovjj68elIDy.{self.issued}"
        self.access_tokens[token] = self.now + 32400
        return (
            200,
            {},
            {
                "scope": "https://uri.paypal.com/services/reporting/search/read",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": "2025-03-20T10:00:00ZzaCLf3Y",
            },
        )

    def api(self, request: Request) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) <= self.now:
            return (
                401,
                {},
                {
                    "error": "invalid_token",
                    "error_description": "Token signature verification failed",
                },
            )
        if request.path != SEARCH_PATH:
            return (
                404,
                {},
                {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."},
            )
        start_text, end_text = request.param("start_date"), request.param("end_date")
        for name, text in (("start_date", start_text), ("end_date", end_text)):
            if not text or not DATE.match(text):
                return invalid(name, "MISSING_OR_INVALID_DATE")
        start, end = parse(str(start_text)), parse(str(end_text))
        if end - start > timedelta(days=31):
            return invalid("end_date", "Date range is greater than 31 days")
        size, page = int(request.param("page_size") or 100), int(request.param("page") or 1)
        if not 1 <= size <= 500:
            return invalid("page_size", "INVALID_PARAMETER_VALUE")
        rows = [
            row
            for row in self.data
            if start <= parse(row["transaction_info"]["transaction_initiation_date"]) < end
        ]
        pages = max(1, -(-len(rows) // size))
        chunk = rows[(page - 1) * size : page * size]
        return (
            200,
            {},
            {
                "transaction_details": chunk,
                "account_number": "XZXSPECPDZHZU",
                "start_date": start_text,
                "end_date": end_text,
                "last_refreshed_datetime": stamp(START + timedelta(days=365)),
                "page": page,
                "total_items": len(rows),
                "total_pages": pages,
                "links": [],
            },
        )


@contextmanager
def paypal_server() -> Iterator[FakePayPal]:
    fake = FakePayPal(data=transactions(30))
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
