"""The operator's screens: no hash anywhere, bans seen and lifted, credentials revoked (audited),
the activity log read-only."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry
from sftpgateway import services
from sftpgateway.choices import ActivityEvent, DefenderEventKind
from sftpgateway.models import DefenderHost, SftpActivity, SftpCredential
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


def test_bans_are_listed_and_lifted_by_an_operator(operator, credential, settings):
    settings.SFTP_DEFENDER_THRESHOLD = 2
    settings.SFTP_DEFENDER_SCORE_LOGIN_FAILED = 1
    for _ in range(2):
        services.defender_event_record(
            address="192.0.2.1", kind=DefenderEventKind.LOGIN_FAILED, credential=credential
        )
    services.defender_event_record(address="192.0.2.9", kind=DefenderEventKind.LOGIN_FAILED)
    changelist = reverse("admin:sftpgateway_defenderhost_changelist")

    banned = operator.get(changelist, {"banned": "yes"})
    response = operator.post(
        changelist,
        {
            "action": "lift_ban",
            "_selected_action": [DefenderHost.objects.get(address="192.0.2.1").pk],
        },
        follow=True,
    )

    assert banned.status_code == 200
    assert "192.0.2.1" in banned.content.decode()
    assert "192.0.2.9" not in banned.content.decode()
    assert response.status_code == 200
    assert "Lifted 1 ban(s)" in response.content.decode()
    assert list(DefenderHost.objects.values_list("address", flat=True)) == ["192.0.2.9"]
    unban = SftpActivity.objects.get(event=ActivityEvent.UNBAN)
    assert unban.remote_address == "192.0.2.1"
    assert unban.credential == credential
    assert unban.detail.startswith("Ban lifted by operator ")


def test_defender_rows_cannot_be_added_or_edited(operator, credential):
    host = DefenderHost.objects.create(address="192.0.2.1")

    assert operator.get(reverse("admin:sftpgateway_defenderhost_add")).status_code == 403
    detail = operator.get(reverse("admin:sftpgateway_defenderhost_change", args=[host.pk]))
    assert detail.status_code == 200
    assert 'name="address"' not in detail.content.decode()


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
