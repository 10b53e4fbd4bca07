"""The SFTP endpoints of a feed integration: credentials in the create response, info, rotation,
public keys, activity; tenant isolation and the audit trail."""

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.contrib.auth.hashers import check_password

from accounts.models import AuditEntry
from sftpgateway import services
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity, SftpCredential, SftpKey
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.sftpgateway.conftest import create_feed
from tests.test_api_conventions import assert_error

pytestmark = pytest.mark.django_db


def public_line(private_key, comment="partner@example"):
    public = private_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}"


def openssh_fingerprint(line):
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@pytest.fixture
def feed(tenant, settings):
    settings.SFTP_PUBLIC_HOST = "sftp.railyard.example"
    settings.SFTP_PORT = 2222
    return create_feed(tenant)


def url(feed, suffix=""):
    return f"/api/v1/integrations/{feed.integration.pk}/sftp{suffix}"


def audit_text(account):
    return json.dumps(list(AuditEntry.objects.filter(account=account).values("changes")))


class TestIssuedWithTheIntegration:
    @pytest.mark.parametrize("feed_type", ["vauto", "homenet", "elead", "custom"])
    def test_create_response_carries_the_login_and_only_a_hash_is_stored(
        self, tenant, settings, feed_type
    ):
        settings.SFTP_PUBLIC_HOST = "sftp.railyard.example"
        settings.SFTP_PORT = 2222

        feed = create_feed(tenant, feed_type)

        assert feed.host == "sftp.railyard.example"
        assert feed.port == 2222
        assert re.fullmatch(rf"{feed_type}_[a-z0-9]{{6}}", feed.username)
        assert len(feed.password) >= 24
        credential = SftpCredential.objects.get(integration=feed.integration)
        assert credential.username == feed.username
        assert feed.password not in credential.password_hash
        assert check_password(feed.password, credential.password_hash)
        entry = AuditEntry.objects.get(resource_type="sftp_credential")
        assert entry.action == "created"
        assert entry.integration_id == feed.integration.pk
        assert entry.changes == {"username": {"before": None, "after": feed.username}}
        assert feed.password not in audit_text(tenant.account)
        assert credential.password_hash not in audit_text(tenant.account)

    def test_usernames_are_unique(self, tenant):
        names = {create_feed(tenant).username for _ in range(5)}

        assert len(names) == 5

    def test_a_non_feed_integration_gets_no_credentials(self, tenant, api):
        source = ConnectionFactory(account=tenant.account, connector_id="test_shop_api")
        destination = ConnectionFactory(account=tenant.account, connector_id="test_shop_api")

        response = api.post(
            "/api/v1/integrations",
            {
                "sourceAppId": str(source.pk),
                "destinationAppId": str(destination.pk),
                "dataType": "events",
            },
            format="json",
        )

        assert response.status_code == 201, response.content
        data = response.json()["data"]
        assert "sftp" not in data
        assert not SftpCredential.objects.exists()
        for suffix in ("", "/keys", "/activity"):
            assert_error(
                api.get(f"/api/v1/integrations/{data['id']}/sftp{suffix}"), 404, "NOT_FOUND"
            )
        assert_error(api.post(f"/api/v1/integrations/{data['id']}/sftp/rotate"), 404, "NOT_FOUND")

    def test_a_clone_gets_its_own_credentials(self, feed, api):
        response = api.post(f"/api/v1/integrations/{feed.integration.pk}/clone", {}, format="json")

        assert response.status_code == 201, response.content
        sftp = response.json()["data"]["sftp"]
        assert sftp["username"].startswith("vauto_")
        assert sftp["username"] != feed.username
        assert sftp["password"] != feed.password
        assert SftpCredential.objects.count() == 2

    def test_deleting_the_integration_revokes_them(self, tenant, feed, api):
        response = api.delete(f"/api/v1/integrations/{feed.integration.pk}")

        assert response.status_code == 204
        credential = SftpCredential.objects.get(username=feed.username)
        assert credential.revoked_at is not None
        entry = AuditEntry.objects.get(resource_type="sftp_credential", action="revoked")
        assert entry.resource_id == str(credential.pk)
        assert_error(api.get(url(feed)), 404, "NOT_FOUND")


