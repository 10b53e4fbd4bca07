"""The operations dashboard of the admin (``/admin/operations/``): the last 30 days of received
files, rows written and job outcomes as charts, the integrations failing or paused now, and the
running jobs with progress bars the page refreshes from ``/admin/operations/jobs.json``.

Every series is counted by the database, one grouped query per chart (``TruncDate`` in the
current time zone); Python only lays the at most 30 grouped rows out on the days of the window.
Rows written by connector syncs live in each job's per-entity stats, so that series sums the
JSON of the jobs in SQL (``jsonb_each`` on PostgreSQL, ``json_each`` on SQLite).

The views are staff-only (``AdminSite.admin_view``) and need the permission to view jobs.
``admin_site_extend`` adds them to the default admin site and links them from its index.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import (
    Avg,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from accounts.models import Account
from config.console import change_url, empty, moment, number, progress_bar, records_table
from config.retention import retention_overview
from integrations.choices import IntegrationState, IntegrationStatus
from integrations.models import Integration
from syncengine.choices import (
    FEED_FILE_PROCESSED,
    FeedFileSource,
    FeedFileStatus,
    JobKind,
    JobStatus,
)
from syncengine.models import FeedFile, SyncJob

WINDOW_DAYS = 30
# The page asks for the running jobs this often (milliseconds).
POLL_INTERVAL_MS = 3000
RUNNING_LIMIT = 50
FAILING_LIMIT = 100
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# --- a job's progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    """How far a run is, from the progress document its kind checkpoints: ``percent`` is None
    when the run cannot say (a source that cannot count ahead, a file still being read)."""

    percent: int | None
    label: str


def _share(done: Any, total: Any) -> int | None:
    if not isinstance(done, int) or not isinstance(total, int) or total <= 0:
        return None
    # Floored: a run is never shown done before it is.
    return max(0, min(100, (100 * done) // total))


def _measure(progress: dict[str, Any]) -> tuple[int | None, str]:
    """The share done and what was done, from a progress document of any kind of run."""
    entity = progress.get("entity")
    where = f" ({entity})" if entity else ""
    if "recordsDone" in progress:  # connector syncs
        done, total = progress.get("recordsDone") or 0, progress.get("recordsTotal")
        percent = _share(done, total)
        if percent is None:
            return None, f"{number(done)} records read{where}"
        return percent, f"{number(done)} of {number(total)} records{where}"
    if "rowsDone" in progress:  # export and file import runs: entities are the known total
        done, total = progress.get("entitiesDone") or 0, progress.get("entitiesTotal") or 0
        rows = number(progress.get("rowsDone") or 0)
        return _share(done, total), f"{done} of {total} entities · {rows} rows{where}"
    if "done" in progress:  # feed files: the total is known once the file is read
        done, total = progress.get("done") or 0, progress.get("total")
        percent = _share(done, total)
        if percent is None:
            return None, f"{number(done)} rows read"
        return percent, f"{number(done)} of {number(total)} rows"
    return None, ""


def job_progress(job: SyncJob) -> JobProgress:
    if job.status == JobStatus.QUEUED:
        return JobProgress(0, "queued")
    percent, done = _measure(job.progress or {})
    if job.status == JobStatus.COMPLETED:
        return JobProgress(100, f"100% · {done}" if done else "100%")
    status = "" if job.status == JobStatus.RUNNING else job.get_status_display().lower()
    parts = [part for part in (status, f"{percent}%" if percent is not None else "", done) if part]
    return JobProgress(percent, " · ".join(parts) or "starting")


def job_owner(job: SyncJob) -> Any:
    """What the run belongs to: its export, file import, integration or connection."""
    return job.export or job.file_import or job.integration or job.connection


def job_document(job: SyncJob) -> dict[str, Any]:
    """A job as the dashboard's script reads it."""
    progress = job_progress(job)
    owner = job_owner(job)
    return {
        "id": str(job.pk),
        "url": change_url(job),
        "kind": job.get_kind_display(),
        "owner": str(owner) if owner is not None else "",
        "ownerUrl": change_url(owner) if owner is not None else "",
        "account": job.account.name,
        "status": job.status,
        "percent": progress.percent,
        "label": progress.label,
        "attempts": job.attempts,
        "startedAt": job.started_at.isoformat() if job.started_at else None,
        "heartbeatAt": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
    }


# --- what the dashboard shows -------------------------------------------------------------------


class IntegrationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.account.name})"


