"""The HTTP client of the REST connectors (http_json, stripe, manifests), on httpx through the
egress policy.

One place decides what a failed request means for the job that made it: timeouts, dropped
connections, 5xx and a 429 that outlasts its retries can succeed later (retryable); bad
credentials, other 4xx answers and destinations the egress policy refuses will fail the same way
again (not retryable). A 429 is first retried in-process after the server's Retry-After, a few
times and with a capped wait; connection attempts are retried by the transport.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from config.egress import egress_error, egress_http_client, name_unknown
from connectors.registry import ConnectorError

# Module attribute so tests can replace it and not really wait out a Retry-After.
sleep = time.sleep

RATE_LIMIT_RETRIES = 3
CONNECT_RETRIES = 2
MAX_REDIRECTS = 5
MAX_RETRY_WAIT_SECONDS = 30.0
DEFAULT_RETRY_WAIT_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 30.0
_MESSAGE_LIMIT = 300


class HttpStatusError(ConnectorError):
    """The server answered an error status; ``status`` lets a connector tell 401 apart."""

    def __init__(self, message: str, *, status: int, body: bytes = b"") -> None:
        super().__init__(message, retryable=status == 429 or status >= 500)
        self.status = status
        self.body = body  # the answer, for connectors that read more of an error than its message


@dataclass(frozen=True)
class HttpResponse:
    """A 2xx answer: its final URL, status, headers (case-insensitive) and body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    # RFC 8288 Link header: relation type -> absolute target URL (the first link of a relation).
    links: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as error:
            raise ConnectorError(
                f"{self.url} answered {self.status} with a body that is not JSON.",
                retryable=False,
            ) from error


def check_http_url(url: str, *, field: str) -> None:
    """Only absolute http and https URLs may be requested."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
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
    """GET a URL, retrying 429 answers in-process; any other failure is a ``ConnectorError``.

    Redirects are followed (each one checked by the egress policy; httpx drops the
    Authorization header when a redirect leaves the origin).
    """
    return request("GET", url, params=params, headers=headers, timeout=timeout)


def request(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    follow_redirects: bool = True,
) -> HttpResponse:
    """Send a request with an optional JSON or form body; 429 answers are retried in-process
    as for ``get_json``, and any other failure is a ``ConnectorError``.

    ``follow_redirects`` False answers a redirect with a ``HttpStatusError`` instead: a caller
    whose secrets travel in headers other than Authorization (or in the query) must not have
    them sent to wherever a redirect points.
    """
    check_http_url(url, field="URL")
    full_url = url_with_params(url, params)
    request_headers = {"Accept": "application/json", **(headers or {})}
    with egress_http_client(
        retries=CONNECT_RETRIES,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
    ) as client:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                answer = client.request(
                    method, full_url, headers=request_headers, json=json_body, data=form
                )
            except Exception as error:
                raise _transport_error(full_url, error, timeout) from error
            if answer.status_code == 429 and attempt < RATE_LIMIT_RETRIES:
                sleep(retry_after_seconds(answer.headers.get("Retry-After")))
                continue
            if answer.status_code >= 400:
                raise _status_error(full_url, answer.status_code, answer.content)
            if answer.is_redirect:
                target = _where(urllib.parse.urljoin(full_url, answer.headers["Location"]))
                raise HttpStatusError(
                    f"{_where(full_url)} answered {answer.status_code}, a redirect to {target}, "
                    "which is not followed.",
                    status=answer.status_code,
                )
            return HttpResponse(
                url=str(answer.url),
                status=answer.status_code,
                headers=answer.headers,
                body=answer.content,
                links=_links(answer),
            )
    # The loop either returns or raises; this keeps the type checker and readers sure of it.
    raise AssertionError("unreachable")


def _links(answer: httpx.Response) -> dict[str, str]:
    links: dict[str, str] = {}
    for link in answer.links.values():
        for relation in (link.get("rel") or "").lower().split():
            links.setdefault(relation, urllib.parse.urljoin(str(answer.url), link.get("url", "")))
    return links


def _transport_error(url: str, error: Exception, timeout: float) -> ConnectorError:
    """What a request that got no answer means for the job."""
    refused = egress_error(error)
    if refused is not None:
        return ConnectorError(refused.message, retryable=False)
    if isinstance(error, httpx.TimeoutException):
        return ConnectorError(f"{_where(url)} timed out after {timeout:g}s.", retryable=True)
    if isinstance(error, httpx.TooManyRedirects):
        return ConnectorError(
            f"{_where(url)} redirected more than {MAX_REDIRECTS} times.", retryable=False
        )
    if isinstance(error, httpx.ConnectError):
        # A name that does not exist stays so; a resolver that could not answer may later.
        return ConnectorError(
            f"Could not connect to {_where(url)}: {error}.", retryable=not name_unknown(error)
        )
    if isinstance(error, httpx.HTTPError | OSError):
        return ConnectorError(f"Connection to {_where(url)} failed: {error}.", retryable=True)
    raise error


def value_at(body: Any, path: str) -> Any:
    """Follow a dotted path through nested JSON objects (``QueryResponse.Customer``); "" is the
    body itself, and a path that leaves the objects gives None."""
    value = body
    for key in filter(None, path.split(".")):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def retry_after_parse(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), at least 0; None when
    it is absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait in-process from a Retry-After header, capped; a default without one."""
    seconds = retry_after_parse(value)
    if seconds is None:
        return DEFAULT_RETRY_WAIT_SECONDS
    return min(seconds, MAX_RETRY_WAIT_SECONDS)


def _status_error(url: str, status: int, body: bytes) -> HttpStatusError:
    detail = server_message(body)
    suffix = f": {detail}" if detail else "."
    if status == 429:
        return HttpStatusError(
            f"{_where(url)} still answers 429 after {RATE_LIMIT_RETRIES} retries{suffix}",
            status=status,
            body=body,
        )
    return HttpStatusError(f"{_where(url)} answered {status}{suffix}", status=status, body=body)


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