class TestInfoAndRotation:
    def test_info_has_no_secret(self, feed, api):
        response = api.get(url(feed))

        assert response.status_code == 200, response.content
        data = response.json()["data"]
        assert data == {
            "integrationId": str(feed.integration.pk),
            "host": "sftp.railyard.example",
            "port": 2222,
            "username": feed.username,
            "createdAt": data["createdAt"],
            "rotatedAt": None,
            "revokedAt": None,
            "lastLoginAt": None,
            "lastLoginAddress": "",
            "keyCount": 0,
        }
        credential = SftpCredential.objects.get()
        assert feed.password not in response.content.decode()
        assert credential.password_hash not in response.content.decode()

    def test_rotate_issues_a_new_password_and_the_old_one_stops_matching(self, tenant, feed, api):
        response = api.post(url(feed, "/rotate"))

        assert response.status_code == 200, response.content
        data = response.json()["data"]
        assert set(data) == {"host", "port", "username", "password"}
        assert data["username"] == feed.username
        assert data["password"] != feed.password
        assert len(data["password"]) >= 24
        credential = SftpCredential.objects.get()
        assert check_password(data["password"], credential.password_hash)
        assert not check_password(feed.password, credential.password_hash)
        assert credential.secret_version == 2
        assert api.get(url(feed)).json()["data"]["rotatedAt"] is not None
        entry = AuditEntry.objects.get(resource_type="sftp_credential", action="updated")
        assert set(entry.changes) == {"rotatedAt"}
        assert data["password"] not in audit_text(tenant.account)

    def test_an_integration_without_credentials_gets_them_by_rotating(self, tenant, api):
        integration = IntegrationFactory(account=tenant.account, type="homenet")
        base = f"/api/v1/integrations/{integration.pk}/sftp"

        missing = api.get(base)
        rotated = api.post(f"{base}/rotate")

        assert_error(missing, 404, "NOT_FOUND")
        assert rotated.status_code == 200, rotated.content
        assert rotated.json()["data"]["username"].startswith("homenet_")
        assert api.get(base).status_code == 200