class ScopeForm(forms.Form):
    """The dashboard's filter: one account, one integration, or everything."""

    account = forms.ModelChoiceField(
        queryset=Account.objects.order_by("name"), required=False, empty_label="All accounts"
    )
    integration = IntegrationChoiceField(
        queryset=Integration.objects.select_related("account").order_by("account__name", "name"),
        required=False,
        empty_label="All integrations",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account_id = _uuid(self.data.get("account")) if self.is_bound else None
        if account_id is not None:
            field = self.fields["integration"]
            assert isinstance(field, IntegrationChoiceField)
            field.queryset = (
                Integration.objects.select_related("account")
                .filter(account_id=account_id)
                .order_by("name")
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        account, integration = data.get("account"), data.get("integration")
        if account is not None and integration is not None and integration.account_id != account.pk:
            raise forms.ValidationError("That integration belongs to another account.")
        return data


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None  # the form's field reports it


@dataclass(frozen=True)
class Scope:
    account: Account | None = None
    integration: Integration | None = None

    @classmethod
    def from_request(cls, request: HttpRequest) -> tuple[Scope, ScopeForm]:
        form = ScopeForm(request.GET or None)
        if form.is_bound and form.is_valid():
            return cls(form.cleaned_data["account"], form.cleaned_data["integration"]), form
        return cls(), form

    @property
    def query(self) -> dict[str, str]:
        """The filter as query parameters (for links and the script's requests)."""
        query = {}
        if self.account is not None:
            query["account"] = str(self.account.pk)
        if self.integration is not None:
            query["integration"] = str(self.integration.pk)
        return query

    def files(self) -> Q:
        scope = Q()
        if self.account is not None:
            scope &= Q(account=self.account)
        if self.integration is not None:
            scope &= Q(integration=self.integration)
        return scope

    def jobs(self) -> Q:
        scope = Q()
        if self.account is not None:
            scope &= Q(account=self.account)
        if self.integration is not None:
            # An integration's exports and file imports run as jobs of their own.
            scope &= (
                Q(integration=self.integration)
                | Q(export__integration=self.integration)
                | Q(file_import__integration=self.integration)
            )
        return scope

    def integrations(self) -> Q:
        scope = Q()
        if self.account is not None:
            scope &= Q(account=self.account)
        if self.integration is not None:
            scope &= Q(pk=self.integration.pk)
        return scope


def window(today: dt.date | None = None) -> tuple[list[dt.date], dt.datetime]:
    """The days of the window, oldest first (today last), and the moment it starts."""
    today = today or timezone.localdate()
    days = [today - dt.timedelta(days=offset) for offset in range(WINDOW_DAYS - 1, -1, -1)]
    start = timezone.make_aware(dt.datetime.combine(days[0], dt.time.min))
    return days, start


def _by_day(
    days: list[dt.date], rows: Iterable[Mapping[str, Any]], names: list[str], default: Any = 0
) -> dict[str, list[Any]]:
    """Grouped rows (``day`` plus one value per name) laid out on every day of the window."""
    found = {_day(row["day"]): row for row in rows}
    return {name: [found[day][name] if day in found else default for day in days] for name in names}


def _day(value: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def file_series(scope: Scope, days: list[dt.date], start: dt.datetime) -> dict[str, list[int]]:
    """Per day of receipt: files received (not counting reprocessed copies), applied to the
    store, rejected by the safety guard and failed; and the vehicle rows those files created,
    updated, removed and marked sold. One grouped query."""
    rows = list(
        FeedFile.objects.filter(scope.files(), received_at__gte=start)
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .order_by("day")
        .annotate(
            received=Count("pk", filter=~Q(source=FeedFileSource.REPROCESS)),
            applied=Count("pk", filter=Q(status__in=FEED_FILE_PROCESSED)),
            rejected=Count("pk", filter=Q(status=FeedFileStatus.REJECTED)),
            failed=Count("pk", filter=Q(status=FeedFileStatus.FAILED)),
            created=Sum("records_created"),
            updated=Sum("records_updated"),
            removed=Sum("records_removed"),
            sold=Sum("records_sold"),
        )
    )
    names = ["received", "applied", "rejected", "failed", "created", "updated", "removed", "sold"]
    return _by_day(days, rows, names)


# The per-entity counts of a connector sync's stats, summed in SQL. The inner query (Django's,
# with its parameters) picks the jobs and their day; the outer one walks each job's stats object.
_STATS_SUM_SQL = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_each(s.stats) AS e WHERE jsonb_typeof(e.value) = 'object'",
        "COALESCE(SUM((e.value ->> '{key}')::bigint), 0)",
    ),
    "sqlite": (
        ", json_each(s.stats) AS e WHERE e.type = 'object'",
        "COALESCE(SUM(json_extract(e.value, '$.{key}')), 0)",
    ),
}
_SYNC_COUNTS = {"created": "created", "updated": "updated", "removed": "deleted"}


def sync_row_series(scope: Scope, days: list[dt.date], start: dt.datetime) -> dict[str, list[int]]:
    """Per day of completion: records connector syncs created, updated and deleted (their
    stats, summed over entities). One grouped query."""
    if connection.vendor not in _STATS_SUM_SQL:
        return {name: [0] * len(days) for name in _SYNC_COUNTS}
    jobs = (
        SyncJob.objects.filter(
            scope.jobs(), kind=JobKind.SYNC, status__in=ENDED, completed_at__gte=start
        )
        .annotate(day=TruncDate("completed_at"))
        .values("day", "stats")
    )
    inner, params = jobs.query.sql_with_params()
    join, total = _STATS_SUM_SQL[connection.vendor]
    sums = ", ".join(f"{total.format(key=key)} AS {name}" for name, key in _SYNC_COUNTS.items())
    sql = f"SELECT s.day AS day, {sums} FROM ({inner}) AS s {join} GROUP BY s.day"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    series = _by_day(days, rows, list(_SYNC_COUNTS))
    return {name: [int(value) for value in values] for name, values in series.items()}


def job_series(scope: Scope, days: list[dt.date], start: dt.datetime) -> dict[str, list[Any]]:
    """Per day of ending: runs of every kind that completed, failed and were cancelled, with
    the average and longest time from start to end, in seconds. One grouped query."""
    duration = ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField())
    rows = list(
        SyncJob.objects.filter(scope.jobs(), status__in=ENDED, completed_at__gte=start)
        .annotate(day=TruncDate("completed_at"))
        .values("day")
        .order_by("day")
        .annotate(
            completed=Count("pk", filter=Q(status=JobStatus.COMPLETED)),
            failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
            cancelled=Count("pk", filter=Q(status=JobStatus.CANCELLED)),
            average=Avg(duration, filter=Q(started_at__isnull=False)),
            longest=Max(duration, filter=Q(started_at__isnull=False)),
        )
    )
    series = _by_day(days, rows, ["completed", "failed", "cancelled"])
    for name, values in _by_day(days, rows, ["average", "longest"], default=None).items():
        series[f"{name}Seconds"] = [
            round(value.total_seconds(), 3) if value is not None else None for value in values
        ]
    return series


