"""The defender inside one gateway process: what the accept loop decides from memory alone.

The shared state (points and bans of every address) is in the database (see the defender in
``services``). The accept thread must not wait on it, or a flood of connections would queue
behind queries, so it asks only this process's memory:

- the bans this process has seen, each trusted for ``BAN_RECHECK_SECONDS`` and then read again
  (so a ban lifted by an operator, or made by another process, takes effect within seconds; an
  address not known here is checked against the database by its connection's own thread,
  before the SSH handshake);
- a token bucket of new connections per address (``SFTP_CONNECTION_RATE_PER_ADDRESS`` a minute,
  bursts of ``SFTP_CONNECTION_BURST_PER_ADDRESS``).

What the accept thread turns away is counted here and written by a background thread once a
second: the points of connections over the per-address limits (which is how a flood gets
banned), and one aggregated activity row per ban for the connections refused while banned.
The same thread prunes the defender's old rows now and then.

Rates and bans are per process; bans are shared through the database, rates are not (run N
gateway processes behind one address and an address may open N times the rate).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import Counter
from datetime import datetime

from django.conf import settings
from django.db import connections
from django.utils import timezone

from sftpgateway import selectors, services
from sftpgateway.choices import DefenderEventKind

logger = logging.getLogger(__name__)

BAN_RECHECK_SECONDS = 5.0
FLUSH_SECONDS = 1.0
PRUNE_SECONDS = 600.0
# What OpenSSH answers instead of its banner when it throttles a source (PerSourcePenalties):
# clients print a plain reason rather than a protocol error.
REFUSAL_LINE = b"Not allowed at this time\r\n"


class AddressGuard:
    """Per-address throttling and ban lookups from memory, and the counts written in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # address: (tokens, at)
        self._bans: dict[str, tuple[datetime, float]] = {}  # address: (until, recheck at)
        self._over_limits: Counter[str] = Counter()
        self._refused_banned: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_prune = time.monotonic() + PRUNE_SECONDS

    # --- the accept thread --------------------------------------------------------------------

    def banned(self, address: str) -> bool:
        """Whether this process knows the address to be banned (no database access)."""
        with self._lock:
            known = self._bans.get(address)
            if known is None:
                return False
            until, recheck_at = known
            if time.monotonic() < recheck_at and until > timezone.now():
                return True
            del self._bans[address]
            return False

    def remember_ban(self, address: str, until: datetime) -> None:
        with self._lock:
            self._bans[address] = (until, time.monotonic() + BAN_RECHECK_SECONDS)

    def take_token(self, address: str) -> bool:
        """Whether a new connection from ``address`` is within its rate (token bucket)."""
        per_second = float(settings.SFTP_CONNECTION_RATE_PER_ADDRESS) / 60
        burst = float(settings.SFTP_CONNECTION_BURST_PER_ADDRESS)
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(address, (burst, now))
            tokens = min(burst, tokens + (now - at) * per_second)
            if tokens < 1:
                self._buckets[address] = (tokens, now)
                return False
            self._buckets[address] = (tokens - 1, now)
            return True

    def count_over_limits(self, address: str) -> None:
        with self._lock:
            self._over_limits[address] += 1

    def count_refused_banned(self, address: str) -> None:
        with self._lock:
            self._refused_banned[address] += 1

    # --- the background thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sftp-defender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_SECONDS
                self._prune()

    def flush(self) -> None:
        """Write what was counted since the last flush: points, bans, aggregated refusals."""
        with self._lock:
            over_limits, self._over_limits = self._over_limits, Counter()
            refused, self._refused_banned = self._refused_banned, Counter()
        try:
            for address, count in over_limits.items():
                logger.warning(
                    "Refused %d connection(s) from %s: over the per-address limits",
                    count,
                    address,
                )
                verdict = services.defender_event_record(
                    address=address, kind=DefenderEventKind.LIMIT_EXCEEDED, count=count
                )
                if verdict.banned_until is not None:
                    self.remember_ban(address, verdict.banned_until)
            for address, count in refused.items():
                logger.info("Refused %d connection(s) from %s: banned", count, address)
                services.defender_refusals_record(address=address, count=count)
        except Exception:
            # The database is unreachable: these counts are lost, the connections were refused
            # all the same.
            logger.exception("Could not record the SFTP defender's counts")
        finally:
            connections.close_all()

    def _prune(self) -> None:
        stale = time.monotonic() - float(settings.SFTP_CONNECTION_BURST_PER_ADDRESS) / max(
            float(settings.SFTP_CONNECTION_RATE_PER_ADDRESS) / 60, 1e-6
        )
        with self._lock:
            # A bucket that has refilled completely is the same as no bucket.
            for address in [a for a, (_, at) in self._buckets.items() if at < stale]:
                del self._buckets[address]
        try:
            services.defender_prune()
        except Exception:
            logger.exception("Could not prune the SFTP defender's rows")
        finally:
            connections.close_all()


def ban_lookup(address: str) -> datetime | None:
    """The database's answer for one address; a database error lets the connection in (its
    login needs the database anyway, and fails there if it is really down)."""
    try:
        return selectors.ban_for_address(address=address)
    except Exception:
        logger.exception("Could not look up a ban of %s", address)
        return None
    finally:
        connections.close_all()


def turn_away(sock: socket.socket) -> None:
    """Close a connection before the SSH handshake, with one line saying why."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(REFUSAL_LINE)
    with contextlib.suppress(OSError):
        sock.close()
