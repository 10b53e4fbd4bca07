"""Real storage servers for tests and benchmarks, each on a free loopback port: an S3 endpoint
(moto in server mode), Azure Blob Storage (Azurite) and an OpenSSH ``sshd`` with SFTP.

Each starts once per test process, at its first use, and stops when the process ends. A server
that cannot run here (the program is not installed) makes its tests skip with the reason and the
command that installs it; ``.ci/run`` installs all three.

- **moto**: ``ThreadedMotoServer`` on 127.0.0.1 (real HTTP, real SigV4 checks). IAM
  authentication is switched on once the test users exist, so a wrong key is refused as AWS
  would refuse it: ``admin`` may do anything in S3, ``reader`` may only list and read.
- **Azurite**: ``azurite-blob --inMemoryPersistence`` (npm package ``azurite``, pinned below),
  with its well-known development account.
- **sshd**: Debian's ``/usr/sbin/sshd`` with a configuration of its own in a temporary folder
  (host key, authorized key, ``internal-sftp``); the test user is the one running the tests.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.sshkeys import write_private_key

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30

AZURITE_VERSION = "3.35.0"
# Azurite's published development account (the same in every Azurite; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Unavailable(Exception):
    """The server cannot run on this machine; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise Unavailable(f"{what} exited at start with status {process.returncode}.")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise Unavailable(f"{what} did not listen on {HOST}:{port} within {START_TIMEOUT_SECONDS} s.")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


T = TypeVar("T")
_started: dict[str, Any] = {}
_failed: dict[str, str] = {}
_lock = threading.Lock()


def _once(name: str, start: Callable[[], T]) -> T:
    """Start a server the first time it is asked for; remember a failure to start, so that
    every test that needs it skips with the same reason instead of trying again."""
    with _lock:
        if name in _failed:
            raise Unavailable(_failed[name])
        if name not in _started:
            try:
                _started[name] = start()
            except Unavailable as error:
                _failed[name] = str(error)
                raise
        started: T = _started[name]
        return started


def _server_fixture(name: str, start: Callable[[], T]) -> T:
    try:
        return _once(name, start)
    except Unavailable as error:
        pytest.skip(f"{name}: {error}")


# --- S3 (moto) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    region: str
    admin: dict[str, str]  # accessKeyId, secretAccessKey: every S3 action
    reader: dict[str, str]  # list and read only

    def client(self, credentials: dict[str, str] | None = None) -> Any:
        """A plain boto3 client for the tests' own looks at the bucket (not the connector's)."""
        import boto3

        key = credentials or self.admin
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=key["accessKeyId"],
            aws_secret_access_key=key["secretAccessKey"],
        )


def _iam_user(iam: Any, name: str, actions: list[str]) -> dict[str, str]:
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}


def _start_moto() -> S3Server:
    try:
        import boto3
        import httpx
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise Unavailable(f"moto[server] is not installed ({error}); run make install.") from None
    server = ThreadedMotoServer(ip_address=HOST, port=free_port(), verbose=False)
    server.start()
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    region = "eu-west-1"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    admin = _iam_user(iam, "railyard-admin", ["s3:*"])
    reader = _iam_user(iam, "railyard-reader", ["s3:ListBucket", "s3:GetObject"])
    # From now on every request must be signed by a known key with a policy that allows it.
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    return S3Server(endpoint=endpoint, region=region, admin=admin, reader=reader)


def s3_server() -> S3Server:
    return _once("moto S3 server", _start_moto)


@pytest.fixture(scope="session")
def moto_s3() -> S3Server:
    return _server_fixture("moto S3 server", _start_moto)


# --- Azure Blob Storage (Azurite) ----------------------------------------------------------------


