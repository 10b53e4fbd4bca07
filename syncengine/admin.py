"""Operator screens: received files with their outcome (and a reprocess action), jobs (and a
cancel action), streams, snapshots, pulled files, vehicles."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.services import Actor
from config.api.errors import ApplicationError
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


@admin.register(FeedFile)
class FeedFileAdmin(admin.ModelAdmin):
    list_display = [
        "filename",
        "integration",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "records_total",
        "records_created",
        "records_updated",
        "records_errors",
        "records_warnings",
        "duration_ms",
    ]
    list_filter = ["status", "source"]
    search_fields = ["filename", "sha256", "integration__name", "account__name"]
    date_hierarchy = "received_at"
    readonly_fields = [field.name for field in FeedFile._meta.fields]
    actions = ["reprocess", "reprocess_forced"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _reprocess(self, request: HttpRequest, queryset: QuerySet[FeedFile], force: bool) -> None:
        actor = Actor.for_user(request.user)
        queued = 0
        for feed_file in queryset:
            try:
                services.feed_file_reprocess(feed_file=feed_file, actor=actor, force=force)
                queued += 1
            except ApplicationError as exc:
                self.message_user(
                    request, f"{feed_file.filename}: {exc.message}", level=messages.ERROR
                )
        self.message_user(request, f"Queued {queued} file(s) for reprocessing.")

    @admin.action(description="Reprocess with the current mappings")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[FeedFile]) -> None:
        self._reprocess(request, queryset, force=False)

    @admin.action(description="Reprocess, overriding the row-count guard")
    def reprocess_forced(self, request: HttpRequest, queryset: QuerySet[FeedFile]) -> None:
        self._reprocess(request, queryset, force=True)


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "integration",
        "connection",
        "export",
        "file_import",
        "kind",
        "trigger",
        "mode",
        "status",
        "attempts",
        "created_at",
        "started_at",
        "completed_at",
    ]
    list_filter = ["status", "kind", "trigger", "mode"]
    list_select_related = ["integration", "connection", "export", "file_import"]
    search_fields = [
        "id",
        "integration__name",
        "connection__name",
        "export__name",
        "file_import__name",
        "account__name",
    ]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in SyncJob._meta.fields]
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Cancel selected jobs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        actor = Actor.for_user(request.user)
        cancelled = 0
        for job in queryset:
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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the sync engine: operators look, they do not edit or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SyncStream)
class SyncStreamAdmin(ReadOnlyAdmin):
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


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
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


@admin.register(PulledFile)
class PulledFileAdmin(ReadOnlyAdmin):
    list_display = ["remote_path", "integration", "size", "sha256", "pulled_at", "archived_to"]
    list_select_related = ["integration"]
    search_fields = ["remote_path", "sha256", "integration__name"]
    date_hierarchy = "pulled_at"


class VehicleVersionInline(admin.TabularInline):
    model = VehicleVersion
    extra = 0
    fields = ["created_at", "change_type", "changes"]
    readonly_fields = ["created_at", "change_type", "changes"]
    can_delete = False


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "stock_number",
        "year",
        "make",
        "model",
        "price",
        "currency",
        "status",
        "integration",
        "updated_at",
    ]
    list_filter = ["status", "condition", "currency", "make"]
    search_fields = ["key", "vin", "stock_number", "make", "model", "integration__name"]
    readonly_fields = [field.name for field in Vehicle._meta.fields]
    inlines = [VehicleVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
