from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html_join

from accounts.services import Actor
from config.api.errors import Conflict
from exports import services
from exports.models import Export
from exports.selectors import export_run_rows
from syncengine.models import SyncJob


class ExportRunInline(admin.TabularInline):
    """An export's runs, newest first, read-only: the lifecycle alone writes a run."""

    model = SyncJob
    fk_name = "export"
    verbose_name = "run"
    verbose_name_plural = "runs (newest first)"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ("-created_at",)
    fields = (
        "status",
        "trigger",
        "attempts",
        "created_at",
        "started_at",
        "completed_at",
        "rows",
        "files",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncJob]:
        return super().get_queryset(request).prefetch_related("export_files")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """Operators see every export and may pause or resume one.

    Definitions are created and edited through the API, which validates them; the state change
    and deletions made here go through the services, so they are audited like any other.
    """

    list_display = ("name", "account", "format", "state", "frequency", "next_run_at", "last_run_at")
    list_filter = ("format", "state", "frequency")
    search_fields = ("name", "account__name")
    list_select_related = ("account",)
    fields = (
        "name",
        "account",
        "integration",
        "state",
        "format",
        "entities",
        "filter",
        "frequency",
        "day",
        "time",
        "timezone",
        "next_run_at",
        "destination",
        "last_run_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(name for name in fields if name != "state")
    inlines = (ExportRunInline,)
    actions = ("run_now",)

    @admin.action(description="Run the selected exports now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Export]) -> None:
        actor = Actor.for_user(request.user)
        started, busy = 0, []
        for export in queryset:
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Export, form: ModelForm[Export], change: bool
    ) -> None:
        # The form has already written the new state onto ``obj``; the service compares it with
        # the stored row to audit the change and recompute next_run_at.
        stored = Export.objects.get(pk=obj.pk)
        services.export_update(export=stored, actor=Actor.for_user(request.user), state=obj.state)

    def delete_model(self, request: HttpRequest, obj: Export) -> None:
        services.export_delete(export=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Export, Any]) -> None:
        for export in queryset:
            services.export_delete(export=export, actor=Actor.for_user(request.user))
