"""SFTP upload throughput: the gateway against OpenSSH's own sshd + sftp-server, same run.

A 200 MiB file is uploaded with the OpenSSH ``sftp`` client (key authentication, aes128-ctr,
as in PERFORMANCE.md) to the gateway (which also fsyncs it, hashes it and records a feed file)
and, when ``/usr/sbin/sshd`` exists, to an sshd started on a free port with a throwaway config,
host key and authorized_keys, as the current user. Prints MB/s of each (median of the runs) and
their ratio; the target is a gateway at least half as fast as OpenSSH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from django.db import connection
from django.test import override_settings
from django.test.utils import setup_databases, teardown_databases

from tests.sshkeys import write_private_key

SIZE = 200 * 1024 * 1024
RUNS = 3
TARGET_RATIO = 0.5
SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
CLIENT_OPTIONS = [
    "-F",
    "/dev/null",
    "-oBatchMode=yes",
    "-oIdentitiesOnly=yes",
    "-oPasswordAuthentication=no",
    "-oStrictHostKeyChecking=no",
    "-oUserKnownHostsFile=/dev/null",
    "-oLogLevel=ERROR",
    "-oCiphers=aes128-ctr",
]


def _write_key(path: Path) -> str:
    """Write an Ed25519 private key (OpenSSH format, 0600); return its public line."""
    return write_private_key(ed25519.Ed25519PrivateKey.generate(), path)


def _payload(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(SIZE // (4 * 1024 * 1024)):
            block = os.urandom(4 * 1024 * 1024)
            digest.update(block)
            handle.write(block)
    return digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _upload(*, user: str, port: int, key: Path, local: Path, remote: str, workdir: Path) -> float:
    """Seconds one ``sftp put`` takes, connection set-up included (as a partner sees it)."""
    batch = workdir / "batch"
    batch.write_text(f"put {local} {remote}\n")
    command = ["sftp", *CLIENT_OPTIONS, "-i", str(key), "-P", str(port), "-b", str(batch)]
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603
        [*command, f"{user}@127.0.0.1"], capture_output=True, text=True, check=False, timeout=600
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sftp failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def _rate(seconds: list[float]) -> float:
    return SIZE / 1e6 / statistics.median(seconds)


def _gateway_runs(workdir: Path, key: Path, public_line: str, local: Path, digest: str) -> float:
    from accounts.models import Account, Dealership
    from accounts.services import Actor
    from integrations.services.integrations import integration_create
    from sftpgateway.models import SftpCredential
    from sftpgateway.server import SftpGateway, host_key_load_or_create
    from sftpgateway.services import key_add
    from syncengine.feeds import services as syncengine_services
    from syncengine.models import FeedFile

    account = Account.objects.create(name="Bench Motors")
    dealership = Dealership.objects.create(account=account, name="Bench Motors North")
    integration = integration_create(
        account=account, actor=Actor.system(), type="vauto", dealership=dealership, name="Bench"
    )
    username = integration.provisioned["sftp"]["username"]  # type: ignore[attr-defined]
    key_add(
        credential=SftpCredential.objects.get(integration=integration),
        actor=Actor.system(),
        name="bench",
        public_key=public_line,
    )
    # The worker is not part of this measurement: the upload ends when the row is committed.
    dispatch = syncengine_services.dispatch_ingest
    syncengine_services.dispatch_ingest = lambda feed_file_id: None
    gateway = SftpGateway(
        host="127.0.0.1", port=0, host_key=host_key_load_or_create(workdir / "gateway_host_key")
    )
    try:
        _, port = gateway.start()
        seconds = [
            _upload(
                user=username,
                port=port,
                key=key,
                local=local,
                remote=f"inventory-{run}.bin",
                workdir=workdir,
            )
            for run in range(RUNS)
        ]
    finally:
        gateway.stop(grace=5)
        syncengine_services.dispatch_ingest = dispatch
    received = list(FeedFile.objects.filter(integration=integration))
    assert len(received) == RUNS, f"expected {RUNS} feed files, got {len(received)}"
    assert all(row.size == SIZE and row.sha256 == digest for row in received)
    return _rate(seconds)


@contextmanager
def _sshd(workdir: Path, public_line: str) -> Iterator[int]:
    """An sshd on a free loopback port with its own config, host key and authorized_keys."""
    home = workdir / "sshd"
    home.mkdir()
    _write_key(home / "ssh_host_ed25519_key")
    (home / "authorized_keys").write_text(public_line + "\n")
    port = _free_port()
    subsystem = str(SFTP_SERVER) if SFTP_SERVER.exists() else "internal-sftp"
    (home / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {home / 'ssh_host_ed25519_key'}",
                f"PidFile {home / 'sshd.pid'}",
                f"AuthorizedKeysFile {home / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                f"Subsystem sftp {subsystem}",
                "",
            ]
        )
    )
    # Run as root, sshd insists on its privilege-separation directory (systemd makes it).
    privsep = Path("/run/sshd")
    made_privsep = os.geteuid() == 0 and not privsep.exists()
    if made_privsep:
        privsep.mkdir(mode=0o755)
    log = (home / "sshd.log").open("w")
    process = subprocess.Popen(  # noqa: S603
        [str(SSHD), "-D", "-e", "-f", str(home / "sshd_config")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(home / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        if made_privsep:
            privsep.rmdir()


def _reference_runs(workdir: Path, key: Path, public_line: str, local: Path) -> float | None:
    if not SSHD.exists():
        print(f"reference unavailable: {SSHD} not found (apt-get install openssh-server)")
        return None
    user = os.environ.get("USER") or __import__("getpass").getuser()
    target = workdir / "reference-uploads"
    target.mkdir()
    with _sshd(workdir, public_line) as port:
        seconds = [
            _upload(
                user=user,
                port=port,
                key=key,
                local=local,
                remote=str(target / f"inventory-{run}.bin"),
                workdir=workdir,
            )
            for run in range(RUNS)
        ]
    return _rate(seconds)


def run(args: Any) -> None:
    """Upload 200 MiB through the gateway and through OpenSSH; print MB/s and the ratio."""
    if shutil.which("sftp") is None:
        print("bench_sftp: skipped, the OpenSSH sftp client is not installed.")
        return
    base = Path(args.workdir) if getattr(args, "workdir", "") else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_sftp-", dir=base))
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        key = workdir / "id_ed25519"
        public_line = _write_key(key)
        local = workdir / "inventory.bin"
        digest = _payload(local)
        with override_settings(
            SFTP_ROOT_DIR=workdir / "sftp",
            FEED_STORAGE_DIR=workdir / "feeds",
        ):
            gateway = _gateway_runs(workdir, key, public_line, local, digest)
        reference = _reference_runs(workdir, key, public_line, local)
        print(f"SFTP upload of {SIZE // 2**20} MiB, OpenSSH sftp client, aes128-ctr, key auth")
        print(f"  median of {RUNS} runs, connection set-up included")
        print(f"  gateway (paramiko, fsync + sha256 + feed file row): {gateway:8.1f} MB/s")
        if reference is None:
            return
        ratio = gateway / reference
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"  OpenSSH sshd + sftp-server:                         {reference:8.1f} MB/s")
        print(f"  ratio gateway / OpenSSH: {ratio:.2f} (target >= {TARGET_RATIO}) {verdict}")
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)
        shutil.rmtree(workdir, ignore_errors=True)
