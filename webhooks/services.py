"""Write operations of webhooks: endpoints and their secrets, the outbox, test sends,
redelivery and replay, disabling, pruning.

Delivery itself (claiming due rows, attempts, retries) is ``webhooks.delivery``.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.choices import AuditAction, EventType
from accounts.models import Account, Event
from accounts.services import (
    Actor,
    audit_record,
    event_record,
    resource_create,
    resource_delete,
    resource_update,
)
from config.api.errors import BadRequest, Conflict, InvalidInput, NotFound
from config.crypto import decrypt_json, encrypt_json
from config.egress import EgressRefused, egress_resolve
from integrations.models import Integration
from webhooks.choices import DeliveryStatus, DeliveryTrigger
from webhooks.dispatch import endpoint_kick, endpoints_kick
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookMessage
from webhooks.payloads import integration_names, message_body
from webhooks.schedule import outcome_apply
from webhooks.sender import AttemptResult, attempt_send, http_client, url_problem
from webhooks.signing import secret_generate

WEBHOOK_FIELDS = ["url", "description", "events", "integration_ids", "is_active", "ordered"]
# After a rotation the previous secret signs too for this long.
ROTATION_OVERLAP = timedelta(hours=24)
# A replay sends at most this many events; a longer one is refused (narrow ``since``).
REPLAY_MAX_EVENTS = 50_000
# How long a test send may hold its delivery (the request waits for it).
_TEST_LEASE = timedelta(minutes=2)


# --- endpoints ---------------------------------------------------------------------------------


def webhook_url_check(url: str) -> None:
    """Refuse a URL that may not receive webhooks: its scheme, or the egress policy for the
    addresses its host resolves to now (checked again at every delivery)."""
    problem = url_problem(url)
    if problem is not None:
        raise InvalidInput(problem, details={"url": [problem]})
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        message = "The URL's port is invalid."
        raise InvalidInput(message, details={"url": [message]}) from None
    try:
        egress_resolve(parts.hostname or "", port)
    except EgressRefused as refused:
        raise InvalidInput(refused.message, details={"url": [refused.message]}) from None
    except OSError:
        message = f"{parts.hostname} does not resolve."
        raise InvalidInput(message, details={"url": [message]}) from None


def _integration_ids_check(account: Account, integration_ids: list[Any]) -> list[str]:
    wanted = sorted({str(value) for value in integration_ids})
    found = {
        str(pk)
        for pk in Integration.objects.filter(account=account, pk__in=wanted).values_list(
            "pk", flat=True
        )
    }
    unknown = [value for value in wanted if value not in found]
    if unknown:
        message = f"No such integration in this account: {', '.join(unknown)}."
        raise InvalidInput(message, details={"integrationIds": [message]})
    return wanted


@transaction.atomic
def webhook_create(
    *,
    account: Account,
    actor: Actor,
    url: str,
    events: list[str],
    integration_ids: list[Any] | None = None,
    description: str = "",
    is_active: bool = True,
    ordered: bool = True,
) -> tuple[Webhook, str]:
    """Create an endpoint; returns it and its signing secret, which is never shown again."""
    webhook_url_check(url)
    secret = secret_generate()
    webhook = resource_create(
        instance=Webhook(
            account=account,
            url=url,
            events=list(events),
            integration_ids=_integration_ids_check(account, integration_ids or []),
            description=description,
            is_active=is_active,
            ordered=ordered,
            secret_encrypted=encrypt_json(secret),
        ),
        actor=actor,
        resource_type="webhook",
        fields=WEBHOOK_FIELDS,
    )
    return webhook, secret


@transaction.atomic
def webhook_update(*, webhook: Webhook, actor: Actor, **values: Any) -> Webhook:
    """Change an endpoint. Enabling a disabled one clears why it was disabled; its pending
    deliveries then go out."""
    if "url" in values and values["url"] != webhook.url:
        webhook_url_check(values["url"])
    if "integration_ids" in values:
        values["integration_ids"] = _integration_ids_check(
            webhook.account, values["integration_ids"] or []
        )
    enabled = values.get("is_active") is True and not webhook.is_active
    if enabled:
        webhook.disabled_at = None
        webhook.disabled_reason = ""
        webhook.failing_since = None
    webhook = resource_update(
        instance=webhook, actor=actor, resource_type="webhook", fields=WEBHOOK_FIELDS, values=values
    )
    if enabled:
        transaction.on_commit(functools.partial(endpoint_kick, webhook.pk), robust=True)
    return webhook


def webhook_delete(*, webhook: Webhook, actor: Actor) -> None:
    """Delete an endpoint with its delivery log."""
    resource_delete(instance=webhook, actor=actor, resource_type="webhook", fields=WEBHOOK_FIELDS)


@transaction.atomic
def webhook_secret_rotate(*, webhook: Webhook, actor: Actor) -> tuple[Webhook, str]:
    """A new signing secret; the current one keeps signing beside it for ``ROTATION_OVERLAP``
    (a previous one still in its overlap is dropped now). Returns the new secret, shown once."""
    locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
    secret = secret_generate()
    now = timezone.now()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_expires_at = now + ROTATION_OVERLAP
    locked.secret_encrypted = encrypt_json(secret)
    locked.save(
        update_fields=[
            "secret_encrypted",
            "previous_secret_encrypted",
            "previous_secret_expires_at",
            "updated_at",
        ]
    )
    audit_record(
        account=locked.account,
        actor=actor,
        resource_type="webhook",
        resource_id=locked.pk,
        action="secret_rotated",
        changes={
            "previousSecretExpiresAt": {
                "before": None,
                "after": locked.previous_secret_expires_at.isoformat(),
            }
        },
    )
    return locked, secret


def signing_secrets(webhook: Webhook, *, now: datetime | None = None) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during the
    overlap after a rotation."""
    now = now or timezone.now()
    secrets = [str(decrypt_json(webhook.secret_encrypted))]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted and expires is not None and expires > now:
        secrets.append(str(decrypt_json(webhook.previous_secret_encrypted)))
    return secrets


