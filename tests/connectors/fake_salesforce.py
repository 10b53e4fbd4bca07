"""A local Salesforce org on an ephemeral loopback port: the OAuth 2.0 token endpoint and the REST
API's query and query-more resources, answering as Salesforce documents them.

- Token endpoint: ``POST /services/oauth2/token`` with ``grant_type=refresh_token``,
  ``client_id``, ``client_secret`` and ``refresh_token`` as a form; it answers ``{"access_token",
  "signature", "scope", "instance_url", "id", "token_type": "Bearer", "issued_at"}`` (no
  ``expires_in``: a session lasts the org's timeout, here two hours), or 400 ``{"error":
  "invalid_grant", "error_description": "expired access/refresh token"}``.
- Query: ``GET /services/data/v62.0/query?q=SELECT <fields> FROM <object> [WHERE SystemModstamp >
  <dateTime literal>] ORDER BY SystemModstamp ASC``; a literal in quotes or with fractional
  seconds is a 400 MALFORMED_QUERY. It answers ``{"totalSize", "done", "records",
  "nextRecordsUrl"}`` with the selected fields and ``attributes``, in batches of at most
  ``batch_size`` (2,000 by default; Salesforce may answer smaller ones); the rest of a result at
  ``/services/data/v62.0/query/<locator>-<offset>``.
- Errors are a JSON array of ``{"message", "errorCode"}``: 401 INVALID_SESSION_ID for an expired
  or unknown session, 503 SERVER_UNAVAILABLE when a request is refused for load.

Time is the fake's own clock (``now``, seconds), which the tests also hand to the connector.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

CLIENT_ID = "3MVG9A2kN3Bn17hsWsLDatvmq4vGrnXcB3OiiXYnQ7VdT3vsVJtFyKWxL.consumer"
CLIENT_SECRET = "8A91C6A3F2D4E5B6C7D8E9F0A1B2C3D4E5F6A7B8C9D0E1F2"
REFRESH_TOKEN = "5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJo7Xr34yOQ7GCFUN5DnNPxzDIoGoWi4evqOl_Wg=="
VERSION = "62.0"
PREFIX = f"/services/data/v{VERSION}"
TOKEN_PATH = "/services/oauth2/token"
SESSION_SECONDS = 7200
PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006"}
QUERY = re.compile(
    r"^SELECT (?P<fields>[\w, ]+) FROM (?P<object>\w+)"
    r"(?: WHERE SystemModstamp > (?P<after>\S+))?"
    r"(?: ORDER BY SystemModstamp ASC)?"
    r"(?: LIMIT (?P<limit>\d+))?$"
)
DATETIME_LITERAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
START = datetime(2025, 4, 1, 8, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """A dateTime as the REST API writes it: 2025-04-01T08:00:00.000+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sobjects(kind: str, count: int, *, first: int = 1, minutes: int = 45) -> list[dict[str, Any]]:
    made = []
    for number in range(first, first + count):
        moment = START + timedelta(minutes=minutes * number)
        record: dict[str, Any] = {
            "Id": f"{PREFIXES[kind]}5e00000{number:08d}",
            "OwnerId": "0055e000001AbCdAAK",
            "CreatedDate": stamp(moment),
            "LastModifiedDate": stamp(moment),
            "SystemModstamp": stamp(moment),
        }
        if kind == "Account":
            record |= {"Name": f"Account {number}", "Industry": "Banking", "Type": None}
        elif kind == "Contact":
            record |= {"LastName": f"Contact {number}", "FirstName": "Grace", "Email": None}
        else:
            close = date(2025, 6, 30) + timedelta(days=number)
            record |= {
                "Name": f"Opportunity {number}",
                "StageName": "Prospecting",
                "Amount": 5000.0 * number,
                "CloseDate": close.isoformat(),
                "IsClosed": False,
                "IsWon": False,
            }
        made.append(record)
    return made


def touch(record: dict[str, Any], moment: datetime, **changes: Any) -> None:
    record.update(changes)
    record["LastModifiedDate"] = record["SystemModstamp"] = stamp(moment)


def errors(status: int, code: str, message: str) -> Answer:
    return status, {}, [{"message": message, "errorCode": code}]


