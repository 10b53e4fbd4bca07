"""Stripe: customers, invoices and subscriptions through Stripe's list API.

Lists page with ``limit`` (at most 100) and ``starting_after=<last id>`` while ``has_more``, and
come newest first; incremental reads filter with ``created[gte]`` (unix seconds). ``gte`` rather
than ``gt`` because ``created`` has one-second resolution: objects created in the same second as
the last one synced would otherwise be missed, and re-reading a few is harmless for upserts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from connectors import http
from connectors.choices import ConnectorCategory, ConnectorStatus, SyncMode
from connectors.registry import (
    Connector,
    ConnectorError,
    EntitySpec,
    ReadBatch,
    TestResult,
    register,
)

DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_API_VERSION = "2023-10-16"
MAX_PAGE_SIZE = 100
TIMEOUT_SECONDS = 30.0

# Extra list parameters per entity: subscriptions default to non-canceled ones otherwise.
_ENTITY_PARAMS: dict[str, dict[str, str]] = {
    "customers": {},
    "invoices": {},
    "subscriptions": {"status": "all"},
}


@register
class StripeConnector(Connector):
    id = "stripe"
    name = "Stripe"
    category = ConnectorCategory.PAYMENTS
    status = ConnectorStatus.AVAILABLE
    description = "Customers, invoices and subscriptions from a Stripe account."
    features = ["payments", "subscriptions", "invoices"]
    entities = ["customers", "invoices", "subscriptions"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL, SyncMode.SNAPSHOT]
    is_source = True
    filters_by_date = True
    config_properties = {
        "apiBase": {
            "type": "string",
            "pattern": r"^https?://\S+$",
            "description": f"Stripe's API root; {DEFAULT_API_BASE} unless proxied or mocked.",
        },
        "apiVersion": {
            "type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$",
            "description": "The Stripe-Version header sent with every request.",
        },
    }
    credentials_schema = {
        "type": "object",
        "properties": {
            "apiKey": {"type": "string", "pattern": r"^(sk|rk)_(test|live)_[A-Za-z0-9]+$"},
            "webhookSecret": {"type": "string", "minLength": 1},
        },
        "required": ["apiKey"],
        "additionalProperties": False,
    }

    def test(self) -> TestResult:
        started = time.monotonic()
        try:
            response = http.get_json(
                self._url("/v1/balance"), headers=self._headers(), timeout=TIMEOUT_SECONDS
            )
        except ConnectorError as error:
            unauthorized = isinstance(error, http.HttpStatusError) and error.status == 401
            message = "Invalid API key" if unauthorized else error.message
            return TestResult(success=False, latency_ms=_since(started), error=message)
        # Restricted keys (rk_) are read-only as far as Railyard uses them.
        permissions = ["read", "write"] if self._api_key().startswith("sk_") else ["read"]
        return TestResult(
            success=True,
            latency_ms=_since(started),
            version=response.headers.get("Stripe-Version") or self._api_version(),
            permissions=permissions,
        )

    def discover(self) -> list[EntitySpec]:
        return [
            # Stripe lists newest first: the cursor is saved once an entity is read through.
            EntitySpec(name=entity, primary_key=["id"], cursor_field="created", ordered=False)
            for entity in self.entities
        ]

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        """Pages newest first as Stripe lists them; each batch's cursor is the highest
        ``created`` seen so far."""
        if entity not in _ENTITY_PARAMS:
            raise ConnectorError(f"Stripe has no entity {entity!r} here.", retryable=False)
        headers = self._headers()
        params: dict[str, Any] = {
            "limit": max(1, min(batch_size, MAX_PAGE_SIZE)),
            **_ENTITY_PARAMS[entity],
        }
        created_from, created_to = _created_bounds(date_range)
        if cursor is not None:
            created_from = max(created_from or 0, _as_unix(cursor))
        if created_from is not None:
            params["created[gte]"] = created_from
        if created_to is not None:
            params["created[lte]"] = created_to

        url = self._url(f"/v1/{entity}")
        high_water: int | None = _as_unix(cursor) if cursor is not None else None
        while True:
            body = http.get_json(url, params=params, headers=headers, timeout=TIMEOUT_SECONDS)
            page = body.json()
            records = page.get("data") if isinstance(page, dict) else None
            if not isinstance(records, list):
                raise ConnectorError(f"{url} did not answer a Stripe list.", retryable=False)
            for record in records:
                created = record.get("created")
                if isinstance(created, int) and (high_water is None or created > high_water):
                    high_water = created
            if records:
                yield ReadBatch(records=records, cursor=high_water)
            if not page.get("has_more") or not records:
                return
            params["starting_after"] = records[-1]["id"]

    def _api_key(self) -> str:
        api_key = self.credentials.get("apiKey")
        if not api_key:
            raise ConnectorError("Stripe credentials need an apiKey.", retryable=False)
        return str(api_key)

    def _api_version(self) -> str:
        return str(self.config.get("apiVersion") or DEFAULT_API_VERSION)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key()}",
            "Stripe-Version": self._api_version(),
        }

    def _url(self, path: str) -> str:
        base = str(self.config.get("apiBase") or DEFAULT_API_BASE)
        http.check_http_url(base, field="apiBase")
        return f"{base.rstrip('/')}{path}"


def _created_bounds(date_range: tuple[Any, Any] | None) -> tuple[int | None, int | None]:
    """(from, to) dates -> created[gte] at the start of ``from`` and created[lte] at the end of
    ``to``, both in UTC; either side may be None."""
    if date_range is None:
        return None, None
    start, end = date_range
    created_from = _day_start(start) if start is not None else None
    created_to = _day_start(end) + 86_399 if end is not None else None
    if isinstance(end, datetime):
        created_to = _as_unix(end)
    return created_from, created_to


def _day_start(value: Any) -> int:
    if isinstance(value, datetime):
        return _as_unix(value)
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if not isinstance(value, date):
        raise ConnectorError(f"Not a date: {value!r}.", retryable=False)
    return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())


def _as_unix(value: Any) -> int:
    """A cursor or datetime as unix seconds; cursors are saved as ints but may come back as
    text."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise ConnectorError(
            f"A Stripe cursor is unix seconds, not {value!r}.", retryable=False
        ) from error


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
