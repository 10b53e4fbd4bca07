"""API key scopes: read keys read, write keys change resources, only admin keys manage keys."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory

from accounts.choices import ApiKeyScope
from accounts.models import ApiKey, AuditEntry, Dealership
from accounts.services import api_key_create
from accounts.viewsets import TenantScopedMixin
from tests.factories import DealershipFactory, UserFactory
from tests.test_api_conventions import assert_error

pytestmark = pytest.mark.django_db


def key_client(account, scope: str) -> tuple[ApiKey, APIClient]:
    api_key, raw_key = api_key_create(account=account, name=f"{scope} key", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return api_key, client


def assert_needs_scope(response, needed: str, has: str) -> None:
    assert_error(response, 403, "FORBIDDEN")
    error = response.json()["error"]
    assert error["details"] == {"requiredScope": needed, "keyScope": has}
    assert repr(needed) in error["message"]


class TestReadKey:
    def test_reads_everything_of_its_account(self, tenant):
        dealership = DealershipFactory(account=tenant.account)
        _, client = key_client(tenant.account, "read")

        assert client.get("/api/v1/dealerships").status_code == 200
        assert client.get(f"/api/v1/dealerships/{dealership.pk}").status_code == 200
        assert client.head("/api/v1/dealerships").status_code == 200
        assert client.options("/api/v1/dealerships").status_code == 200
        assert client.get("/api/v1/integrations").status_code == 200
        assert client.get("/api/v1/audit").status_code == 200

    def test_cannot_create_change_or_delete_and_nothing_changes(self, tenant):
        dealership = DealershipFactory(account=tenant.account, name="Lakeside Ford")
        _, client = key_client(tenant.account, "read")

        created = client.post("/api/v1/dealerships", {"name": "New"}, format="json")
        changed = client.patch(
            f"/api/v1/dealerships/{dealership.pk}", {"name": "Renamed"}, format="json"
        )
        deleted = client.delete(f"/api/v1/dealerships/{dealership.pk}")

        for response in (created, changed, deleted):
            assert_needs_scope(response, "write", "read")
        assert list(Dealership.objects.values_list("name", flat=True)) == ["Lakeside Ford"]
        assert not AuditEntry.objects.filter(resource_type="dealership").exists()

    def test_another_accounts_object_is_still_404(self, tenant, other_tenant):
        theirs = DealershipFactory(account=other_tenant.account)
        _, client = key_client(tenant.account, "read")

        assert_error(client.get(f"/api/v1/dealerships/{theirs.pk}"), 404, "NOT_FOUND")


class TestWriteKey:
    def test_changes_resources(self, tenant):
        _, client = key_client(tenant.account, "write")

        created = client.post("/api/v1/dealerships", {"name": "Lakeside Ford"}, format="json")

        assert created.status_code == 201, created.content
        dealership_id = created.json()["data"]["id"]
        assert client.delete(f"/api/v1/dealerships/{dealership_id}").status_code == 204

    @pytest.mark.parametrize("scope", ["read", "write"])
    def test_cannot_list_create_or_revoke_api_keys(self, tenant, scope):
        api_key, client = key_client(tenant.account, scope)

        listed = client.get("/api/v1/api-keys")
        shown = client.get(f"/api/v1/api-keys/{tenant.api_key.pk}")
        created = client.post("/api/v1/api-keys", {"name": "more", "scope": "admin"}, format="json")
        revoked = client.delete(f"/api/v1/api-keys/{tenant.api_key.pk}")
        revoked_itself = client.delete(f"/api/v1/api-keys/{api_key.pk}")

        for response in (listed, shown, created, revoked, revoked_itself):
            assert_needs_scope(response, "admin", scope)
        assert ApiKey.objects.filter(account=tenant.account).count() == 2
        assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


class TestAdminKey:
    def test_creates_keys_of_every_scope_and_shows_the_scope(self, api):
        read = api.post("/api/v1/api-keys", {"name": "dashboard", "scope": "read"}, format="json")
        default = api.post("/api/v1/api-keys", {"name": "sync job"}, format="json")

        assert read.status_code == 201, read.content
        assert read.json()["data"]["scope"] == "read"
        assert default.json()["data"]["scope"] == "write"
        listed = {
            item["name"]: item["scope"] for item in api.get("/api/v1/api-keys").json()["data"]
        }
        assert listed == {"Acme Auto Group key": "admin", "dashboard": "read", "sync job": "write"}
        reader = APIClient()
        reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read.json()['data']['key']}")
        assert reader.get("/api/v1/dealerships").status_code == 200
        assert reader.post("/api/v1/dealerships", {"name": "X"}, format="json").status_code == 403
        entry = AuditEntry.objects.get(resource_id=read.json()["data"]["id"], action="created")
        assert entry.changes["scope"] == {"before": None, "after": "read"}

    def test_an_unknown_scope_is_a_validation_error(self, api):
        response = api.post("/api/v1/api-keys", {"name": "x", "scope": "root"}, format="json")

        assert_error(response, 400, "VALIDATION_ERROR")
        assert "scope" in response.json()["error"]["details"]
        assert ApiKey.objects.count() == 1

    def test_a_key_that_revokes_itself_is_refused_from_then_on(self, tenant, api):
        response = api.delete(f"/api/v1/api-keys/{tenant.api_key.pk}")

        assert response.status_code == 204
        assert_error(api.get("/api/v1/dealerships"), 401, "UNAUTHORIZED")
        assert_error(api.get("/api/v1/api-keys"), 401, "UNAUTHORIZED")
        assert_error(api.delete(f"/api/v1/api-keys/{tenant.api_key.pk}"), 401, "UNAUTHORIZED")
        assert (
            AuditEntry.objects.filter(resource_id=str(tenant.api_key.pk), action="revoked").count()
            == 1
        )

    def test_another_accounts_key_is_404_and_stays_valid(self, api, other_tenant):
        assert_error(api.get(f"/api/v1/api-keys/{other_tenant.api_key.pk}"), 404, "NOT_FOUND")
        assert_error(api.delete(f"/api/v1/api-keys/{other_tenant.api_key.pk}"), 404, "NOT_FOUND")
        assert other_tenant.client.get("/api/v1/api-keys").status_code == 200


def test_a_signed_in_user_of_the_account_keeps_full_access(tenant):
    client = APIClient()
    client.force_login(UserFactory(account=tenant.account, is_staff=True))

    created = client.post("/api/v1/api-keys", {"name": "from the browser"}, format="json")

    assert created.status_code == 201, created.content
    assert client.post("/api/v1/dealerships", {"name": "X"}, format="json").status_code == 201
    assert client.get("/api/v1/api-keys").status_code == 200


def test_the_openapi_schema_documents_the_scope(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    components = schema["components"]["schemas"]
    for component in ("ApiKey", "ApiKeyCreated", "ApiKeyCreateRequest"):
        scope = components[component]["properties"]["scope"]
        ref = scope.get("$ref") or scope["allOf"][0]["$ref"]
        assert components[ref.rsplit("/", 1)[-1]]["enum"] == ["read", "write", "admin"]
    assert "scope" in components["ApiKey"]["required"]
    assert "scope" in components["ApiKeyCreateRequest"]["properties"]
    assert "scope" not in components["ApiKeyCreateRequest"].get("required", [])


def test_an_operator_creates_a_key_of_a_chosen_scope_in_the_admin(tenant):
    operator = Client()
    operator.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))

    response = operator.post(
        reverse("admin:accounts_apikey_add"),
        {"account": tenant.account.pk, "name": "reporting", "scope": "read"},
        follow=True,
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="reporting")
    assert api_key.scope == "read"
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    raw_key = next(text.rsplit(" ", 1)[1] for text in shown if "not shown again" in text)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert reader.post("/api/v1/dealerships", {"name": "X"}, format="json").status_code == 403
    changelist = operator.get(reverse("admin:accounts_apikey_changelist") + "?scope__exact=read")
    assert "reporting" in changelist.content.decode()
    detail = operator.get(reverse("admin:accounts_apikey_change", args=[api_key.pk]))
    assert 'name="scope"' not in detail.content.decode()  # fixed once the key exists


@pytest.mark.django_db(transaction=True)
def test_keys_that_existed_before_scopes_become_admin():
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    old_apps = executor.loader.project_state([("accounts", "0001_initial")]).apps
    account = old_apps.get_model("accounts", "Account").objects.create(name="Old Tenant")
    old_apps.get_model("accounts", "ApiKey").objects.create(
        account=account, name="old", prefix="0ld0ld00", key_hash="0" * 64
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert ApiKey.objects.get(prefix="0ld0ld00").scope == "admin"
    new_key, _ = api_key_create(account=ApiKey.objects.get().account)
    assert new_key.scope == "write"


class ProbeViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """A viewset of its own, to show that any view can ask for a scope."""

    def list(self, request):
        return Response({"ok": True})

    @action(detail=False, methods=["post"], required_scope=ApiKeyScope.READ)
    def preview(self, request):
        return Response({"ok": True})

    @action(detail=False, methods=["get"], required_scope=ApiKeyScope.ADMIN)
    def secrets(self, request):
        return Response({"ok": True})


@pytest.mark.parametrize(
    ("scope", "action_name", "method", "expected"),
    [
        ("read", "list", "get", 200),
        ("read", "preview", "post", 200),  # a POST that only reads may say so
        ("read", "secrets", "get", 403),
        ("write", "secrets", "get", 403),
        ("admin", "secrets", "get", 200),
    ],
)
def test_a_view_or_action_can_require_a_scope(tenant, scope, action_name, method, expected):
    _, raw_key = api_key_create(account=tenant.account, scope=scope)
    # as the router does: an action's extra arguments become attributes of the view
    initkwargs = getattr(getattr(ProbeViewSet, action_name), "kwargs", {})
    view = ProbeViewSet.as_view({method: action_name}, **initkwargs)
    request = getattr(APIRequestFactory(), method)("/probe", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    response = view(request)

    assert response.status_code == expected
    if expected == 403:
        assert response.data["error"]["details"]["requiredScope"] == "admin"
