"""Operator screens: received files with their outcome (and a reprocess action), jobs, vehicles."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.services import Actor
from config.api.errors import ApplicationError
from syncengine import services
from syncengine.models import FeedFile, SyncJob, Vehicle, VehicleVersion


@admin.register(FeedFile)
class FeedFileAdmin(admin.ModelAdmin):
    list_display = [
        "filename",
        "integration",
        "status",
        "received_at",
        "processed_at",
        "records_total",
        "records_created",
        "records_updated",
        "records_errors",
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
        "trigger",
        "status",
        "created_at",
        "started_at",
        "completed_at",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["id", "integration__name", "account__name"]
    readonly_fields = [field.name for field in SyncJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


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
        "status",
        "integration",
        "updated_at",
    ]
    list_filter = ["status", "condition", "make"]
    search_fields = ["key", "vin", "stock_number", "make", "model", "integration__name"]
    readonly_fields = [field.name for field in Vehicle._meta.fields]
    inlines = [VehicleVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
