from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from accounts.services import Actor
from exports import services
from exports.models import Export


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
