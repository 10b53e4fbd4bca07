"""The conventions every endpoint shares: authentication, errors, throttling, the schema."""

import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.services import Actor, api_key_revoke
from integrations import selectors
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


class TestAuthentication:
    def test_missing_key_is_401_with_bearer_challenge(self, anon_client):
        response = anon_client.get("/api/v1/integrations")

        assert_error(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"].startswith("Bearer")

    @pytest.mark.parametrize(
        "header",
        ["Bearer nope", "Bearer ry_abc_def", "Bearer", "Bearer a b", "Token ry_x_y"],
    )
    def test_wrong_keys_are_401(self, tenant, header):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)

        assert client.get("/api/v1/integrations").status_code == 401

    def test_a_right_prefix_with_a_wrong_secret_is_401(self, tenant):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer ry_{tenant.api_key.prefix}_forged")

        assert_error(client.get("/api/v1/dealerships"), 401, "UNAUTHORIZED")

    def test_revoked_key_is_401(self, tenant, api):
        api_key_revoke(api_key=tenant.api_key, actor=Actor.system())

        response = api.get("/api/v1/dealerships")

        assert_error(response, 401, "UNAUTHORIZED")
        assert "revoked" in response.json()["error"]["message"]

    def test_use_is_recorded(self, tenant, api):
        api.get("/api/v1/dealerships")

        tenant.api_key.refresh_from_db()
        assert tenant.api_key.last_used_at is not None

    def test_session_user_of_an_account_can_browse(self, tenant):
        client = APIClient()
        client.force_login(UserFactory(account=tenant.account))

        assert client.get("/api/v1/dealerships").status_code == 200
        assert client.get("/api/v1/dealerships", HTTP_ACCEPT="text/html").status_code == 200

    def test_session_user_without_an_account_is_403(self, db):
        client = APIClient()
        client.force_login(UserFactory(account=None))

        assert_error(client.get("/api/v1/dealerships"), 403, "FORBIDDEN")


class TestApiKeysEndpoint:
    def test_create_shows_the_key_once_and_it_works(self, api):
        created = api.post("/api/v1/api-keys", {"name": "ci"}, format="json")

        assert created.status_code == 201
        raw_key = created.json()["data"]["key"]
        listed = api.get("/api/v1/api-keys").json()["data"]
        assert all("key" not in item for item in listed)
        assert raw_key not in str(listed)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        assert client.get("/api/v1/dealerships").status_code == 200

    def test_delete_revokes(self, tenant, api):
        created = api.post("/api/v1/api-keys", {"name": "temp"}, format="json").json()["data"]

        response = api.delete(f"/api/v1/api-keys/{created['id']}")

        assert response.status_code == 204
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
        assert client.get("/api/v1/dealerships").status_code == 401

    def test_another_accounts_key_is_404_and_stays_valid(self, api, other_tenant):
        assert api.get(f"/api/v1/api-keys/{other_tenant.api_key.pk}").status_code == 404
        assert api.delete(f"/api/v1/api-keys/{other_tenant.api_key.pk}").status_code == 404
        assert other_tenant.client.get("/api/v1/dealerships").status_code == 200


