"""The engine that runs a manifest: one ``Connector`` class per manifest, registered in the same
catalog as the connectors written in Python, with the same ``test()``, ``discover()`` and
``read()`` (a manifest with ``streams``) and ``write()`` (a manifest with a ``destination``).

A read requests a stream page by page (the manifest's pagination), optionally split into date
windows, through ``connectors.http`` (the egress policy, 429 / Retry-After) and the manifest's
request budget. Each page is one batch. INCREMENTAL reads send the saved cursor where the
manifest's templates put it and also drop records at or below it, since many APIs filter
inclusively. A stream whose API answers in ascending cursor order says so (``cursor.ordered``),
and the sync engine then commits its cursor batch by batch; any other stream has its cursor
saved once it is read through. A cursor no finer than a date (``cursor.inclusive``) keeps the
records at it: they are read again, and stored unchanged unless they changed.

A stream can also keep the API's own position instead of a record field (``cursor.responsePath``:
Plaid's ``/transactions/sync``): the opaque cursor an answer hands back is sent with the next
request, and the last one is saved once the stream is read through, so a failed read starts
again from the position the last complete read reached. One answer may hold several lists of
records (``recordSelector`` as a list), and a list of records the API deleted
(``deletedRecordSelector``), kept as records marked ``_deleted``.

A write sends the records a sync hands over as the manifest's ``destination`` says: in requests of
at most ``batchSize`` records, or one request per record, each request's path, query, headers
and body rendered from its templates. Every request goes the way a read's does (the egress
policy, 429 waited out after its Retry-After, the request budget, OAuth refresh on a 401) and an
error answer is classified by the manifest's ``errors``; the error that fails a write names the
batch (its number in the run, its records' keys) or the record. Records are sent at least once:
a sync commits a batch only once the destination took all of it, so a failed run's retry sends
the requests of its last uncommitted batch again, and a receiver that upserts by ``upsertKey``
keeps each record once.

Redirects are not followed: credentials travel in headers and query parameters that an HTTP
client would forward to wherever a redirect points. Next-page links must stay on the origin of
the base URL for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from accounts.throttling import Rate, window_hit
from connectors import http
from connectors.choices import ConnectorCategory, ConnectorStatus, SyncMode
from connectors.declarative import templates
from connectors.declarative.auth import Authenticator
from connectors.registry import (
    Connector,
    ConnectorError,
    EntitySpec,
    FieldSpec,
    ReadBatch,
    TestResult,
)

DEFAULT_RETRYABLE: list[int | str] = [429, "5xx"]
TEST_TIMEOUT_SECONDS = 30.0
# How often one read starts over on an error code of ``pagination.restartOn`` before the error
# fails the attempt (retryably: the job's next attempt starts over once more).
MAX_RESTARTS = 3
# The field that marks a record the API reported deleted (``deletedRecordSelector``).
DELETED_FIELD = "_deleted"
# Records per write request when a destination gives no batchSize.
DEFAULT_WRITE_BATCH = 100
# How many keys of a failed batch its error names.
KEYS_NAMED = 3


class ApiError(http.HttpStatusError):
    """An error answer of the API, retryable as the manifest's ``errors`` classify it, with the
    API's own error code where ``errors.codePath`` finds one (Plaid's ``error_code``)."""

    def __init__(
        self, message: str, *, status: int, body: bytes, retryable: bool, code: str | None
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retryable = retryable
        self.code = code


@dataclass
class Page:
    """The records of one answer, with their ``addFields``, and the stream's position after it
    (the API's cursor of a ``cursor.responsePath`` stream; None for any other)."""

    records: list[dict[str, Any]]
    position: Any = None


class DeclarativeConnector(Connector):
    """A connector whose behaviour is its ``manifest`` (see ``manifest.schema.json``): a source
    of its ``streams``, a destination of its ``destination``, or both."""

    manifest: ClassVar[dict[str, Any]]
    is_source = True

    def __init__(self, *, config: dict[str, Any], credentials: dict[str, Any]) -> None:
        super().__init__(config=config, credentials=credentials)
        self.context: dict[str, Any] = {
            "config": self._config_with_defaults(),
            # A copy: a rotated refresh token replaces its value for the rest of this run.
            "credentials": dict(credentials),
        }
        self.timeout = float(self.manifest.get("timeoutSeconds") or http.DEFAULT_TIMEOUT_SECONDS)
        self.auth = Authenticator(
            connector_id=self.id,
            spec=self.manifest.get("authentication") or {"type": "none"},
            context=self.context,
            timeout=self.timeout,
        )
        # Write requests sent per destination entity in this run (their batches' numbers).
        self._batches_sent: dict[str, int] = {}

    # --- the Connector interface -------------------------------------------------------------

    def test(self) -> TestResult:
        started = time.monotonic()
        # A test answers an API request: it waits at most TEST_TIMEOUT_SECONDS a request.
        self.timeout = self.auth.timeout = min(self.timeout, TEST_TIMEOUT_SECONDS)
        try:
            check = self.manifest.get("check")
            if check is not None:
                self._send(
                    "GET",
                    self._url(check["path"], self.context),
                    params=templates.render(check.get("params") or {}, self.context),
                    body=None,
                    headers={},
                )
            elif not self.manifest.get("streams"):
                self._reach()
            else:
                stream = self.manifest["streams"][0]
                next(self._pages(stream, cursor=None, window=None, batch_size=1), None)
        except ConnectorError as error:
            return TestResult(success=False, latency_ms=_since(started), error=error.message)
        permissions = (["read"] if self.is_source else []) + (
            ["write"] if self.is_destination else []
        )
        return TestResult(success=True, latency_ms=_since(started), permissions=permissions)

    def _reach(self) -> None:
        """A destination without a ``check`` request: a GET of its base URL must be answered,
        with anything but a refusal of the credentials or a server error (a write endpoint
        commonly answers 404 or 405 to a GET, which still says it is there)."""
        try:
            self._send("GET", self._url("", self.context), params={}, body=None, headers={})
        except ApiError as error:
            if error.status in (401, 403, 407) or error.status >= 500 or error.status == 429:
                raise

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        """Send ``records`` to ``entity`` as the manifest's ``destination`` says, batch by batch
        (or record by record); returns how many were sent. The first request that fails raises
        a ``ConnectorError`` naming its batch or record, retryable as ``errors`` classify it."""
        spec = self.manifest.get("destination")
        if spec is None:
            raise ConnectorError(f"{self.name} is not a destination.", retryable=False)
        per_record = spec.get("mode") == "record"
        size = 1 if per_record else self._write_batch_size(spec)
        key_field = self._upsert_key(spec)
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            number = self._batches_sent.get(entity, 0) + 1
            keys = [_key_of(record, key_field, entity=entity) for record in batch]
            context: dict[str, Any] = {
                **self.context,
                "entity": entity,
                "upsertKey": key_field,
                "batch": {"number": number, "size": len(batch)},
            }
            if per_record:
                context.update(record=batch[0], key=keys[0])
            else:
                context.update(records=batch, keys=keys)
            self._write_request(spec, context, what=_batch_name(entity, number, keys, key_field))
            self._batches_sent[entity] = number
        return len(records)

    def _write_request(self, spec: dict[str, Any], context: dict[str, Any], *, what: str) -> None:
        default_body = "{{ record }}" if spec.get("mode") == "record" else "{{ records }}"
        body = templates.render(spec.get("body", default_body), context)
        headers = {
            templates.render_text(str(name), self.context): str(templates.render(value, context))
            for name, value in (spec.get("headers") or {}).items()
            if not templates.unset(value, context)
        }
        method = spec.get("method", "POST")
        url = self._url(spec.get("path", ""), context)
        success = spec.get("successStatuses") or ["2xx"]
        try:
            answer = self._send(
                method,
                url,
                params=templates.render(spec.get("params") or {}, context),
                body=None if body is templates.OMITTED else body,
                headers=headers,
            )
        except ApiError as error:
            if _listed(error.status, success):
                return
            raise ConnectorError(
                f"{self.name} did not take {what}: {error.message}", retryable=error.retryable
            ) from error
        if not _listed(answer.status, success):
            raise ConnectorError(
                f"{self.name} did not take {what}: {_without_query(url)} answered "
                f"{answer.status}, not a success status of the manifest.",
                retryable=False,
            )

    def _write_batch_size(self, spec: dict[str, Any]) -> int:
        given = spec.get("batchSize", DEFAULT_WRITE_BATCH)
        value = templates.render(given, self.context) if isinstance(given, str) else given
        if value is templates.OMITTED:
            return DEFAULT_WRITE_BATCH
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1 or str(size) != str(value).strip():
            raise ConnectorError(
                f"The batch size {value!r} of {self.name} is not a whole number above 0.",
                retryable=False,
            )
        return size

    def _upsert_key(self, spec: dict[str, Any]) -> str | None:
        if "upsertKey" not in spec:
            return None
        return templates.render_text(spec["upsertKey"], self.context) or None

    def discover(self) -> list[EntitySpec]:
        return [
            EntitySpec(
                name=stream["name"],
                primary_key=_primary_key(stream),
                # A stream that keeps the API's position has no cursor field, and is not read
                # in an order it could be resumed in: its position is saved once read through.
                cursor_field=(stream.get("cursor") or {}).get("field"),
                fields=[spec.name for spec in stream_fields(stream)],
                field_specs=stream_fields(stream),
                ordered=bool((stream.get("cursor") or {}).get("ordered", False)),
                position_kept_by_source=bool((stream.get("cursor") or {}).get("responsePath")),
            )
            for stream in self.manifest.get("streams") or []
        ]

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        """Each page of ``entity`` as a batch; ``date_range`` bounds the date windows of a
        stream that has them (``filters_by_date`` says whether every stream does)."""
        stream = self._stream(entity)
        spec = stream.get("cursor")
        if spec is not None and "responsePath" in spec:
            yield from self._read_positions(stream, cursor=cursor, batch_size=batch_size)
            return
        kind = (spec or {}).get("type", "string")
        field_name = spec["field"] if spec else None
        inclusive = bool((spec or {}).get("inclusive", False))
        high_water = cursor
        for window in self._windows(stream, cursor=cursor, date_range=date_range):
            for page in self._pages(stream, cursor=cursor, window=window, batch_size=batch_size):
                records = page.records
                if field_name is not None:
                    if cursor is not None:
                        records = [
                            r
                            for r in records
                            if _after(r.get(field_name), cursor, kind)
                            or (inclusive and _same(r.get(field_name), cursor, kind))
                        ]
                    for record in records:
                        value = record.get(field_name)
                        if value is not None and (
                            high_water is None or _after(value, high_water, kind)
                        ):
                            high_water = value
                if records:
                    yield ReadBatch(records=records, cursor=high_water)

    def _read_positions(
        self, stream: dict[str, Any], *, cursor: Any, batch_size: int
    ) -> Iterator[ReadBatch]:
        """A stream that keeps the API's position: each page with the position after it, and
        the last position even when the last pages held no records (the sync engine saves it
        once the stream is read through)."""
        sent = cursor
        position = cursor
        for page in self._pages(stream, cursor=cursor, window=None, batch_size=batch_size):
            position = page.position
            if page.records:
                sent = position
                yield ReadBatch(records=page.records, cursor=position)
        if position != sent:
            yield ReadBatch(records=[], cursor=position)

    @classmethod
    def stream_schema(cls, entity: str) -> dict[str, Any] | None:
        """The JSON Schema a stream declares for its records, if any (for discovery)."""
        for stream in cls.manifest.get("streams") or []:
            if stream["name"] == entity:
                schema = stream.get("schema")
                return dict(schema) if schema is not None else None
        return None

    # --- requests ----------------------------------------------------------------------------

    def _pages(
        self,
        stream: dict[str, Any],
        *,
        cursor: Any,
        window: tuple[datetime, datetime] | None,
        batch_size: int,
    ) -> Iterator[Page]:
        """Each page of one read of ``stream`` (one date window of it).

        With ``pagination.restartAfter``, a query that has paged through that many records is
        started again from the highest cursor value it read (an API that pages at most so far
        into one query's results, such as HubSpot's search); records at that value which were
        already read are not read twice.

        With ``pagination.restartOn``, an error answer with one of those codes starts the read
        over from its first page and the position it started at (Plaid's
        TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION: the data changed while it was paged)."""
        pagination = stream.get("pagination") or {"type": "none"}
        kind = pagination["type"]
        size = min(int(pagination.get("pageSize") or batch_size), max(batch_size, 1))
        start = pagination.get("start")

        def first_page() -> dict[str, Any]:
            return {
                "size": size,
                "number": 1 if start is None else start,
                "offset": 0 if start is None else start,
                "cursor": None,
            }

        page = first_page()
        spec = stream.get("cursor") or {}
        response_path = spec.get("responsePath")
        cursor_value = cursor
        if cursor_value is None and spec.get("start"):
            cursor_value = templates.render_text(spec["start"], self.context)
        context: dict[str, Any] = {
            **self.context,
            "cursor": _cursor_text(spec, cursor_value),
            "page": page,
            "stream": {"name": stream["name"]},
        }
        restart_after = pagination.get("restartAfter")
        restart_on = set(pagination.get("restartOn") or [])
        restarts = 0
        has_more_path = pagination.get("hasMorePath")
        cursor_kind = spec.get("type", "string")
        keys = _primary_key(stream)
        # This query's count of records, its highest cursor value and the keys of the records
        # at it; and the keys at the value the query restarted from, already read.
        query_read, query_high, keys_at_high = 0, cursor_value, set[tuple[str, ...]]()
        restart_value: Any = None
        keys_at_restart: set[tuple[str, ...]] = set()
        if window is not None:
            fmt = stream["window"].get("format") or "%Y-%m-%dT%H:%M:%SZ"
            context["window"] = {"start": window[0].strftime(fmt), "end": window[1].strftime(fmt)}
        method = stream.get("method", "GET")
        url = self._url(stream["path"], context)
        headers = {
            str(k): str(v)
            for k, v in templates.render(stream.get("headers") or {}, context).items()
        }
        next_url: str | None = None
        seen: set[str] = set()
        # The API's position (cursor.responsePath): where the read started, and after each answer.
        position = cursor_value
        while True:
            body = templates.render(stream.get("body"), context) if "body" in stream else None
            try:
                if next_url is None:
                    params = templates.render(stream.get("params") or {}, context)
                    answer = self._send(method, url, params=params, body=body, headers=headers)
                else:
                    answer = self._send(method, next_url, params={}, body=body, headers=headers)
            except ApiError as error:
                if error.code is None or error.code not in restart_on:
                    raise
                if restarts >= MAX_RESTARTS:
                    raise ConnectorError(
                        f"{error.message} The read of {stream['name']} started over "
                        f"{MAX_RESTARTS} times on it.",
                        retryable=True,
                    ) from error
                restarts += 1
                position = cursor_value
                context["cursor"] = _cursor_text(spec, cursor_value)
                page.clear()
                page.update(first_page())
                next_url = None
                seen.clear()
                continue
            payload = answer.json()
            found = _records_of(stream, payload, url=answer.url)
            records = [self._with_added_fields(stream, record) for record in found]
            if restart_after is not None:
                if keys_at_restart:
                    records = [
                        record
                        for record in records
                        if not (
                            _record_key(record, keys) in keys_at_restart
                            and _same(record.get(spec["field"]), restart_value, cursor_kind)
                        )
                    ]
                for record in records:
                    value = record.get(spec["field"])
                    if value is None:
                        continue
                    if query_high is None or _after(value, query_high, cursor_kind):
                        query_high, keys_at_high = value, set()
                    if _same(value, query_high, cursor_kind):
                        keys_at_high.add(_record_key(record, keys))
            sent_position = position
            if response_path is not None:
                handed = http.value_at(payload, response_path)
                # Plaid answers "" while an account's transactions are not ready yet.
                if handed not in (None, ""):
                    position = handed
                    context["cursor"] = handed
            yield Page(records=records, position=position)
            query_read += len(found)
            if has_more_path is not None and http.value_at(payload, has_more_path) is not True:
                return
            if kind in ("page", "offset"):
                if len(found) < size:
                    return
                page["number"] += 1
                page["offset"] += len(found)
            elif kind == "cursor":
                following = http.value_at(payload, pagination["cursorPath"])
                # A server that hands back a cursor it already gave would page forever.
                if following in (None, "", False) or str(following) in seen:
                    return
                seen.add(str(following))
                page["cursor"] = following
            elif kind == "responseCursor":
                # More to read, but from where this answer started: it would page forever.
                if position == sent_position:
                    return
            elif kind in ("nextLink", "linkHeader"):
                if kind == "nextLink":
                    link = http.value_at(payload, pagination["nextLinkPath"])
                else:
                    link = answer.links.get("next")
                if not isinstance(link, str) or not link:
                    return
                next_url = urllib.parse.urljoin(answer.url, link)
                if next_url in seen:
                    return
                seen.add(next_url)
                if _origin(next_url) != _origin(url):
                    raise ConnectorError(
                        f"The next page link {_without_query(next_url)} leaves {_origin(url)}.",
                        retryable=False,
                    )
            else:
                return
            if restart_after is not None and query_read >= restart_after:
                if query_high is None or _same(query_high, cursor_value, cursor_kind):
                    raise ConnectorError(
                        f"{stream['name']}: more than {restart_after} records share the cursor "
                        f"value {query_high!r}, past which the API cannot page.",
                        retryable=False,
                    )
                cursor_value, restart_value = query_high, query_high
                keys_at_restart, keys_at_high = keys_at_high, set()
                query_read = 0
                page.clear()
                page.update(first_page())
                context["cursor"] = _cursor_text(spec, cursor_value)
                next_url = None
                seen.clear()

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any],
        body: Any,
        headers: dict[str, str],
    ) -> http.HttpResponse:
        """One request with authentication and the request budget; a 401 answered to an OAuth
        access token gets one more try with a new token."""
        for attempt in (1, 2):
            self._spend()
            # Outside the try: a failed token request is not an answer of this API.
            request_headers = {**self._headers(), **headers, **self.auth.headers()}
            try:
                return http.request(
                    method,
                    url,
                    params={**params, **self.auth.params()},
                    headers=request_headers,
                    json_body=body if method != "GET" else None,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
            except http.HttpStatusError as error:
                if error.status == 401 and attempt == 1 and self.auth.can_refresh:
                    self.auth.invalidate()
                    continue
                raise self._classified(error, url=url) from error
        raise AssertionError("unreachable")

    def _classified(self, error: http.HttpStatusError, *, url: str) -> ApiError:
        """The error as the manifest's ``errors`` read it: retryable as ``retryable`` classifies
        its status, and with the API's own error code and message where the answer holds them
        (``codePath``, ``messagePath``)."""
        errors = self.manifest.get("errors") or {}
        retryable = errors.get("retryable", DEFAULT_RETRYABLE)
        status = error.status
        matches = status in retryable or f"{status // 100}xx" in retryable
        code: str | None = None
        message = error.message
        if "codePath" in errors or "messagePath" in errors:
            try:
                payload = json.loads(error.body or b"null")
            except ValueError:
                payload = None

            def told(key: str) -> str | None:
                value = http.value_at(payload, errors[key]) if key in errors else None
                return str(value) if isinstance(value, str | int) and value != "" else None

            code = told("codePath")
            said = [part for part in (code, told("messagePath")) if part is not None]
            if said:
                answered = (
                    "still answers 429 after its retries" if status == 429 else f"answered {status}"
                )
                message = f"{_without_query(url)} {answered}: {': '.join(said)}"
        return ApiError(message, status=status, body=error.body, retryable=matches, code=code)

    def _spend(self) -> None:
        """Count a request against the manifest's budget, waiting for the next window when it
        is used up (or failing retryably when that is further off than a 429 would be waited
        for). Without Redis the budget is not enforced, like the API's own limits."""
        budget = self.manifest.get("rateLimit")
        if budget is None:
            return
        rate = Rate(count=int(budget["requests"]), period=int(budget["seconds"]))
        owner = templates.render_text(budget.get("key") or self.manifest["baseUrl"], self.context)
        digest = hashlib.sha256(owner.encode()).hexdigest()[:24]
        key = f"connector-budget:{self.id}:{digest}"
        while True:
            hit = window_hit(key, rate=rate)
            if hit is None or hit.count <= rate.count:
                return
            if hit.retry_after > http.MAX_RETRY_WAIT_SECONDS:
                raise ConnectorError(
                    f"The request budget of {self.name} ({rate.count} per {rate.period}s) "
                    f"is used up for another {hit.retry_after}s.",
                    retryable=True,
                )
            http.sleep(hit.retry_after)

    def _headers(self) -> dict[str, str]:
        rendered = templates.render(self.manifest.get("headers") or {}, self.context)
        return {str(key): str(value) for key, value in rendered.items()}

    def _url(self, path: str, context: dict[str, Any]) -> str:
        base = templates.render_url(self.manifest["baseUrl"], self.context)
        http.check_http_url(base, field="baseUrl")
        rendered = templates.render_text(path, context, quote=True)
        return f"{base.rstrip('/')}/{rendered.lstrip('/')}" if rendered else base

    # --- streams -----------------------------------------------------------------------------

    def _stream(self, entity: str) -> dict[str, Any]:
        for stream in self.manifest.get("streams") or []:
            if stream["name"] == entity:
                return stream
        raise ConnectorError(f"{self.name} has no entity {entity!r}.", retryable=False)

    def _windows(
        self, stream: dict[str, Any], *, cursor: Any, date_range: tuple[Any, Any] | None
    ) -> Iterator[tuple[datetime, datetime] | None]:
        """Consecutive windows of at most ``window.days`` from the cursor (or the window's
        start) to now, within ``date_range``; one window of None for a stream without them."""
        window = stream.get("window")
        if window is None:
            yield None
            return
        start_text = (
            cursor if cursor is not None else templates.render_text(window["start"], self.context)
        )
        lower = _moment(start_text, field="window.start")
        upper = datetime.now(UTC)
        if date_range is not None:
            if date_range[0] is not None:
                lower = max(lower, _range_start(date_range[0]))
            if date_range[1] is not None:
                upper = min(upper, _range_end(date_range[1]))
        step = timedelta(days=int(window["days"]))
        while lower < upper:
            end = min(lower + step, upper)
            yield lower, end
            lower = end

    def _with_added_fields(self, stream: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        added = stream.get("addFields")
        if not added:
            return record
        record = dict(record)
        for name, spec in added.items():
            value = http.value_at(record, spec["path"])
            if spec.get("type") == "datetime" and value is not None:
                value = _utc_text(value)
            record[name] = value
        return record

    def _config_with_defaults(self) -> dict[str, Any]:
        defaults = {
            key: schema["default"]
            for key, schema in self.config_properties.items()
            if isinstance(schema, dict) and "default" in schema
        }
        return {**defaults, **{k: v for k, v in self.config.items() if v is not None}}


def connector_class(manifest: dict[str, Any]) -> type[DeclarativeConnector]:
    """The catalog entry of a checked manifest (``manifest.manifest_load``)."""
    streams = manifest.get("streams") or []
    incremental = any("cursor" in stream for stream in streams)
    credentials_schema = {
        "type": "object",
        "additionalProperties": False,
        **manifest.get("credentials", {"properties": {}}),
    }
    attributes: dict[str, Any] = {
        "__doc__": f"{manifest['name']}, from its connector manifest.",
        "__module__": __name__,
        "manifest": manifest,
        "id": manifest["id"],
        "name": manifest["name"],
        "category": ConnectorCategory(manifest["category"]),
        "status": ConnectorStatus(manifest.get("status", ConnectorStatus.BETA)),
        "description": manifest.get("description", ""),
        "features": list(manifest.get("features") or []),
        "entities": [stream["name"] for stream in streams],
        "sync_modes": [
            mode
            for mode in (SyncMode.FULL, SyncMode.INCREMENTAL, SyncMode.SNAPSHOT)
            if mode != SyncMode.INCREMENTAL or incremental
        ],
        "filters_by_date": bool(streams) and all("window" in stream for stream in streams),
        "is_source": bool(streams),
        "is_destination": "destination" in manifest,
        "config_properties": dict((manifest.get("config") or {}).get("properties") or {}),
        "config_required": list((manifest.get("config") or {}).get("required") or []),
        "credentials_schema": credentials_schema,
    }
    class_name = "".join(part.capitalize() for part in manifest["id"].split("_")) + "Connector"
    return type(class_name, (DeclarativeConnector,), attributes)


def stream_fields(stream: dict[str, Any]) -> tuple[FieldSpec, ...]:
    """The fields of a stream's records as its schema declares them (a type only where the
    schema names one besides null; nullable unless required and never null), then the
    fields ``addFields`` adds, and ``_deleted`` where the API lists deleted records."""
    schema = stream.get("schema") or {}
    required = set(schema.get("required") or [])
    fields: list[FieldSpec] = []
    for name, declared in (schema.get("properties") or {}).items():
        kind = declared.get("type") if isinstance(declared, dict) else None
        types = [kind] if isinstance(kind, str) else list(kind or [])
        concrete = [value for value in types if value != "null"]
        fields.append(
            FieldSpec(
                name=name,
                type=concrete[0] if len(concrete) == 1 else None,
                nullable="null" in types or name not in required,
            )
        )
    declared_names = {field.name for field in fields}
    for name, added in (stream.get("addFields") or {}).items():
        if name not in declared_names:
            kind = "string" if added.get("type") == "datetime" else None
            fields.append(FieldSpec(name=name, type=kind, nullable=True))
    if "deletedRecordSelector" in stream and DELETED_FIELD not in declared_names:
        fields.append(FieldSpec(name=DELETED_FIELD, type="boolean", nullable=True))
    return tuple(fields)


def _primary_key(stream: dict[str, Any]) -> list[str]:
    key = stream["primaryKey"]
    return [key] if isinstance(key, str) else list(key)


def _key_of(record: dict[str, Any], key_field: str | None, *, entity: str) -> Any:
    """A record's upsertKey value; a record without one cannot be written."""
    if key_field is None:
        return None
    value = record.get(key_field)
    if value is None or value == "":
        raise ConnectorError(
            f"A record of {entity} has no {key_field!r}, the destination's upsertKey: "
            f"{_sample(record)}",
            retryable=False,
        )
    return value


def _sample(record: dict[str, Any]) -> str:
    """The start of a record's fields, to recognise it by (not its values: they may be
    personal data)."""
    fields = sorted(record)[: KEYS_NAMED * 2]
    more = ", ..." if len(record) > len(fields) else ""
    return "a record with fields " + ", ".join(fields) + more + "."


def _batch_name(entity: str, number: int, keys: list[Any], key_field: str | None) -> str:
    """How an error names a write request: the record by its key, or the batch by its number
    in the run, its size and its first keys."""
    if len(keys) == 1 and key_field is not None:
        return f"the record of {entity} with {key_field} {keys[0]} (batch {number})"
    named = ""
    if key_field is not None:
        shown = ", ".join(str(key) for key in keys[:KEYS_NAMED])
        named = f", {key_field} {shown}" + (", ..." if len(keys) > KEYS_NAMED else "")
    return f"batch {number} of {entity} ({len(keys)} record(s){named})"


def _listed(status: int, statuses: list[int | str]) -> bool:
    return status in statuses or (200 <= status < 300 and "2xx" in statuses)


def _cursor_text(spec: dict[str, Any], value: Any) -> Any:
    """``{{ cursor }}``: the cursor value, or with ``cursor.format`` the instant it names as
    that format writes it (``unix``, ``unix_ms``, or strftime in UTC)."""
    fmt = spec.get("format")
    if value is None or value == "" or not fmt:
        return value
    moment = _moment(value, field="cursor").astimezone(UTC)
    if fmt == "unix":
        return str(int(moment.timestamp()))
    if fmt == "unix_ms":
        return str(int(moment.timestamp() * 1000))
    return moment.strftime(fmt)


def _record_key(record: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    return tuple(str(record.get(key)) for key in keys)


def _same(value: Any, other: Any, kind: str) -> bool:
    if value is None or other is None:
        return value is other
    return not _after(value, other, kind) and not _after(other, value, kind)


def _records_of(stream: dict[str, Any], body: Any, *, url: str) -> list[dict[str, Any]]:
    """The records of one answer: those at each ``recordSelector`` path in turn, then those at
    ``deletedRecordSelector`` marked ``_deleted``. A record listed twice (changed, then deleted
    in the same answer) is read once, as its last listing says."""
    selector = stream.get("recordSelector", "")
    paths = [selector] if isinstance(selector, str) else list(selector)
    records = [record for path in paths for record in _records_at(body, path, url=url)]
    deleted_path = stream.get("deletedRecordSelector")
    if deleted_path is not None:
        records += [
            {**record, DELETED_FIELD: True} for record in _records_at(body, deleted_path, url=url)
        ]
    if len(paths) == 1 and deleted_path is None:
        return records
    keys = _primary_key(stream)
    latest = {_record_key(record, keys): record for record in records}
    return list(latest.values())


def _records_at(body: Any, path: str, *, url: str) -> list[dict[str, Any]]:
    records = http.value_at(body, path)
    if records is None:
        # APIs leave an empty list out (QuickBooks answers {"QueryResponse": {}}).
        return []
    if not isinstance(records, list):
        where = f"recordSelector {path!r}" if path else "The body"
        raise ConnectorError(
            f"{where} of {_without_query(url)} is not a JSON array.", retryable=False
        )
    if not all(isinstance(record, dict) for record in records):
        raise ConnectorError(
            f"The records of {_without_query(url)} are not all JSON objects.", retryable=False
        )
    return records


def _after(value: Any, cursor: Any, kind: str) -> bool:
    """value > cursor, as the stream's cursor type compares (datetimes by the instant)."""
    if value is None:
        return False
    if kind == "datetime":
        try:
            return _moment(value, field="cursor") > _moment(cursor, field="cursor")
        except ConnectorError:
            return str(value) > str(cursor)
    if kind == "number":
        try:
            return float(value) > float(cursor)
        except (TypeError, ValueError):
            return str(value) > str(cursor)
    return str(value) > str(cursor)


# A Microsoft JSON date ("/Date(1573755038314+0000)/", Xero, .NET services): milliseconds since
# the epoch, UTC; the offset only names the zone it was written in.
MICROSOFT_JSON_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _moment(value: Any, *, field: str) -> datetime:
    text = str(value).strip() if isinstance(value, str) else ""
    microsoft = MICROSOFT_JSON_DATE.match(text)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif microsoft is not None:
        moment = datetime.fromtimestamp(int(microsoft.group(1)) / 1000, tz=UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConnectorError(
                f"{field} {value!r} is not an ISO 8601 date or time.", retryable=False
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_text(value: Any) -> Any:
    """An ISO 8601 time as UTC text that sorts in time order ("2025-01-01T18:00:00+00:00");
    a value that is not one stays as it is."""
    try:
        moment = _moment(value, field="value").astimezone(UTC)
    except ConnectorError:
        return value
    return moment.isoformat(timespec="seconds" if not moment.microsecond else "microseconds")


def _range_start(value: Any) -> datetime:
    return _moment(value, field="dateRange.from")


def _range_end(value: Any) -> datetime:
    """A bare date ends at the next midnight; a time ends at itself."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return _moment(value, field="dateRange.to") + timedelta(days=1)
    return _moment(value, field="dateRange.to")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _without_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
