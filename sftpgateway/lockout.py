"""Failed-login counting and lockouts, kept in Django's cache (Redis) so every gateway process
shares them.

A username and a source address each have a failure counter that lives for the lockout window.
When either reaches ``SFTP_LOCKOUT_THRESHOLD``, both the username and the address are locked for
``SFTP_LOCKOUT_SECONDS``. Settings are read at call time so tests (and operators, through the
environment) can tune them without reloading anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

PREFIX = "sftpgateway"


def _key(kind: str, scope: str, value: str) -> str:
    # Usernames and addresses are short and printable, but an unknown username comes straight
    # from the network: keep the key bounded and free of whitespace.
    safe = "".join(ch if ch.isalnum() or ch in "._:-" else "_" for ch in value[:80])
    return f"{PREFIX}:{kind}:{scope}:{safe}"


def threshold() -> int:
    return int(settings.SFTP_LOCKOUT_THRESHOLD)


def lockout_seconds() -> int:
    return int(settings.SFTP_LOCKOUT_SECONDS)


def window_seconds() -> int:
    return int(settings.SFTP_LOCKOUT_WINDOW_SECONDS)


def failure_delay(failures: int) -> float:
    """Seconds to stall a failed attempt: grows with the failures so far, capped."""
    base = float(settings.SFTP_FAILURE_DELAY_SECONDS)
    cap = float(settings.SFTP_FAILURE_DELAY_MAX_SECONDS)
    return min(base * max(failures, 1), cap)


def _locked_until(scope: str, value: str) -> datetime | None:
    raw = cache.get(_key("lock", scope, value))
    if not raw:
        return None
    until = datetime.fromisoformat(str(raw))
    return until if until > timezone.now() else None


def username_locked_until(username: str) -> datetime | None:
    return _locked_until("user", username)


def address_locked_until(address: str) -> datetime | None:
    return _locked_until("addr", address)


@dataclass(frozen=True)
class FailureOutcome:
    failures: int
    locked_until: datetime | None


def _increment(key: str, timeout: int) -> int:
    # add() only creates the counter (with its expiry) when it is missing, so the window starts
    # at the first failure; incr() is atomic in Redis.
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=timeout)
        return 1


def failure_register(*, username: str, address: str) -> FailureOutcome:
    """Count one failed login; lock the username and the address once either hits the limit."""
    window = window_seconds()
    by_user = _increment(_key("fail", "user", username), window)
    by_address = _increment(_key("fail", "addr", address), window)
    failures = max(by_user, by_address)
    if failures < threshold():
        return FailureOutcome(failures=failures, locked_until=None)
    seconds = lockout_seconds()
    until = timezone.now() + timedelta(seconds=seconds)
    cache.set_many(
        {
            _key("lock", "user", username): until.isoformat(),
            _key("lock", "addr", address): until.isoformat(),
        },
        timeout=seconds,
    )
    # The counters start again when the lock ends.
    cache.delete_many([_key("fail", "user", username), _key("fail", "addr", address)])
    return FailureOutcome(failures=failures, locked_until=until)


def username_unlock(username: str) -> None:
    """Forget the failures and the lock of a username (an operator's decision, or a rotation)."""
    cache.delete_many([_key("fail", "user", username), _key("lock", "user", username)])
