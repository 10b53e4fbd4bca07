"""Operator screens of exports and file imports: definitions shown as definition lists, their
runs read-only (each links to its job page, with progress, stats and log), and actions that
queue a run through the services the API calls. Export and import runs are jobs: the jobs
screen (``syncengine.admin``) cancels them and, with the handlers registered here, runs them
again."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.services import Actor
from config.api.errors import ApplicationError, Conflict
from config.console import (
    ObjectAction,
    OperatorAdmin,
    changelist_link,
    json_field,
    moment,
)
from exports import services
from exports.models import Export
from exports.selectors import export_run_rows
from integrations.admin import FileImportAdmin
from integrations.models import FileImport
from syncengine.admin import job_rerun_register
from syncengine.choices import JobKind
from syncengine.models import SyncJob
from syncengine.operations import job_progress


def _operator(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


def _export_rerun(job: SyncJob, actor: Actor) -> SyncJob:
    if job.export is None:
        raise ApplicationError("The run's export is gone.")
    return services.export_run_start(export=job.export, actor=actor)


def _import_rerun(job: SyncJob, actor: Actor) -> SyncJob:
    if job.file_import is None:
        raise ApplicationError("The run's file import is gone.")
    return services.file_import_run_start(file_import=job.file_import, actor=actor)


job_rerun_register(JobKind.EXPORT, _export_rerun)
job_rerun_register(JobKind.FILE_IMPORT, _import_rerun)


class RunInline(admin.TabularInline):
    """Runs of an export or a file import, newest first, read-only (the lifecycle alone writes
    a run); each links to its job page."""

    model = SyncJob
    verbose_name = "run"
    verbose_name_plural = "runs (newest first)"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)
    fields = (
        "status",
        "trigger",
        "attempts",
        "created",
        "progress",
        "rows",
        "files",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncJob]:
        return super().get_queryset(request).prefetch_related("export_files")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="created")
    def created(self, run: SyncJob) -> SafeString:
        return moment(run.created_at)

    @admin.display(description="progress")
    def progress(self, run: SyncJob) -> str:
        return job_progress(run).label

    @admin.display(description="rows per entity")
    def rows(self, run: SyncJob) -> str:
        return ", ".join(f"{entity}: {rows}" for entity, rows in export_run_rows(run).items())

    @admin.display(description="files")
    def files(self, run: SyncJob) -> str:
        return format_html_join(
            "",
            "<div>{} ({} bytes, {} rows, sha256 {})</div>",
            (
                (file.uri, file.bytes, file.rows, file.sha256[:12])
                for file in run.export_files.all()
            ),
        )


class ExportRunInline(RunInline):
    fk_name = "export"


class ImportRunInline(RunInline):
    fk_name = "file_import"


@admin.register(Export)
class ExportAdmin(OperatorAdmin):
    """Operators see every export and may pause or resume one, or run it now.

    Definitions are created and edited through the API, which validates them; the state change
    and deletions made here go through the services, so they are audited like any other.
    """

    list_display = ("name", "account", "format", "state", "frequency", "next_run", "last_run")
    list_filter = ("format", "state", "frequency")
    search_fields = ("name", "account__name")
    list_select_related = ("account",)
    fields = (
        "name",
        "account",
        "integration",
        "state",
        "format",
        "entities_shown",
        "filter_shown",
        "fields_shown",
        "options_shown",
        "frequency",
        "day",
        "time",
        "timezone",
        "next_run_at",
        "destination_shown",
        "last_run_at",
        "runs_link",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(name for name in fields if name != "state")
    inlines = (ExportRunInline,)
    actions = ("run_now",)

    entities_shown = json_field("entities")
    filter_shown = json_field("filter")
    fields_shown = json_field("fields", "columns")
    options_shown = json_field("options", "format options")
    destination_shown = json_field("destination")

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, export: Export) -> SafeString:
        return moment(export.next_run_at)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, export: Export) -> SafeString:
        return moment(export.last_run_at)

    @admin.display(description="all runs")
    def runs_link(self, export: Export) -> SafeString:
        return changelist_link("syncengine.syncjob", "runs as jobs", export__id__exact=export.pk)

    def _run_now(self, request: HttpRequest, exports: list[Export]) -> None:
        actor = _operator(request)
        started, busy = 0, []
        for export in exports:
            try:
                services.export_run_start(export=export, actor=actor)
                started += 1
            except Conflict:
                busy.append(export.name)
        if started:
            self.message_user(request, f"{started} run(s) queued.", messages.SUCCESS)
        if busy:
            self.message_user(
                request,
                f"Already queued or running, not started again: {', '.join(busy)}.",
                messages.WARNING,
            )

    @admin.action(description="Run the selected exports now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Export]) -> None:
        self._run_now(request, list(queryset))

    def object_actions(self, request: HttpRequest, obj: Export) -> list[ObjectAction]:
        return [
            ObjectAction(
                "run_now", "Run now", lambda request, export: self._run_now(request, [export])
            )
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Export, form: ModelForm[Export], change: bool
    ) -> None:
        # The form has already written the new state onto ``obj``; the service compares it with
        # the stored row to audit the change and recompute next_run_at.
        stored = Export.objects.get(pk=obj.pk)
        services.export_update(export=stored, actor=_operator(request), state=obj.state)

    def delete_model(self, request: HttpRequest, obj: Export) -> None:
        services.export_delete(export=obj, actor=_operator(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Export, Any]) -> None:
        for export in queryset:
            services.export_delete(export=export, actor=_operator(request))


admin.site.unregister(FileImport)


@admin.register(FileImport)
class FileImportRunsAdmin(FileImportAdmin):
    """A file import with its runs, and an action that runs it now."""

    inlines = (ImportRunInline,)
    actions = ("run_now",)

    def _run_now(self, request: HttpRequest, imports: list[FileImport]) -> None:
        actor = _operator(request)
        started = 0
        for file_import in imports:
            try:
                services.file_import_run_start(file_import=file_import, actor=actor)
                started += 1
            except ApplicationError as refusal:
                self.message_user(
                    request, _refusal(file_import.name, refusal), level=messages.WARNING
                )
        if started:
            self.message_user(request, f"{started} run(s) queued.", messages.SUCCESS)

    @admin.action(description="Run the selected file imports now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[FileImport]) -> None:
        self._run_now(request, list(queryset))

    def object_actions(self, request: HttpRequest, obj: FileImport) -> list[ObjectAction]:
        return [
            ObjectAction("run_now", "Run now", lambda request, item: self._run_now(request, [item]))
        ]


def _refusal(name: str, refusal: ApplicationError) -> SafeString:
    problems = "; ".join(
        f"{field}: {'; '.join(map(str, reasons))}" for field, reasons in refusal.details.items()
    )
    return format_html("{}: {} {}", name, refusal.message, problems)
