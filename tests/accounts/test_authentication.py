"""Failed API authentications are throttled per client address and per key prefix."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient, APIRequestFactory

from accounts.services import Actor, api_key_revoke
from accounts.views import DealershipViewSet
from tests.test_api_conventions import assert_error

pytestmark = pytest.mark.django_db

ATTACKER = "198.51.100.7"
SECOND_ATTACKER = "198.51.100.8"
HOLDER = "203.0.113.20"


def get(raw_key: str, address: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/v1/dealerships", REMOTE_ADDR=address)


def forged(tenant) -> str:
    return f"ry_{tenant.api_key.prefix}_not-the-secret"


@override_settings(API_AUTH_FAILURE_LIMIT_PER_ADDRESS="20/minute")
def test_wrong_secrets_from_one_address_are_429_after_the_budget(tenant):
    # Given an address that sends 20 wrong secrets for a real key prefix
    statuses = [get(forged(tenant), ATTACKER).status_code for _ in range(20)]

    # When it keeps going
    refused = get(forged(tenant), ATTACKER)

    # Then the first 20 are 401, the rest 429 in the envelope with Retry-After
    assert statuses == [401] * 20
    assert_error(refused, 429, "RATE_LIMITED")
    assert 0 < int(refused["Retry-After"]) <= 60
    # and the address is refused whatever key it presents, even a right one,
    assert get(tenant.raw_key, ATTACKER).status_code == 429
    assert get("ry_deadbeef_another-guess", ATTACKER).status_code == 429
    # while the key's holder elsewhere is not affected.
    assert get(tenant.raw_key, HOLDER).status_code == 200


@override_settings(API_AUTH_FAILURE_LIMIT_PER_ADDRESS="3/minute")
def test_malformed_and_unknown_keys_count_against_the_address(tenant):
    for header_key in ("nope", "ry_deadbeef_unknown", "ry_x"):
        assert get(header_key, ATTACKER).status_code == 401

    assert get("ry_cafebabe_unknown", ATTACKER).status_code == 429


@override_settings(
    API_AUTH_FAILURE_LIMIT_PER_ADDRESS="20/minute", API_AUTH_FAILURE_LIMIT_PER_KEY="5/hour"
)
def test_a_key_prefix_over_its_budget_is_refused_only_to_addresses_that_failed(tenant):
    # Given 5 wrong secrets for one key, from one address
    assert [get(forged(tenant), ATTACKER).status_code for _ in range(5)] == [401] * 5

    # Then that address is refused for this key, right secret or not
    assert_error(get(forged(tenant), ATTACKER), 429, "RATE_LIMITED")
    assert get(tenant.raw_key, ATTACKER).status_code == 429
    # another guessing address gets one attempt, then is refused
    assert get(forged(tenant), SECOND_ATTACKER).status_code == 401
    assert get(forged(tenant), SECOND_ATTACKER).status_code == 429
    # and the key's holder, from an address that has not failed, keeps working
    assert [get(tenant.raw_key, HOLDER).status_code for _ in range(3)] == [200] * 3


@override_settings(
    API_AUTH_FAILURE_LIMIT_PER_ADDRESS="20/minute", API_AUTH_FAILURE_LIMIT_PER_KEY="5/hour"
)
def test_another_keys_budget_is_separate(tenant, other_tenant):
    for _ in range(5):
        get(forged(tenant), ATTACKER)

    assert get(other_tenant.raw_key, ATTACKER).status_code == 200


@override_settings(API_AUTH_FAILURE_LIMIT_PER_ADDRESS="2/minute")
def test_a_revoked_key_with_its_right_secret_is_401_not_a_failed_guess(tenant):
    api_key_revoke(api_key=tenant.api_key, actor=Actor.system())

    responses = [get(tenant.raw_key, HOLDER) for _ in range(5)]

    for response in responses:
        assert_error(response, 401, "UNAUTHORIZED")
        assert "revoked" in response.json()["error"]["message"]


@override_settings(API_AUTH_FAILURE_LIMIT_PER_ADDRESS="2/minute")
def test_behind_a_proxy_the_forwarded_address_is_counted(tenant, settings):
    # API_NUM_PROXIES=1 sets this
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.0.0.2"

    def via_proxy(raw_key: str, client_address: str):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client.get(
            "/api/v1/dealerships",
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.1, {client_address}",
        )

    assert [via_proxy(forged(tenant), ATTACKER).status_code for _ in range(3)] == [401, 401, 429]
    assert via_proxy(tenant.raw_key, HOLDER).status_code == 200


@pytest.mark.parametrize(
    "raw_key", ["ry_" + "a" * 5000 + "_secret", "ry_ÄÖ_secret", "ry_ABCD_secret", "ry__secret"]
)
def test_keys_of_a_strange_shape_are_401(tenant, raw_key):
    assert_error(get(raw_key, ATTACKER), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("raw_key", ["ry_ab\x00cd_secret", "ry_abcd_sec\x00ret"])
def test_a_nul_in_a_key_is_401_from_authentication_itself(tenant, raw_key):
    # The view alone, without the middleware that refuses NUL in headers: PostgreSQL cannot even
    # compare a string holding NUL, so such a prefix must never reach a query.
    view = DealershipViewSet.as_view({"get": "list"})
    request = APIRequestFactory().get("/api/v1/dealerships", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    response = view(request)

    assert response.status_code == 401
    assert response.data["error"]["code"] == "UNAUTHORIZED"