def failing_integrations(scope: Scope) -> QuerySet[Integration]:
    """Live integrations whose last run failed, or that are paused (by a user, or after
    failing too often in a row), the most failures first."""
    return (
        Integration.objects.filter(scope.integrations())
        .filter(Q(status=IntegrationStatus.ERRORED) | Q(state=IntegrationState.INACTIVE))
        .select_related("account", "dealership")
        .order_by("-consecutive_failures", "account__name", "name")[:FAILING_LIMIT]
    )


def running_jobs(scope: Scope) -> QuerySet[SyncJob]:
    return (
        SyncJob.objects.filter(scope.jobs(), status=JobStatus.RUNNING)
        .select_related("account", "integration", "connection", "export", "file_import")
        .order_by("started_at", "pk")[:RUNNING_LIMIT]
    )


def retention_summary() -> list[dict[str, Any]]:
    """The dashboard's Retention section: one row per kind of stored record (how long it is
    kept, what is kept now, what the last pruning removed), from ``config.retention``. It
    covers the whole installation, whatever the dashboard's account or integration."""
    rows = []
    for kind in retention_overview():
        days = kind["retention_days"]
        last = kind["last_run"]
        if last is None:
            last_run = "not run yet"
        elif last["error"]:
            last_run = f"failed: {last['error']}"
        elif last["finished_at"] is None:
            last_run = "running"
        else:
            last_run = f"{last['batches']} batch(es), finished {last['finished_at']:%Y-%m-%d %H:%M}"
        rows.append(
            {
                "kind": kind["label"],
                "kept for": f"{days} days" if days else "forever",
                "setting": kind["setting"],
                "rows kept": number(kind["rows_kept"]),
                "oldest kept": moment(kind["oldest_kept"]),
                "pruned last run": empty()
                if kind["pruned_last_run"] is None
                else number(kind["pruned_last_run"]),
                "last run": last_run,
            }
        )
    return rows


def dashboard_charts(scope: Scope, today: dt.date | None = None) -> dict[str, Any]:
    days, start = window(today)
    files = file_series(scope, days, start)
    syncs = sync_row_series(scope, days, start)
    jobs = job_series(scope, days, start)
    return {
        "days": [day.isoformat() for day in days],
        "files": {name: files[name] for name in ("received", "applied", "rejected", "failed")},
        "rows": {
            "feedCreated": files["created"],
            "feedUpdated": files["updated"],
            "feedRemoved": [a + b for a, b in zip(files["removed"], files["sold"], strict=True)],
            "syncCreated": syncs["created"],
            "syncUpdated": syncs["updated"],
            "syncRemoved": syncs["removed"],
        },
        "jobs": jobs,
    }


