"""Operator screens: SFTP credentials (never their hash), public keys, the gateway's activity."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.services import Actor
from sftpgateway import services
from sftpgateway.models import SftpActivity, SftpCredential, SftpKey


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
        "locked_until",
        "last_login_at",
        "last_login_address",
    ]
    list_filter = [
        ("revoked_at", admin.EmptyFieldListFilter),
        ("locked_until", admin.EmptyFieldListFilter),
    ]
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
        "locked_until",
        "last_login_at",
        "last_login_address",
    )
    readonly_fields = fields
    inlines = [SftpKeyInline]
    actions = ["unlock", "revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SftpCredential]:
        return super().get_queryset(request).select_related("integration", "account")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Lift the lockout of the selected credentials")
    def unlock(self, request: HttpRequest, queryset: QuerySet[SftpCredential]) -> None:
        for credential in queryset:
            services.credential_unlock(credential=credential, actor=_operator(request))
        self.message_user(request, f"Unlocked {queryset.count()} credential(s).", messages.SUCCESS)

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
