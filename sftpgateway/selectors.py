"""Reads of the SFTP gateway: tenant-scoped lookups for the API, the gateway's login checks and
the defender's bans."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import Account
from connectors.feeds import FEED_TYPES
from integrations.models import Integration
from sftpgateway.models import DefenderHost, SftpActivity, SftpCredential, SftpKey


def feed_integrations(*, account: Account) -> QuerySet[Integration]:
    """The account's live integrations that receive files over SFTP."""
    return Integration.objects.filter(account=account, type__in=FEED_TYPES)


def credential_for_integration(*, integration: Integration) -> SftpCredential | None:
    return SftpCredential.objects.filter(integration=integration).first()


def credential_keys(*, credential: SftpCredential) -> QuerySet[SftpKey]:
    return SftpKey.objects.filter(credential=credential)


def integration_activity(*, integration: Integration) -> QuerySet[SftpActivity]:
    return SftpActivity.objects.filter(integration_id=integration.pk)


def _usable_credentials() -> QuerySet[SftpCredential]:
    # Integration's default manager hides soft-deleted rows, but a join does not use it.
    return SftpCredential.objects.filter(
        revoked_at__isnull=True, integration__deleted_at__isnull=True
    )


def credential_for_login(*, username: str) -> SftpCredential | None:
    """The credential a username may log in with: not revoked, its integration not deleted."""
    return _usable_credentials().select_related("integration").filter(username=username).first()


def key_for_login(
    *, credential: SftpCredential, fingerprint: str, public_key: str
) -> SftpKey | None:
    """The registered key matching an offered one (fingerprint first, then the exact blob)."""
    return SftpKey.objects.filter(
        credential=credential, fingerprint=fingerprint, public_key=public_key
    ).first()


def session_is_valid(
    *, credential_id: uuid.UUID, secret_version: int, key_id: uuid.UUID | None
) -> bool:
    """Whether a live session may go on: one indexed query, run every couple of seconds.

    A password session ends when the password is rotated; a key session when its key is
    deleted; both when the credential is revoked or the integration deleted.
    """
    queryset = _usable_credentials().filter(pk=credential_id)
    if key_id is None:
        queryset = queryset.filter(secret_version=secret_version)
    else:
        queryset = queryset.filter(
            Exists(SftpKey.objects.filter(pk=key_id, credential_id=OuterRef("pk")))
        )
    return queryset.exists()


def ban_for_address(*, address: str) -> datetime | None:
    """When the ban of a source address ends, or None if it is not banned (one indexed read)."""
    return (
        DefenderHost.objects.filter(address=address, banned_until__gt=timezone.now())
        .values_list("banned_until", flat=True)
        .first()
    )


def banned_hosts() -> QuerySet[DefenderHost]:
    """Addresses banned right now, the longest ban first."""
    return DefenderHost.objects.filter(banned_until__gt=timezone.now()).order_by("-banned_until")
