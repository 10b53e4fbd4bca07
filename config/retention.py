"""Retention: how long Railyard keeps what piles up, the pruning that enforces it, and what an
operator sees of it (``retention_overview``).

Each kind of stored thing has a retention in days (a setting; 0 keeps everything) and a Celery
beat entry that starts its prune every night. A prune works in bounded batches: one task removes
at most ``RETENTION_BATCH_SIZE`` rows (for received files: stored copies), in a short
transaction, then sends itself again while more remain (``prune_step``). So a large backlog never
holds a worker, a lock or a transaction for long, and the other tasks of its queue get their turn
between batches. Every batch of one run uses the cutoff the run started with.

What must stay is excluded by each prune's own query, so no batch can take it: a file whose run
is queued or running, the last applied file of an integration (the row-count guard compares the
next file with it; reprocessing and the mapping preview read it), the current version of each
vehicle, runs in progress and the latest finished run of each owner (import dependencies compare
with it), pending webhook deliveries.

The numbers of each kind's last run (when it started and ended, rows pruned, batches) are kept
in the cache (Redis). Without the cache the prunes still run; the overview then shows no last run.

``config`` sits above every app: kinds name their models and tasks by label, and each app's
tasks module runs its own prune through ``prune_step``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

CACHE_PREFIX = "retention:"


@dataclass(frozen=True)
class Pruned:
    """What one batch of a prune did: rows (or stored files) removed, and whether more may
    remain past the batch."""

    rows: int
    more: bool


@dataclass(frozen=True)
class RetentionKind:
    """One kind of stored thing under a retention: its setting (days), the rows it applies to
    (``model`` within ``scope``, dated by ``date_field``) and the task that prunes it."""

    name: str
    label: str
    setting: str
    model: str
    date_field: str
    task: str
    scope: Q = field(default_factory=Q)


RETENTION_KINDS: tuple[RetentionKind, ...] = (
    RetentionKind(
        name="feed_files",
        label="Received files (stored copies)",
        setting="FEED_FILE_RETENTION_DAYS",
        model="syncengine.FeedFile",
        date_field="received_at",
        task="syncengine.tasks.feed_files_prune",
        scope=~Q(stored_path=""),
    ),
    RetentionKind(
        name="runs",
        label="Sync and file runs, with their logs",
        setting="JOB_RETENTION_DAYS",
        model="syncengine.SyncJob",
        date_field="created_at",
        task="syncengine.tasks.runs_prune",
        scope=Q(export__isnull=True, file_import__isnull=True),
    ),
    RetentionKind(
        name="export_runs",
        label="Export and file-import runs, with their LOCAL files",
        setting="JOB_RETENTION_DAYS",
        model="syncengine.SyncJob",
        date_field="created_at",
        task="exports.tasks.export_runs_prune",
        scope=Q(export__isnull=False) | Q(file_import__isnull=False),
    ),
    RetentionKind(
        name="vehicle_versions",
        label="Vehicle versions",
        setting="VEHICLE_VERSION_RETENTION_DAYS",
        model="syncengine.VehicleVersion",
        date_field="created_at",
        task="syncengine.tasks.vehicle_versions_prune",
    ),
    RetentionKind(
        name="sftp_activity",
        label="SFTP activity",
        setting="SFTP_ACTIVITY_RETENTION_DAYS",
        model="sftpgateway.SftpActivity",
        date_field="created_at",
        task="sftpgateway.tasks.activity_prune",
    ),
    RetentionKind(
        name="audit",
        label="Audit entries",
        setting="AUDIT_RETENTION_DAYS",
        model="accounts.AuditEntry",
        date_field="created_at",
        task="accounts.tasks.audit_prune",
    ),
    RetentionKind(
        name="events",
        label="Events",
        setting="EVENT_RETENTION_DAYS",
        model="accounts.Event",
        date_field="created_at",
        task="accounts.tasks.events_prune",
    ),
    RetentionKind(
        name="webhook_deliveries",
        label="Webhook deliveries",
        setting="WEBHOOK_RETENTION_DAYS",
        model="webhooks.WebhookDelivery",
        date_field="created_at",
        task="webhooks.tasks.webhook_deliveries_prune",
    ),
)
_KINDS = {kind.name: kind for kind in RETENTION_KINDS}


def retention_kind(name: str) -> RetentionKind:
    return _KINDS[name]


def retention_days(kind: RetentionKind) -> int:
    """The kind's retention in days; 0 (or less) keeps everything."""
    return int(getattr(settings, kind.setting))