@transaction.atomic
def webhook_disable(*, webhook_id: Any, reason: str) -> bool:
    """Disable an endpoint that fails (410, or every attempt for days): record
    ``webhook.disabled``. False when it was not active any more."""
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id, is_active=True).first()
    if webhook is None:
        return False
    webhook.is_active = False
    webhook.disabled_at = timezone.now()
    webhook.disabled_reason = reason[:500]
    webhook.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])
    audit_record(
        account=webhook.account,
        actor=Actor.system(),
        resource_type="webhook",
        resource_id=webhook.pk,
        action=AuditAction.UPDATED,
        changes={
            "is_active": {"before": True, "after": False},
            "disabled_reason": {"before": "", "after": webhook.disabled_reason},
        },
    )
    event_record(
        account=webhook.account,
        type=EventType.WEBHOOK_DISABLED,
        payload={
            "webhook": {
                "id": str(webhook.pk),
                "url": webhook.url,
                "description": webhook.description,
            },
            "reason": webhook.disabled_reason,
        },
    )
    return True


# --- the outbox --------------------------------------------------------------------------------


def _message(event: Event, *, names: Mapping[Any, str] | None = None) -> WebhookMessage:
    return WebhookMessage(
        id=event.pk,
        account_id=event.account_id,
        event_type=event.type,
        integration_id=event.integration_id,
        body=message_body(event, names=names),
        created_at=event.created_at,
    )


def webhook_outbox_write(*, event: Event) -> list[WebhookDelivery]:
    """Write the deliveries of ``event`` to every active endpoint that subscribes to it, in the
    transaction that records the event; each endpoint's drain is sent once it commits.

    ``webhook.test`` goes only to the endpoint being tested (``webhook_test``)."""
    if event.type == EventType.WEBHOOK_TEST:
        return []
    endpoints = [
        webhook
        for webhook in Webhook.objects.filter(account_id=event.account_id, is_active=True).only(
            "id", "events", "integration_ids", "ordered", "failing_since"
        )
        if webhook.subscribes_to(event.type, event.integration_id)
    ]
    if not endpoints:
        return []
    message = _message(event)
    message.save(force_insert=True)
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                webhook_id=webhook.pk,
                message=message,
                integration_id=event.integration_id,
                ordered=webhook.ordered,
                next_attempt_at=event.created_at,
            )
            for webhook in endpoints
        ]
    )
    transaction.on_commit(
        functools.partial(
            outbox_kick,
            webhook_ids=[webhook.pk for webhook in endpoints],
            failing_ids=[
                webhook.pk
                for webhook in endpoints
                if webhook.ordered and webhook.failing_since is not None
            ],
            integration_id=event.integration_id,
        ),
        robust=True,
    )
    return deliveries


