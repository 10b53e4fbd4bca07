import pytest

pytestmark = pytest.mark.django_db

CATALOG_FIELDS = {
    "connectorId",
    "name",
    "category",
    "status",
    "description",
    "features",
    "entities",
    "syncModes",
    "configSchema",
    "credentialsSchema",
    "secretFields",
    "isSource",
    "isDestination",
    "custom",
    "manifest",
}


def test_catalog_lists_the_feed_connectors(api):
    response = api.get("/api/v1/integrations/connectors")

    assert response.status_code == 200, response.content
    connectors = response.json()["data"]
    assert {c["connectorId"] for c in connectors} >= {"vauto", "homenet", "elead", "custom"}
    assert all(set(c) == CATALOG_FIELDS for c in connectors)
    vauto = next(c for c in connectors if c["connectorId"] == "vauto")
    assert vauto["name"] == "vAuto"
    assert vauto["category"] == "INVENTORY"
    assert vauto["status"] == "AVAILABLE"
    assert vauto["syncModes"] == ["FULL"]
    assert vauto["entities"] == ["vehicles"]
    assert vauto["secretFields"] == []
    assert (vauto["custom"], vauto["manifest"]) == (False, None)
    assert not any(c["custom"] for c in connectors)
    config_keys = set(vauto["configSchema"]["properties"])
    assert {"syncInterval", "autoSync", "columnDelimiter"} <= config_keys


def test_a_connector_shipped_as_a_manifest_shows_it(api):
    body = api.get("/api/v1/integrations/connectors/shopify").json()["data"]

    assert body["custom"] is False
    assert body["manifest"]["id"] == "shopify"
    assert [stream["name"] for stream in body["manifest"]["streams"]] == body["entities"]


def test_catalog_is_not_paginated_and_answers_with_or_without_trailing_slash(api):
    without_slash = api.get("/api/v1/integrations/connectors")
    with_slash = api.get("/api/v1/integrations/connectors/")

    assert with_slash.status_code == 200
    assert with_slash.json() == without_slash.json()
    assert "meta" not in without_slash.json()


def test_catalog_filters_by_category(api, payments_connector):
    payments = api.get("/api/v1/integrations/connectors?category=PAYMENTS")
    inventory = api.get("/api/v1/integrations/connectors?category=INVENTORY")

    # Every payments connector, by id (more ship as manifests are added)
    ids = [c["connectorId"] for c in payments.json()["data"]]
    assert {"stripe", "test-payments"} <= set(ids)
    assert ids == sorted(ids)
    assert {c["category"] for c in payments.json()["data"]} == {"PAYMENTS"}
    assert "test-payments" not in {c["connectorId"] for c in inventory.json()["data"]}
    assert {c["category"] for c in inventory.json()["data"]} == {"INVENTORY"}


def test_unknown_category_is_a_validation_error(api):
    response = api.get("/api/v1/integrations/connectors?category=SPACESHIPS")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "category" in error["details"]


def test_connector_detail(api, payments_connector):
    response = api.get("/api/v1/integrations/connectors/test-payments")

    assert response.status_code == 200
    body = response.json()["data"]
    assert set(body) == CATALOG_FIELDS
    assert body["category"] == "PAYMENTS"
    assert body["syncModes"] == ["FULL", "INCREMENTAL"]
    assert body["secretFields"] == ["apiKey", "webhookSecret"]
    assert body["credentialsSchema"]["required"] == ["apiKey"]


def test_unknown_connector_is_404_envelope(api):
    response = api.get("/api/v1/integrations/connectors/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "path", ["/api/v1/integrations/connectors", "/api/v1/integrations/connectors/vauto"]
)
def test_catalog_needs_an_api_key(anon_client, path):
    response = anon_client.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
