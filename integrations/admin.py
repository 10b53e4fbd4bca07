"""Operator screens: every integration, soft-deleted ones too, with a restore action."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.services import Actor
from integrations.models import FileImport, Flow, Integration, IntegrationShare, Revision
from integrations.services import integrations as services


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Integration]
    ) -> QuerySet[Integration]:
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class FlowInline(admin.TabularInline):
    model = Flow
    extra = 0
    fields = ["name", "disabled", "file_import"]
    show_change_link = True


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "type",
        "account",
        "dealership",
        "state",
        "status",
        "last_sync_at",
        "consecutive_failures",
        "next_run_at",
        "deleted_at",
    ]
    list_filter = [
        DeletedFilter,
        "state",
        "status",
        "type",
        "data_type",
        "import_dependency_status",
    ]
    search_fields = ["name", "id", "account__name", "dealership__name", "tag"]
    readonly_fields = [
        "id",
        "status",
        "last_sync_at",
        "last_error",
        "consecutive_failures",
        "latest_job_id",
        "next_run_at",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    autocomplete_fields = ["account", "dealership"]
    raw_id_fields = ["source_connection", "destination_connection", "depends_on", "connections"]
    inlines = [FlowInline]
    actions = ["restore"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        return Integration.all_objects.select_related("account", "dealership")

    @admin.action(description="Restore the selected deleted integrations")
    def restore(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        actor = Actor.for_user(request.user)
        restored = 0
        for integration in queryset.filter(deleted_at__isnull=False):
            services.integration_restore(integration=integration, actor=actor)
            restored += 1
        self.message_user(request, f"Restored {restored} integration(s).")


@admin.register(FileImport)
class FileImportAdmin(admin.ModelAdmin):
    list_display = ["name", "api_identifier", "account", "integration", "entity", "last_modified"]
    list_filter = ["entity"]
    search_fields = ["name", "api_identifier", "account__name", "entity"]
    raw_id_fields = ["account", "integration", "connection"]


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["name", "integration", "disabled", "updated_at"]
    list_filter = ["disabled"]
    search_fields = ["name", "integration__name"]
    raw_id_fields = ["account", "integration", "file_import"]


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["integration", "number", "description", "actor_name", "created_at"]
    search_fields = ["integration__name", "description"]
    readonly_fields = [field.name for field in Revision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(IntegrationShare)
class IntegrationShareAdmin(admin.ModelAdmin):
    list_display = ["integration", "user", "access_level", "created_at"]
    list_filter = ["access_level"]
    raw_id_fields = ["integration", "user"]