def outbox_kick(*, webhook_ids: list[Any], failing_ids: list[Any], integration_id: Any) -> None:
    """After an event's deliveries commit: send the drain of each endpoint that may send its new
    delivery now. An ordered endpoint that is failing (``failing_ids``) and whose chain for this
    integration waits for a retry is left out: the new delivery waits behind that retry, and
    whatever wakes the endpoint for the retry (a delayed drain, or the sweep) sends it too, as it
    is committed by then. So the events of a broken endpoint go to its outbox without waking its
    drain for each one, and those of a healthy one cost no query to find that out."""
    waiting: set[Any] = set()
    if failing_ids:
        chain = (
            Q(integration_id=integration_id)
            if integration_id is not None
            else Q(integration_id__isnull=True)
        )
        waiting_for_retry = WebhookDelivery.objects.filter(
            chain,
            webhook_id=OuterRef("pk"),
            status=DeliveryStatus.PENDING,
            ordered=True,
            next_attempt_at__gt=timezone.now(),
        )
        waiting = set(
            Webhook.objects.filter(pk__in=failing_ids)
            .filter(Exists(waiting_for_retry))
            .values_list("pk", flat=True)
        )
    endpoints_kick(pk for pk in webhook_ids if pk not in waiting)


def outbox_on_event_recorded(sender: Any, *, event: Event, **kwargs: Any) -> None:
    """Receiver of ``accounts.services.event_recorded`` (connected in ``WebhooksConfig``)."""
    webhook_outbox_write(event=event)


# --- test, redelivery, replay ------------------------------------------------------------------


def attempt_record(delivery: WebhookDelivery, result: AttemptResult) -> WebhookAttempt:
    """Keep one attempt of ``delivery`` and its outcome."""
    outcome_apply(delivery, result)
    with transaction.atomic():
        delivery.save()
        attempt = WebhookAttempt.of(delivery, result)
        attempt.save()
        return attempt


def webhook_test(*, webhook: Webhook, actor: Actor) -> WebhookAttempt:
    """Send a ``webhook.test`` event to this endpoint now (active or not) and return the
    attempt. A test is attempted once and never changes the endpoint's health."""
    now = timezone.now()
    with transaction.atomic():
        event = event_record(
            account=webhook.account,
            type=EventType.WEBHOOK_TEST,
            payload={
                "webhook": {
                    "id": str(webhook.pk),
                    "url": webhook.url,
                    "description": webhook.description,
                },
                "requestedBy": actor.name,
            },
        )
        message = _message(event)
        message.save(force_insert=True)
        delivery = WebhookDelivery.objects.create(
            webhook=webhook,
            message=message,
            ordered=False,
            trigger=DeliveryTrigger.TEST,
            next_attempt_at=now,
            claimed_until=now + _TEST_LEASE,
        )
    with http_client() as client:
        result = attempt_send(
            client,
            url=webhook.url,
            message_id=str(message.pk),
            body=message.body,
            secrets_signing=signing_secrets(webhook),
        )
    return attempt_record(delivery, result)


