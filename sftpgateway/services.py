"""Writes of the SFTP gateway: issuing, rotating and revoking credentials, public keys, the
activity log, recording what the gateway receives, and the defender's scores and bans.

Passwords are generated here, returned once to the caller, and only their hash is stored; audit
rows never carry a password or a hash.

The defender keeps its state in the database, not in Redis: every gateway process shares it, and
logins keep working (and keep being defended) while Redis is down.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.services import Actor, audit_record
from config.api.errors import Conflict, InvalidInput
from config.retention import Pruned, prune_oldest
from connectors.feeds import FEED_TYPES
from integrations.models import Integration
from sftpgateway.choices import ActivityEvent, DefenderEventKind
from sftpgateway.models import (
    DefenderEvent,
    DefenderHost,
    SftpActivity,
    SftpCredential,
    SftpKey,
)
from sftpgateway.publickeys import PublicKeyError, parse_public_key
from sftpgateway.text import printable
from syncengine.feeds.services import feed_file_receive

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
    credential.password_hash = make_password(password)
    credential.secret_version += 1
    credential.rotated_at = now
    credential.revoked_at = None
    credential.save(update_fields=["password_hash", "secret_version", "rotated_at", "revoked_at"])
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
    """Append one row to the gateway's activity log (shown by ``GET .../sftp/activity``).

    The username and the detail are escaped (``text.printable``): both may carry what a client
    sent, and neither may hide a control character, or a NUL that PostgreSQL would refuse. The
    path is the file's real name, as the received-file row has it.
    """
    return SftpActivity.objects.create(
        event=event,
        username=printable(username)[:64] or (credential.username if credential else ""),
        credential=credential,
        account_id=credential.account_id if credential else None,
        integration_id=credential.integration_id if credential else None,
        remote_address=remote_address[:64],
        path=path.replace("\x00", "")[:1024],
        size=size,
        sha256=sha256,
        feed_file_id=feed_file_id,
        detail=_clip(printable(detail), 500),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


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


def activity_prune(*, cutoff: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` of the activity rows written before ``cutoff``, oldest first (the
    retention, ``SFTP_ACTIVITY_RETENTION_DAYS``); a ban that pointed at one keeps its count."""
    return prune_oldest(
        SftpActivity.objects.filter(created_at__lt=cutoff), date_field="created_at", limit=limit
    )


# --- the defender ----------------------------------------------------------------------------
#
# Modelled on SFTPGo's defender. Each event scores points against the source address (a wrong
# password, an unknown username, a connection that ends without logging in, connections over
# the per-address limits); points count for SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS. When an
# address's points reach SFTP_DEFENDER_THRESHOLD it is banned for SFTP_DEFENDER_BAN_TIME_SECONDS,
# each further ban SFTP_DEFENDER_BAN_TIME_INCREMENT_PERCENT longer, at most
# SFTP_DEFENDER_MAX_BAN_TIME_SECONDS. A banned address is turned away before the SSH handshake.

_SCORE_SETTINGS = {
    DefenderEventKind.LOGIN_FAILED: "SFTP_DEFENDER_SCORE_LOGIN_FAILED",
    DefenderEventKind.UNKNOWN_USER: "SFTP_DEFENDER_SCORE_UNKNOWN_USER",
    DefenderEventKind.NO_LOGIN: "SFTP_DEFENDER_SCORE_NO_LOGIN",
    DefenderEventKind.LIMIT_EXCEEDED: "SFTP_DEFENDER_SCORE_LIMIT_EXCEEDED",
}


@dataclass(frozen=True)
class DefenderVerdict:
    """An address's points in the observation window after an event, and its ban if it has one."""

    score: int
    banned_until: datetime | None = None


@functools.lru_cache(maxsize=8)
def _safelist(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in raw.split(",")
            if item.strip()
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"SFTP_DEFENDER_SAFELIST: {exc}") from None


def address_is_safelisted(address: str) -> bool:
    """Addresses in ``SFTP_DEFENDER_SAFELIST`` are never scored, banned or throttled per address
    (a monitoring probe, a load balancer that does not pass the client's address on)."""
    networks = _safelist(str(settings.SFTP_DEFENDER_SAFELIST))
    if not networks:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def defender_ban_seconds(*, previous_bans: int) -> int:
    """How long the next ban of an address lasts: longer for each earlier ban, capped."""
    base = float(settings.SFTP_DEFENDER_BAN_TIME_SECONDS)
    growth = 1 + float(settings.SFTP_DEFENDER_BAN_TIME_INCREMENT_PERCENT) / 100
    longest = float(settings.SFTP_DEFENDER_MAX_BAN_TIME_SECONDS)
    # min() before the power would overflow for an address banned hundreds of times.
    return int(min(base * growth ** min(previous_bans, 64), longest))


def _host_for_update(address: str) -> DefenderHost:
    # get_or_create survives a concurrent insert of the same address (it retries the get); the
    # row lock then serialises every scoring of this address, across gateway processes.
    DefenderHost.objects.get_or_create(address=address)
    return DefenderHost.objects.select_for_update().get(address=address)


def _describe(events: Iterable[Mapping[str, Any]]) -> str:
    labels = dict(DefenderEventKind.choices)
    return ", ".join(
        f"{row['connections']} x {labels.get(row['kind'], row['kind'])}"
        for row in sorted(events, key=lambda row: -row["points"])
    )