def azurite_prefix() -> Path:
    """Where .ci/run installs Azurite: a cache folder of this user, one per version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "railyard" / f"azurite-{AZURITE_VERSION}"


def azurite_program() -> str | None:
    configured = os.environ.get("AZURITE_BLOB")
    if configured:
        return configured
    installed = azurite_prefix() / "node_modules" / ".bin" / "azurite-blob"
    if installed.exists():
        return str(installed)
    return shutil.which("azurite-blob")


@dataclass(frozen=True)
class AzuriteServer:
    endpoint: str  # the account's blob endpoint, http://127.0.0.1:<port>/devstoreaccount1
    account: str
    key: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def service(self) -> Any:
        """A plain SDK client for the tests' own looks at the containers."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def _start_azurite() -> AzuriteServer:
    program = azurite_program()
    if program is None:
        raise Unavailable(
            f"Azurite {AZURITE_VERSION} is not installed: bash .ci/run installs it, or "
            f"npm install --prefix {azurite_prefix()} azurite@{AZURITE_VERSION}"
        )
    if shutil.which("node") is None:
        raise Unavailable("Node.js is not installed (apt-get install nodejs).")
    workspace = Path(tempfile.mkdtemp(prefix="railyard-azurite-"))
    atexit.register(shutil.rmtree, workspace, True)
    port = free_port()
    log = open(workspace / "azurite.log", "wb")  # noqa: SIM115 - the server's whole life
    process = subprocess.Popen(  # noqa: S603 - a fixed program and arguments
        [
            program,
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "1024",
            "--blobHost",
            HOST,
            "--blobPort",
            str(port),
            # No telemetry: the tests reach loopback only.
            "--disableTelemetry",
            # The SDK may speak a newer API version than this Azurite knows.
            "--skipApiVersionCheck",
            "--silent",
        ],
        cwd=workspace,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    atexit.register(_stop_process, process)
    try:
        _wait_for_port(port, process, "azurite-blob")
    except Unavailable as error:
        output = (workspace / "azurite.log").read_text(errors="replace")[-2000:]
        raise Unavailable(f"{error} Its output: {output}") from None
    return AzuriteServer(
        endpoint=f"http://{HOST}:{port}/{AZURITE_ACCOUNT}", account=AZURITE_ACCOUNT, key=AZURITE_KEY
    )


def azurite_server() -> AzuriteServer:
    return _once("Azurite", _start_azurite)


@pytest.fixture(scope="session")
def azurite() -> AzuriteServer:
    return _server_fixture("Azurite", _start_azurite)


# --- OpenSSH sshd ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    username: str
    host_key: str  # the public key line to pin
    private_key: str  # the OpenSSH private key text of an authorized key
    workspace: Path  # a folder the test user may write (each test makes its own inside)


def sshd_program() -> str | None:
    for candidate in ("/usr/sbin/sshd", shutil.which("sshd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _start_sshd() -> SshServer:
    program = sshd_program()
    if program is None:
        raise Unavailable(
            "OpenSSH's sshd is not installed: bash .ci/run installs it "
            "(apt-get install openssh-server)."
        )
    if os.geteuid() == 0:
        # sshd running as root insists on its privilege separation folder.
        try:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        except OSError as error:
            raise Unavailable(f"/run/sshd cannot be made: {error}") from None
    folder = Path(tempfile.mkdtemp(prefix="railyard-sshd-"))
    atexit.register(shutil.rmtree, folder, True)
    folder.chmod(0o755)
    host_key = write_private_key(ed25519.Ed25519PrivateKey.generate(), folder / "host_ed25519")
    client_key_path = folder / "client_ed25519"
    client_public = write_private_key(ed25519.Ed25519PrivateKey.generate(), client_key_path)
    (folder / "authorized_keys").write_text(client_public + "\n")
    workspace = folder / "files"
    workspace.mkdir()
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {HOST}",
                f"HostKey {folder / 'host_ed25519'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PermitRootLogin yes",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "MaxStartups 50:30:100",
                "MaxSessions 50",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - the server's whole life
    process = subprocess.Popen(  # noqa: S603 - a fixed program and arguments
        [program, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    atexit.register(_stop_process, process)
    try:
        _wait_for_port(port, process, "sshd")
    except Unavailable as error:
        output = (folder / "sshd.log").read_text(errors="replace")[-2000:]
        raise Unavailable(f"{error} Its output: {output}") from None
    return SshServer(
        host=HOST,
        port=port,
        username=pwd.getpwuid(os.geteuid()).pw_name,
        host_key=host_key,
        private_key=client_key_path.read_text(),
        workspace=workspace,
    )


def ssh_server() -> SshServer:
    return _once("OpenSSH sshd", _start_sshd)


@pytest.fixture(scope="session")
def sshd() -> SshServer:
    return _server_fixture("OpenSSH sshd", _start_sshd)
