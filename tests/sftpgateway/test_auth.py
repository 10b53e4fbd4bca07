"""Logging into the gateway: passwords, keys, lockouts, rotation, revocation and session limits."""

import io
import time

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity, SftpCredential
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import (
    login_refused,
    make_ed25519_key,
    paramiko_sftp,
    requires,
    sftp_batch,
    wait_for,
)
from tests.sshkeys import write_private_key

pytestmark = pytest.mark.django_db(transaction=True)


def events(**filters):
    return list(
        SftpActivity.objects.filter(**filters).order_by("id").values_list("event", flat=True)
    )


def add_key(api, feed, public_line, name="laptop"):
    response = api.post(
        f"/api/v1/integrations/{feed.integration.pk}/sftp/keys",
        {"name": name, "publicKey": public_line},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


def is_closed(client) -> bool:
    return not client.get_channel().get_transport().is_active()


class TestLockout:
    def test_repeated_failures_lock_out_even_the_right_password(self, feed, port, api):
        for _ in range(3):
            assert login_refused(port, feed.username, "wrong password")

        assert login_refused(port, feed.username, feed.password)
        assert events() == ["login_failed", "login_failed", "login_failed", "lockout"]
        failed = SftpActivity.objects.filter(event=ActivityEvent.LOGIN_FAILED).earliest("id")
        assert failed.remote_address == "127.0.0.1"
        assert failed.detail == "Wrong password."
        info = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp").json()["data"]
        assert info["lockedUntil"] is not None
        activity = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp/activity")
        assert activity.json()["data"][0]["event"] == "lockout"

    def test_a_username_lockout_blocks_its_password_everywhere_but_not_its_keys(
        self, feed, port, api, tmp_path
    ):
        key = make_ed25519_key(tmp_path)
        add_key(api, feed, key.public_line)
        for _ in range(3):
            login_refused(port, feed.username, "wrong", source="127.0.0.2")

        assert login_refused(port, feed.username, feed.password, source="127.0.0.3")
        with paramiko_sftp(port, feed.username, pkey=key.pkey, source_address="127.0.0.3") as c:
            assert c.listdir(".") == []
        # The address the guesses came from is locked for keys as well.
        with (
            pytest.raises(paramiko.AuthenticationException),
            paramiko_sftp(port, feed.username, pkey=key.pkey, source_address="127.0.0.2"),
        ):
            pass

    def test_guessing_usernames_locks_the_address(self, feed, port):
        for number in range(3):
            assert login_refused(port, f"vauto_guess{number}", "password", source="127.0.0.4")

        assert login_refused(port, feed.username, feed.password, source="127.0.0.4")
        assert not login_refused(port, feed.username, feed.password, source="127.0.0.5")
        unknown = SftpActivity.objects.filter(username__startswith="vauto_guess")
        assert [row.event for row in unknown.order_by("id")] == ["login_failed"] * 3 + ["lockout"]
        assert all(row.credential is None and row.account is None for row in unknown)
        assert unknown.earliest("id").detail == "Unknown or revoked username."

    def test_each_failure_is_stalled(self, feed, port, settings):
        settings.SFTP_FAILURE_DELAY_SECONDS = 0.3

        started = time.monotonic()
        assert login_refused(port, feed.username, "wrong")

        assert time.monotonic() - started >= 0.3


class TestRotationAndRevocation:
    def test_after_rotation_the_old_password_fails_the_new_one_works(
        self, feed, port, api, tmp_path
    ):
        with paramiko_sftp(port, feed.username, password=feed.password) as live:
            rotated = api.post(f"/api/v1/integrations/{feed.integration.pk}/sftp/rotate")
            new_password = rotated.json()["data"]["password"]

            assert login_refused(port, feed.username, feed.password)
            result = sftp_batch(feed.username, port, ["ls"], password=new_password, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            # The session that logged in with the old password does not outlive it.
            wait_for(lambda: is_closed(live))
        dropped = SftpActivity.objects.get(event=ActivityEvent.DISCONNECTED)
        assert "revoked, rotated or removed" in dropped.detail

    def test_deleting_the_integration_drops_live_sessions_and_refuses_logins(self, feed, port, api):
        with paramiko_sftp(port, feed.username, password=feed.password) as live:
            live.putfo(io.BytesIO(b"vin\n1\n"), "inventory.csv")

            assert api.delete(f"/api/v1/integrations/{feed.integration.pk}").status_code == 204

            wait_for(lambda: is_closed(live), timeout=5)
            with pytest.raises((OSError, EOFError, paramiko.SSHException)):
                live.listdir(".")
        assert login_refused(port, feed.username, feed.password)
        assert SftpCredential.objects.get().revoked_at is not None
        assert (feed.root / "inventory.csv").exists()
        assert FeedFile.objects.count() == 1
        assert ActivityEvent.DISCONNECTED in events()


class TestPublicKeys:
    @requires("sftp")
    def test_a_key_logs_in_once_added_and_not_after_removal(self, feed, port, api, tmp_path):
        key = make_ed25519_key(tmp_path)
        (tmp_path / "inventory.csv").write_bytes(b"vin\n3\n")
        upload = ["put inventory.csv"]

        before = sftp_batch(feed.username, port, upload, identity=key.private_path, cwd=tmp_path)
        added = add_key(api, feed, key.public_line)
        after = sftp_batch(feed.username, port, upload, identity=key.private_path, cwd=tmp_path)

        assert before.returncode != 0
        assert after.returncode == 0, after.stderr
        assert FeedFile.objects.get().filename == "inventory.csv"
        login = SftpActivity.objects.get(event=ActivityEvent.LOGIN)
        assert login.detail == f"Public key 'laptop' ({added['fingerprint']})."
        # Public-key probes are not failed logins: nothing was counted against the username.
        assert not SftpActivity.objects.filter(event=ActivityEvent.LOGIN_FAILED).exists()

        with paramiko_sftp(port, feed.username, pkey=key.pkey) as live:
            url = f"/api/v1/integrations/{feed.integration.pk}/sftp/keys/{added['id']}"
            assert api.delete(url).status_code == 204

            wait_for(lambda: is_closed(live))
        removed = sftp_batch(feed.username, port, ["ls"], identity=key.private_path, cwd=tmp_path)
        assert removed.returncode != 0

    @requires("sftp")
    @pytest.mark.parametrize(
        "make_key",
        [
            lambda: ec.generate_private_key(ec.SECP256R1()),
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
        ],
        ids=["ecdsa", "rsa-3072"],
    )
    def test_openssh_logs_in_with_ecdsa_and_rsa_keys(self, feed, port, api, tmp_path, make_key):
        path = tmp_path / "id_key"
        add_key(api, feed, write_private_key(make_key(), path))

        result = sftp_batch(feed.username, port, ["ls"], identity=path, cwd=tmp_path)

        assert result.returncode == 0, result.stderr


class TestSessionLimits:
    def test_sessions_per_username_are_capped(self, feed, port, settings):
        settings.SFTP_MAX_SESSIONS_PER_USER = 1

        with paramiko_sftp(port, feed.username, password=feed.password) as first:
            assert login_refused(port, feed.username, feed.password)
            assert first.listdir(".") == []

        wait_for(lambda: not login_refused(port, feed.username, feed.password))
        refused = SftpActivity.objects.filter(event=ActivityEvent.REFUSED).earliest("id")
        assert refused.detail == "Too many sessions (at most 1)."
        assert ActivityEvent.LOGIN_FAILED not in events()

    def test_a_closed_session_frees_its_slot_at_once(self, feed, port, settings):
        # A partner's scripts log in back to back; the one before has disconnected, so none of
        # them is refused even at a limit of one.
        settings.SFTP_MAX_SESSIONS_PER_USER = 1

        for _ in range(5):
            with paramiko_sftp(port, feed.username, password=feed.password) as sftp:
                assert sftp.listdir(".") == []

        assert ActivityEvent.REFUSED not in events()

    def test_connections_beyond_the_total_cap_are_closed(self, feed, port, settings):
        settings.SFTP_MAX_SESSIONS = 1

        with paramiko_sftp(port, feed.username, password=feed.password) as first:
            with (
                pytest.raises((paramiko.SSHException, EOFError, OSError)),
                paramiko_sftp(port, feed.username, password=feed.password),
            ):
                pass
            assert first.listdir(".") == []

    def test_idle_sessions_are_closed(self, feed, port, settings):
        settings.SFTP_IDLE_TIMEOUT_SECONDS = 0.5

        with paramiko_sftp(port, feed.username, password=feed.password) as client:
            wait_for(lambda: is_closed(client))

        assert "Idle" in SftpActivity.objects.get(event=ActivityEvent.DISCONNECTED).detail
