"""A local Plaid on an ephemeral loopback port: ``/transactions/sync`` and ``/accounts/get``,
answering as Plaid documents them.

- Every request is a POST with ``client_id``, ``secret`` and ``access_token`` in its JSON body;
  wrong keys are a 400 INVALID_INPUT / INVALID_API_KEYS, an unknown access token a 400
  INVALID_INPUT / INVALID_ACCESS_TOKEN.
- ``/transactions/sync`` takes ``cursor`` (none: the whole history) and ``count`` (1 to 500,
  100 by default) and answers ``{"added", "modified", "removed", "next_cursor", "has_more",
  "accounts", "request_id"}``. The fake keeps the Item's changes as a log; a cursor is a
  position in it. The cursors of a pagination loop remember the log as it was when the loop
  started: should it have changed since, the next page is a 400 TRANSACTIONS_ERROR /
  TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION, and the loop must start over from its first
  cursor. A removed transaction is ``{"account_id", "transaction_id"}``.
- A throttled request is a 429 RATE_LIMIT_EXCEEDED / TRANSACTIONS_SYNC_LIMIT, without
  Retry-After.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

CLIENT_ID = "5f9a1c2b3d4e5f6a7b8c9d0e"
SECRET = "0123456789abcdef0123456789abcd"
ACCESS_TOKEN = "access-sandbox-5cd6e1b1-1b5b-459d-9284-366e2da89755"
MAX_COUNT = 500
ACCOUNT_IDS = ["BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", "dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK"]
FIRST_DAY = date(2025, 3, 1)


def plaid_error(status: int, error_type: str, code: str, message: str) -> Answer:
    return (
        status,
        {},
        {
            "error_type": error_type,
            "error_code": code,
            "error_message": message,
            "display_message": None,
            "request_id": "HNTDNrA8F1shFEW",
        },
    )


THROTTLED = plaid_error(
    429,
    "RATE_LIMIT_EXCEEDED",
    "TRANSACTIONS_SYNC_LIMIT",
    "rate limit exceeded for attempts to access this item. please try again later",
)
INTERNAL_ERROR = plaid_error(
    500, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred"
)


def transaction_id(number: int) -> str:
    return f"lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDj{number:04d}"


def transaction(number: int, **changes: Any) -> dict[str, Any]:
    day = FIRST_DAY + timedelta(days=number)
    return {
        "transaction_id": transaction_id(number),
        "account_id": ACCOUNT_IDS[number % 2],
        "amount": round(4.25 * number, 2),
        "iso_currency_code": "USD",
        "unofficial_currency_code": None,
        "date": day.isoformat(),
        "authorized_date": day.isoformat(),
        "datetime": None,
        "name": f"Merchant {number}",
        "merchant_name": f"Merchant {number}",
        "pending": False,
        "pending_transaction_id": None,
        "payment_channel": "in store",
        "personal_finance_category": {
            "primary": "FOOD_AND_DRINK",
            "detailed": "FOOD_AND_DRINK_COFFEE",
        },
        "transaction_code": None,
        **changes,
    }


def accounts() -> list[dict[str, Any]]:
    return [
        {
            "account_id": account_id,
            "name": f"Plaid {name}",
            "official_name": f"Plaid Gold Standard 0% Interest {name}",
            "mask": mask,
            "type": "depository",
            "subtype": name.lower(),
            "balances": {"available": 100.0, "current": 110.0, "iso_currency_code": "USD"},
            "persistent_account_id": None,
        }
        for account_id, name, mask in zip(
            ACCOUNT_IDS, ["Checking", "Saving"], ["0000", "1111"], strict=True
        )
    ]


def cursor_text(position: int, loop_start: int | None) -> str:
    """Opaque to the client: a position in the log, and for a loop's inner cursors the log's
    length when the loop started."""
    return base64.urlsafe_b64encode(json.dumps([position, loop_start]).encode()).decode()


def cursor_read(text: str) -> tuple[int, int | None] | None:
    try:
        position, loop_start = json.loads(base64.urlsafe_b64decode(text.encode()))
    except ValueError:
        return None
    return int(position), loop_start


@dataclass
class FakePlaid:
    url: str = ""
    # The Item's changes in order: ("added" | "modified" | "removed", transaction).
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    inject: dict[int, Answer] = field(default_factory=dict)
    after: dict[int, Callable[[], None]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.transactions[record["transaction_id"]] = record
        self.log.append(("added", copy.deepcopy(record)))

    def modify(self, number: int, **changes: Any) -> None:
        record = self.transactions[transaction_id(number)]
        record.update(changes)
        self.log.append(("modified", copy.deepcopy(record)))

    def remove(self, number: int) -> None:
        record = self.transactions.pop(transaction_id(number))
        gone = {"account_id": record["account_id"], "transaction_id": record["transaction_id"]}
        self.log.append(("removed", gone))

    def syncs(self) -> list[dict[str, Any]]:
        """The body of each /transactions/sync request."""
        return [r.json() for r in self.requests if r.path == "/transactions/sync"]

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        number = len(self.requests)
        try:
            if number in self.inject:
                return self.inject[number]
            return self.api(request)
        finally:
            if number in self.after:
                self.after[number]()

    def api(self, request: Request) -> Answer:
        body = request.json() if request.method == "POST" else None
        if not isinstance(body, dict):
            return plaid_error(400, "INVALID_REQUEST", "INVALID_BODY", "body could not be parsed")
        if (body.get("client_id"), body.get("secret")) != (CLIENT_ID, SECRET):
            return plaid_error(
                400,
                "INVALID_INPUT",
                "INVALID_API_KEYS",
                "invalid client_id or secret provided",
            )
        if body.get("access_token") != ACCESS_TOKEN:
            return plaid_error(
                400,
                "INVALID_INPUT",
                "INVALID_ACCESS_TOKEN",
                "provided access token is in an invalid format. expected format: "
                "access-<environment>-<identifier>",
            )
        if request.path == "/accounts/get":
            return 200, {}, {"accounts": accounts(), "request_id": "m8MDnv9okwxFNBV"}
        if request.path == "/transactions/sync":
            return self.sync(body)
        return plaid_error(404, "INVALID_REQUEST", "NOT_FOUND", "not found")

    def sync(self, body: dict[str, Any]) -> Answer:
        count = body.get("count", 100)
        if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            return plaid_error(
                400, "INVALID_REQUEST", "INVALID_FIELD", f"count must be at most {MAX_COUNT}"
            )
        position, loop_start = 0, None
        if body.get("cursor"):
            read = cursor_read(str(body["cursor"]))
            if read is None:
                return plaid_error(400, "INVALID_INPUT", "INVALID_FIELD", "cursor is invalid")
            position, loop_start = read
        if loop_start is not None and loop_start != len(self.log):
            return plaid_error(
                400,
                "TRANSACTIONS_ERROR",
                "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                "Underlying transaction data changed since last page was fetched. Please "
                "restart pagination from last update.",
            )
        end = len(self.log)
        changes = self.log[position : position + count]
        following = position + len(changes)
        has_more = following < end
        lists: dict[str, list[dict[str, Any]]] = {"added": [], "modified": [], "removed": []}
        for kind, record in changes:
            lists[kind].append(record)
        return (
            200,
            {},
            {
                **lists,
                "accounts": accounts(),
                "next_cursor": cursor_text(following, end if has_more else None),
                "has_more": has_more,
                "request_id": "Wvhy9PZHQLV8njG",
                "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
            },
        )

    @property
    def cursor(self) -> str:
        """The cursor a read that reached the end of the log is handed last."""
        return cursor_text(len(self.log), None)


@contextmanager
def plaid_server(count: int = 25) -> Iterator[FakePlaid]:
    fake = FakePlaid()
    for number in range(1, count + 1):
        fake.add(transaction(number))
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
