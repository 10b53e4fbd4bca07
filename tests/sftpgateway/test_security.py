"""What the gateway refuses: leaving the root, symlinks, shells, commands, forwarding, weak
algorithms; and its host key."""

import os
import socket
import stat
import subprocess

import paramiko
import pytest

from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity
from sftpgateway.server import CIPHERS, KEX, MACS, host_key_load_or_create
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import (
    HOST,
    PASSWORD_AUTH,
    SSH_COMMON,
    create_feed,
    paramiko_sftp,
    requires,
    sftp_batch,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def neighbour(tenant, gateway):
    """Another partner's root, with a file in it, next to the one under test."""
    other = create_feed(tenant, "homenet")
    other.root.mkdir(parents=True)
    (other.root / "theirs.csv").write_text("secret inventory")
    return other


@requires("sftp", "sshpass")
class TestConfinedToTheRoot:
    def run(self, feed, port, tmp_path, *commands):
        return sftp_batch(feed.username, port, list(commands), password=feed.password, cwd=tmp_path)

    def test_cd_up_stays_at_the_root(self, feed, port, tmp_path, neighbour):
        result = self.run(feed, port, tmp_path, "cd ..", "cd ../..", "pwd", "ls -a /..")

        assert result.returncode == 0, result.stderr
        assert "Remote working directory: /\n" in result.stdout
        assert neighbour.username not in result.stdout
        assert "theirs.csv" not in result.stdout

    @pytest.mark.parametrize(
        "path",
        ["../../etc/passwd", "/etc/passwd", "../../../../../../etc/passwd", "/../etc/passwd"],
    )
    def test_system_files_cannot_be_read(self, feed, port, tmp_path, path):
        result = self.run(feed, port, tmp_path, f"get {path} stolen")

        assert result.returncode != 0
        assert not (tmp_path / "stolen").exists()

    def test_another_partners_files_cannot_be_reached(self, feed, port, tmp_path, neighbour):
        for path in (f"../{neighbour.username}/theirs.csv", f"/../{neighbour.username}/theirs.csv"):
            result = self.run(feed, port, tmp_path, f"get {path} stolen")

            assert result.returncode != 0
            assert not (tmp_path / "stolen").exists()

    def test_uploads_with_dot_dots_land_inside_the_root(self, feed, port, tmp_path, settings):
        client_dir = tmp_path / "client"
        client_dir.mkdir()
        (client_dir / "escape.csv").write_text("x")

        result = self.run(feed, port, client_dir, "put escape.csv ../../../escape.csv")

        assert result.returncode == 0, result.stderr
        assert (feed.root / "escape.csv").read_text() == "x"
        assert not (settings.SFTP_ROOT_DIR / "escape.csv").exists()
        assert not (tmp_path / "escape.csv").exists()
        assert FeedFile.objects.get().filename == "escape.csv"

    def test_symlinks_cannot_be_created(self, feed, port, tmp_path):
        result = self.run(feed, port, tmp_path, "symlink /etc etc")

        assert result.returncode != 0
        assert not (feed.root / "etc").exists()
        assert SftpActivity.objects.filter(
            event=ActivityEvent.REFUSED, detail__contains="Symbolic links"
        ).exists()

    def test_a_symlink_planted_in_the_root_is_not_followed_out(self, feed, port, tmp_path):
        feed.root.mkdir(parents=True)
        (feed.root / "outside").symlink_to("/etc")
        (feed.root / "passwd").symlink_to("/etc/passwd")
        (tmp_path / "evil.csv").write_text("x")

        for command in (
            "ls outside/*",
            "get outside/passwd stolen",
            "get passwd stolen",
            "put evil.csv outside/evil.csv",
            "put evil.csv passwd",
            "cd outside",
        ):
            result = self.run(feed, port, tmp_path, command)

            assert result.returncode != 0, command
        assert not (tmp_path / "stolen").exists()
        assert not os.path.exists("/etc/evil.csv")
        assert (feed.root / "passwd").is_symlink()
        assert SftpActivity.objects.filter(event=ActivityEvent.REFUSED).count() >= 5


@requires("ssh", "sshpass")
class TestOnlySftp:
    def ssh(self, feed, port, *args):
        return subprocess.run(  # noqa: S603
            [
                *("sshpass", "-p", feed.password, "ssh", *SSH_COMMON, *PASSWORD_AUTH),
                *("-p", str(port), f"{feed.username}@{HOST}", *args),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )

    def test_a_command_is_refused(self, feed, port):
        result = self.ssh(feed, port, "ls", "/")

        assert result.returncode != 0
        assert "bin" not in result.stdout
        assert SftpActivity.objects.filter(
            event=ActivityEvent.REFUSED, detail__contains="'ls /'"
        ).exists()

    def test_a_shell_is_refused(self, feed, port):
        result = self.ssh(feed, port, "-T")

        assert result.returncode != 0
        assert SftpActivity.objects.filter(
            event=ActivityEvent.REFUSED, detail__contains="shell"
        ).exists()

    def test_port_forwarding_is_refused(self, feed, port):
        result = self.ssh(feed, port, "-N", "-oExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22")

        assert result.returncode != 0


class TestOnlySftpForParamiko:
    def test_exec_shell_and_forwarding_fail(self, feed, port):
        with paramiko_sftp(port, feed.username, password=feed.password) as client:
            transport = client.get_channel().get_transport()

            with pytest.raises(paramiko.SSHException):
                transport.open_session().exec_command("cat /etc/passwd")
            with pytest.raises(paramiko.SSHException):
                transport.open_session().invoke_shell()
            with pytest.raises(paramiko.SSHException):
                transport.open_session().invoke_subsystem("shell")
            with pytest.raises(paramiko.ChannelException):
                transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0))
            with pytest.raises(paramiko.SSHException):
                transport.request_port_forward("127.0.0.1", 0)

            assert client.listdir(".") == []
        refused = SftpActivity.objects.filter(event=ActivityEvent.REFUSED)
        assert refused.count() == 5
        assert all(row.credential is not None and row.remote_address for row in refused)