class TestErrorEnvelope:
    def test_malformed_json_is_400(self, api):
        response = api.generic(
            "POST", "/api/v1/dealerships", '{"name": ', content_type="application/json"
        )

        assert_error(response, 400, "BAD_REQUEST")
        assert "Malformed JSON" in response.json()["error"]["message"]

    def test_a_json_array_where_an_object_belongs_is_400(self, api):
        assert_error(
            api.post("/api/v1/dealerships", [1, 2], format="json"), 400, "VALIDATION_ERROR"
        )

    def test_wrong_content_type_is_415(self, api):
        response = api.generic("POST", "/api/v1/dealerships", "name=x", content_type="text/plain")

        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_unknown_route_is_404_envelope(self, api):
        assert_error(api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
        assert_error(api.get("/api/v1/integrations/not-a-uuid"), 404, "NOT_FOUND")

    def test_method_not_allowed(self, api):
        assert_error(api.put("/api/v1/dealerships", {}, format="json"), 405, "METHOD_NOT_ALLOWED")

    def test_unexpected_failure_is_500_envelope(self, api, monkeypatch):
        def explode(**kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(selectors, "integration_list", explode)

        response = api.get("/api/v1/integrations")

        assert_error(response, 500, "INTERNAL_ERROR")
        assert "boom" not in response.content.decode()

    def test_trailing_slash_is_optional(self, api):
        assert api.get("/api/v1/dealerships/").status_code == 200
        assert api.get("/api/v1/dealerships").status_code == 200


@override_settings(API_RATE_LIMIT="3/minute")
def test_requests_beyond_the_rate_limit_are_429_per_key(tenant, other_tenant, api):
    statuses = [api.get("/api/v1/dealerships").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    limited = api.get("/api/v1/dealerships")
    assert_error(limited, 429, "RATE_LIMITED")
    assert int(limited["Retry-After"]) > 0
    assert other_tenant.client.get("/api/v1/dealerships").status_code == 200


def test_openapi_schema_is_valid_and_served(anon_client, tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )
    response = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/integrations/",
        "/api/v1/integrations/{integrationId}/",
        "/api/v1/integrations/connectors/",
        "/api/v1/integrations/connections/",
        "/api/v1/integrations/exports/",
        "/api/v1/dealerships/",
        "/api/v1/events/",
        "/api/v1/imports/{importId}/clone/",
        "/api/v1/integrations/{integrationId}/revisions/create/",
    ):
        assert path in paths, path
    created = paths["/api/v1/integrations/"]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert created["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorEnvelope")
    assert anon_client.get("/api/docs/").status_code == 200


def test_another_account_cannot_see_events_or_audit(tenant, other_tenant, api):
    theirs = other_tenant.client.post(
        "/api/v1/dealerships", {"name": "Theirs"}, format="json"
    ).json()["data"]
    their_integration = other_tenant.client.post(
        "/api/v1/integrations", {"type": "vauto", "dealershipId": theirs["id"]}, format="json"
    ).json()["data"]

    my_audit = api.get("/api/v1/audit").json()["data"]
    my_events = api.get("/api/v1/events").json()["data"]
    their_event_id = other_tenant.client.get("/api/v1/events").json()["data"][0]["id"]

    assert theirs["id"] not in {entry["resourceId"] for entry in my_audit}
    assert my_events == []
    assert api.get(f"/api/v1/events/{their_event_id}").status_code == 404
    assert api.get(f"/api/v1/events?integrationId={their_integration['id']}").json()["data"] == []


# --- routing: one way to nest, one spelling of path parameters (config/api/routers.py) ----------

PARAMETER_NAME = re.compile(r"^[a-z][a-zA-Z]*Id$")
# A signed template link: the token is the credential, not an id.
NOT_IDS = {"token"}


def _api_patterns(patterns: list[Any], prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern).removeprefix("^")
        if isinstance(pattern, URLResolver):
            found += _api_patterns(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            found.append((route, pattern))
    return found


def test_every_api_route_comes_from_a_router_with_parameters_named_after_their_resource():
    hand_written, misnamed = [], []

    for route, pattern in _api_patterns(get_resolver().url_patterns):
        # A ViewSet's view knows its actions; a hand-written path()/re_path() view does not.
        if getattr(pattern.callback, "actions", None) is None:
            hand_written.append(route)
            continue
        for name in pattern.pattern.regex.groupindex:
            if PARAMETER_NAME.match(name) or name in NOT_IDS:
                continue
            misnamed.append(f"{route}: {name}")

    assert hand_written == [], "Routes not registered on an ApiRouter"
    assert misnamed == [], "Path parameters not spelt <resource>Id"


def test_the_same_object_has_the_same_parameter_name_at_every_depth(anon_client):
    schema = json.loads(
        anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    paths = schema["paths"]

    assert "/api/v1/integrations/{integrationId}/" in paths
    assert "/api/v1/integrations/{integrationId}/sftp/keys/{keyId}/" in paths
    assert "/api/v1/integrations/{integrationId}/connections/{connectionId}/register/" in paths
    assert "/api/v1/integrations/connections/{connectionId}/" in paths


# --- Prefer: return=minimal on every update (config/api/prefer.py) -------------------------------


@pytest.mark.parametrize(
    ("prefer", "minimal"),
    [
        ("return=minimal", True),
        ('RETURN = "minimal"', True),
        ("respond-async, return=minimal; charset=utf-8", True),
        ("return=representation", False),
        ("handling=strict", False),
        ("minimal", False),
    ],
)
def test_every_update_honours_prefer_return_minimal(tenant, api, prefer, minimal):
    dealership = api.post("/api/v1/dealerships", {"name": "Lot"}, format="json").json()["data"]

    response = api.patch(
        f"/api/v1/dealerships/{dealership['id']}",
        {"name": "Renamed lot"},
        format="json",
        HTTP_PREFER=prefer,
    )

    assert response.status_code == (204 if minimal else 200)
    assert (response.get("Preference-Applied") == "return=minimal") is minimal
    assert api.get(f"/api/v1/dealerships/{dealership['id']}").json()["data"]["name"] == (
        "Renamed lot"
    )


def test_the_schema_documents_prefer_and_its_204_on_every_update(anon_client):
    schema = json.loads(
        anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    updates = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("put", "patch") and "200" in operation["responses"]
    ]

    assert len(updates) > 10
    for path, method, operation in updates:
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Prefer" in headers, (method, path)
        assert "204" in operation["responses"], (method, path)
        assert "content" not in operation["responses"]["204"], (method, path)
