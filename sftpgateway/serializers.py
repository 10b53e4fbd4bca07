"""The SFTP gateway's API shapes (camelCase). Nothing here ever carries a password hash."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from config.api.serializers import CamelModelSerializer, CamelSerializer
from sftpgateway.models import SftpActivity, SftpCredential, SftpKey


class SftpSecretSerializer(CamelSerializer):
    """Where and how to log in; the password is shown in this answer only."""

    host = serializers.CharField()
    port = serializers.IntegerField()
    username = serializers.CharField()
    password = serializers.CharField(help_text="Shown only once; only its hash is stored.")


class SftpCredentialSerializer(CamelModelSerializer):
    host = serializers.SerializerMethodField()
    port = serializers.SerializerMethodField()
    key_count = serializers.SerializerMethodField(
        method_name="get_key_count", help_text="Public keys registered."
    )

    class Meta:
        model = SftpCredential
        fields = [
            "integration_id",
            "host",
            "port",
            "username",
            "created_at",
            "rotated_at",
            "revoked_at",
            "last_login_at",
            "last_login_address",
            "key_count",
        ]
        read_only_fields = fields

    def get_host(self, credential: SftpCredential) -> str:
        return str(settings.SFTP_PUBLIC_HOST)

    def get_port(self, credential: SftpCredential) -> int:
        return int(settings.SFTP_PORT)

    def get_key_count(self, credential: SftpCredential) -> int:
        return credential.keys.count()


class SftpKeySerializer(CamelModelSerializer):
    class Meta:
        model = SftpKey
        fields = ["id", "name", "key_type", "bits", "fingerprint", "public_key", "created_at"]
        read_only_fields = fields


class SftpKeyCreateSerializer(CamelSerializer):
    name = serializers.CharField(max_length=100)
    publicKey = serializers.CharField(
        max_length=16384,
        trim_whitespace=True,
        help_text="One OpenSSH public key line: ssh-ed25519, ecdsa-sha2-nistp256/384/521, "
        "or ssh-rsa of at least 2048 bits.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        values = super().to_internal_value(data)
        return {"name": values["name"], "public_key": values["publicKey"]}


class SftpActivitySerializer(CamelModelSerializer):
    class Meta:
        model = SftpActivity
        fields = [
            "id",
            "event",
            "username",
            "remote_address",
            "path",
            "size",
            "sha256",
            "feed_file_id",
            "detail",
            "created_at",
        ]
        read_only_fields = fields
