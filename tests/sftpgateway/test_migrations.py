"""Upgrading from username lockouts to the defender's address bans."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from sftpgateway.models import DefenderHost, SftpActivity, SftpCredential
from tests.sftpgateway.conftest import create_feed

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("sftpgateway", "0001_initial")]


def _migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_lockout_in_force_becomes_a_ban_of_the_address_it_came_from(tenant):
    create_feed(tenant)
    credential = SftpCredential.objects.get()
    until = (timezone.now() + timedelta(minutes=10)).replace(microsecond=0)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        old.get_model("sftpgateway", "SftpCredential").objects.filter(pk=credential.pk).update(
            locked_until=until
        )
        activity = old.get_model("sftpgateway", "SftpActivity")
        activity.objects.create(
            event="lockout",
            username=credential.username,
            credential_id=credential.pk,
            account_id=credential.account_id,
            integration_id=credential.integration_id,
            remote_address="192.0.2.5",
            detail=f"Locked out until {until.isoformat()} after repeated failed logins.",
        )
        # An address that guessed unknown usernames was locked in Redis only: that lock ends.
        activity.objects.create(event="lockout", username="vauto_guess", remote_address="192.0.2.6")
    finally:
        _migrate_to_latest()

    host = DefenderHost.objects.get()
    assert (host.address, host.banned_until, host.ban_count) == ("192.0.2.5", until, 1)
    assert host.credential_id == credential.pk
    assert sorted(SftpActivity.objects.values_list("event", flat=True)) == ["ban", "ban"]
