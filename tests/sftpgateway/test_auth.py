"""Logging into the gateway: passwords, keys, the defender's bans, rotation, revocation and
session limits."""

import io
import socket
import time

import paramiko
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import call_command
from django.utils import timezone

from sftpgateway import services
from sftpgateway.choices import ActivityEvent, DefenderEventKind
from sftpgateway.defender import REFUSAL_LINE
from sftpgateway.models import DefenderEvent, DefenderHost, SftpActivity, SftpCredential
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import (
    HOST,
    first_bytes,
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


def logs_in(port: int, username: str, password: str, source: str) -> bool:
    try:
        with paramiko_sftp(port, username, password=password, source_address=source) as client:
            return client.listdir(".") == []
    except (paramiko.SSHException, EOFError, OSError):
        return False


def turned_away(port: int, source: str) -> bool:
    """The gateway closes a connection from ``source`` before its SSH handshake."""
    return first_bytes(port, source=source) == REFUSAL_LINE + b"<closed>"


@pytest.fixture
def defender(settings):
    """A small threshold: two wrong passwords, or one unknown username and one wrong password."""
    settings.SFTP_DEFENDER_THRESHOLD = 4
    settings.SFTP_DEFENDER_SCORE_LOGIN_FAILED = 2
    settings.SFTP_DEFENDER_SCORE_UNKNOWN_USER = 3
    settings.SFTP_DEFENDER_SCORE_NO_LOGIN = 1
    settings.SFTP_DEFENDER_BAN_TIME_SECONDS = 600
    return settings


class TestDefender:
    def test_wrong_passwords_ban_the_address_and_never_the_username(
        self, feed, port, api, tmp_path, defender
    ):
        key = make_ed25519_key(tmp_path)
        add_key(api, feed, key.public_line)

        assert login_refused(port, feed.username, "wrong", source="127.0.0.2")
        assert login_refused(port, feed.username, "wrong again", source="127.0.0.2")

        # The guessing address is turned away before the handshake, whatever it offers...
        assert turned_away(port, "127.0.0.2")
        # ...while the partner logs in from its own address, with its password or its key.
        assert not login_refused(port, feed.username, feed.password, source="127.0.0.3")
        with paramiko_sftp(port, feed.username, pkey=key.pkey, source_address="127.0.0.3") as c:
            assert c.listdir(".") == []
        assert events(remote_address="127.0.0.2")[:3] == ["login_failed", "login_failed", "ban"]
        ban = SftpActivity.objects.get(event=ActivityEvent.BAN)
        assert "Address banned for 600 s" in ban.detail
        assert "2 x wrong password" in ban.detail
        activity = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp/activity")
        assert "ban" in [row["event"] for row in activity.json()["data"]]
        info = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp").json()["data"]
        assert "lockedUntil" not in info

    def test_guessing_unknown_usernames_bans_the_address(self, feed, port, defender):
        assert login_refused(port, "vauto_guess1", "password", source="127.0.0.4")
        assert login_refused(port, "vauto_guess2", "password", source="127.0.0.4")

        assert turned_away(port, "127.0.0.4")
        assert not login_refused(port, feed.username, feed.password, source="127.0.0.5")
        unknown = SftpActivity.objects.filter(username__startswith="vauto_guess")
        assert [row.event for row in unknown.order_by("id")] == ["login_failed"] * 2
        assert all(row.credential is None and row.account is None for row in unknown)
        assert unknown.earliest("id").detail == "Unknown or revoked username."
        ban = SftpActivity.objects.get(event=ActivityEvent.BAN)
        assert ban.remote_address == "127.0.0.4"
        assert ban.credential is None
        assert "2 x unknown username" in ban.detail

    def test_connections_that_never_log_in_are_scored(self, feed, port, defender):
        for _ in range(4):
            socket.create_connection((HOST, port), source_address=("127.0.0.6", 0)).close()

        wait_for(lambda: DefenderHost.objects.filter(banned_until__isnull=False).exists())
        assert turned_away(port, "127.0.0.6")
        assert "4 x connection closed without logging in" in (
            SftpActivity.objects.get(event=ActivityEvent.BAN).detail
        )

    def test_attempts_during_a_ban_are_counted_in_one_activity_row(self, feed, port, api, defender):
        login_refused(port, feed.username, "wrong", source="127.0.0.2")
        login_refused(port, feed.username, "wrong", source="127.0.0.2")

        for _ in range(5):
            assert turned_away(port, "127.0.0.2")

        refused = wait_for(
            lambda: SftpActivity.objects.filter(
                event=ActivityEvent.REFUSED,
                detail__startswith="Connections refused while banned: 5 ",
            ).first()
        )
        assert refused.detail.startswith("Connections refused while banned: 5 (banned until ")
        assert SftpActivity.objects.filter(event=ActivityEvent.REFUSED).count() == 1
        # The partner's owner sees it, with the ban, in the integration's activity.
        activity = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp/activity")
        assert [row["event"] for row in activity.json()["data"]][:2] == ["refused", "ban"]

    def test_an_operator_lifts_a_ban_with_the_command(self, feed, port, defender, monkeypatch):
        monkeypatch.setattr("sftpgateway.defender.BAN_RECHECK_SECONDS", 0.2)
        login_refused(port, feed.username, "wrong", source="127.0.0.2")
        login_refused(port, feed.username, "wrong", source="127.0.0.2")
        listed = io.StringIO()
        call_command("sftp_bans", stdout=listed)
        assert listed.getvalue().startswith("127.0.0.2\tbanned until ")

        lifted = io.StringIO()
        call_command("sftp_bans", "--lift", "127.0.0.2", stdout=lifted)

        assert lifted.getvalue() == "Lifted the ban of 127.0.0.2\n"
        wait_for(lambda: logs_in(port, feed.username, feed.password, "127.0.0.2"))
        assert not DefenderHost.objects.exists()
        unban = SftpActivity.objects.get(event=ActivityEvent.UNBAN)
        assert unban.detail.startswith("Ban lifted by ")
        assert unban.credential is not None
        empty = io.StringIO()
        call_command("sftp_bans", stdout=empty)
        assert empty.getvalue() == "No address is banned.\n"

    def test_each_failure_is_stalled(self, feed, port, settings):
        settings.SFTP_FAILURE_DELAY_SECONDS = 0.3

        started = time.monotonic()
        assert login_refused(port, feed.username, "wrong")

        assert time.monotonic() - started >= 0.3


class TestDefenderScores:
    """The scoring itself, with the clock under control (no network needed)."""

    @pytest.fixture
    def scoring(self, settings):
        settings.SFTP_DEFENDER_THRESHOLD = 4
        settings.SFTP_DEFENDER_SCORE_LOGIN_FAILED = 2
        settings.SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS = 600
        settings.SFTP_DEFENDER_BAN_TIME_SECONDS = 100
        settings.SFTP_DEFENDER_BAN_TIME_INCREMENT_PERCENT = 50
        settings.SFTP_DEFENDER_MAX_BAN_TIME_SECONDS = 200
        return settings

    def fail(self, address="192.0.2.7"):
        return services.defender_event_record(address=address, kind=DefenderEventKind.LOGIN_FAILED)

    def test_points_expire_after_the_observation_window(self, scoring):
        with time_machine.travel("2026-01-05 10:00:00Z", tick=False) as clock:
            assert self.fail().score == 2
            clock.shift(601)

            verdict = self.fail()

        assert verdict.score == 2
        assert verdict.banned_until is None

    def test_repeat_offenders_are_banned_longer_up_to_the_maximum(self, scoring):
        lengths = []
        with time_machine.travel("2026-01-05 10:00:00Z", tick=False) as clock:
            for _ in range(4):
                self.fail()
                verdict = self.fail()
                assert verdict.banned_until is not None
                lengths.append((verdict.banned_until - timezone.now()).total_seconds())
                clock.shift(lengths[-1] + 1)

        assert lengths == [100, 150, 200, 200]
        assert DefenderHost.objects.get().ban_count == 4

    def test_events_during_a_ban_are_not_scored(self, scoring):
        with time_machine.travel("2026-01-05 10:00:00Z", tick=False):
            self.fail()
            banned = self.fail()

            again = self.fail()

        assert again.banned_until == banned.banned_until
        assert not DefenderEvent.objects.exists()

    def test_a_safelisted_address_is_never_scored(self, scoring):
        scoring.SFTP_DEFENDER_SAFELIST = "192.0.2.0/28, 2001:db8::/32"

        for _ in range(5):
            assert self.fail("192.0.2.7").score == 0
            assert self.fail("2001:db8::1").score == 0

        assert self.fail("192.0.2.200").score == 2
        assert not DefenderHost.objects.filter(banned_until__isnull=False).exists()

    def test_an_address_is_forgotten_once_it_has_nothing_to_remember(self, scoring):
        with time_machine.travel("2026-01-05 10:00:00Z", tick=False) as clock:
            self.fail("192.0.2.1")
            clock.shift(500)
            self.fail("192.0.2.2")
            self.fail("192.0.2.2")  # banned for 100 s
            assert services.defender_prune() == 0

            clock.shift(101)
            # 192.0.2.1: its points expired, nothing else to remember. 192.0.2.2 is remembered
            # (a next ban would be longer) for the longest ban time after its ban ended.
            assert services.defender_prune() == 1
            assert list(DefenderHost.objects.values_list("address", flat=True)) == ["192.0.2.2"]

            clock.shift(200)
            assert services.defender_prune() == 1

        assert not DefenderHost.objects.exists()


class TestRotationAndRevocation:
    @requires("sftp", "sshpass")
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
