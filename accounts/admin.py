"""Operator screens for tenants, dealerships, API keys, the audit trail and events."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch
from django.utils.safestring import SafeString

from accounts import services
from accounts.models import Account, ApiKey, AuditEntry, Dealership, Event, User
from config.console import (
    CONSOLE_CSS,
    changelist_link,
    empty,
    json_field,
    links,
    moment,
    records_table,
)


def _operator(request: HttpRequest) -> services.Actor:
    return services.Actor.for_user(request.user)


# An account's records elsewhere in the admin: (label, model, filter parameter).
ACCOUNT_RECORDS = [
    ("integrations", "integrations.integration", "account__id__exact"),
    ("dealerships", "accounts.dealership", "account__id__exact"),
    ("received files", "syncengine.feedfile", "account__id__exact"),
    ("jobs", "syncengine.syncjob", "account__id__exact"),
    ("events", "accounts.event", "account__id__exact"),
    ("audit trail", "accounts.auditentry", "account__id__exact"),
]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "created_at", "records"]

    @admin.display(description="records of this account")
    def records(self, account: Account) -> SafeString:
        if account.pk is None:
            return empty()
        items = []
        for label, model, parameter in ACCOUNT_RECORDS:
            try:
                items.append(changelist_link(model, label, **{parameter: account.pk}))
            except NoReverseMatch:
                continue
        return links(items)


@admin.register(User)
class RailyardUserAdmin(UserAdmin):
    list_display = ["username", "email", "account", "is_staff", "is_active"]
    list_filter = ["is_staff", "is_active", "account"]
    fieldsets = (*UserAdmin.fieldsets, ("Tenant", {"fields": ("account",)}))  # type: ignore[misc]
    autocomplete_fields = ["account"]


@admin.register(Dealership)
class DealershipAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "city", "region", "timezone", "created_at"]
    list_filter = ["timezone", "country"]
    search_fields = ["name", "city", "account__name", "id"]
    autocomplete_fields = ["account"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here like through the API: the whole key is shown once, in a message."""

    list_display = [
        "name",
        "account",
        "scope",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "account__name"]
    autocomplete_fields = ["account"]
    fields = ["account", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Account and scope are fixed once a key exists: a key that needs more is replaced.
        return [*self.readonly_fields, "account", "scope"] if obj else list(self.readonly_fields)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "scope" in form.base_fields:
            # The select always sends a scope; a scripted POST without one gets the default.
            form.base_fields["scope"].required = False
        return form

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = services.api_key_create(
            account=obj.account, name=obj.name, scope=obj.scope, actor=_operator(request)
        )
        obj.pk = api_key.pk
        obj.prefix = api_key.prefix
        obj._state.adding = False
        self.message_user(
            request,
            f"New API key (copy it now, it is not shown again): {raw_key}",
            level=messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit trail keeps pointing at the key

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=_operator(request))
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created", "account", "resource_type", "action", "resource_id", "actor_name"]
    list_filter = ["resource_type", "action", "actor_type"]
    list_select_related = ["account"]
    search_fields = ["resource_id", "integration_id", "actor_name", "account__name"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "account",
        "integration_id",
        "resource_type",
        "resource_id",
        "action",
        "actor_type",
        "actor_id",
        "actor_name",
        "changes_shown",
    ]
    readonly_fields = ["changes_shown"]

    class Media:
        css = {"all": [CONSOLE_CSS]}

    @admin.display(description="created", ordering="created_at")
    def created(self, entry: AuditEntry) -> SafeString:
        return moment(entry.created_at)

    @admin.display(description="changes")
    def changes_shown(self, entry: AuditEntry) -> SafeString:
        rows = [
            {"field": name, "before": change.get("before"), "after": change.get("after")}
            if isinstance(change, dict) and {"before", "after"} & set(change)
            else {"field": name, "before": None, "after": change}
            for name, change in (entry.changes or {}).items()
        ]
        return records_table(rows, columns=["field", "before", "after"])


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created", "account", "type", "integration_id"]
    list_filter = ["type"]
    list_select_related = ["account"]
    search_fields = ["type", "integration_id", "account__name"]
    date_hierarchy = "created_at"
    fields = ["created_at", "account", "type", "integration_id", "payload_shown"]
    readonly_fields = ["payload_shown"]
    payload_shown = json_field("payload")

    class Media:
        css = {"all": [CONSOLE_CSS]}

    @admin.display(description="created", ordering="created_at")
    def created(self, event: Event) -> SafeString:
        return moment(event.created_at)
