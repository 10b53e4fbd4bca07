"""Revisions: immutable snapshots of an integration's template document."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from accounts.choices import AuditAction
from accounts.services import Actor, audit_record
from integrations.models import Integration, Revision
from integrations.selectors import integration_template, template_hash


@transaction.atomic
def revision_create(
    *,
    integration: Integration,
    actor: Actor,
    description: str = "",
    ignore_if_no_changes: bool = False,
) -> Revision | None:
    """Snapshot the integration. With ``ignore_if_no_changes``, return None (and write nothing)
    when the definition equals the latest revision's."""
    # Lock the integration so two concurrent snapshots cannot take the same number.
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    snapshot = integration_template(integration=integration)
    content_hash = template_hash(snapshot)
    latest = integration.revisions.order_by("-number").first()
    if ignore_if_no_changes and latest is not None and latest.content_hash == content_hash:
        return None
    number = (integration.revisions.aggregate(top=Max("number"))["top"] or 0) + 1
    revision = Revision.objects.create(
        account=integration.account,
        integration=integration,
        number=number,
        description=description,
        snapshot=snapshot,
        content_hash=content_hash,
        actor_type=actor.type,
        actor_name=actor.name,
    )
    audit_record(
        account=integration.account,
        actor=actor,
        resource_type="revision",
        resource_id=revision.pk,
        action=AuditAction.CREATED,
        changes={"number": {"before": None, "after": number}},
        integration_id=integration.pk,
    )
    return revision