UNAVAILABLE = errors(503, "SERVER_UNAVAILABLE", "Server is unavailable, please try again later.")


@dataclass
class FakeSalesforce:
    url: str = ""
    now: float = 1_000.0
    batch_size: int = 2000
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    # Query locator -> the records of the result still to hand out.
    locators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    handed_out: int = 0
    # API request number (from 1, token requests not counted) -> the answer it gets instead.
    inject: dict[int, Answer] = field(default_factory=dict)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    api_requests: list[Request] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)

    @property
    def tokens_url(self) -> str:
        return self.url + TOKEN_PATH

    def queries(self, kind: str | None = None) -> list[str]:
        """Each SOQL query sent (of one object), locator requests left out."""
        sent = [str(r.param("q")) for r in self.api_requests if r.param("q")]
        return [q for q in sent if kind is None or f" FROM {kind} " in f"{q} "]

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
        if form.get("grant_type") != "refresh_token":
            return (
                400,
                {},
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return (
                400,
                {},
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            )
        if form.get("refresh_token") != REFRESH_TOKEN:
            return (
                400,
                {},
                {"error": "invalid_grant", "error_description": "expired access/refresh token"},
            )
        self.issued += 1
        session = f"00D5e000000AbCd!AQ4AQFakeSessionId.{self.issued}"
        self.sessions[session] = self.now + SESSION_SECONDS
        return (
            200,
            {},
            {
                "access_token": session,
                "signature": "d/SxeYBxH0GSVko0HMgcUxuZy0PA2cDDz1u7g7JtDHw=",
                "scope": "refresh_token api",
                "instance_url": self.url,
                "id": "https://login.salesforce.com/id/00D5e000000AbCdEAK/0055e000001AbCdAAK",
                "token_type": "Bearer",
                "issued_at": "1743494400000",
            },
        )

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def api(self, request: Request) -> Answer:
        session = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.sessions.get(session, 0) <= self.now:
            return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if request.path.startswith(f"{PREFIX}/query/"):
            locator = request.path.removeprefix(f"{PREFIX}/query/")
            if locator not in self.locators or request.query:
                return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self.batch(self.locators.pop(locator), total=None)
        if request.path != f"{PREFIX}/query":
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        statement = " ".join((request.param("q") or "").split())
        match = QUERY.match(statement)
        if match is None or match["object"] not in self.data:
            return errors(400, "MALFORMED_QUERY", f"unexpected token: {statement[:40]}")
        rows = self.data[match["object"]]
        if match["after"]:
            if not DATETIME_LITERAL.match(match["after"]):
                return errors(
                    400,
                    "MALFORMED_QUERY",
                    f"value of filter criterion for field "
                    f"'SystemModstamp' must be of type dateTime: {match['after']}",
                )
            after = moment(match["after"])
            rows = [row for row in rows if moment(row["SystemModstamp"]) > after]
        rows = sorted(rows, key=lambda row: (moment(row["SystemModstamp"]), row["Id"]))
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        fields = [name.strip() for name in match["fields"].split(",")]
        selected = [
            {
                "attributes": {
                    "type": match["object"],
                    "url": f"{PREFIX}/sobjects/{match['object']}/{row['Id']}",
                },
                **{name: row.get(name) for name in fields},
            }
            for row in rows
        ]
        return self.batch(selected, total=len(selected))

    def batch(self, rows: list[dict[str, Any]], *, total: int | None) -> Answer:
        page, rest = rows[: self.batch_size], rows[self.batch_size :]
        body: dict[str, Any] = {
            "totalSize": total if total is not None else len(rows),
            "done": not rest,
        }
        if rest:
            self.handed_out += 1
            locator = f"01gD0000002HU6K{self.handed_out:03d}-{self.batch_size}"
            self.locators[locator] = rest
            body["nextRecordsUrl"] = f"{PREFIX}/query/{locator}"
        body["records"] = page
        return 200, {}, body


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextmanager
def salesforce_server() -> Iterator[FakeSalesforce]:
    fake = FakeSalesforce(
        data={
            "Account": sobjects("Account", 25),
            "Contact": sobjects("Contact", 12, minutes=90),
            "Opportunity": sobjects("Opportunity", 7, minutes=120),
        }
    )
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
