"""How the gateway decides a login: passwords against the stored hash, registered public keys,
the defender's bans and scores, and the delay that slows guessing down.

These functions are plain Python (no paramiko): the server interface calls them from paramiko's
transport thread and turns the answer into ``AUTH_SUCCESSFUL`` or ``AUTH_FAILED``. Nothing here
uses Redis: credentials, scores and bans are all in the database, so a Redis outage cannot turn
into refused logins.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.hashers import check_password, make_password

from sftpgateway import selectors, services
from sftpgateway.choices import ActivityEvent, AuthMethod, DefenderEventKind
from sftpgateway.models import SftpCredential

logger = logging.getLogger(__name__)

_dummy_hash_lock = threading.Lock()
_dummy_hash: str | None = None


def _dummy_password_hash() -> str:
    """A real hash of a random password, so an unknown username costs as much as a known one."""
    global _dummy_hash
    with _dummy_hash_lock:
        if _dummy_hash is None:
            _dummy_hash = make_password(secrets.token_urlsafe(24))
        return _dummy_hash


@dataclass(frozen=True)
class LoginGrant:
    """Who a successful login is: the credential, how it authenticated, and with which key."""

    credential: SftpCredential
    method: str
    key_id: uuid.UUID | None = None
    key_name: str = ""
    key_fingerprint: str = ""

    @property
    def detail(self) -> str:
        if self.method == AuthMethod.PUBLIC_KEY:
            return f"Public key {self.key_name!r} ({self.key_fingerprint})."
        return "Password."


@dataclass(frozen=True)
class LoginAttempt:
    """The answer to one authentication request.

    ``scored`` says the defender counted it (a wrong password, an unknown username);
    ``banned_until`` is set when the source address is banned, by this failure or before it, and
    the connection should end.
    """

    grant: LoginGrant | None = None
    scored: bool = False
    banned_until: datetime | None = None


def _banned(username: str, remote_address: str) -> LoginAttempt | None:
    # Connections of a banned address are turned away before the handshake; this catches the
    # ones that were already open when the ban began.
    until = selectors.ban_for_address(address=remote_address)
    if until is None:
        return None
    logger.info("SFTP login refused for %r from %s: address banned", username, remote_address)
    return LoginAttempt(banned_until=until)


def password_check(*, username: str, password: str | bytes, remote_address: str) -> LoginAttempt:
    """Check a password login. A failure is logged, scored against the source address (which
    may ban it) and stalled; it never locks the username for anyone else."""
    banned = _banned(username, remote_address)
    if banned is not None:
        return banned
    credential = selectors.credential_for_login(username=username)
    encoded = credential.password_hash if credential else _dummy_password_hash()
    # Non-UTF-8 passwords arrive as bytes; they never match, but are hashed all the same.
    candidate = password if isinstance(password, str) else password.decode("utf-8", "replace")
    matched = check_password(candidate, encoded) and isinstance(password, str)
    if credential is not None and matched:
        return LoginAttempt(grant=LoginGrant(credential=credential, method=AuthMethod.PASSWORD))

    services.activity_record(
        event=ActivityEvent.LOGIN_FAILED,
        username=username,
        credential=credential,
        remote_address=remote_address,
        detail="Wrong password." if credential else "Unknown or revoked username.",
    )
    verdict = services.defender_event_record(
        address=remote_address,
        kind=DefenderEventKind.LOGIN_FAILED if credential else DefenderEventKind.UNKNOWN_USER,
        credential=credential,
    )
    logger.warning(
        "SFTP login failed for %r from %s (address score %d)",
        username,
        remote_address,
        verdict.score,
    )
    if verdict.banned_until is None:
        delay = services.defender_failure_delay(verdict.score)
        if delay > 0:
            time.sleep(delay)
    return LoginAttempt(scored=True, banned_until=verdict.banned_until)


def publickey_check(
    *, username: str, fingerprint: str, public_key: str, remote_address: str
) -> LoginAttempt:
    """Whether the offered key is registered for the username.

    Clients offer keys one after the other before signing with one, so a key that is not
    registered is not a failed login and is not scored (a connection that never logs in is, when
    it ends). Failed passwords for the same username, from anywhere, never block its keys; only
    a ban of the address the key comes from does.
    """
    banned = _banned(username, remote_address)
    if banned is not None:
        return banned
    credential = selectors.credential_for_login(username=username)
    if credential is None:
        return LoginAttempt()
    key = selectors.key_for_login(
        credential=credential, fingerprint=fingerprint, public_key=public_key
    )
    if key is None:
        return LoginAttempt()
    return LoginAttempt(
        grant=LoginGrant(
            credential=credential,
            method=AuthMethod.PUBLIC_KEY,
            key_id=key.pk,
            key_name=key.name,
            key_fingerprint=key.fingerprint,
        )
    )