# --- views --------------------------------------------------------------------------------------


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perm("syncengine.view_syncjob"):
        raise PermissionDenied


def _totals(charts: dict[str, Any]) -> list[tuple[str, int]]:
    files, rows, jobs = charts["files"], charts["rows"], charts["jobs"]
    return [
        ("Files received", sum(files["received"])),
        ("Files applied", sum(files["applied"])),
        ("Files rejected", sum(files["rejected"])),
        ("Rows created", sum(rows["feedCreated"]) + sum(rows["syncCreated"])),
        ("Rows updated", sum(rows["feedUpdated"]) + sum(rows["syncUpdated"])),
        ("Rows removed", sum(rows["feedRemoved"]) + sum(rows["syncRemoved"])),
        ("Jobs completed", sum(jobs["completed"])),
        ("Jobs failed", sum(jobs["failed"])),
    ]


def _retention_table() -> SafeString | None:
    rows = retention_summary()
    return records_table(rows) if rows else None


def _running_row(job: SyncJob) -> dict[str, Any]:
    progress = job_progress(job)
    owner = job_owner(job)
    return {
        "job": job,
        "owner": owner,
        "owner_url": change_url(owner) if owner is not None else "",
        "bar": progress_bar(progress.percent, progress.label, status=job.status),
    }


def dashboard_view(site: AdminSite) -> Callable[[HttpRequest], HttpResponse]:
    def dashboard(request: HttpRequest) -> HttpResponse:
        _require_view(request)
        scope, form = Scope.from_request(request)
        charts = dashboard_charts(scope)
        running = [_running_row(job) for job in running_jobs(scope)]
        jobs_url = reverse(f"{site.name}:operations-jobs")
        context = {
            **site.each_context(request),
            "title": "Operations",
            "subtitle": f"Last {WINDOW_DAYS} days",
            "form": form,
            "scope": scope,
            "charts": charts,
            "totals": _totals(charts),
            "failing": failing_integrations(scope),
            "running": running,
            "queued": SyncJob.objects.filter(scope.jobs(), status=JobStatus.QUEUED).count(),
            "jobs_url": jobs_url,
            "jobs_query": "&".join(f"{key}={value}" for key, value in scope.query.items()),
            "poll_interval": POLL_INTERVAL_MS,
            "poll_seconds": POLL_INTERVAL_MS // 1000,
            "retention": _retention_table(),
            "window_days": WINDOW_DAYS,
        }
        return TemplateResponse(request, "admin/syncengine/operations.html", context)

    return dashboard


def jobs_view(site: AdminSite) -> Callable[[HttpRequest], HttpResponse]:
    def jobs(request: HttpRequest) -> HttpResponse:
        """The running jobs of the dashboard's scope, or with ``?job=<id>`` that one job
        whatever its status (its detail page follows it to the end)."""
        _require_view(request)
        job_id = request.GET.get("job")
        if job_id:
            job_pk = _uuid(job_id)
            if job_pk is None:
                return JsonResponse({"jobs": []})
            found = SyncJob.objects.filter(pk=job_pk).select_related(
                "account", "integration", "connection", "export", "file_import"
            )
            return JsonResponse({"jobs": [job_document(job) for job in found]})
        scope, _form = Scope.from_request(request)
        return JsonResponse(
            {
                "jobs": [job_document(job) for job in running_jobs(scope)],
                "queued": SyncJob.objects.filter(scope.jobs(), status=JobStatus.QUEUED).count(),
                "at": timezone.now().isoformat(),
            }
        )

    return jobs


def admin_site_extend(site: AdminSite) -> None:
    """Add the dashboard and its job feed to ``site``'s URLs and link it from the index.

    The settings keep Django's own admin site, so its URL list is extended here (once) rather
    than the site replaced by a subclass.
    """
    if getattr(site, "operations_installed", False):
        return
    site_urls = site.get_urls

    def get_urls() -> list[URLResolver | URLPattern]:
        return [
            path("operations/", site.admin_view(dashboard_view(site)), name="operations"),
            path(
                "operations/jobs.json",
                site.admin_view(jobs_view(site), cacheable=False),
                name="operations-jobs",
            ),
            *site_urls(),
        ]

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.index_template = "admin/railyard/index.html"
    site.operations_installed = True  # type: ignore[attr-defined]
