"""Operator screens of the sync engine: received files (with reprocess), jobs of every kind (with
cancel and re-run, a live progress bar, stats and log as tables), streams, snapshots, pulled files
and vehicles, all read-only: the engine alone writes them. Also the operations dashboard
(``syncengine.operations``), added to the admin site here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Field, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.services import Actor
from config.api.errors import ApplicationError
from config.console import (
    ObjectAction,
    RecordAdmin,
    change_link,
    definition_list,
    empty,
    json_field,
    log_table,
    moment,
    number,
    progress_bar,
    records_table,
    seconds,
    stats_table,
    value_html,
)
from integrations.choices import SyncStrategy
from integrations.models import Integration
from syncengine import operations
from syncengine.choices import FeedFileSource, JobKind, JobStatus
from syncengine.feeds import services
from syncengine.models import (
    FeedFile,
    PulledFile,
    Snapshot,
    SyncJob,
    SyncStream,
    Vehicle,
    VehicleVersion,
)
from syncengine.sync import launch

operations.admin_site_extend(admin.site)


def _operator(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


class IntegrationFilter(admin.RelatedFieldListFilter):
    """Live integrations by name and account (it reads the integrations, not the rows listed);
    its parameter, ``integration__id__exact``, is what the integration's page links with."""

    def field_choices(self, field: Field, request: HttpRequest, model_admin: Any) -> list[Any]:
        integrations = Integration.objects.select_related("account").order_by(
            "account__name", "name"
        )
        return [(item.pk, f"{item.name} ({item.account.name})") for item in integrations]


def integration_link(obj: Any) -> SafeString:
    return change_link(obj.integration) if obj.integration_id else empty()


# --- received files -----------------------------------------------------------------------------

SOURCE_SHORT = {
    FeedFileSource.SFTP: "SFTP",
    FeedFileSource.PULL: "pull",
    FeedFileSource.REPROCESS: "reprocess",
}


class UnchangedFilter(admin.SimpleListFilter):
    """Applied files that changed nothing in the store (every row unchanged or skipped)."""

    title = "changes"
    parameter_name = "unchanged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Changed nothing"), ("no", "Changed rows")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[FeedFile]) -> QuerySet[FeedFile]:
        changed = (
            Q(records_created__gt=0)
            | Q(records_updated__gt=0)
            | Q(records_removed__gt=0)
            | Q(records_sold__gt=0)
        )
        if self.value() == "yes":
            return queryset.filter(processed_at__isnull=False).exclude(changed)
        if self.value() == "no":
            return queryset.filter(changed)
        return queryset


