"""Writes of the SFTP gateway: issuing, rotating and revoking credentials, public keys, the
activity log, and recording what the gateway receives.

Passwords are generated here, returned once to the caller, and only their hash is stored; audit
rows never carry a password or a hash.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.services import Actor, audit_record
from config.api.errors import Conflict, InvalidInput
from connectors.feeds import FEED_TYPES
from integrations.models import Integration
from sftpgateway import lockout
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity, SftpCredential, SftpKey
from sftpgateway.publickeys import PublicKeyError, parse_public_key
from syncengine.services import feed_file_receive

logger = logging.getLogger(__name__)

USERNAME_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
USERNAME_SUFFIX_LENGTH = 6
# Letters and digits only: partners paste the password into shell scripts and GUI clients.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32
CREDENTIAL = "sftp_credential"
KEY = "sftp_key"


@dataclass(frozen=True)
class IssuedSecret:
    """A credential with the password that was just set; the only time the password exists."""

    credential: SftpCredential
    password: str

    def as_response(self) -> dict[str, Any]:
        return {
            "host": settings.SFTP_PUBLIC_HOST,
            "port": settings.SFTP_PORT,
            "username": self.credential.username,
            "password": self.password,
        }


def _new_username(integration_type: str) -> str:
    suffix = "".join(
        secrets.choice(USERNAME_SUFFIX_ALPHABET) for _ in range(USERNAME_SUFFIX_LENGTH)
    )
    return f"{integration_type}_{suffix}"


def _new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _audit_credential(
    credential: SftpCredential, actor: Actor, action: str, changes: dict[str, Any]
) -> None:
    audit_record(
        account=credential.account,
        actor=actor,
        resource_type=CREDENTIAL,
        resource_id=credential.pk,
        action=action,
        changes=changes,
        integration_id=credential.integration_id,
    )


@transaction.atomic
def credential_issue(*, integration: Integration, actor: Actor) -> IssuedSecret:
    """Create the SFTP login of a feed integration: ``<type>_<6 random>`` and a random password."""
    password = _new_password()
    for _attempt in range(10):
        username = _new_username(integration.type)
        if SftpCredential.objects.filter(username=username).exists():
            continue
        try:
            # A savepoint, so that losing a race for the username to a concurrent create does
            # not break the surrounding integration transaction.
            with transaction.atomic():
                credential = SftpCredential.objects.create(
                    account_id=integration.account_id,
                    integration=integration,
                    username=username,
                    password_hash=make_password(password),
                )
        except IntegrityError:
            continue
        break
    else:  # pragma: no cover - 36**6 names; ten collisions in a row means something else is wrong
        raise Conflict("Could not pick a unique SFTP username; try again.")
    _audit_credential(
        credential, actor, AuditAction.CREATED, {"username": {"before": None, "after": username}}
    )
    return IssuedSecret(credential=credential, password=password)


def integration_created_hook(integration: Integration, actor: Actor) -> dict[str, Any] | None:
    """``integrations.hooks`` callback: a new feed integration (or clone) gets its SFTP login."""
    if integration.type not in FEED_TYPES:
        return None
    return {"sftp": credential_issue(integration=integration, actor=actor).as_response()}


@transaction.atomic
def credential_rotate(*, integration: Integration, actor: Actor) -> IssuedSecret:
    """Set a new password; the old one stops working at once (and its live sessions are dropped).

    A feed integration without credentials (created before the gateway existed) gets new ones.
    A revoked credential of a live integration (restored by an operator) becomes valid again.
    """
    credential = SftpCredential.objects.select_for_update().filter(integration=integration).first()
    if credential is None:
        return credential_issue(integration=integration, actor=actor)
    password = _new_password()
    now = timezone.now()
    changes: dict[str, Any] = {
        "rotatedAt": {
            "before": credential.rotated_at.isoformat() if credential.rotated_at else None,
            "after": now.isoformat(),
        }
    }
    if credential.revoked_at is not None:
        changes["revokedAt"] = {"before": credential.revoked_at.isoformat(), "after": None}
    if credential.locked_until is not None:
        changes["lockedUntil"] = {"before": credential.locked_until.isoformat(), "after": None}
    credential.password_hash = make_password(password)
    credential.secret_version += 1
    credential.rotated_at = now
    credential.revoked_at = None
    credential.locked_until = None
    credential.save(
        update_fields=[
            "password_hash",
            "secret_version",
            "rotated_at",
            "revoked_at",
            "locked_until",
        ]
    )
    # Failures counted against the old password say nothing about the new one. (Clearing them
    # is harmless should this transaction roll back.)
    lockout.username_unlock(credential.username)
    _audit_credential(credential, actor, AuditAction.UPDATED, changes)
    return IssuedSecret(credential=credential, password=password)


@transaction.atomic
def credential_revoke(*, credential: SftpCredential, actor: Actor) -> SftpCredential:
    """Refuse every login of this credential from now on; the gateway drops its live sessions."""
    credential = SftpCredential.objects.select_for_update().get(pk=credential.pk)
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
        _audit_credential(
            credential,
            actor,
            AuditAction.REVOKED,
            {"revokedAt": {"before": None, "after": credential.revoked_at.isoformat()}},
        )
    return credential


def integration_deleted_hook(integration: Integration, actor: Actor) -> None:
    """``integrations.hooks`` callback: deleting an integration revokes its SFTP credentials."""
    credential = SftpCredential.objects.filter(integration=integration).first()
    if credential is not None:
        credential_revoke(credential=credential, actor=actor)


@transaction.atomic
def credential_unlock(*, credential: SftpCredential, actor: Actor) -> SftpCredential:
    """Lift a username lockout before it expires (operators, from the admin)."""
    if credential.locked_until is not None:
        before = credential.locked_until.isoformat()
        credential.locked_until = None
        credential.save(update_fields=["locked_until"])
        _audit_credential(
            credential,
            actor,
            AuditAction.UPDATED,
            {"lockedUntil": {"before": before, "after": None}},
        )
    lockout.username_unlock(credential.username)
    return credential


# --- public keys ---------------------------------------------------------------------------------


@transaction.atomic
def key_add(*, credential: SftpCredential, actor: Actor, name: str, public_key: str) -> SftpKey:
    """Register a public key for the credential's username; a bad or weak key is a 400."""
    try:
        parsed = parse_public_key(public_key)
    except PublicKeyError as exc:
        raise InvalidInput(str(exc), details={"publicKey": [str(exc)]}) from None
    if SftpKey.objects.filter(credential=credential, fingerprint=parsed.fingerprint).exists():
        raise Conflict(
            "This public key is already registered for these credentials.",
            details={"fingerprint": parsed.fingerprint},
        )
    key = SftpKey.objects.create(
        account_id=credential.account_id,
        credential=credential,
        name=name,
        key_type=parsed.key_type,
        bits=parsed.bits,
        public_key=parsed.public_key,
        fingerprint=parsed.fingerprint,
    )
    audit_record(
        account=credential.account,
        actor=actor,
        resource_type=KEY,
        resource_id=key.pk,
        action=AuditAction.CREATED,
        changes={
            "name": {"before": None, "after": name},
            "keyType": {"before": None, "after": parsed.key_type},
            "fingerprint": {"before": None, "after": parsed.fingerprint},
        },
        integration_id=credential.integration_id,
    )
    return key


