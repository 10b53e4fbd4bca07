import pytest

from accounts.models import AuditEntry, Dealership
from tests.factories import DealershipFactory

pytestmark = pytest.mark.django_db


def test_create_dealership_returns_201_in_envelope_and_audits(tenant, api):
    response = api.post(
        "/api/v1/dealerships",
        {
            "name": "Lakeside Ford",
            "city": "Austin",
            "postalCode": "78701",
            "timezone": "America/Chicago",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()["data"]
    assert body["name"] == "Lakeside Ford"
    assert body["postalCode"] == "78701"
    assert body["accountId"] == str(tenant.account.pk)
    entry = AuditEntry.objects.get(resource_id=body["id"])
    assert entry.action == "created"
    assert entry.actor_type == "api_key"
    assert entry.changes["name"] == {"before": None, "after": "Lakeside Ford"}


def test_unknown_timezone_is_a_validation_error(api):
    response = api.post(
        "/api/v1/dealerships", {"name": "X", "timezone": "Mars/Olympus"}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "timezone" in error["details"]


def test_list_is_paginated_and_scoped_to_the_account(tenant, other_tenant, api):
    DealershipFactory.create_batch(3, account=tenant.account)
    DealershipFactory(account=other_tenant.account)

    response = api.get("/api/v1/dealerships?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 2
    assert body["meta"]["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}


def test_other_accounts_dealership_is_404_and_untouched(tenant, other_tenant, api):
    theirs = DealershipFactory(account=other_tenant.account, name="Theirs")

    assert api.get(f"/api/v1/dealerships/{theirs.pk}").status_code == 404
    assert (
        api.patch(f"/api/v1/dealerships/{theirs.pk}", {"name": "Mine"}, format="json").status_code
        == 404
    )
    assert api.delete(f"/api/v1/dealerships/{theirs.pk}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert not AuditEntry.objects.filter(resource_id=str(theirs.pk)).exists()


def test_patch_and_delete(tenant, api):
    dealership = DealershipFactory(account=tenant.account, name="Old")

    patched = api.patch(f"/api/v1/dealerships/{dealership.pk}", {"name": "New"}, format="json")
    deleted = api.delete(f"/api/v1/dealerships/{dealership.pk}")

    assert patched.status_code == 200
    assert patched.json()["data"]["name"] == "New"
    assert deleted.status_code == 204
    assert not Dealership.objects.filter(pk=dealership.pk).exists()
    actions = list(
        AuditEntry.objects.filter(resource_id=str(dealership.pk)).values_list("action", flat=True)
    )
    assert actions == ["deleted", "updated"]
