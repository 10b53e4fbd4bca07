from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.safestring import SafeString

from accounts.services import Actor
from config.api.errors import Conflict
from config.console import CONSOLE_CSS, changelist_link, json_field
from connectors import services
from connectors.models import Connection, CustomConnector


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    """Operators see and pause connections; credentials are never shown, only which keys are set.

    Connections are created through the API, which validates and encrypts their credentials.
    Changes and deletions made here go through the services, so they are audited.
    """

    list_display = ["name", "connector_id", "account", "status", "last_tested_at", "created_at"]
    list_filter = ["status", "connector_id"]
    search_fields = ["name", "connector_id", "account__name"]
    list_select_related = ["account"]
    fields = [
        "account",
        "connector_id",
        "name",
        "status",
        "config_shown",
        "credential_keys_shown",
        "last_sync_at",
        "last_tested_at",
        "last_test_shown",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "account",
        "connector_id",
        "config_shown",
        "credential_keys_shown",
        "last_sync_at",
        "last_tested_at",
        "last_test_shown",
        "created_at",
        "updated_at",
    ]
    config_shown = json_field("config", "configuration")
    credential_keys_shown = json_field("credential_keys", "credentials set (values never shown)")
    last_test_shown = json_field("last_test_result", "last test result")

    class Media:
        css = {"all": [CONSOLE_CSS]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Connection, form: ModelForm[Connection], change: bool
    ) -> None:
        stored = Connection.objects.get(pk=obj.pk)
        services.connection_update(
            connection=stored, actor=Actor.for_user(request.user), name=obj.name, status=obj.status
        )

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        services.connection_delete(connection=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        actor = Actor.for_user(request.user)
        for connection in queryset:
            services.connection_delete(connection=connection, actor=actor)


@admin.register(CustomConnector)
class CustomConnectorAdmin(admin.ModelAdmin):
    """An account's own connectors: read-only (a manifest is checked only through the API);
    deleting goes through the service, so it is audited and refused while connections use it."""

    list_display = ["connector_id", "name", "account", "category", "connections", "updated_at"]
    list_filter = ["account"]
    search_fields = ["connector_id", "name", "account__name"]
    list_select_related = ["account"]
    fields = ["account", "connector_id", "name", "connections", "manifest_shown", "created_at"]
    readonly_fields = [
        "account",
        "connector_id",
        "name",
        "connections",
        "manifest_shown",
        "created_at",
    ]
    manifest_shown = json_field("manifest", "manifest")

    class Media:
        css = {"all": [CONSOLE_CSS]}

    @admin.display(description="category")
    def category(self, obj: CustomConnector) -> str:
        return str(obj.manifest.get("category", ""))

    @staticmethod
    def _used_by(obj: CustomConnector) -> QuerySet[Connection]:
        return Connection.objects.filter(account_id=obj.account_id, connector_id=obj.connector_id)

    @admin.display(description="connections")
    def connections(self, obj: CustomConnector) -> SafeString:
        count = self._used_by(obj).count()
        return changelist_link(
            "connectors.connection",
            f"{count} connection{'' if count == 1 else 's'}",
            account__id__exact=obj.account_id,
            connector_id__exact=obj.connector_id,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A connector its connections still use cannot go (the service would refuse it too).
        in_use = obj is not None and self._used_by(obj).exists()
        return super().has_delete_permission(request, obj) and not in_use

    def delete_model(self, request: HttpRequest, obj: CustomConnector) -> None:
        services.custom_connector_delete(custom_connector=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CustomConnector]) -> None:
        actor = Actor.for_user(request.user)
        for custom_connector in queryset:
            try:
                services.custom_connector_delete(custom_connector=custom_connector, actor=actor)
            except Conflict as refusal:
                self.message_user(request, str(refusal), level=messages.ERROR)
