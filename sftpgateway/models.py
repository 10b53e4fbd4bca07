"""SFTP credentials of feed integrations, their public keys, the gateway's activity log, and the
defender's view of source addresses (scores and bans)."""

from __future__ import annotations

import uuid

from django.db import models

from accounts.models import Account
from integrations.models import Integration
from sftpgateway.choices import ActivityEvent, DefenderEventKind


class SftpCredential(models.Model):
    """The SFTP login of one feed integration: a username, a password hash, public keys.

    The password itself is shown once (in the create or rotate response) and never stored.
    ``secret_version`` grows with every rotation, so the gateway can tell a live session that
    logged in with a password that is no longer valid and drop it. Deleting the integration
    revokes the credential (``revoked_at``); the row stays for the activity log and the audit.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sftp_credentials")
    integration = models.OneToOneField(
        Integration, on_delete=models.CASCADE, related_name="sftp_credential"
    )
    username = models.CharField(max_length=64, unique=True)
    password_hash = models.CharField(max_length=255)
    secret_version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    last_login_address = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SFTP credential"

    def __str__(self) -> str:
        return self.username

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class SftpKey(models.Model):
    """A public key that may log in as its credential's username (OpenSSH ``authorized_keys``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sftp_keys")
    credential = models.ForeignKey(SftpCredential, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100)
    key_type = models.CharField(max_length=40)
    bits = models.PositiveIntegerField(default=0)
    public_key = models.TextField(help_text="Key type and base64 blob, without the comment.")
    fingerprint = models.CharField(max_length=64, help_text="SHA256, as OpenSSH prints it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SFTP public key"
        constraints = [
            models.UniqueConstraint(
                fields=["credential", "fingerprint"], name="sftpkey_unique_per_credential"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


class SftpActivity(models.Model):
    """One thing the gateway did for (or refused to) a partner: logins, uploads, refusals.

    ``integration_id`` is a plain UUID, like the audit trail's, so the log of an integration
    outlives it; failed logins with an unknown username belong to no account at all.
    """

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="sftp_activity"
    )
    credential = models.ForeignKey(
        SftpCredential,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activity",
    )
    integration_id = models.UUIDField(null=True, blank=True)
    username = models.CharField(max_length=64, blank=True, db_index=True)
    event = models.CharField(max_length=20, choices=ActivityEvent.choices)
    remote_address = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=1024, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    feed_file_id = models.UUIDField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "SFTP activity"
        verbose_name_plural = "SFTP activity"
        indexes = [models.Index(fields=["integration_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.username} {self.created_at:%Y-%m-%d %H:%M:%S}"


class DefenderHost(models.Model):
    """A source address the defender has scored: its ban, if any, and how often it was banned.

    Bans are per address, never per username: a partner's login works from its own address
    whatever others try with its name. The row is the lock that serialises the scoring of one
    address across gateway processes (``SELECT ... FOR UPDATE``). An address with neither a ban
    nor a recent event is forgotten after ``SFTP_DEFENDER_MAX_BAN_TIME_SECONDS``, and its ban
    count with it.
    """

    id = models.BigAutoField(primary_key=True)
    address = models.CharField(max_length=64, unique=True)
    banned_until = models.DateTimeField(null=True, blank=True, db_index=True)
    banned_at = models.DateTimeField(null=True, blank=True)
    ban_count = models.PositiveIntegerField(
        default=0, help_text="Bans so far; each one lasts longer than the one before."
    )
    ban_reason = models.CharField(max_length=300, blank=True)
    # Whose username the events that led to the ban named, if any: the ban and the refusals
    # during it then show in that integration's activity, so its owner can see why their
    # partner cannot connect.
    credential = models.ForeignKey(
        SftpCredential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refused_count = models.PositiveIntegerField(
        default=0, help_text="Connections refused during the current ban."
    )
    refused_activity = models.ForeignKey(
        SftpActivity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-banned_until", "-last_event_at"]
        verbose_name = "SFTP source address"
        verbose_name_plural = "SFTP source addresses (defender)"

    def __str__(self) -> str:
        return self.address


class DefenderEvent(models.Model):
    """One scored event of an address; the score is the sum over the observation window."""

    id = models.BigAutoField(primary_key=True)
    host = models.ForeignKey(DefenderHost, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=DefenderEventKind.choices)
    score = models.PositiveIntegerField()
    connections = models.PositiveIntegerField(
        default=1, help_text="Connections this row counts (those over the limits come in batches)."
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["host", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} +{self.score}"