def defender_event_record(
    *,
    address: str,
    kind: str,
    count: int = 1,
    credential: SftpCredential | None = None,
) -> DefenderVerdict:
    """Score ``count`` events of one kind against ``address``; ban it at the threshold.

    Nothing is scored for a safelisted address, an event whose score is 0, or an address that
    is banned already (its connections are refused before they can do anything).
    """
    points = int(getattr(settings, _SCORE_SETTINGS[DefenderEventKind(kind)])) * count
    if points <= 0 or not address or address_is_safelisted(address):
        return DefenderVerdict(score=0)
    now = timezone.now()
    window = int(settings.SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS)
    with transaction.atomic():
        host = _host_for_update(address)
        if host.banned_until is not None and host.banned_until > now:
            return DefenderVerdict(score=0, banned_until=host.banned_until)
        DefenderEvent.objects.filter(
            host=host, created_at__lt=now - timedelta(seconds=window)
        ).delete()
        DefenderEvent.objects.create(
            host=host, kind=kind, score=points, connections=count, created_at=now
        )
        host.last_event_at = now
        if credential is not None:
            host.credential = credential
        events = list(
            DefenderEvent.objects.filter(host=host)
            .values("kind")
            .annotate(points=Sum("score"), connections=Sum("connections"))
        )
        score = sum(int(row["points"]) for row in events)
        threshold = int(settings.SFTP_DEFENDER_THRESHOLD)
        if score < threshold:
            host.save(update_fields=["last_event_at", "credential"])
            return DefenderVerdict(score=score)
        seconds = defender_ban_seconds(previous_bans=host.ban_count)
        host.banned_until = now + timedelta(seconds=seconds)
        host.banned_at = now
        host.ban_count += 1
        host.ban_reason = f"{score} points in {window} s: {_describe(events)}"[:300]
        host.refused_count = 0
        host.refused_activity = None
        host.save()
        # Points start again from zero when the ban ends.
        DefenderEvent.objects.filter(host=host).delete()
        activity_record(
            event=ActivityEvent.BAN,
            credential=host.credential,
            remote_address=address,
            detail=f"Address banned for {seconds} s, until {host.banned_until.isoformat()} "
            f"(ban {host.ban_count}): {host.ban_reason}.",
        )
    logger.warning(
        "SFTP defender: banned %s for %d s (ban %d): %s",
        address,
        seconds,
        host.ban_count,
        host.ban_reason,
    )
    return DefenderVerdict(score=score, banned_until=host.banned_until)


@transaction.atomic
def defender_refusals_record(*, address: str, count: int) -> None:
    """Connections of a banned address were turned away: one activity row per ban says how many.

    The row is written at the first refusal and its count kept current, so a client retrying in
    a loop fills neither the log nor the database.
    """
    host = DefenderHost.objects.select_for_update().filter(address=address).first()
    if host is None or host.banned_until is None or host.banned_until <= timezone.now():
        return  # lifted (or over) while these were counted
    host.refused_count += count
    detail = printable(
        f"Connections refused while banned: {host.refused_count} "
        f"(banned until {host.banned_until.isoformat()})."
    )
    if host.refused_activity_id is not None:
        updated = SftpActivity.objects.filter(pk=host.refused_activity_id).update(detail=detail)
        if updated:
            host.save(update_fields=["refused_count"])
            return
    host.refused_activity = activity_record(
        event=ActivityEvent.REFUSED,
        credential=host.credential,
        remote_address=address,
        detail=detail,
    )
    host.save(update_fields=["refused_count", "refused_activity"])


def defender_ban_lift(*, address: str, lifted_by: str) -> bool:
    """Lift a ban and forget the address: its points and its ban count start again from zero.

    Gateway processes that cached the ban let the address in again within a few seconds
    (``defender.BAN_RECHECK_SECONDS``). Returns whether the address was banned.
    """
    with transaction.atomic():
        host = DefenderHost.objects.select_for_update().filter(address=address).first()
        if host is None:
            return False
        was_banned = host.banned_until is not None and host.banned_until > timezone.now()
        credential = host.credential
        host.delete()
        if was_banned:
            activity_record(
                event=ActivityEvent.UNBAN,
                credential=credential,
                remote_address=address,
                detail=f"Ban lifted by {lifted_by}.",
            )
    if was_banned:
        logger.info("SFTP defender: ban of %s lifted by %s", address, lifted_by)
    return was_banned


def defender_prune() -> int:
    """Drop points older than the observation window, and addresses with nothing left to
    remember: no ban and no event for ``SFTP_DEFENDER_MAX_BAN_TIME_SECONDS``."""
    now = timezone.now()
    window = timedelta(seconds=int(settings.SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS))
    memory = now - timedelta(seconds=int(settings.SFTP_DEFENDER_MAX_BAN_TIME_SECONDS))
    DefenderEvent.objects.filter(created_at__lt=now - window).delete()
    forgotten = (
        DefenderHost.objects.filter(Q(banned_until__isnull=True) | Q(banned_until__lt=memory))
        .filter(Q(last_event_at__isnull=True) | Q(last_event_at__lt=memory))
        .filter(~Exists(DefenderEvent.objects.filter(host=OuterRef("pk"))))
    )
    return int(forgotten.delete()[1].get(DefenderHost._meta.label, 0))


def defender_failure_delay(score: int) -> float:
    """Seconds to stall a failed login: grows with the address's points, capped."""
    base = float(settings.SFTP_FAILURE_DELAY_SECONDS)
    cap = float(settings.SFTP_FAILURE_DELAY_MAX_SECONDS)
    return min(base * max(score, 1), cap)