@admin.register(FeedFile)
class FeedFileAdmin(RecordAdmin):
    list_display = [
        "filename",
        "integration_column",
        "source_column",
        "status",
        "received",
        "rows",
        "changes",
        "unchanged",
        "duration",
    ]
    list_filter = ["status", "source", UnchangedFilter, ("integration", IntegrationFilter)]
    list_select_related = ["integration"]
    search_fields = ["filename", "sha256", "integration__name", "account__name"]
    date_hierarchy = "received_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "filename",
                    "integration_shown",
                    "account",
                    "source",
                    "reprocess_of",
                    "reprocessed_as",
                    "size_shown",
                    "sha256",
                    "received_at",
                    "remote_address",
                    "stored_path",
                ]
            },
        ),
        (
            "Outcome",
            {
                "fields": [
                    "status",
                    "processed_at",
                    "attempts",
                    "duration",
                    "job_shown",
                    "force",
                    "error",
                ]
            },
        ),
        (
            "Rows",
            {
                "fields": [
                    ("records_total", "records_errors", "records_warnings"),
                    ("records_created", "records_updated", "records_unchanged"),
                    ("records_removed", "records_sold", "records_skipped"),
                ]
            },
        ),
        ("Warnings and samples", {"fields": ["warnings_shown", "samples"]}),
    ]
    readonly_fields = [
        "integration_shown",
        "reprocess_of",
        "reprocessed_as",
        "size_shown",
        "duration",
        "job_shown",
        "warnings_shown",
        "samples",
    ]
    actions = ["reprocess", "reprocess_forced"]

    @admin.display(description="integration", ordering="integration__name")
    def integration_column(self, feed_file: FeedFile) -> SafeString:
        return integration_link(feed_file)

    @admin.display(description="integration")
    def integration_shown(self, feed_file: FeedFile) -> SafeString:
        return integration_link(feed_file)

    @admin.display(description="source", ordering="source")
    def source_column(self, feed_file: FeedFile) -> SafeString:
        label = SOURCE_SHORT.get(feed_file.source, feed_file.source)  # type: ignore[call-overload]
        return format_html('<span class="railyard-source-{}">{}</span>', feed_file.source, label)

    @admin.display(description="received", ordering="received_at")
    def received(self, feed_file: FeedFile) -> SafeString:
        return moment(feed_file.received_at)

    @admin.display(description="rows", ordering="records_total")
    def rows(self, feed_file: FeedFile) -> SafeString:
        if not feed_file.records_errors:
            return format_html("{}", number(feed_file.records_total))
        return format_html(
            '{}<br><span class="railyard-error">{} rejected</span>',
            number(feed_file.records_total),
            number(feed_file.records_errors),
        )

    @admin.display(description="unchanged", ordering="records_unchanged")
    def unchanged(self, feed_file: FeedFile) -> str:
        return number(feed_file.records_unchanged)

    @admin.display(description="changes")
    def changes(self, feed_file: FeedFile) -> SafeString:
        removed = feed_file.records_removed + feed_file.records_sold
        return format_html(
            '<span title="created, updated, removed or sold">+{} ~{} -{}</span>',
            number(feed_file.records_created),
            number(feed_file.records_updated),
            number(removed),
        )

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, feed_file: FeedFile) -> str:
        if feed_file.duration_ms is None:
            return "—"
        return seconds(feed_file.duration_ms / 1000)

    @admin.display(description="size")
    def size_shown(self, feed_file: FeedFile) -> str:
        return f"{number(feed_file.size)} bytes"

    @admin.display(description="job")
    def job_shown(self, feed_file: FeedFile) -> SafeString:
        return change_link(feed_file.job, str(feed_file.job_id)) if feed_file.job_id else empty()

    def _copies(self, feed_file: FeedFile) -> QuerySet[FeedFile]:
        # A reprocessed copy shares the original's stored file; nothing else does.
        return FeedFile.objects.filter(
            integration_id=feed_file.integration_id, stored_path=feed_file.stored_path
        ).exclude(pk=feed_file.pk)

    @admin.display(description="reprocess of")
    def reprocess_of(self, feed_file: FeedFile) -> SafeString:
        if feed_file.source != FeedFileSource.REPROCESS or not feed_file.stored_path:
            return empty()
        original = (
            self._copies(feed_file)
            .exclude(source=FeedFileSource.REPROCESS)
            .order_by("received_at")
            .first()
        )
        if original is None:
            return empty("(the original is no longer listed)")
        return format_html(
            "{} received {}", change_link(original, original.filename), moment(original.received_at)
        )

    @admin.display(description="reprocessed as")
    def reprocessed_as(self, feed_file: FeedFile) -> SafeString:
        if feed_file.source == FeedFileSource.REPROCESS or not feed_file.stored_path:
            return empty()
        copies = self._copies(feed_file).filter(source=FeedFileSource.REPROCESS)
        rows = list(copies.order_by("received_at")[:20])
        if not rows:
            return empty("(never reprocessed)")
        return format_html_join(
            ", ",
            "{} ({})",
            ((change_link(copy, str(moment(copy.received_at))), copy.status) for copy in rows),
        )

    @admin.display(description="warnings")
    def warnings_shown(self, feed_file: FeedFile) -> SafeString:
        if not feed_file.warnings:
            return empty("(none)")
        return format_html(
            '<ul class="railyard-list">{}</ul>',
            format_html_join(
                "", "<li>{}</li>", ((value_html(item),) for item in feed_file.warnings)
            ),
        )

    @admin.display(description="rejected rows and values left empty (first ones)")
    def samples(self, feed_file: FeedFile) -> SafeString:
        if not feed_file.error_samples:
            return empty("(none)")
        return format_html(
            '<table class="railyard-table"><thead><tr><th scope="col">row</th>'
            '<th scope="col">severity</th><th scope="col">field</th><th scope="col">value</th>'
            '<th scope="col">reason</th><th scope="col">the row</th></tr></thead><tbody>{}'
            "</tbody></table>",
            format_html_join(
                "",
                '<tr class="railyard-level-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                "<td>{}</td><td><details><summary>values</summary>{}</details></td></tr>",
                (
                    (
                        sample.get("severity", "error"),
                        value_html(sample.get("row")),
                        sample.get("severity", ""),
                        value_html(sample.get("field")),
                        value_html(sample.get("value")),
                        sample.get("reason", ""),
                        definition_list(sample.get("values") or {}),
                    )
                    for sample in feed_file.error_samples
                ),
            ),
        )

    def _reprocess(self, request: HttpRequest, files: list[FeedFile], force: bool) -> None:
        actor = _operator(request)
        queued = 0
        for feed_file in files:
            try:
                services.feed_file_reprocess(feed_file=feed_file, actor=actor, force=force)
                queued += 1
            except ApplicationError as exc:
                self.message_user(
                    request, f"{feed_file.filename}: {exc.message}", level=messages.ERROR
                )
        if queued:
            self.message_user(request, f"Queued {queued} file(s) for reprocessing.")

    @admin.action(description="Reprocess with the current mappings", permissions=["operate"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[FeedFile]) -> None:
        self._reprocess(request, list(queryset), force=False)

    @admin.action(description="Reprocess, overriding the row-count guard", permissions=["operate"])
    def reprocess_forced(self, request: HttpRequest, queryset: QuerySet[FeedFile]) -> None:
        self._reprocess(request, list(queryset), force=True)

    def object_actions(self, request: HttpRequest, obj: FeedFile) -> list[ObjectAction]:
        if not obj.stored_path:
            return []
        return [
            ObjectAction(
                "reprocess",
                "Reprocess with the current mappings",
                lambda request, feed_file: self._reprocess(request, [feed_file], force=False),
            ),
            ObjectAction(
                "reprocess_forced",
                "Reprocess, overriding the row-count guard",
                lambda request, feed_file: self._reprocess(request, [feed_file], force=True),
                danger=True,
            ),
        ]


# --- jobs ---------------------------------------------------------------------------------------

# How a finished job of each kind runs again: the service the API calls for it. Apps above the
# sync engine add their kinds (``exports.admin``: export and file import runs).
JobRerun = Callable[[SyncJob, Actor], SyncJob]
JOB_RERUNS: dict[str, JobRerun] = {}


def job_rerun_register(kind: str, rerun: JobRerun) -> None:
    JOB_RERUNS[kind] = rerun


def _sync_rerun(job: SyncJob, actor: Actor) -> SyncJob:
    if job.integration is not None:
        return launch.integration_sync_start(
            integration=job.integration, actor=actor, mode=job.mode
        )
    if job.connection is None:
        raise ApplicationError("The job has no integration or connection to sync.")
    return launch.connection_sync_start(
        connection=job.connection,
        actor=actor,
        entities=list(job.entities or []),
        mode=job.mode,
        date_range=job.date_range,
        strategy=job.strategy or SyncStrategy.MERGE,
    )


def _file_rerun(job: SyncJob, actor: Actor) -> SyncJob:
    feed_file = job.feed_files.order_by("received_at").first()
    if feed_file is None:
        raise ApplicationError("The job's file is no longer listed.")
    rerun = services.feed_file_reprocess(feed_file=feed_file, actor=actor)
    assert rerun.job is not None
    return rerun.job


job_rerun_register(JobKind.SYNC, _sync_rerun)
job_rerun_register(JobKind.FILE, _file_rerun)

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@admin.register(SyncJob)
class SyncJobAdmin(RecordAdmin):
    list_display = [
        "short_id",
        "kind_column",
        "owner",
        "account",
        "status_column",
        "tries",
        "created",
        "duration",
    ]
    list_filter = ["status", "kind", "trigger", "mode", ("integration", IntegrationFilter)]
    list_select_related = ["account", "integration", "connection", "export", "file_import"]
    search_fields = [
        "id",
        "integration__name",
        "connection__name",
        "export__name",
        "file_import__name",
        "account__name",
    ]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "kind",
                    "owner",
                    "account",
                    "trigger",
                    "mode",
                    "strategy",
                    "entities_shown",
                    "date_range_shown",
                ]
            },
        ),
        (
            "State",
            {
                "fields": [
                    "status",
                    "progress_shown",
                    "attempts",
                    "created_at",
                    "dispatched_at",
                    "started_at",
                    "completed_at",
                    "duration",
                    "heartbeat_at",
                    "next_attempt_at",
                    "cancel_requested_at",
                    "claimant_shown",
                    "dependency_status",
                    "dependency_checks",
                    "error",
                ]
            },
        ),
        ("Stats", {"fields": ["stats_shown", "files_shown"]}),
        (
            "Cursors",
            {"fields": ["cursors_shown", "entities_done_shown"], "classes": ["collapse"]},
        ),
        ("Log", {"fields": ["log_shown"]}),
    ]
    readonly_fields = [
        "owner",
        "entities_shown",
        "date_range_shown",
        "progress_shown",
        "duration",
        "claimant_shown",
        "stats_shown",
        "files_shown",
        "cursors_shown",
        "entities_done_shown",
        "log_shown",
    ]
    actions = ["cancel", "rerun"]

    entities_shown = json_field("entities")
    date_range_shown = json_field("date_range", "date range")
    claimant_shown = json_field("claimant")
    cursors_shown = json_field("cursors")
    entities_done_shown = json_field("entities_done", "entities done")
    stats_shown = json_field("stats", render=stats_table)
    log_shown = json_field("log", render=log_table)

    @admin.display(description="job", ordering="created_at")
    def short_id(self, job: SyncJob) -> str:
        return str(job.pk)[:8]

    @admin.display(description="owner")
    def owner(self, job: SyncJob) -> SafeString:
        return change_link(operations.job_owner(job))

    @admin.display(description="kind", ordering="kind")
    def kind_column(self, job: SyncJob) -> SafeString:
        return format_html(
            '{}<br><span class="railyard-empty">{}</span>',
            job.get_kind_display(),
            job.get_trigger_display().lower(),
        )

    @admin.display(description="status", ordering="status")
    def status_column(self, job: SyncJob) -> SafeString:
        if job.status != JobStatus.RUNNING:
            return format_html("{}", job.get_status_display())
        progress = operations.job_progress(job)
        return format_html(
            "{}<br>{}",
            job.get_status_display(),
            progress_bar(progress.percent, progress.label, status=job.status),
        )

    @admin.display(description="tries", ordering="attempts")
    def tries(self, job: SyncJob) -> int:
        return job.attempts

    @admin.display(description="progress")
    def progress_shown(self, job: SyncJob) -> SafeString:
        progress = operations.job_progress(job)
        poll_url = ""
        if job.status in ACTIVE:
            poll_url = f"{reverse('admin:operations-jobs')}?job={job.pk}"
        return progress_bar(progress.percent, progress.label, status=job.status, poll_url=poll_url)

    @admin.display(description="created", ordering="created_at")
    def created(self, job: SyncJob) -> SafeString:
        return moment(job.created_at)

    @admin.display(description="duration")
    def duration(self, job: SyncJob) -> str:
        if job.started_at is None or job.completed_at is None:
            return "—"
        return seconds((job.completed_at - job.started_at).total_seconds())

    @admin.display(description="files")
    def files_shown(self, job: SyncJob) -> SafeString:
        feed_files = list(job.feed_files.all()[:20])
        if feed_files:
            return format_html_join(
                ", ", "{} ({})", ((change_link(f, f.filename), f.status) for f in feed_files)
            )
        written = list(job.export_files.order_by("number")[:100])
        if written:
            return records_table(
                [
                    {
                        "entity": file.entity,
                        "uri": file.uri,
                        "rows": file.rows,
                        "bytes": file.bytes,
                        "sha256": file.sha256[:12],
                    }
                    for file in written
                ]
            )
        return empty("(none)")

    def _cancel(self, request: HttpRequest, jobs: list[SyncJob]) -> None:
        actor = _operator(request)
        cancelled = 0
        for job in jobs:
            try:
                launch.sync_job_cancel(job=job, actor=actor)
                cancelled += 1
            except ApplicationError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", level=messages.ERROR)
        if cancelled:
            self.message_user(
                request,
                f"Cancelled {cancelled} job(s); running ones stop after their current batch.",
            )

    def _rerun(self, request: HttpRequest, jobs: list[SyncJob]) -> None:
        actor = _operator(request)
        for job in jobs:
            rerun = JOB_RERUNS.get(job.kind)
            if rerun is None:
                self.message_user(
                    request, f"{job.pk}: a {job.kind} job cannot run again.", messages.ERROR
                )
                continue
            try:
                queued = rerun(job, actor)
            except ApplicationError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", level=messages.ERROR)
                continue
            self.message_user(
                request,
                format_html("{} queued again as {}.", str(job.pk)[:8], change_link(queued)),
                messages.SUCCESS,
            )

    @admin.action(description="Cancel the selected jobs", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        self._cancel(request, list(queryset))

    @admin.action(description="Run the selected jobs again", permissions=["operate"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        self._rerun(request, list(queryset))

    def object_actions(self, request: HttpRequest, obj: SyncJob) -> list[ObjectAction]:
        actions = []
        if obj.status in ACTIVE and obj.cancel_requested_at is None:
            actions.append(
                ObjectAction(
                    "cancel",
                    "Cancel this job",
                    lambda request, job: self._cancel(request, [job]),
                    danger=True,
                )
            )
        if obj.is_finished and obj.kind in JOB_RERUNS:
            actions.append(
                ObjectAction("rerun", "Run again", lambda request, job: self._rerun(request, [job]))
            )
        return actions


# --- the record store ---------------------------------------------------------------------------


@admin.register(SyncStream)
class SyncStreamAdmin(RecordAdmin):
    list_display = [
        "entity",
        "integration",
        "connection",
        "account",
        "last_synced_at",
        "cursor_updated_at",
    ]
    list_select_related = ["integration", "connection", "account"]
    search_fields = ["entity", "integration__name", "connection__name", "account__name"]
    fields = [
        "entity",
        "integration",
        "connection",
        "account",
        "cursor_shown",
        "cursor_updated_at",
        "last_synced_at",
        "created_at",
    ]
    readonly_fields = ["cursor_shown"]
    cursor_shown = json_field("cursor")


@admin.register(Snapshot)
class SnapshotAdmin(RecordAdmin):
    """Snapshots are immutable, and deleting one would delete its records with it."""

    list_display = [
        "id",
        "integration",
        "connection",
        "job",
        "record_count",
        "complete",
        "created_at",
        "completed_at",
    ]
    list_filter = ["complete"]
    list_select_related = ["integration", "connection", "job"]
    search_fields = ["id", "integration__name", "connection__name", "account__name"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "integration",
        "connection",
        "account",
        "job",
        "complete",
        "record_count",
        "entities_shown",
        "created_at",
        "completed_at",
    ]
    readonly_fields = ["entities_shown"]
    entities_shown = json_field("entities", "records per entity")


@admin.register(PulledFile)
class PulledFileAdmin(RecordAdmin):
    list_display = ["remote_path", "integration", "size", "sha256", "pulled_at", "archived_to"]
    list_select_related = ["integration"]
    search_fields = ["remote_path", "sha256", "integration__name"]
    date_hierarchy = "pulled_at"


# --- vehicles -----------------------------------------------------------------------------------


class VehicleVersionInline(admin.TabularInline):
    model = VehicleVersion
    extra = 0
    fields = ["created_at", "change_type", "changes_shown", "feed_file"]
    readonly_fields = ["created_at", "change_type", "changes_shown", "feed_file"]
    can_delete = False
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="changes")
    def changes_shown(self, version: VehicleVersion) -> SafeString:
        changes = version.changes or {}
        rows = [
            {"field": name, "before": change.get("old"), "after": change.get("new")}
            if isinstance(change, dict) and {"old", "new"} & set(change)
            else {"field": name, "before": None, "after": change}
            for name, change in changes.items()
        ]
        return records_table(rows, columns=["field", "before", "after"])


@admin.register(Vehicle)
class VehicleAdmin(RecordAdmin):
    list_display = [
        "key_column",
        "vehicle",
        "price_column",
        "status",
        "integration_column",
        "dealership",
        "updated",
    ]
    list_filter = [
        "status",
        "condition",
        ("integration", IntegrationFilter),
        ("dealership", admin.RelatedFieldListFilter),
        "currency",
    ]
    list_select_related = ["integration", "dealership"]
    search_fields = ["key", "vin", "stock_number", "make", "model", "integration__name"]
    readonly_fields = ["features_shown", "photos_shown", "extra_shown"]
    inlines = [VehicleVersionInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "key",
                    "integration",
                    "dealership",
                    "account",
                    "status",
                    "vin",
                    "stock_number",
                    "condition",
                    "year",
                    "make",
                    "model",
                    "trim",
                    "body_style",
                    "exterior_color",
                    "interior_color",
                    "mileage",
                ]
            },
        ),
        (
            "Price",
            {"fields": ["price", "msrp", "invoice", "book_value", "currency", "certified"]},
        ),
        (
            "Details",
            {
                "fields": [
                    "in_stock_date",
                    "engine",
                    "transmission",
                    "drivetrain",
                    "fuel_type",
                    "doors",
                    "description",
                    "features_shown",
                    "photos_shown",
                    "vdp_url",
                    "extra_shown",
                ]
            },
        ),
        (
            "In the feed",
            {
                "fields": [
                    "first_seen_at",
                    "last_seen_at",
                    "missing_syncs",
                    "missing_since",
                    "sold_at",
                    "removed_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    features_shown = json_field("features")
    extra_shown = json_field("extra", "columns mapped to nothing")

    @admin.display(description="photos")
    def photos_shown(self, vehicle: Vehicle) -> SafeString:
        urls = [url for url in vehicle.photo_urls or [] if isinstance(url, str)]
        if not urls:
            return empty("(none)")
        return format_html(
            '<ol class="railyard-list">{}</ol>',
            format_html_join("", "<li>{}</li>", ((url,) for url in urls)),
        )

    @admin.display(description="key · stock number", ordering="key")
    def key_column(self, vehicle: Vehicle) -> SafeString:
        if not vehicle.stock_number:
            return format_html("{}", vehicle.key)
        return format_html(
            '{}<br><span class="railyard-empty">{}</span>', vehicle.key, vehicle.stock_number
        )

    @admin.display(description="price", ordering="price")
    def price_column(self, vehicle: Vehicle) -> str:
        if vehicle.price is None:
            return "—"
        return f"{vehicle.price:,.2f} {vehicle.currency or ''}".strip()

    @admin.display(description="vehicle", ordering="make")
    def vehicle(self, vehicle: Vehicle) -> str:
        return " ".join(str(part) for part in (vehicle.year, vehicle.make, vehicle.model) if part)

    @admin.display(description="integration", ordering="integration__name")
    def integration_column(self, vehicle: Vehicle) -> SafeString:
        return integration_link(vehicle)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, vehicle: Vehicle) -> SafeString:
        return moment(vehicle.updated_at)
