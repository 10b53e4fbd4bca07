"""Operator screens: SFTP credentials (never their hash), public keys, the gateway's activity,
and the defender's addresses (with an action that lifts a ban)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.services import Actor
from sftpgateway import services
from sftpgateway.models import (
    DefenderEvent,
    DefenderHost,
    SftpActivity,
    SftpCredential,
    SftpKey,
)


def _operator(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


class SftpKeyInline(admin.TabularInline):
    model = SftpKey
    fields = ("name", "key_type", "bits", "fingerprint", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SftpCredential)
class SftpCredentialAdmin(admin.ModelAdmin):
    """Credentials are issued with their integration and rotated through the API."""

    list_display = [
        "username",
        "integration",
        "account",
        "created_at",
        "rotated_at",
        "revoked_at",
        "last_login_at",
        "last_login_address",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["username", "integration__name", "account__name"]
    # Everything but password_hash, which no screen shows.
    fields = (
        "username",
        "account",
        "integration",
        "secret_version",
        "created_at",
        "rotated_at",
        "revoked_at",
        "last_login_at",
        "last_login_address",
    )
    readonly_fields = fields
    inlines = [SftpKeyInline]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SftpCredential]:
        return super().get_queryset(request).select_related("integration", "account")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke the selected credentials (disconnects their sessions)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SftpCredential]) -> None:
        for credential in queryset:
            services.credential_revoke(credential=credential, actor=_operator(request))
        self.message_user(request, f"Revoked {queryset.count()} credential(s).", messages.SUCCESS)


@admin.register(SftpKey)
class SftpKeyAdmin(admin.ModelAdmin):
    """Keys are added through the API; an operator may remove one (audited)."""

    list_display = ["name", "credential", "key_type", "bits", "fingerprint", "created_at"]
    list_filter = ["key_type"]
    search_fields = ["name", "fingerprint", "credential__username"]
    fields = ("name", "credential", "account", "key_type", "bits", "fingerprint", "public_key")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: SftpKey) -> None:
        services.key_delete(key=obj, actor=_operator(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SftpKey]) -> None:
        for key in queryset:
            services.key_delete(key=key, actor=_operator(request))


@admin.register(SftpActivity)
class SftpActivityAdmin(admin.ModelAdmin):
    """The gateway's log, read-only."""

    list_display = ["created_at", "event", "username", "remote_address", "path", "size", "detail"]
    list_filter = ["event", "created_at"]
    search_fields = ["username", "remote_address", "path", "sha256"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "event",
        "username",
        "credential",
        "account",
        "integration_id",
        "remote_address",
        "path",
        "size",
        "sha256",
        "feed_file_id",
        "detail",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class DefenderEventInline(admin.TabularInline):
    model = DefenderEvent
    fields = ("created_at", "kind", "connections", "score")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class BannedFilter(admin.SimpleListFilter):
    title = "ban"
    parameter_name = "banned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Banned now"), ("no", "Not banned")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DefenderHost]) -> Any:
        banned = Q(banned_until__gt=timezone.now())
        if self.value() == "yes":
            return queryset.filter(banned)
        if self.value() == "no":
            return queryset.exclude(banned)
        return queryset


@admin.register(DefenderHost)
class DefenderHostAdmin(admin.ModelAdmin):
    """Source addresses the defender has scored or banned; operators lift bans here (or with
    ``manage.py sftp_bans --lift``)."""

    list_display = [
        "address",
        "banned_until",
        "ban_count",
        "refused_count",
        "ban_reason",
        "last_event_at",
    ]
    list_filter = [BannedFilter]
    search_fields = ["address"]
    fields = (
        "address",
        "banned_until",
        "banned_at",
        "ban_count",
        "ban_reason",
        "refused_count",
        "credential",
        "last_event_at",
        "created_at",
    )
    readonly_fields = fields
    inlines = [DefenderEventInline]
    actions = ["lift_ban"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Lift the ban of the selected addresses (and forget them)")
    def lift_ban(self, request: HttpRequest, queryset: QuerySet[DefenderHost]) -> None:
        operator = f"operator {request.user.get_username()}"
        addresses = list(queryset.values_list("address", flat=True))
        lifted = sum(
            services.defender_ban_lift(address=address, lifted_by=operator) for address in addresses
        )
        self.message_user(
            request,
            f"Lifted {lifted} ban(s); {len(addresses)} address(es) forgotten.",
            messages.SUCCESS,
        )
