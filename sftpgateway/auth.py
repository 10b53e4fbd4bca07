"""How the gateway decides a login: passwords against the stored hash, registered public keys,
failure counting, lockouts and the delay that slows guessing down.

These functions are plain Python (no paramiko): the server interface calls them from paramiko's
transport thread and turns the answer into ``AUTH_SUCCESSFUL`` or ``AUTH_FAILED``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password, make_password
from django.utils import timezone

from sftpgateway import lockout, selectors, services
from sftpgateway.choices import ActivityEvent, AuthMethod
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


def _stall(failures: int) -> None:
    delay = lockout.failure_delay(failures)
    if delay > 0:
        time.sleep(delay)


def _locked(username: str, remote_address: str, *, for_password: bool) -> bool:
    if lockout.address_locked_until(remote_address):
        return True
    return for_password and lockout.username_locked_until(username) is not None


def password_check(
    *, username: str, password: str | bytes, remote_address: str
) -> LoginGrant | None:
    """Check a password login; a failure is counted, logged, stalled and may lock out.

    While the username or the address is locked out, every password is refused, the right one
    too, without counting further failures.
    """
    if _locked(username, remote_address, for_password=True):
        logger.info("SFTP login refused for %r from %s: locked out", username, remote_address)
        _stall(1)
        return None
    credential = selectors.credential_for_login(username=username)
    if (
        credential is not None
        and credential.locked_until is not None
        and credential.locked_until > timezone.now()
    ):
        logger.info("SFTP login refused for %r from %s: locked out", username, remote_address)
        _stall(1)
        return None
    encoded = credential.password_hash if credential else _dummy_password_hash()
    # Non-UTF-8 passwords arrive as bytes; they never match, but are hashed all the same.
    candidate = password if isinstance(password, str) else password.decode("utf-8", "replace")
    matched = check_password(candidate, encoded) and isinstance(password, str)
    if credential is not None and matched:
        return LoginGrant(credential=credential, method=AuthMethod.PASSWORD)

    outcome = lockout.failure_register(username=username, address=remote_address)
    logger.warning(
        "SFTP login failed for %r from %s (%d recent failures)",
        username,
        remote_address,
        outcome.failures,
    )
    services.activity_record(
        event=ActivityEvent.LOGIN_FAILED,
        username=username,
        credential=credential,
        remote_address=remote_address,
        detail="Wrong password." if credential else "Unknown or revoked username.",
    )
    if outcome.locked_until is not None:
        logger.warning(
            "SFTP username %r and address %s locked out until %s",
            username,
            remote_address,
            outcome.locked_until.isoformat(),
        )
        services.lockout_record(
            username=username,
            credential=credential,
            remote_address=remote_address,
            until=outcome.locked_until,
        )
    _stall(outcome.failures)
    return None


def publickey_check(
    *, username: str, fingerprint: str, public_key: str, remote_address: str
) -> LoginGrant | None:
    """Whether the offered key is registered for the username.

    Clients offer keys one after the other before signing with one, so a key that is not
    registered is not a failed login and does not count towards a lockout. A username lockout
    (password guessing) does not block keys either, which nobody can guess; an address lockout
    does.
    """
    if _locked(username, remote_address, for_password=False):
        logger.info("SFTP key login refused for %r from %s: locked out", username, remote_address)
        return None
    credential = selectors.credential_for_login(username=username)
    if credential is None:
        return None
    key = selectors.key_for_login(
        credential=credential, fingerprint=fingerprint, public_key=public_key
    )
    if key is None:
        return None
    return LoginGrant(
        credential=credential,
        method=AuthMethod.PUBLIC_KEY,
        key_id=key.pk,
        key_name=key.name,
        key_fingerprint=key.fingerprint,
    )
