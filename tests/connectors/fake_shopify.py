"""A local Shopify store on an ephemeral loopback port: the Admin REST API's orders, customers,
products and shop endpoints, answering as Shopify documents them.

- ``X-Shopify-Access-Token`` authenticates; a wrong one is a 401 ``{"errors": "[API] Invalid API
  key or access token (unrecognized login or wrong password)"}``.
- Lists take ``limit`` (default 50, at most 250) and ``updated_at_min`` (inclusive); orders also
  ``status`` (``open`` unless asked for ``any``, ``closed`` or ``cancelled``). They come newest
  id first, not in updated_at order.
- Pages: a ``Link`` header with ``rel="next"`` (and ``rel="previous"``) URLs carrying an opaque
  ``page_info``; a request with ``page_info`` may add only ``limit`` and ``fields`` (anything
  else is a 400).
- Every answer carries ``X-Shopify-Shop-Api-Call-Limit``; a throttled one is a 429 with
  ``Retry-After: 2.0``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.connectors.fakehttp import Answer, Request, json_server

ACCESS_TOKEN = "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"
VERSION = "2024-01"
PREFIX = f"/admin/api/{VERSION}"
EASTERN = timezone(timedelta(hours=-5))
START = datetime(2024, 1, 1, 9, tzinfo=EASTERN)
THROTTLED: Answer = (
    429,
    {"Retry-After": "2.0"},
    {
        "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
        "uninterrupted service."
    },
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(EASTERN).isoformat()


def orders(count: int, *, first: int = 1001, closed_every: int = 6) -> list[dict[str, Any]]:
    made = []
    for n in range(count):
        moment = START + timedelta(hours=n)
        closed = closed_every and (n + 1) % closed_every == 0
        made.append(
            {
                "id": 450789469 + n,
                "name": f"#{first + n}",
                "email": f"buyer{n}@example.com",
                "created_at": stamp(moment),
                "updated_at": stamp(moment),
                "closed_at": stamp(moment) if closed else None,
                "cancelled_at": None,
                "financial_status": "paid",
                "fulfillment_status": "fulfilled" if closed else None,
                "total_price": f"{10 + n}.00",
                "currency": "USD",
                "line_items": [{"id": 466157049 + n, "quantity": 1, "price": f"{10 + n}.00"}],
            }
        )
    return made


def customers(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": 207119551 + n,
            "email": f"customer{n}@example.com",
            "first_name": "Bob",
            "last_name": f"Norman {n}",
            "orders_count": n,
            "created_at": stamp(START + timedelta(minutes=30 * n)),
            "updated_at": stamp(START + timedelta(minutes=30 * n)),
        }
        for n in range(count)
    ]


def products(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": 632910392 + n,
            "title": f"IPod Nano {n}",
            "vendor": "Apple",
            "product_type": "Cult Products",
            "status": "active",
            "variants": [{"id": 808950810 + n, "price": "199.00"}],
            "created_at": stamp(START + timedelta(days=n)),
            "updated_at": stamp(START + timedelta(days=n)),
        }
        for n in range(count)
    ]


def touch(record: dict[str, Any], moment: datetime, **changes: Any) -> None:
    record.update(changes)
    record["updated_at"] = stamp(moment)


@dataclass
class FakeShopify:
    url: str = ""
    access_token: str = ACCESS_TOKEN
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Request number (from 1) -> the answer it gets instead.
    inject: dict[int, Answer] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        number = len(self.requests)
        limit_header = {"X-Shopify-Shop-Api-Call-Limit": f"{min(number, 40)}/40"}
        if number in self.inject:
            status, headers, body = self.inject[number]
            return status, {**limit_header, **headers}, body
        if request.headers.get("x-shopify-access-token") != self.access_token:
            message = "[API] Invalid API key or access token (unrecognized login or wrong password)"
            return 401, limit_header, {"errors": message}
        if request.path == f"{PREFIX}/shop.json":
            return 200, limit_header, {"shop": {"id": 548380009, "name": "John Smith Test Store"}}
        resource = request.path.removeprefix(f"{PREFIX}/").removesuffix(".json")
        if resource not in self.data:
            return 404, limit_header, {"errors": "Not Found"}
        status, headers, body = self.listing(resource, request)
        return status, {**limit_header, **headers}, body

    def listing(self, resource: str, request: Request) -> Answer:
        query = {key: values[0] for key, values in request.query.items()}
        limit = int(query.get("limit", "50"))
        if not 1 <= limit <= 250:
            return 400, {}, {"errors": {"limit": "must be between 1 and 250"}}
        if "page_info" in query:
            if set(query) - {"page_info", "limit", "fields"}:
                return 400, {}, {"errors": {"page_info": "Invalid value."}}
            state = json.loads(base64.urlsafe_b64decode(query["page_info"]))
            filters, before_id = state["filters"], state["last_id"]
        else:
            filters, before_id = {k: v for k, v in query.items() if k != "limit"}, None
        rows = sorted(self.data[resource], key=lambda row: row["id"], reverse=True)
        if "updated_at_min" in filters:
            floor = datetime.fromisoformat(filters["updated_at_min"].replace("Z", "+00:00"))
            rows = [row for row in rows if datetime.fromisoformat(row["updated_at"]) >= floor]
        if resource == "orders":
            status = filters.get("status", "open")
            if status == "open":
                rows = [row for row in rows if not row["closed_at"] and not row["cancelled_at"]]
            elif status == "closed":
                rows = [row for row in rows if row["closed_at"]]
        if before_id is not None:
            rows = [row for row in rows if row["id"] < before_id]
        page, more = rows[:limit], len(rows) > limit
        links = []
        if before_id is not None:
            links.append(f'<{self.page_url(resource, limit, filters, None)}>; rel="previous"')
        if more:
            links.append(f'<{self.page_url(resource, limit, filters, page[-1]["id"])}>; rel="next"')
        return 200, {"Link": ", ".join(links)} if links else {}, {resource: page}

    def page_url(self, resource: str, limit: int, filters: dict[str, str], last_id: Any) -> str:
        state = json.dumps({"filters": filters, "last_id": last_id}).encode()
        page_info = base64.urlsafe_b64encode(state).decode()
        return f"{self.url}{PREFIX}/{resource}.json?limit={limit}&page_info={page_info}"

    def sent(self, resource: str) -> list[dict[str, str]]:
        """The query of each request for a resource."""
        return [
            {key: values[0] for key, values in request.query.items()}
            for request in self.requests
            if request.path == f"{PREFIX}/{resource}.json"
        ]


@contextmanager
def shopify_server() -> Iterator[FakeShopify]:
    fake = FakeShopify(
        data={"orders": orders(30), "customers": customers(12), "products": products(7)}
    )
    with json_server(fake.answer) as url:
        fake.url = url
        yield fake