class TestKeys:
    def test_add_list_get_and_delete(self, tenant, feed, api):
        line = public_line(ed25519.Ed25519PrivateKey.generate())

        created = api.post(url(feed, "/keys"), {"name": "laptop", "publicKey": line}, format="json")

        assert created.status_code == 201, created.content
        key = created.json()["data"]
        assert key["name"] == "laptop"
        assert key["keyType"] == "ssh-ed25519"
        assert key["fingerprint"] == openssh_fingerprint(line)
        assert key["publicKey"] == " ".join(line.split()[:2])
        listed = api.get(url(feed, "/keys")).json()
        assert [item["id"] for item in listed["data"]] == [key["id"]]
        assert listed["meta"]["pagination"]["total"] == 1
        assert api.get(url(feed, f"/keys/{key['id']}")).json()["data"] == key
        assert api.get(url(feed)).json()["data"]["keyCount"] == 1

        deleted = api.delete(url(feed, f"/keys/{key['id']}"))

        assert deleted.status_code == 204
        assert not SftpKey.objects.exists()
        assert api.get(url(feed, "/keys")).json()["data"] == []
        actions = AuditEntry.objects.filter(resource_type="sftp_key").values_list(
            "action", flat=True
        )
        assert sorted(actions) == ["created", "deleted"]

    @pytest.mark.parametrize(
        "make_key",
        [
            lambda: ec.generate_private_key(ec.SECP256R1()),
            lambda: ec.generate_private_key(ec.SECP384R1()),
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ],
        ids=["ecdsa-p256", "ecdsa-p384", "rsa-2048"],
    )
    def test_ecdsa_and_rsa_keys_are_accepted(self, feed, api, make_key):
        line = public_line(make_key())

        response = api.post(url(feed, "/keys"), {"name": "k", "publicKey": line}, format="json")

        assert response.status_code == 201, response.content
        assert response.json()["data"]["keyType"] == line.split()[0]

    @pytest.mark.parametrize(
        "public_key",
        [
            "not a key",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64!!!",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGarbage",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-rsa " + public_line(ed25519.Ed25519PrivateKey.generate()).split()[1],
            public_line(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
        ],
        ids=["garbage", "no-data", "bad-base64", "truncated", "dsa", "type-mismatch", "rsa-1024"],
    )
    def test_a_bad_or_weak_key_is_a_400(self, feed, api, public_key):
        response = api.post(
            url(feed, "/keys"), {"name": "bad", "publicKey": public_key}, format="json"
        )

        assert_error(response, 400, "VALIDATION_ERROR")
        assert "publicKey" in response.json()["error"]["details"]
        assert not SftpKey.objects.exists()

    def test_missing_fields_are_a_400(self, feed, api):
        response = api.post(url(feed, "/keys"), {}, format="json")

        assert_error(response, 400, "VALIDATION_ERROR")
        assert set(response.json()["error"]["details"]) == {"name", "publicKey"}

    def test_the_same_key_twice_is_a_409(self, feed, api):
        line = public_line(ed25519.Ed25519PrivateKey.generate())
        api.post(url(feed, "/keys"), {"name": "a", "publicKey": line}, format="json")

        again = api.post(url(feed, "/keys"), {"name": "b", "publicKey": line}, format="json")

        assert_error(again, 409, "CONFLICT")
        assert SftpKey.objects.count() == 1


class TestActivity:
    def test_lists_this_integrations_rows_newest_first_and_filters(self, tenant, feed, api):
        other = create_feed(tenant, "elead")
        credential = SftpCredential.objects.get(username=feed.username)
        services.activity_record(event=ActivityEvent.LOGIN, credential=credential, detail="1")
        services.activity_record(
            event=ActivityEvent.UPLOAD, credential=credential, path="inventory.csv", size=10
        )
        services.activity_record(
            event=ActivityEvent.LOGIN,
            credential=SftpCredential.objects.get(username=other.username),
        )
        services.activity_record(event=ActivityEvent.LOGIN_FAILED, username="nobody")

        listed = api.get(url(feed, "/activity")).json()
        uploads = api.get(url(feed, "/activity"), {"event": "upload"}).json()

        assert [row["event"] for row in listed["data"]] == ["upload", "login"]
        assert listed["data"][0]["path"] == "inventory.csv"
        assert listed["data"][0]["size"] == 10
        assert set(listed["data"][0]) == {
            "id",
            "event",
            "username",
            "remoteAddress",
            "path",
            "size",
            "sha256",
            "feedFileId",
            "detail",
            "createdAt",
        }
        assert [row["event"] for row in uploads["data"]] == ["upload"]


ENDPOINTS = [
    ("get", ""),
    ("post", "/rotate"),
    ("get", "/keys"),
    ("post", "/keys"),
    ("get", "/keys/{key}"),
    ("delete", "/keys/{key}"),
    ("get", "/activity"),
]


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
def test_another_account_gets_404_and_changes_nothing(feed, api, other_tenant, method, suffix):
    line = public_line(ed25519.Ed25519PrivateKey.generate())
    key = api.post(url(feed, "/keys"), {"name": "mine", "publicKey": line}, format="json")
    key_id = key.json()["data"]["id"]
    before = SftpCredential.objects.values().get()
    audit_before = AuditEntry.objects.count()
    body = {"name": "theirs", "publicKey": public_line(ed25519.Ed25519PrivateKey.generate())}

    response = getattr(other_tenant.client, method)(
        url(feed, suffix.format(key=key_id)), body, format="json"
    )

    assert_error(response, 404, "NOT_FOUND")
    assert SftpCredential.objects.values().get() == before
    assert list(SftpKey.objects.values_list("name", flat=True)) == ["mine"]
    assert AuditEntry.objects.count() == audit_before
    assert not SftpActivity.objects.exists()