@requires("sftp", "sshpass")
@pytest.mark.parametrize(
    "option",
    [
        "-oCiphers=aes128-cbc",
        "-oCiphers=3des-cbc",
        "-oMACs=hmac-sha1",
        "-oMACs=hmac-md5",
        "-oKexAlgorithms=diffie-hellman-group14-sha1",
        "-oKexAlgorithms=diffie-hellman-group-exchange-sha1",
    ],
)
def test_weak_algorithms_are_refused(feed, port, tmp_path, option):
    result = sftp_batch(
        feed.username, port, ["ls"], password=feed.password, cwd=tmp_path, extra=(option,)
    )

    # paramiko ends the handshake before OpenSSH can say "no matching cipher".
    assert result.returncode == 255
    assert "Connection closed" in result.stderr or "no matching" in result.stderr
    assert not SftpActivity.objects.filter(event=ActivityEvent.LOGIN).exists()


def test_only_strong_algorithms_are_offered():
    offered = " ".join((*CIPHERS, *MACS, *KEX)).lower()

    assert CIPHERS
    assert MACS
    assert KEX
    for weak in ("cbc", "3des", "md5", "hmac-sha1", "group1-", "group14-sha1", "exchange-sha1"):
        assert weak not in offered


def test_the_host_key_is_generated_once_with_mode_0600(tmp_path):
    path = tmp_path / "data" / "sftp_host_key"

    first = host_key_load_or_create(path)
    second = host_key_load_or_create(path)

    assert first.fingerprint == second.fingerprint
    assert first.fingerprint.startswith("SHA256:")
    assert first.get_name() == "ssh-ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["sftp_host_key"]


def test_a_silent_connection_is_dropped_after_the_login_grace(gateway, settings):
    settings.SFTP_LOGIN_GRACE_SECONDS = 0.5
    port = gateway.address[1]

    with socket.create_connection((HOST, port), timeout=5) as sock:
        transport = paramiko.Transport(sock)
        transport.start_client(timeout=5)

        transport.join(timeout=5)

        assert not transport.is_active()
