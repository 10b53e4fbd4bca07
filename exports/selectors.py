"""Reads of export definitions, always scoped to one account."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Account
from exports.models import Export
from integrations.models import Integration


def export_list(*, account: Account) -> QuerySet[Export]:
    """Every export of ``account``."""
    return Export.objects.filter(account=account)


def integration_exports(*, integration: Integration) -> QuerySet[Export]:
    """The exports linked to ``integration``, oldest first so snapshots of them are stable."""
    return Export.objects.filter(
        account_id=integration.account_id, integration=integration
    ).order_by("created_at", "id")