@transaction.atomic
def key_delete(*, key: SftpKey, actor: Actor) -> None:
    """Remove a public key; sessions that logged in with it are dropped by the gateway."""
    audit_record(
        account=key.account,
        actor=actor,
        resource_type=KEY,
        resource_id=key.pk,
        action=AuditAction.DELETED,
        changes={
            "name": {"before": key.name, "after": None},
            "fingerprint": {"before": key.fingerprint, "after": None},
        },
        integration_id=key.credential.integration_id,
    )
    key.delete()


# --- what the gateway records --------------------------------------------------------------


def activity_record(
    *,
    event: str,
    username: str = "",
    credential: SftpCredential | None = None,
    remote_address: str = "",
    path: str = "",
    size: int | None = None,
    sha256: str = "",
    feed_file_id: Any = None,
    detail: str = "",
) -> SftpActivity:
    """Append one row to the gateway's activity log (shown by ``GET .../sftp/activity``)."""
    return SftpActivity.objects.create(
        event=event,
        username=username[:64] or (credential.username if credential else ""),
        credential=credential,
        account_id=credential.account_id if credential else None,
        integration_id=credential.integration_id if credential else None,
        remote_address=remote_address[:64],
        path=path[:1024],
        size=size,
        sha256=sha256,
        feed_file_id=feed_file_id,
        detail=detail[:500],
    )


@transaction.atomic
def login_record(*, credential: SftpCredential, remote_address: str, detail: str) -> None:
    """A partner logged in: remember when and from where, and log it."""
    now = timezone.now()
    SftpCredential.objects.filter(pk=credential.pk).update(
        last_login_at=now, last_login_address=remote_address[:64]
    )
    activity_record(
        event=ActivityEvent.LOGIN,
        credential=credential,
        remote_address=remote_address,
        detail=detail,
    )


@transaction.atomic
def lockout_record(
    *, username: str, credential: SftpCredential | None, remote_address: str, until: datetime
) -> None:
    """Failures reached the threshold: the username and the address are locked until ``until``."""
    if credential is not None:
        SftpCredential.objects.filter(pk=credential.pk).update(locked_until=until)
    activity_record(
        event=ActivityEvent.LOCKOUT,
        username=username,
        credential=credential,
        remote_address=remote_address,
        detail=f"Locked out until {until.isoformat()} after repeated failed logins.",
    )


@transaction.atomic
def upload_receive(
    *,
    credential: SftpCredential,
    source_path: Path,
    filename: str,
    size: int,
    sha256: str,
    remote_address: str,
    detail: str = "",
) -> SftpActivity:
    """A complete upload: hand it to the sync engine and log it, in one transaction.

    The feed file row is committed when this returns, before the gateway answers the client's
    close; its ingestion task is sent after the commit.
    """
    feed_file = feed_file_receive(
        integration=credential.integration,
        source_path=source_path,
        filename=filename,
        size=size,
        sha256=sha256,
        remote_address=remote_address,
    )
    return activity_record(
        event=ActivityEvent.UPLOAD,
        credential=credential,
        remote_address=remote_address,
        path=filename,
        size=size,
        sha256=sha256,
        feed_file_id=feed_file.pk,
        detail=detail,
    )


def activity_prune(*, older_than_days: int) -> int:
    """Delete activity rows older than the retention window; returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = SftpActivity.objects.filter(created_at__lt=cutoff).delete()
    return deleted
