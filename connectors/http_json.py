"""A generic REST source: any JSON API described by its base URL, auth and, per entity, the path,
where the records sit in the answer and how the API pages.

Pagination types: ``none`` (one request), ``page`` (page number from 1), ``offset`` (record
offset from 0), ``cursor`` (the next cursor read from the body) and ``link`` (RFC 8288
``Link: <...>; rel="next"``). Incremental reads send the saved cursor in ``incrementalParam`` and
also drop records at or below it, because many APIs treat such a filter as inclusive.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connectors import http
from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import (
    Connector,
    ConnectorError,
    EntitySpec,
    ReadBatch,
    TestResult,
    register,
)

PAGINATION_TYPES = ("none", "page", "offset", "cursor", "link")
AUTH_TYPES = ("none", "bearer", "basic", "api_key")
DEFAULT_PAGE_SIZE = 100
TEST_TIMEOUT_SECONDS = 30.0

_ENTITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "Path under baseUrl."},
        "recordsPath": {
            "type": "string",
            "description": 'Dotted path to the array of records ("data.items"); "" = the body.',
        },
        "primaryKey": {"type": "string", "minLength": 1},
        "cursorField": {"type": "string", "minLength": 1},
        "incrementalParam": {"type": "string", "minLength": 1},
        "pagination": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": list(PAGINATION_TYPES)},
                "pageParam": {"type": "string", "minLength": 1},
                "sizeParam": {"type": "string", "minLength": 1},
                "pageSize": {"type": "integer", "minimum": 1},
                "cursorParam": {"type": "string", "minLength": 1},
                "nextCursorPath": {"type": "string", "minLength": 1},
            },
            "additionalProperties": False,
        },
    },
    "required": ["path"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class _Pagination:
    type: str
    page_param: str
    size_param: str | None
    page_size: int
    cursor_param: str
    next_cursor_path: str | None


@register
class HttpJsonConnector(Connector):
    id = "http_json"
    name = "HTTP JSON API"
    category = ConnectorCategory.API
    description = "Any REST API that answers JSON: bearer, basic or API-key auth, paged reads."
    features = ["rest", "json", "incremental"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL, SyncMode.SNAPSHOT]
    is_source = True
    config_properties = {
        "baseUrl": {"type": "string", "pattern": r"^https?://\S+$"},
        "entities": {"type": "object", "additionalProperties": _ENTITY_SCHEMA},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
    }
    config_required = ["baseUrl"]
    credentials_schema = {
        "type": "object",
        "properties": {
            "authType": {"type": "string", "enum": list(AUTH_TYPES)},
            "token": {"type": "string", "minLength": 1},
            "username": {"type": "string", "minLength": 1},
            "password": {"type": "string"},
            "apiKeyHeader": {"type": "string", "minLength": 1},
            "apiKey": {"type": "string", "minLength": 1},
        },
        "additionalProperties": False,
    }

    def test(self) -> TestResult:
        started = time.monotonic()
        try:
            url, params = self._base_url(), {}
            entities = self._entities()
            if entities:
                first = next(iter(entities))
                url = self._entity_url(first)
                pagination = self._pagination(entities[first], batch_size=1)
                if pagination.type != "none" and pagination.size_param:
                    params[pagination.size_param] = 1
            # A test answers an API request: it waits at most TEST_TIMEOUT_SECONDS, whatever
            # the reads may take.
            response = http.get_json(
                url,
                params=params,
                headers=self._headers(),
                timeout=min(self._timeout(), TEST_TIMEOUT_SECONDS),
            )
        except ConnectorError as error:
            return TestResult(success=False, latency_ms=_since(started), error=error.message)
        version = response.headers.get("version") or response.headers.get("X-Api-Version")
        return TestResult(
            success=True, latency_ms=_since(started), version=version, permissions=["read"]
        )

    def discover(self) -> list[EntitySpec]:
        return [
            EntitySpec(
                name=name,
                primary_key=[entity.get("primaryKey") or "id"],
                cursor_field=entity.get("cursorField") or None,
                # Pages come in the API's order, not necessarily the cursor's.
                ordered=False,
            )
            for name, entity in self._entities().items()
        ]

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        """Pages of ``entity``; ``date_range`` is not used: a generic API has no agreed date
        filter, and the incremental parameter covers resuming."""
        spec = self._entities().get(entity)
        if spec is None:
            raise ConnectorError(f"Entity {entity!r} is not configured.", retryable=False)
        headers = self._headers()
        url = self._entity_url(entity)
        pagination = self._pagination(spec, batch_size=batch_size)
        records_path = spec.get("recordsPath", "") or ""
        cursor_field = spec.get("cursorField") or None
        params: dict[str, Any] = {}
        if cursor is not None and spec.get("incrementalParam"):
            params[spec["incrementalParam"]] = cursor

        high_water = cursor
        for records in self._pages(url, params, headers, pagination, records_path):
            if cursor is not None and cursor_field:
                records = [r for r in records if _after(r.get(cursor_field), cursor)]
            if cursor_field:
                for record in records:
                    value = record.get(cursor_field)
                    if value is not None and (high_water is None or _after(value, high_water)):
                        high_water = value
            if records:
                yield ReadBatch(records=records, cursor=high_water)

    def _pages(
        self,
        url: str,
        params: dict[str, Any],
        headers: dict[str, str],
        pagination: _Pagination,
        records_path: str,
    ) -> Iterator[list[dict[str, Any]]]:
        """The records of each page, following the entity's pagination type."""
        timeout = self._timeout()
        kind = pagination.type
        if kind == "none":
            response = http.get_json(url, params=params, headers=headers, timeout=timeout)
            yield _records_at(response.json(), records_path, url=response.url)
            return

        size_params = {pagination.size_param: pagination.page_size} if pagination.size_param else {}
        if kind in ("page", "offset"):
            position = 1 if kind == "page" else 0
            while True:
                page_params = {**params, **size_params, pagination.page_param: position}
                response = http.get_json(url, params=page_params, headers=headers, timeout=timeout)
                records = _records_at(response.json(), records_path, url=response.url)
                yield records
                count = len(records)
                # A short page is the last one; APIs that ignore the size param still end on [].
                if count == 0 or (pagination.size_param and count < pagination.page_size):
                    return
                position += 1 if kind == "page" else count
        elif kind == "cursor":
            next_cursor: Any = None
            seen: set[str] = set()
            while True:
                page_params = {**params, **size_params}
                if next_cursor is not None:
                    page_params[pagination.cursor_param] = next_cursor
                response = http.get_json(url, params=page_params, headers=headers, timeout=timeout)
                yield _records_at(response.json(), records_path, url=response.url)
                next_cursor = http.value_at(response.json(), pagination.next_cursor_path or "")
                # A server that hands back a cursor it already gave would page forever.
                if next_cursor in (None, "", False) or str(next_cursor) in seen:
                    return
                seen.add(str(next_cursor))
        else:  # link
            next_url: str | None = http.url_with_params(url, {**params, **size_params})
            visited: set[str] = set()
            while next_url is not None and next_url not in visited:
                visited.add(next_url)
                response = http.get_json(next_url, headers=headers, timeout=timeout)
                yield _records_at(response.json(), records_path, url=response.url)
                links = response.links
                next_url = links.get("next")
                # The credentials go with every request: never follow a link to another origin.
                if next_url is not None and _origin(next_url) != _origin(url):
                    raise ConnectorError(
                        f"The next page link {next_url} leaves {_origin(url)}.", retryable=False
                    )

    def _entities(self) -> dict[str, dict[str, Any]]:
        entities = self.config.get("entities") or {}
        if not isinstance(entities, dict):
            raise ConnectorError("config.entities must be an object.", retryable=False)
        return entities

    def _base_url(self) -> str:
        base_url = self.config.get("baseUrl") or ""
        http.check_http_url(base_url, field="baseUrl")
        return str(base_url)

    def _entity_url(self, entity: str) -> str:
        path = str(self._entities()[entity].get("path") or "")
        return f"{self._base_url().rstrip('/')}/{path.lstrip('/')}"

    def _timeout(self) -> float:
        return float(self.config.get("timeoutSeconds") or http.DEFAULT_TIMEOUT_SECONDS)

    def _pagination(self, spec: dict[str, Any], *, batch_size: int) -> _Pagination:
        options = spec.get("pagination") or {}
        kind = options.get("type", "none")
        if kind not in PAGINATION_TYPES:
            raise ConnectorError(f"Unknown pagination type {kind!r}.", retryable=False)
        default_size_param = {"page": "per_page", "offset": "limit"}.get(kind)
        if kind == "cursor" and not options.get("nextCursorPath"):
            raise ConnectorError(
                "Cursor pagination needs pagination.nextCursorPath.", retryable=False
            )
        return _Pagination(
            type=kind,
            page_param=options.get("pageParam") or ("page" if kind == "page" else "offset"),
            size_param=options.get("sizeParam") or default_size_param,
            page_size=int(options.get("pageSize") or min(batch_size, DEFAULT_PAGE_SIZE)),
            cursor_param=options.get("cursorParam") or "cursor",
            next_cursor_path=options.get("nextCursorPath"),
        )

    def _headers(self) -> dict[str, str]:
        headers = {str(k): str(v) for k, v in (self.config.get("headers") or {}).items()}
        auth_type = self.credentials.get("authType") or "none"
        if auth_type == "none":
            return headers
        if auth_type == "bearer":
            token = self.credentials.get("token")
            if not token:
                raise ConnectorError("Bearer auth needs credentials.token.", retryable=False)
            headers["Authorization"] = f"Bearer {token}"
        elif auth_type == "basic":
            username = self.credentials.get("username")
            if not username:
                raise ConnectorError("Basic auth needs credentials.username.", retryable=False)
            pair = f"{username}:{self.credentials.get('password') or ''}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        elif auth_type == "api_key":
            header, key = self.credentials.get("apiKeyHeader"), self.credentials.get("apiKey")
            if not header or not key:
                raise ConnectorError(
                    "API-key auth needs credentials.apiKeyHeader and credentials.apiKey.",
                    retryable=False,
                )
            headers[str(header)] = str(key)
        else:
            raise ConnectorError(f"Unknown authType {auth_type!r}.", retryable=False)
        return headers


def _records_at(body: Any, path: str, *, url: str) -> list[dict[str, Any]]:
    records = http.value_at(body, path)
    if not isinstance(records, list):
        where = f"recordsPath {path!r}" if path else "The body"
        raise ConnectorError(f"{where} of {url} is not a JSON array.", retryable=False)
    if not all(isinstance(record, dict) for record in records):
        raise ConnectorError(f"The records of {url} are not all JSON objects.", retryable=False)
    return records


def _after(value: Any, cursor: Any) -> bool:
    """value > cursor; numbers and strings saved as text compare as text (ISO dates sort)."""
    if value is None:
        return False
    if isinstance(value, int | float) != isinstance(cursor, int | float):
        # A numeric cursor saved as text (or the other way round) still compares as a number.
        try:
            return float(value) > float(cursor)
        except (TypeError, ValueError):
            return str(value) > str(cursor)
    try:
        return bool(value > cursor)
    except TypeError:
        return str(value) > str(cursor)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
