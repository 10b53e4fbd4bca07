"""What the gateway refuses: leaving the root, symlinks, shells, commands, forwarding, weak
algorithms, floods of connections before login; and its host key."""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from config import settings as production_settings
from sftpgateway.choices import ActivityEvent
from sftpgateway.defender import REFUSAL_LINE
from sftpgateway.models import DefenderHost, SftpActivity
from sftpgateway.server import host_key_load_or_create
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import (
    HOST,
    PASSWORD_AUTH,
    SSH_COMMON,
    create_feed,
    paramiko_sftp,
    requires,
    sftp_batch,
    wait_for,
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
    "options",
    [
        ("-oCiphers=aes128-cbc",),
        ("-oCiphers=3des-cbc",),
        ("-oMACs=hmac-sha1",),
        ("-oMACs=hmac-md5",),
        # Encrypt-and-MAC (GCM has a MAC of its own, so a MAC is only negotiated with CTR).
        ("-oCiphers=aes128-ctr", "-oMACs=hmac-sha2-256,hmac-sha2-512"),
        ("-oKexAlgorithms=diffie-hellman-group14-sha1",),
        ("-oKexAlgorithms=diffie-hellman-group-exchange-sha1",),
        ("-oKexAlgorithms=diffie-hellman-group14-sha256",),
        ("-oKexAlgorithms=ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521",),
    ],
    ids=lambda options: " ".join(options).removeprefix("-o"),
)
def test_weak_algorithms_are_refused(feed, port, tmp_path, options):
    result = sftp_batch(
        feed.username, port, ["ls"], password=feed.password, cwd=tmp_path, extra=options
    )

    # paramiko ends the handshake before OpenSSH can say "no matching cipher".
    assert result.returncode == 255
    assert "Connection closed" in result.stderr or "no matching" in result.stderr
    assert not SftpActivity.objects.filter(event=ActivityEvent.LOGIN).exists()


@requires("sftp", "sshpass")
def test_legacy_macs_are_offered_only_when_configured(feed, port, tmp_path, settings):
    options = ("-oCiphers=aes128-ctr", "-oMACs=hmac-sha2-256")
    settings.SFTP_LEGACY_MACS = True

    result = sftp_batch(
        feed.username, port, ["ls"], password=feed.password, cwd=tmp_path, extra=options
    )

    assert result.returncode == 0, result.stderr


@requires("sftp", "sshpass")
def test_openssh_negotiates_etm_with_ctr_ciphers(feed, port, tmp_path):
    result = sftp_batch(
        feed.username,
        port,
        ["ls"],
        password=feed.password,
        cwd=tmp_path,
        extra=("-oCiphers=aes256-ctr", "-oMACs=hmac-sha2-512-etm@openssh.com", "-v"),
    )

    assert result.returncode == 0, result.stderr
    assert "MAC: hmac-sha2-512-etm@openssh.com" in result.stderr
    assert "kex: algorithm: curve25519-sha256@libssh.org" in result.stderr


def _ssh_audit() -> str | None:
    return shutil.which("ssh-audit") or next(
        (str(path) for path in [Path(sys.executable).with_name("ssh-audit")] if path.exists()),
        None,
    )


# The one warning paramiko cannot avoid without locking out every client older than OpenSSH 9.9:
# its only other post-quantum key exchange would be sntrup761x25519, which paramiko lacks.
UNAVOIDABLE_WARNINGS = {
    (
        "kex",
        "curve25519-sha256@libssh.org",
        "does not provide protection against post-quantum attacks",
    )
}


