"""The HTTP client of the REST connectors (http_json, stripe), on the standard library.

One place decides what a failed request means for the job that made it: timeouts, dropped
connections, 5xx and a 429 that outlasts its retries can succeed later (retryable); bad
credentials and other 4xx answers will fail the same way again (not retryable). A 429 is first
retried in-process after the server's Retry-After, a few times and with a capped wait.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.registry import ConnectorError

# Module attribute so tests can replace it and not really wait out a Retry-After.
sleep = time.sleep

RATE_LIMIT_RETRIES = 3
MAX_RETRY_WAIT_SECONDS = 30.0
DEFAULT_RETRY_WAIT_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 30.0
_MESSAGE_LIMIT = 300


class HttpStatusError(ConnectorError):
    """The server answered an error status; ``status`` lets a connector tell 401 apart."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retryable=status == 429 or status >= 500)
        self.status = status


@dataclass(frozen=True)
class HttpResponse:
    """A 2xx answer: its status, headers (case-insensitive ``get``) and body."""

    url: str
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as error:
            raise ConnectorError(
                f"{self.url} answered {self.status} with a body that is not JSON.",
                retryable=False,
            ) from error


def check_http_url(url: str, *, field: str) -> None:
    """Only http and https URLs may be requested (urllib also opens file: and ftp:)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https") or not urllib.parse.urlsplit(url).netloc:
        raise ConnectorError(f"{field} must be an http or https URL, not {url!r}.", retryable=False)


def url_with_params(url: str, params: dict[str, Any] | None) -> str:
    """Append query parameters to a URL that may already carry some."""
    if not params:
        return url
    query = urllib.parse.urlencode(
        {key: value for key, value in params.items() if value is not None}, doseq=True
    )
    if not query:
        return url
    return f"{url}{'&' if urllib.parse.urlsplit(url).query else '?'}{query}"


def get_json(
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> HttpResponse:
    """GET a URL, retrying 429 answers in-process; any other failure is a ``ConnectorError``."""
    check_http_url(url, field="URL")
    full_url = url_with_params(url, params)
    request_headers = {"Accept": "application/json", **(headers or {})}
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            full_url, headers=request_headers, method="GET"
        )
        try:
            # The scheme was checked above: only http and https reach urlopen.
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                body = answer.read()
                return HttpResponse(
                    url=full_url, status=answer.status, headers=answer.headers, body=body
                )
        except urllib.error.HTTPError as error:
            body = _read_error_body(error)
            if error.code == 429 and attempt < RATE_LIMIT_RETRIES:
                sleep(retry_after_seconds(error.headers.get("Retry-After")))
                continue
            raise _status_error(full_url, error.code, body) from error
        except TimeoutError as error:
            raise ConnectorError(
                f"{_where(full_url)} timed out after {timeout:g}s.", retryable=True
            ) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                message = f"{_where(full_url)} timed out after {timeout:g}s."
            else:
                message = f"Could not connect to {_where(full_url)}: {error.reason}."
            raise ConnectorError(message, retryable=True) from error
        except OSError as error:
            raise ConnectorError(
                f"Connection to {_where(full_url)} failed: {error}.", retryable=True
            ) from error
    # The loop either returns or raises; this keeps the type checker and readers sure of it.
    raise AssertionError("unreachable")


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_WAIT_SECONDS
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_WAIT_SECONDS
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_WAIT_SECONDS)


def parse_link_header(value: str | None, *, base_url: str) -> dict[str, str]:
    """RFC 8288 Link header -> {relation type: absolute target URL}; the first link of a
    relation wins. Targets are resolved against the URL of the request that got the header."""
    links: dict[str, str] = {}
    if not value:
        return links
    for target, params in _link_values(value):
        for name, param_value in params:
            if name != "rel":
                continue
            for relation in param_value.lower().split():
                links.setdefault(relation, urllib.parse.urljoin(base_url, target))
    return links


def _link_values(value: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Split a Link header into (target, [(param, value)]) pairs, honouring quoted strings that
    may contain commas and semicolons."""
    result: list[tuple[str, list[tuple[str, str]]]] = []
    position, length = 0, len(value)
    while position < length:
        start = value.find("<", position)
        if start == -1:
            break
        end = value.find(">", start)
        if end == -1:
            break
        target = value[start + 1 : end]
        position = end + 1
        params: list[tuple[str, str]] = []
        while position < length:
            while position < length and value[position] in " \t":
                position += 1
            if position >= length or value[position] == ",":
                position += 1
                break
            if value[position] != ";":
                position += 1
                continue
            position += 1
            name_end = position
            while name_end < length and value[name_end] not in "=;,":
                name_end += 1
            name = value[position:name_end].strip().lower().rstrip("*")
            position = name_end
            param_value = ""
            if position < length and value[position] == "=":
                position += 1
                while position < length and value[position] in " \t":
                    position += 1
                if position < length and value[position] == '"':
                    position += 1
                    chars: list[str] = []
                    while position < length and value[position] != '"':
                        if value[position] == "\\" and position + 1 < length:
                            position += 1
                        chars.append(value[position])
                        position += 1
                    position += 1
                    param_value = "".join(chars)
                else:
                    value_end = position
                    while value_end < length and value[value_end] not in ";,":
                        value_end += 1
                    param_value = value[position:value_end].strip()
                    position = value_end
            params.append((name, param_value))
        result.append((target, params))
    return result


def _read_error_body(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except (OSError, TimeoutError):
        return b""


def _status_error(url: str, status: int, body: bytes) -> HttpStatusError:
    detail = server_message(body)
    suffix = f": {detail}" if detail else "."
    if status == 429:
        return HttpStatusError(
            f"{_where(url)} still answers 429 after {RATE_LIMIT_RETRIES} retries{suffix}",
            status=status,
        )
    return HttpStatusError(f"{_where(url)} answered {status}{suffix}", status=status)


def server_message(body: bytes) -> str:
    """The human message of an error body: Stripe's error.message, a top-level message, error or
    detail string, else the start of the text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:_MESSAGE_LIMIT]
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_MESSAGE_LIMIT]
        for key in ("message", "error", "detail", "error_description"):
            if isinstance(payload.get(key), str):
                return str(payload[key])[:_MESSAGE_LIMIT]
    return text[:_MESSAGE_LIMIT]


def _where(url: str) -> str:
    """The URL without its query: query strings may carry tokens and are long."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
