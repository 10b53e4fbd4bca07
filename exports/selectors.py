"""Reads of export definitions and their runs, always scoped to one account."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Account
from exports.models import Export, ExportFile
from integrations.models import FileImport, Integration
from syncengine.choices import JobKind
from syncengine.models import SyncJob


def export_list(*, account: Account) -> QuerySet[Export]:
    """Every export of ``account``."""
    return Export.objects.filter(account=account)


def integration_exports(*, integration: Integration) -> QuerySet[Export]:
    """The exports linked to ``integration``, oldest first so snapshots of them are stable."""
    return Export.objects.filter(
        account_id=integration.account_id, integration=integration
    ).order_by("created_at", "id")


def export_run_list(*, export: Export) -> QuerySet[SyncJob]:
    """The runs of ``export``, newest first, with their files."""
    return (
        SyncJob.objects.filter(export=export, kind=JobKind.EXPORT)
        .prefetch_related("export_files")
        .order_by("-created_at", "-pk")
    )


def import_run_list(*, file_import: FileImport) -> QuerySet[SyncJob]:
    """The runs of ``file_import``, newest first, with their files."""
    return (
        SyncJob.objects.filter(file_import=file_import, kind=JobKind.FILE_IMPORT)
        .prefetch_related("export_files")
        .order_by("-created_at", "-pk")
    )


def export_run_files(*, run: SyncJob) -> QuerySet[ExportFile]:
    """The files a run delivered, in order."""
    return ExportFile.objects.filter(run=run).order_by("number")


def export_run_rows(run: SyncJob) -> dict[str, int]:
    """Rows written per entity: what the run recorded at its end, or its progress so far."""
    if run.stats:
        return {entity: int(value.get("rows", 0)) for entity, value in run.stats.items()}
    return {entity: int(count) for entity, count in (run.progress or {}).get("rows", {}).items()}