@pytest.mark.skipif(_ssh_audit() is None, reason="not installed: ssh-audit (pip install ssh-audit)")
def test_ssh_audit_finds_no_failure_and_only_the_unavoidable_warning(gateway, settings):
    # The production limits: ssh-audit also measures how fast one address may open connections.
    for name in (
        "SFTP_CONNECTION_BURST_PER_ADDRESS",
        "SFTP_CONNECTION_RATE_PER_ADDRESS",
        "SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS",
        "SFTP_DEFENDER_THRESHOLD",
    ):
        setattr(settings, name, getattr(production_settings, name))

    result = subprocess.run(  # noqa: S603
        [_ssh_audit() or "ssh-audit", "-j", "-p", str(gateway.address[1]), HOST],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    audit = json.loads(result.stdout)

    notes = {
        (section, row["algorithm"], level, text)
        for section in ("kex", "key", "enc", "mac")
        for row in audit[section]
        for level, texts in row.get("notes", {}).items()
        for text in texts
    }
    assert {note for note in notes if note[2] == "fail"} == set()
    assert {(s, a, t) for s, a, level, t in notes if level == "warn"} == UNAVOIDABLE_WARNINGS
    kex = [row["algorithm"] for row in audit["kex"]]
    assert kex[0] == "mlkem768x25519-sha256"
    assert [name for name in kex if not name.startswith("kex-strict-")] == [
        "mlkem768x25519-sha256",
        "curve25519-sha256@libssh.org",
    ]
    assert [row["algorithm"] for row in audit["mac"]] == [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
    ]
    ciphers = [row["algorithm"] for row in audit["enc"]]
    assert set(ciphers) - {"chacha20-poly1305@openssh.com"} == {
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
    }
    assert [row["algorithm"] for row in audit["key"]] == ["ssh-ed25519"]
    assert audit["cves"] == []
    assert audit["additional_notes"] == []


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


def test_a_connection_that_never_sends_its_banner_is_dropped_after_the_login_grace(
    gateway, settings
):
    settings.SFTP_LOGIN_GRACE_SECONDS = 0.5

    with socket.create_connection((HOST, gateway.address[1]), timeout=10) as sock:
        received = b""
        # paramiko alone would wait 15 s for the banner, then 15 s more for the key exchange;
        # recv() raises TimeoutError if the gateway has not closed the connection in 10 s.
        while chunk := sock.recv(256):
            received += chunk

    assert received == b"SSH-2.0-RailyardSFTP\r\n"


def silent_connections(port: int, count: int, source: str = HOST) -> list[socket.socket]:
    return [
        socket.create_connection((HOST, port), timeout=5, source_address=(source, 0))
        for _ in range(count)
    ]


def answer(sock: socket.socket) -> bytes:
    """The SSH banner of a connection being served; the refusal line and the end of one that
    was turned away."""
    received = b""
    while not received.endswith(b"\n") or received == REFUSAL_LINE:
        try:
            chunk = sock.recv(256)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received + b"<closed>"
        received += chunk
    return received


class TestBeforeLogin:
    def test_one_address_cannot_take_every_slot(self, feed, port, settings):
        # Without the per-address cap, the silent connections would take all five slots.
        settings.SFTP_MAX_SESSIONS = 5
        settings.SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS = 3

        flood = silent_connections(port, 8)
        answers = [answer(sock) for sock in flood]

        served = [a for a in answers if a.startswith(b"SSH-2.0-RailyardSFTP")]
        closed = [a for a in answers if a == REFUSAL_LINE + b"<closed>"]
        assert (len(served), len(closed)) == (3, 5)
        with paramiko_sftp(
            port, feed.username, password=feed.password, source_address="127.0.0.2"
        ) as client:
            assert client.listdir(".") == []
        for sock in flood:
            sock.close()

    def test_new_connections_beyond_the_rate_are_closed(self, feed, port, settings):
        settings.SFTP_CONNECTION_BURST_PER_ADDRESS = 3
        settings.SFTP_CONNECTION_RATE_PER_ADDRESS = 1

        answers = []
        for _ in range(6):
            with socket.create_connection((HOST, port), timeout=5) as sock:
                answers.append(answer(sock))

        assert [a.startswith(b"SSH-2.0-") for a in answers] == [True] * 3 + [False] * 3
        assert answers[3:] == [REFUSAL_LINE + b"<closed>"] * 3
        with paramiko_sftp(
            port, feed.username, password=feed.password, source_address="127.0.0.2"
        ) as client:
            assert client.listdir(".") == []

    def test_a_flood_gets_the_address_banned(self, feed, port, settings):
        settings.SFTP_CONNECTION_BURST_PER_ADDRESS = 2
        settings.SFTP_CONNECTION_RATE_PER_ADDRESS = 1
        settings.SFTP_DEFENDER_THRESHOLD = 15
        settings.SFTP_DEFENDER_SCORE_LIMIT_EXCEEDED = 3

        for sock in silent_connections(port, 7, source="127.0.0.3"):
            sock.close()

        host = wait_for(lambda: DefenderHost.objects.filter(banned_until__isnull=False).first())
        assert host.address == "127.0.0.3"
        assert "5 x connection over the per-address limits" in host.ban_reason
        assert SftpActivity.objects.get(event=ActivityEvent.BAN).remote_address == "127.0.0.3"
