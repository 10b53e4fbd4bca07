from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from accounts.services import Actor
from connectors import services
from connectors.models import Connection


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
        "config",
        "credential_keys",
        "last_sync_at",
        "last_tested_at",
        "last_test_result",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "account",
        "connector_id",
        "config",
        "credential_keys",
        "last_sync_at",
        "last_tested_at",
        "last_test_result",
        "created_at",
        "updated_at",
    ]

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
