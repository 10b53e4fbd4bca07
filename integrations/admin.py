"""Operator screens: integrations (live ones by default; deleted ones behind a filter, with a
restore action and button), their definition shown as tables and definition lists, links to
their files, jobs, vehicles and events; file imports, flows, revisions, shares."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.services import Actor
from config.console import (
    CONSOLE_CSS,
    ObjectAction,
    OperatorAdmin,
    RecordAdmin,
    change_link,
    changelist_link,
    empty,
    json_field,
    links,
    moment,
    number,
    records_table,
    value_html,
)
from integrations.models import (
    FileImport,
    Flow,
    Integration,
    IntegrationShare,
    Revision,
)
from integrations.services import imports as import_services
from integrations.services import integrations as services


def _operator(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


class DeletedFilter(admin.SimpleListFilter):
    """Live integrations unless the operator asks for the deleted ones (or all)."""

    title = "deleted"
    parameter_name = "deleted"
    default = "no"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted"), ("all", "All")]

    def chosen(self) -> str:
        value = self.value()
        return value if value in ("no", "yes", "all") else self.default

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.chosen() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Integration]
    ) -> QuerySet[Integration]:
        if self.chosen() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.chosen() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class FlowInline(admin.TabularInline):
    """An integration's flows, read here; they are changed through the API."""

    model = Flow
    extra = 0
    max_num = 0
    fields = readonly_fields = ("name", "disabled", "file_import", "updated_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The records of an integration elsewhere in the admin: (label, model, filter parameter, and
# the related manager counted, if any). Reversed by URL name, so no app below is imported.
RELATED = [
    ("received files", "syncengine.feedfile", "integration__id__exact", "feed_files"),
    ("jobs", "syncengine.syncjob", "integration__id__exact", "sync_jobs"),
    ("vehicles", "syncengine.vehicle", "integration__id__exact", "vehicles"),
    ("streams", "syncengine.syncstream", "integration__id__exact", None),
    ("events", "accounts.event", "integration_id", None),
    ("audit trail", "accounts.auditentry", "integration_id", None),
    ("exports", "exports.export", "integration__id__exact", None),
    ("file imports", "integrations.fileimport", "integration__id__exact", None),
    ("SFTP credentials", "sftpgateway.sftpcredential", "integration__id__exact", None),
]


@admin.register(Integration)
class IntegrationAdmin(OperatorAdmin):
    """Integrations are created and configured through the API. Operators rename, pause and
    resume one here, delete it (softly) and restore it; each goes through the services, so it
    is audited and announced like any other change."""

    list_display = [
        "name",
        "type",
        "account",
        "dealership",
        "state",
        "status",
        "last_sync",
        "failures",
    ]
    list_filter = [
        DeletedFilter,
        "state",
        "status",
        "type",
        "data_type",
        "import_dependency_status",
    ]
    list_select_related = ["account", "dealership"]
    search_fields = ["name", "id", "account__name", "dealership__name", "tag"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "id",
                    "type",
                    "data_type",
                    "account",
                    "dealership",
                    "source",
                    "destination",
                    "tag",
                    "version",
                ]
            },
        ),
        (
            "State",
            {
                "fields": [
                    "state",
                    "status",
                    "last_sync_at",
                    "consecutive_failures",
                    "last_error",
                    "import_dependency_status",
                    "latest_job",
                    "update_in_progress",
                    "deleted_at",
                ]
            },
        ),
        ("Records", {"fields": ["related"]}),
        ("Schedule", {"fields": ["schedule", "next_run_at", "historical_sync_start_date"]}),
        ("Sync settings", {"fields": ["sync_settings_shown"]}),
        (
            "Configuration",
            {
                "fields": [
                    "config_shown",
                    "settings_shown",
                    "dependencies",
                    "connections_shown",
                    "flow_groupings_shown",
                    "aliases_shown",
                ]
            },
        ),
        ("Install and uninstall", {"fields": ["install_steps_shown", "uninstall_steps_shown"]}),
        ("Changes", {"fields": ["created_at", "updated_at"]}),
    ]
    # Everything but the name and the state, which the form saves through integration_update.
    readonly_fields = [
        "id",
        "type",
        "data_type",
        "account",
        "dealership",
        "source",
        "destination",
        "tag",
        "version",
        "status",
        "last_sync_at",
        "consecutive_failures",
        "last_error",
        "import_dependency_status",
        "latest_job",
        "update_in_progress",
        "deleted_at",
        "related",
        "schedule",
        "next_run_at",
        "historical_sync_start_date",
        "sync_settings_shown",
        "config_shown",
        "settings_shown",
        "dependencies",
        "connections_shown",
        "flow_groupings_shown",
        "aliases_shown",
        "install_steps_shown",
        "uninstall_steps_shown",
        "created_at",
        "updated_at",
    ]
    inlines = [FlowInline]
    actions = ["soft_delete", "restore"]
    date_hierarchy = "created_at"

    config_shown = json_field("config", "configuration")
    settings_shown = json_field("settings")
    flow_groupings_shown = json_field("flow_groupings", "flow groupings")
    aliases_shown = json_field("aliases")
    install_steps_shown = json_field("install_steps", "install steps")
    uninstall_steps_shown = json_field("uninstall_steps", "uninstall steps")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        return Integration.all_objects.select_related(
            "account", "dealership", "source_connection", "destination_connection"
        )

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(self.list_display)
        if request.GET.get(DeletedFilter.parameter_name) in ("yes", "all"):
            shown.append("deleted")
        return shown

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # through the API, which provisions what an integration needs

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.deleted_at is not None:
            return False  # restore it first
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting is soft: the "delete" action, then "restore"

    def has_soft_delete_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.delete_integration")

    def response_action(
        self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        # Rows ticked one by one are acted on whether or not the filter lists them now (a
        # restore posted from the default, live-only list still finds the deleted one);
        # "select all" means what the filter shows.
        if request.POST.get("select_across") != "1":
            queryset = self.get_queryset(request)
        return super().response_action(request, queryset, *args, **kwargs)

    # --- columns and fields ---

    @admin.display(description="last sync", ordering="last_sync_at")
    def last_sync(self, integration: Integration) -> SafeString:
        return moment(integration.last_sync_at)

    @admin.display(description="failures", ordering="consecutive_failures")
    def failures(self, integration: Integration) -> int:
        return integration.consecutive_failures

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, integration: Integration) -> SafeString:
        return moment(integration.deleted_at)

    @admin.display(description="source")
    def source(self, integration: Integration) -> SafeString:
        return change_link(integration.source_connection)

    @admin.display(description="destination")
    def destination(self, integration: Integration) -> SafeString:
        return change_link(integration.destination_connection)

    @admin.display(description="latest job")
    def latest_job(self, integration: Integration) -> SafeString:
        if integration.latest_job_id is None:
            return empty()
        url = reverse("admin:syncengine_syncjob_change", args=[integration.latest_job_id])
        return format_html('<a href="{}">{}</a>', url, integration.latest_job_id)

    @admin.display(description="records of this integration")
    def related(self, integration: Integration) -> SafeString:
        items = []
        for label, model, parameter, counted in RELATED:
            text = label
            if counted is not None:
                text = f"{number(getattr(integration, counted).count())} {label}"
            try:
                items.append(changelist_link(model, text, **{parameter: integration.pk}))
            except NoReverseMatch:
                continue  # an app whose admin is not installed
        return links(items)

    @admin.display(description="schedule")
    def schedule(self, integration: Integration) -> SafeString:
        every = (
            f"every {integration.frequency_value} {integration.frequency_unit}"
            if integration.frequency_value and integration.frequency_unit
            else "no schedule"
        )
        return value_html(
            {
                "runs": every,
                "one-off": integration.one_off,
                "rolling window (days)": integration.rolling_window_days or None,
            }
        )

    @admin.display(description="sync settings")
    def sync_settings_shown(self, integration: Integration) -> SafeString:
        stored = integration.sync_settings or {}
        return records_table(
            [
                {
                    "setting": name,
                    "value": value,
                    "from": "the integration" if name in stored else "default",
                }
                for name, value in integration.effective_sync_settings.items()
            ],
            columns=["setting", "value", "from"],
        )

    @admin.display(description="depends on")
    def dependencies(self, integration: Integration) -> SafeString:
        upstream = list(Integration.all_objects.filter(dependents=integration).order_by("name"))
        return links(change_link(item) for item in upstream) if upstream else empty("(none)")

    @admin.display(description="registered connections")
    def connections_shown(self, integration: Integration) -> SafeString:
        connections = list(integration.connections.order_by("name"))
        if not connections:
            return empty("(none)")
        return links(change_link(connection) for connection in connections)

    # --- writes, through the services ---

    def save_model(
        self, request: HttpRequest, obj: Integration, form: ModelForm[Integration], change: bool
    ) -> None:
        stored = Integration.objects.get(pk=obj.pk)
        services.integration_update(
            integration=stored, actor=_operator(request), name=obj.name, state=obj.state
        )

    @admin.action(
        description="Delete the selected integrations (they can be restored)",
        permissions=["soft_delete"],
    )
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        actor = _operator(request)
        deleted = 0
        for integration in queryset.filter(deleted_at__isnull=True):
            services.integration_delete(integration=integration, actor=actor)
            deleted += 1
        self.message_user(request, f"Deleted {deleted} integration(s).", messages.SUCCESS)

    @admin.action(description="Restore the selected deleted integrations", permissions=["operate"])
    def restore(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        actor = _operator(request)
        restored = 0
        for integration in queryset.filter(deleted_at__isnull=False):
            services.integration_restore(integration=integration, actor=actor)
            restored += 1
        self.message_user(request, f"Restored {restored} integration(s).")

    def object_actions(self, request: HttpRequest, obj: Integration) -> list[ObjectAction]:
        if obj.deleted_at is None:
            return []
        return [
            ObjectAction(
                "restore",
                "Restore this integration",
                lambda request, integration: self.restore(
                    request, Integration.all_objects.filter(pk=integration.pk)
                ),
            )
        ]


@admin.register(FileImport)
class FileImportAdmin(OperatorAdmin):
    """File imports are defined through the API, which checks them; operators read them here
    (and delete one, audited). ``exports.admin`` adds their runs and a run action."""

    list_display = ["name", "api_identifier", "account", "integration", "entity", "modified"]
    list_filter = ["entity"]
    list_select_related = ["account", "integration"]
    search_fields = ["name", "api_identifier", "account__name", "entity"]
    fields = readonly_fields = (
        "name",
        "api_identifier",
        "account",
        "integration",
        "connection",
        "entity",
        "distributed",
        "file_shown",
        "ftp_shown",
        "mapping_shown",
        "filter_shown",
        "created_at",
        "last_modified",
    )

    file_shown = json_field("file", "file format")
    ftp_shown = json_field("ftp", "location")
    mapping_shown = json_field("mapping")
    filter_shown = json_field("filter")

    @admin.display(description="modified", ordering="last_modified")
    def modified(self, file_import: FileImport) -> SafeString:
        return moment(file_import.last_modified)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: FileImport) -> None:
        import_services.file_import_delete(file_import=obj, actor=_operator(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FileImport]) -> None:
        for file_import in queryset:
            import_services.file_import_delete(file_import=file_import, actor=_operator(request))


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    """Flows are defined through the API; here they are read, renamed or switched off (through
    the service, so it is audited), and deleted the same way."""

    list_display = ["name", "integration", "disabled", "updated_at"]
    list_filter = ["disabled"]
    search_fields = ["name", "integration__name"]
    list_select_related = ["integration"]
    fields = [
        "name",
        "disabled",
        "account",
        "integration",
        "file_import",
        "description",
        "settings_shown",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "account",
        "integration",
        "file_import",
        "description",
        "settings_shown",
        "created_at",
        "updated_at",
    ]
    settings_shown = json_field("settings", "settings")

    class Media:
        css = {"all": [CONSOLE_CSS]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Flow, form: ModelForm[Flow], change: bool
    ) -> None:
        stored = Flow.objects.get(pk=obj.pk)
        import_services.flow_update(
            flow=stored, actor=Actor.for_user(request.user), name=obj.name, disabled=obj.disabled
        )

    def delete_model(self, request: HttpRequest, obj: Flow) -> None:
        import_services.flow_delete(flow=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        actor = Actor.for_user(request.user)
        for flow in queryset:
            import_services.flow_delete(flow=flow, actor=actor)


@admin.register(Revision)
class RevisionAdmin(RecordAdmin):
    """Revisions are immutable copies of an integration's definition."""

    list_display = ["integration", "number", "description", "actor_name", "created_at"]
    list_select_related = ["integration"]
    search_fields = ["integration__name", "description"]
    fields = [
        "integration",
        "number",
        "description",
        "actor_type",
        "actor_name",
        "content_hash",
        "created_at",
        "snapshot_shown",
    ]
    readonly_fields = ["snapshot_shown"]
    snapshot_shown = json_field("snapshot", "definition")


@admin.register(IntegrationShare)
class IntegrationShareAdmin(admin.ModelAdmin):
    list_display = ["integration", "user", "access_level", "created_at"]
    list_filter = ["access_level"]
    raw_id_fields = ["integration", "user"]