def _require_active(webhook: Webhook) -> None:
    if not webhook.is_active:
        raise Conflict(
            "This webhook is disabled; enable it (isActive: true) first.",
            details={"disabledReason": webhook.disabled_reason},
        )


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery, actor: Actor) -> WebhookDelivery:
    """Send a delivery's message again, with the same ``webhook-id`` (receivers de-duplicate
    on it), on a fresh retry schedule and outside the endpoint's ordering."""
    webhook = delivery.webhook
    _require_active(webhook)
    now = timezone.now()
    # Locked first: the prune skips a row a redelivery holds (and a row it pruned is gone).
    locked = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
    if locked is None:
        raise NotFound("This delivery was pruned; replay its events instead.")
    free = WebhookDelivery.unclaimed(now)
    updated = (
        WebhookDelivery.objects.filter(pk=delivery.pk)
        .filter(free)
        .update(
            status=DeliveryStatus.PENDING,
            trigger=DeliveryTrigger.REDELIVERY,
            ordered=False,
            step=0,
            next_attempt_at=now,
            first_attempt_at=None,
            delivered_at=None,
        )
    )
    if not updated:
        raise Conflict("This delivery is being sent right now; try again in a moment.")
    audit_record(
        account=webhook.account,
        actor=actor,
        resource_type="webhook_delivery",
        resource_id=delivery.pk,
        action="redelivered",
        changes={"status": {"before": delivery.status, "after": DeliveryStatus.PENDING}},
    )
    transaction.on_commit(functools.partial(endpoint_kick, webhook.pk), robust=True)
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def webhook_replay(*, webhook: Webhook, actor: Actor, since: datetime) -> int:
    """Send again every event since ``since`` that the endpoint subscribes to (for an endpoint
    that was down or disabled): new deliveries in the order the events happened, each with its
    event's ``webhook-id``. Events whose delivery is still pending are left to it. Returns how
    many were queued."""
    _require_active(webhook)
    events = (
        Event.objects.filter(account=webhook.account, created_at__gte=since)
        .exclude(type=EventType.WEBHOOK_TEST)
        .select_related("account")
        .order_by("created_at", "id")
    )
    total = events.count()
    if total > REPLAY_MAX_EVENTS:
        raise BadRequest(
            f"{total} events happened since then; a replay sends at most {REPLAY_MAX_EVENTS}. "
            "Choose a later `since`.",
            details={"since": [f"At most {REPLAY_MAX_EVENTS} events."]},
        )
    pending = set(
        WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).values_list(
            "message_id", flat=True
        )
    )
    now = timezone.now()
    queued = 0
    chunk: list[Event] = []

    def flush() -> None:
        nonlocal queued
        if not chunk:
            return
        # Locked until the replay commits: the prune skips them rather than deleting a message
        # the new deliveries are about to refer to (and one it deleted first is stored again).
        stored = set(
            WebhookMessage.objects.select_for_update(no_key=True)
            .filter(pk__in=[event.pk for event in chunk])
            .values_list("pk", flat=True)
        )
        missing = [event for event in chunk if event.pk not in stored]
        names = integration_names(missing)
        # Another replay of the same events may store them first: theirs are the same bodies.
        WebhookMessage.objects.bulk_create(
            [_message(event, names=names) for event in missing], ignore_conflicts=True
        )
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    webhook=webhook,
                    message_id=event.pk,
                    integration_id=event.integration_id,
                    ordered=webhook.ordered,
                    trigger=DeliveryTrigger.REPLAY,
                    next_attempt_at=now,
                )
                for event in chunk
            ]
        )
        queued += len(chunk)
        chunk.clear()

    for event in events.iterator(chunk_size=1000):
        if event.pk in pending or not webhook.subscribes_to(event.type, event.integration_id):
            continue
        chunk.append(event)
        if len(chunk) >= 1000:
            flush()
    flush()
    audit_record(
        account=webhook.account,
        actor=actor,
        resource_type="webhook",
        resource_id=webhook.pk,
        action="replayed",
        changes={"since": {"before": None, "after": since.isoformat()}, "events": queued},
    )
    if queued:
        transaction.on_commit(functools.partial(endpoint_kick, webhook.pk), robust=True)
    return queued


# --- housekeeping ------------------------------------------------------------------------------


def webhook_deliveries_prune(*, older_than_days: int, batch_size: int = 1000) -> int:
    """Delete finished deliveries (delivered or failed) older than the retention, with their
    attempts, ``batch_size`` at a time, then the messages no delivery refers to; returns how
    many deliveries went.

    A pending delivery is never pruned, however old: it is the outbox (a retry, a redelivery, or
    one waiting for its endpoint to be enabled again). Each batch locks its rows and skips rows
    that others hold: a redelivery that turns an old delivery pending again, and a replay about
    to send an old message again (``webhook_replay`` locks the messages it reuses), either go
    first, and their rows are no longer this prune's to delete, or wait for the batch and then
    find the row gone (a replay stores the message again)."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                WebhookDelivery.objects.select_for_update(skip_locked=True)
                .filter(
                    created_at__lt=cutoff,
                    status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED],
                )
                .order_by("id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
            WebhookDelivery.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    unreferenced = ~Exists(WebhookDelivery.objects.filter(message_id=OuterRef("pk")))
    while True:
        with transaction.atomic():
            message_ids = list(
                WebhookMessage.objects.select_for_update(skip_locked=True)
                .filter(unreferenced, created_at__lt=cutoff)
                .order_by()
                .values_list("pk", flat=True)[:batch_size]
            )
            if not message_ids:
                break
            WebhookMessage.objects.filter(unreferenced, pk__in=message_ids).delete()
    Webhook.objects.filter(previous_secret_expires_at__lt=timezone.now()).update(
        previous_secret_encrypted="", previous_secret_expires_at=None
    )
    return deleted
