"""The operator's view: every screen renders; keys are shown once; deletions can be undone."""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, AuditEntry
from integrations.models import Integration
from tests.factories import AccountFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    user = UserFactory(account=None, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_every_admin_list_and_add_screen_renders(operator, tenant):
    IntegrationFactory(account=tenant.account)

    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        changelist = operator.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert changelist.status_code == 200, info
        if model_admin.has_add_permission(changelist.wsgi_request):
            assert operator.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200, info


def test_api_key_created_in_admin_is_shown_once_and_hashed(operator):
    account = AccountFactory()

    response = operator.post(
        reverse("admin:accounts_apikey_add"),
        {"account": account.pk, "name": "from admin"},
        follow=True,
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get(account=account)
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    raw_key = next(text.rsplit(" ", 1)[1] for text in shown if "not shown again" in text)
    assert raw_key.startswith(f"ry_{api_key.prefix}_")
    assert raw_key not in api_key.key_hash
    detail = operator.get(reverse("admin:accounts_apikey_change", args=[api_key.pk]))
    assert raw_key not in detail.content.decode()


def test_soft_deleted_integrations_are_listed_and_restorable(operator, tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    api.delete(f"/api/v1/integrations/{integration.pk}")

    listed = operator.get(reverse("admin:integrations_integration_changelist") + "?deleted=yes")
    restored = operator.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "restore", "_selected_action": [str(integration.pk)]},
    )

    assert str(integration.pk) in listed.content.decode()
    assert restored.status_code == 302
    assert Integration.objects.filter(pk=integration.pk).exists()
    assert api.get(f"/api/v1/integrations/{integration.pk}").status_code == 200
    assert AuditEntry.objects.filter(integration_id=integration.pk, action="restored").exists()
