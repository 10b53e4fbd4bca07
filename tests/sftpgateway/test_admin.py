"""The operator's screens: no hash anywhere, lockouts lifted and credentials revoked (audited),
the activity log read-only."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from sftpgateway import lockout, services
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity, SftpCredential
from tests.factories import UserFactory
from tests.sftpgateway.conftest import create_feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def credential(tenant):
    create_feed(tenant)
    return SftpCredential.objects.get()


def test_credential_screens_never_show_the_password_hash(operator, credential):
    listed = operator.get(reverse("admin:sftpgateway_sftpcredential_changelist"))
    detail = operator.get(reverse("admin:sftpgateway_sftpcredential_change", args=[credential.pk]))

    for page in (listed, detail):
        assert page.status_code == 200
        assert credential.username in page.content.decode()
        assert credential.password_hash not in page.content.decode()
        assert "password_hash" not in page.content.decode()
    assert operator.get(reverse("admin:sftpgateway_sftpcredential_add")).status_code == 403


def test_unlock_lifts_a_lockout_and_is_audited(operator, credential, settings, private_cache):
    settings.SFTP_LOCKOUT_THRESHOLD = 1
    lockout.failure_register(username=credential.username, address="192.0.2.1")
    credential.locked_until = timezone.now() + timedelta(minutes=15)
    credential.save()

    response = operator.post(
        reverse("admin:sftpgateway_sftpcredential_changelist"),
        {"action": "unlock", "_selected_action": [credential.pk]},
        follow=True,
    )

    assert response.status_code == 200
    credential.refresh_from_db()
    assert credential.locked_until is None
    assert lockout.username_locked_until(credential.username) is None
    entry = AuditEntry.objects.get(resource_type="sftp_credential", action="updated")
    assert entry.actor_type == "user"
    assert set(entry.changes) == {"lockedUntil"}


def test_revoke_action_revokes(operator, credential):
    operator.post(
        reverse("admin:sftpgateway_sftpcredential_changelist"),
        {"action": "revoke", "_selected_action": [credential.pk]},
    )

    credential.refresh_from_db()
    assert credential.revoked_at is not None
    assert AuditEntry.objects.filter(resource_type="sftp_credential", action="revoked").exists()


def test_activity_is_read_only_and_filterable(operator, credential):
    row = services.activity_record(event=ActivityEvent.LOGIN, credential=credential, detail="x")

    listed = operator.get(
        reverse("admin:sftpgateway_sftpactivity_changelist"), {"event__exact": "login"}
    )
    detail = operator.get(reverse("admin:sftpgateway_sftpactivity_change", args=[row.pk]))
    changed = operator.post(
        reverse("admin:sftpgateway_sftpactivity_change", args=[row.pk]), {"detail": "edited"}
    )

    assert listed.status_code == 200
    assert credential.username in listed.content.decode()
    assert detail.status_code == 200
    assert changed.status_code == 403
    assert SftpActivity.objects.get().detail == "x"
    assert operator.get(reverse("admin:sftpgateway_sftpactivity_add")).status_code == 403