def prune_oldest(queryset: QuerySet[Any], *, date_field: str, limit: int) -> Pruned:
    """Delete the oldest ``limit`` rows of ``queryset`` (whose filter says what may go), in one
    short transaction; Django's cascades and SET_NULLs apply as for any delete."""
    with transaction.atomic():
        keys = list(queryset.order_by(date_field, "pk").values_list("pk", flat=True)[:limit])
        if keys:
            queryset.model._default_manager.filter(pk__in=keys).delete()
    return Pruned(rows=len(keys), more=len(keys) == limit)


# --- one run of a prune, in steps ---------------------------------------------------------------


def prune_step(
    *,
    kind: str,
    prune: Callable[..., Pruned],
    task: Any,
    run: str | None = None,
    cutoff: str | None = None,
) -> int:
    """One step of a run of ``kind``'s prune: ``prune(cutoff=..., limit=...)`` removes at most
    ``RETENTION_BATCH_SIZE``; when it says more may remain, ``task`` is sent again with the
    run's id and cutoff. Beat starts a run (no ``run``); a step of an older run that a newer
    one replaced (a backlog that outlasted a day) stops there. Returns the rows removed."""
    spec = retention_kind(kind)
    now = timezone.now()
    days = retention_days(spec)
    state = _last_run(spec) if run is not None else None
    if state is not None and state.get("run") != run:
        logger.info("Retention %s: run %s was replaced by run %s", kind, run, state.get("run"))
        return 0
    if state is None:
        # A new run; or the cache lost this run's record: it goes on with what its message says.
        start = datetime.fromisoformat(cutoff) if cutoff else now - timedelta(days=max(days, 0))
        state = {
            "run": run or uuid.uuid4().hex,
            "started_at": now.isoformat(),
            "finished_at": None,
            "cutoff": start.isoformat(),
            "pruned": 0,
            "batches": 0,
            "error": "",
        }
    if days <= 0:
        state.update(finished_at=now.isoformat(), cutoff=None)
        _save_run(spec, state)
        return 0
    limit = max(1, int(settings.RETENTION_BATCH_SIZE))
    try:
        batch = prune(cutoff=datetime.fromisoformat(state["cutoff"]), limit=limit)
    except Exception as error:
        state["error"] = f"{type(error).__name__}: {error}"
        _save_run(spec, state)
        raise
    state["pruned"] += batch.rows
    state["batches"] += 1
    if not batch.more:
        state["finished_at"] = timezone.now().isoformat()
    # Saved before the next step is sent: an eager task runs that step inside this call.
    _save_run(spec, state)
    if batch.more:
        task.apply_async(kwargs={"run": state["run"], "cutoff": state["cutoff"]})
    return batch.rows


def _last_run(kind: RetentionKind) -> dict[str, Any] | None:
    try:
        state = cache.get(CACHE_PREFIX + kind.name)
    except Exception:
        logger.warning("Could not read the last retention run of %s", kind.name, exc_info=True)
        return None
    return state if isinstance(state, dict) else None


def _save_run(kind: RetentionKind, state: dict[str, Any]) -> None:
    try:
        cache.set(CACHE_PREFIX + kind.name, state, timeout=None)
    except Exception:
        logger.warning("Could not record the retention run of %s", kind.name, exc_info=True)


# --- what an operator sees ----------------------------------------------------------------------


def retention_overview() -> list[dict[str, Any]]:
    """Per kind: its retention in days (0: kept forever), the rows kept now and the oldest of
    them, and its last prune run (``None`` when none is recorded): when it started and
    finished (``None`` while it goes on), rows pruned, batches, and the error that stopped it."""
    overview = []
    for kind in RETENTION_KINDS:
        rows = apps.get_model(kind.model)._default_manager.filter(kind.scope)
        kept = rows.aggregate(count=Count("pk"), oldest=Min(kind.date_field))
        last = _last_run(kind)
        overview.append(
            {
                "kind": kind.name,
                "label": kind.label,
                "setting": kind.setting,
                "retention_days": retention_days(kind),
                "rows_kept": kept["count"],
                "oldest_kept": kept["oldest"],
                "pruned_last_run": last["pruned"] if last else None,
                "last_run": _run_summary(last),
            }
        )
    return overview


def _run_summary(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None

    def moment(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return {
        "started_at": moment(state.get("started_at")),
        "finished_at": moment(state.get("finished_at")),
        "cutoff": moment(state.get("cutoff")),
        "pruned": state.get("pruned", 0),
        "batches": state.get("batches", 0),
        "error": state.get("error", ""),
    }
