"""One HTTP attempt of a webhook message: sign, POST through the egress policy, read the answer.

The URL is checked again at every attempt (scheme, and the egress policy against the address the
name resolves to at connect time: ``config.egress.EgressTransport``), so a name that is later
pointed at a forbidden address is refused then. Redirects are not followed: a 3xx is a failed
attempt, like any answer outside 2xx.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.conf import settings
from django.utils import timezone

from config.egress import egress_error, egress_http_client
from connectors.http import retry_after_parse
from webhooks.signing import signature_headers

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 2048
USER_AGENT = "Railyard-Webhooks/1.0"
RETRY_AFTER_STATUSES = (429, 503)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt met: the answer's status (None without an answer), its latency, the
    first 2 kB of its body, the error without an answer, and a Retry-After in seconds."""

    attempted_at: datetime
    finished_at: datetime
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def url_problem(url: str) -> str | None:
    """Why ``url`` may not receive webhooks (its scheme), or None."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and settings.WEBHOOK_ALLOW_HTTP):
        return None if parts.hostname else "The URL has no host."
    if scheme == "http":
        return "Only https:// URLs are allowed (WEBHOOK_ALLOW_HTTP is off)."
    return "The URL must start with https://."


@functools.cache
def _tls_context(pid: int) -> ssl.SSLContext:
    """The TLS settings every attempt of this process verifies endpoints with (``pid``: a
    forked worker process builds its own)."""
    return httpx.create_ssl_context()


def http_client() -> httpx.Client:
    """The client of a run of attempts: the egress policy, the timeout, no redirects.

    A drain makes one per run, so connections are never shared between endpoints; the TLS
    context is the process's one, as loading the CA bundle costs about 50 ms of CPU, far more
    than a run of attempts to a healthy endpoint."""
    return egress_http_client(
        timeout=float(settings.WEBHOOK_TIMEOUT_SECONDS),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        verify=_tls_context(os.getpid()),
    )


def attempt_send(
    client: httpx.Client, *, url: str, message_id: str, body: str, secrets_signing: Sequence[str]
) -> AttemptResult:
    """POST ``body`` to ``url``, signed with each of ``secrets_signing``; never raises for what
    the endpoint or the network does (that is the result)."""
    attempted_at = timezone.now()
    started = time.monotonic()

    def result(
        status: int | None, excerpt: str = "", error: str = "", retry_after: float | None = None
    ) -> AttemptResult:
        return AttemptResult(
            attempted_at=attempted_at,
            finished_at=timezone.now(),
            status_code=status,
            latency_ms=int((time.monotonic() - started) * 1000),
            excerpt=excerpt,
            error=error,
            retry_after=retry_after,
        )

    problem = url_problem(url)
    if problem is not None:
        return result(None, error=problem)
    headers = {
        "content-type": "application/json",
        **signature_headers(
            message_id=message_id, body=body, secrets_signing=secrets_signing, moment=attempted_at
        ),
    }
    try:
        with client.stream("POST", url, content=body.encode(), headers=headers) as response:
            excerpt = _excerpt(response, deadline=started + settings.WEBHOOK_TIMEOUT_SECONDS)
            status = response.status_code
            retry_after = (
                retry_after_parse(response.headers.get("retry-after"), now=timezone.now())
                if status in RETRY_AFTER_STATUSES
                else None
            )
    except Exception as error:  # every way of getting no answer is the attempt's result
        return result(None, error=_describe(error))
    return result(status, excerpt=excerpt, retry_after=retry_after)


def _excerpt(response: httpx.Response, *, deadline: float) -> str:
    """The start of the answer's body. httpx's timeout bounds each read, not their sum: an
    endpoint that trickles its body a byte at a time is cut off at the attempt's deadline
    (the status has arrived by then, and it is what counts)."""
    collected = b""
    for chunk in response.iter_bytes():
        collected += chunk
        if len(collected) >= RESPONSE_EXCERPT_BYTES or time.monotonic() >= deadline:
            break
    return collected[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")


def _describe(error: Exception) -> str:
    refused = egress_error(error)
    if refused is not None:
        return refused.message
    if isinstance(error, httpx.TimeoutException):
        return f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS} s."
    if isinstance(error, httpx.ConnectError):
        return f"Could not connect: {error}"
    if isinstance(error, httpx.HTTPError | OSError | httpx.InvalidURL):
        return f"The request failed: {error}"
    logger.exception("Webhook attempt failed unexpectedly")
    return f"The request failed: {type(error).__name__}."
