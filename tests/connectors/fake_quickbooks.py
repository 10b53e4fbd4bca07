"""A local QuickBooks Online on an ephemeral loopback port: Intuit's OAuth 2.0 token endpoint and
the accounting API's query and companyinfo endpoints, answering as Intuit documents them.

- Token endpoint: ``POST /oauth2/v1/tokens/bearer``, the app's client id and secret as HTTP
  Basic, ``grant_type=refresh_token&refresh_token=...`` as a form; it answers
  ``{"token_type": "bearer", "access_token", "expires_in": 3600, "refresh_token",
  "x_refresh_token_expires_in"}`` and rotates the refresh token (only the newest one is
  accepted, like a provider that revokes the old one), or 400 ``{"error": "invalid_grant"}``.
- Query: ``GET /v3/company/<realmId>/query?query=SELECT * FROM Customer WHERE
  Metadata.LastUpdatedTime > '...' ORDERBY Metadata.LastUpdatedTime STARTPOSITION n MAXRESULTS m``
  answers ``{"QueryResponse": {"Customer": [...], "startPosition": n, "maxResults": k}, "time"}``
  (``{"QueryResponse": {}}`` when nothing matches); MAXRESULTS is at most 1000.
- An access token that expired or is unknown is a 401 with Intuit's ``fault`` body.

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

REALM_ID = "9130347596571234"
CLIENT_ID = "ABkq3kXrRn7hXb5Vq6Yo0zVw"
CLIENT_SECRET = "q9gM0fSxSecretOfTheIntuitApp"
FIRST_REFRESH_TOKEN = "AB11780000000a0RefreshTokenOne"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
ENTITIES = {"customers": "Customer", "invoices": "Invoice", "payments": "Payment"}
QUERY = re.compile(
    r"^SELECT \* FROM (?P<entity>\w+)"
    r"(?: WHERE Metadata\.LastUpdatedTime > '(?P<after>[^']+)')?"
    r"(?: ORDERBY Metadata\.LastUpdatedTime)?"
    r"(?: STARTPOSITION (?P<start>\d+))?"
    r"(?: MAXRESULTS (?P<max>\d+))?$",
    re.IGNORECASE,
)
# Pacific time: the company's zone, as LastUpdatedTime carries it (PST until 2025-03-09 10:00Z).
DST_STARTS = datetime(2025, 3, 9, 10, tzinfo=UTC)
START = datetime(2025, 3, 8, 0, tzinfo=UTC)


def pacific(moment: datetime) -> str:
    offset = timedelta(hours=-7 if moment >= DST_STARTS else -8)
    return moment.astimezone(timezone(offset)).isoformat()


def records(entity: str, count: int, *, first: int = 1, hours: float = 1.0) -> list[dict[str, Any]]:
    """``count`` records of an Intuit entity, an hour of updates apart from START (the company's
    clock goes from PST to PDT in the middle)."""
    made = []
    for number in range(first, first + count):
        updated = START + timedelta(hours=hours * number)
        record: dict[str, Any] = {
            "Id": str(number),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": pacific(updated), "LastUpdatedTime": pacific(updated)},
        }
        if entity == "Customer":
            record |= {"DisplayName": f"Customer {number}", "Balance": 0, "Active": True}
        else:
            record |= {"CustomerRef": {"value": "1"}, "TotalAmt": 10.0 * number}
        made.append(record)
    return made


def touch(record: dict[str, Any], moment: datetime, **changes: Any) -> None:
    """An edit in QuickBooks: new values, SyncToken + 1, LastUpdatedTime moves."""
    record.update(changes)
    record["SyncToken"] = str(int(record["SyncToken"]) + 1)
    record["MetaData"]["LastUpdatedTime"] = pacific(moment)


@dataclass
class FakeQuickBooks:
    url: str = ""
    refresh_token: str = FIRST_REFRESH_TOKEN
    now: float = 1_000.0
    # Intuit entity name -> records.
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    # API request number (from 1, token requests not counted) -> the answer it gets instead.
    inject: dict[int, Answer] = field(default_factory=dict)
    # API request number -> called once it is answered (to move the clock, revoke tokens...).
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    @property
    def tokens_url(self) -> str:
        return self.url + TOKEN_PATH

    def queries(self) -> list[str]:
        return [
            " ".join(str(r.param("query")).split()) for r in self.api_requests if r.param("query")
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
        if request.method != "POST" or request.headers.get("authorization") != f"Basic {expected}":
            return 401, {}, {"error": "invalid_client"}
        form = request.form()
        if form.get(
            "grant_type"
        ) != "refresh_token" or "form-urlencoded" not in request.headers.get("content-type", ""):
            return 400, {}, {"error": "unsupported_grant_type"}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {}, {"error": "invalid_grant"}
        self.issued += 1
        access_token = f"eyJlbmMiOiJBMTI4Q0JDLUhTMjU2.access.{self.issued}"
        self.access_tokens[access_token] = self.now + 3600
        self.refresh_token = f"AB11780000000a0RefreshToken{self.issued + 1}"
        return (
            200,
            {"Cache-Control": "no-store"},
            {
                "token_type": "bearer",
                "access_token": access_token,
                "expires_in": 3600,
                "refresh_token": self.refresh_token,
                "x_refresh_token_expires_in": 8_726_400,
            },
        )

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    def api(self, request: Request) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) <= self.now:
            return (
                401,
                {},
                fault(
                    "AUTHENTICATION",
                    "3200",
                    "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "Token expired",
                ),
            )
        prefix = f"/v3/company/{REALM_ID}"
        if request.path == f"{prefix}/companyinfo/{REALM_ID}":
            return 200, {}, {"CompanyInfo": {"Id": "1", "CompanyName": "Sandbox Company_US_1"}}
        if request.path != f"{prefix}/query":
            return 404, {}, fault("SERVICE", "610", "Object Not Found", request.path)
        return self.query(" ".join((request.param("query") or "").split()))

    def query(self, statement: str) -> Answer:
        match = QUERY.match(statement)
        if match is None or match["entity"] not in self.data:
            return 400, {}, fault("ValidationFault", "4000", "Error parsing query", statement)
        start, limit = int(match["start"] or 1), int(match["max"] or 100)
        if limit > 1000:
            return 400, {}, fault("ValidationFault", "4001", "Invalid query", "MAXRESULTS > 1000")
        rows = self.data[match["entity"]]
        if match["after"]:
            after = moment(match["after"])
            rows = [row for row in rows if moment(row["MetaData"]["LastUpdatedTime"]) > after]
        rows = sorted(rows, key=lambda row: (moment(row["MetaData"]["LastUpdatedTime"]), row["Id"]))
        page = rows[start - 1 : start - 1 + limit]
        body: dict[str, Any] = {}
        if page:
            body = {match["entity"]: page, "startPosition": start, "maxResults": len(page)}
        return 200, {}, {"QueryResponse": body, "time": "2025-03-20T10:00:00.000-07:00"}


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fault(kind: str, code: str, message: str, detail: str) -> dict[str, Any]:
    return {
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind},
        "time": "2025-03-20T10:00:00.000-07:00",
    }


@contextmanager
def quickbooks_server() -> Iterator[FakeQuickBooks]:
    fake = FakeQuickBooks(
        data={
            "Customer": records("Customer", 25),
            "Invoice": records("Invoice", 12, hours=2),
            "Payment": records("Payment", 7, hours=3),
        }
    )
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
