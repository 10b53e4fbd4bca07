"""The SFTP gateway: a paramiko SSH server that offers the ``sftp`` subsystem and nothing else.

One supervising thread per connection (paramiko adds its transport thread and, once the client
asks for SFTP, a subsystem thread). The supervisor waits for the login, enforces the session caps,
then watches the session: idle timeout, credentials revoked or rotated (re-checked every
couple of seconds with one indexed query), and a gateway shutdown, which lets running uploads
finish before it closes the connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.db import connections
from paramiko import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
    PKey,
    ServerInterface,
    SSHException,
    Transport,
)

from sftpgateway import auth, selectors, services
from sftpgateway.auth import LoginGrant
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpCredential
from sftpgateway.sftp import GatewaySFTPServer

logger = logging.getLogger(__name__)

# PERFORMANCE.md: 44 MB/s with paramiko's default 2 MiB window, 109 MB/s with 128 MiB. The
# packet size matches OpenSSH's limit, so a 255 KiB SFTP write can travel in one SSH packet.
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**18 - 2**12
SERVER_VERSION = "SSH-2.0-RailyardSFTP"
# Channels a connection may open over its life, and SFTP sessions it may run at once.
MAX_CHANNELS_PER_CONNECTION = 64
MAX_SUBSYSTEMS_PER_CONNECTION = 4


def _is_weak(name: str) -> bool:
    """CBC ciphers, 3DES, MD5 and SHA-1 MACs and SHA-1 key exchanges are refused."""
    lowered = name.lower()
    return (
        "-cbc" in lowered
        or "3des" in lowered
        or "md5" in lowered
        or lowered.startswith("hmac-sha1")
        or lowered.endswith("-sha1")
        or "sha1@" in lowered
    )


def _strong(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(name for name in names if not _is_weak(name))


CIPHERS = _strong(Transport._preferred_ciphers)
MACS = _strong(Transport._preferred_macs)
KEX = _strong(Transport._preferred_kex)


def _setting(name: str) -> float:
    """Read at call time, so tests and a running gateway see overrides."""
    return float(getattr(settings, name))


def host_key_path() -> Path:
    return Path(Path(settings.SFTP_HOST_KEY_PATH))


def host_key_load_or_create(path: Path) -> Any:
    """The gateway's host key: generated once (Ed25519, mode 0600), then always the same.

    Two processes starting together cannot both write it: the key is written to a private
    temporary file and linked into place, which fails if the other one was first.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
            logger.info("Generated the SFTP host key %s", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        logger.warning("The SFTP host key %s is readable by others; making it 0600", path)
        path.chmod(0o600)
    return PKey.from_path(str(path))


class SessionRegistry:
    """The live connections, for the total and per-username caps and for shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._by_username: dict[str, set[Session]] = {}

    def admit(self, session: Session, limit: int) -> bool:
        with self._lock:
            if len(self._sessions) >= limit:
                return False
            self._sessions.add(session)
            return True

    @staticmethod
    def _live(sessions: Iterable[Session]) -> int:
        """Sessions still connected: one whose client has gone is not counted while its
        thread notices (a partner reconnecting right after a disconnect is not refused)."""
        return sum(1 for session in sessions if session.connected)

    def user_count(self, username: str) -> int:
        with self._lock:
            return self._live(self._by_username.get(username, ()))

    def login(self, session: Session, username: str, limit: int) -> bool:
        with self._lock:
            sessions = self._by_username.setdefault(username, set())
            if self._live(sessions) >= limit:
                return False
            sessions.add(session)
            return True

    def remove(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
            sessions = self._by_username.get(session.username)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._by_username[session.username]

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)


class Session:
    """One SSH connection: who logged in, what it is doing, and how to end it."""

    def __init__(self, gateway: SftpGateway, sock: socket.socket, address: Any) -> None:
        self.gateway = gateway
        self.sock = sock
        self.id = secrets.token_hex(4)
        self.remote_address = str(address[0]) if address else ""
        self.transport: Any = None
        self.grant: LoginGrant | None = None
        self.logged_in = False
        self.last_activity = time.monotonic()
        # Counters changed by paramiko's threads (transport, SFTP sessions) and read here.
        self._counters = threading.Lock()
        self.open_uploads = 0
        self.channels = 0
        self.subsystems = 0
        self.closed = threading.Event()
        # Set once the supervisor has decided about the login (caps, activity row); the SFTP
        # thread waits for it before serving anything.
        self.admitted = threading.Event()
        # Set to make the supervisor look at the session now rather than at its next tick.
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.accepted: list[Any] = []

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.username or '-'}@{self.remote_address}>"

    @property
    def username(self) -> str:
        return self.grant.credential.username if self.grant else ""

    @property
    def credential(self) -> SftpCredential:
        assert self.grant is not None, "only asked once logged in"
        return self.grant.credential

    @property
    def connected(self) -> bool:
        if self.closed.is_set():
            return False
        return self.transport is None or bool(self.transport.is_active())

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def root(self) -> Path:
        return Path(settings.SFTP_ROOT_DIR) / self.username

    def ensure_root(self) -> Path:
        """The partner's root directory, created at its first login."""
        root = self.root()
        root.mkdir(mode=0o750, parents=True, exist_ok=True)
        return root

    def record(self, event: str, **fields: Any) -> None:
        """Write an activity row; a database problem is logged, never raised into paramiko."""
        try:
            services.activity_record(
                event=event,
                username=fields.pop("username", "") or self.username,
                credential=self.grant.credential if self.grant else None,
                remote_address=self.remote_address,
                **fields,
            )
        except Exception:
            logger.exception("Could not record SFTP activity %s for %r", event, self)

    def count(self, counter: str, delta: int) -> int:
        """Change one of the counters (``open_uploads``, ``channels``, ``subsystems``)."""
        with self._counters:
            value = int(getattr(self, counter)) + delta
            setattr(self, counter, value)
            return value

    def wait_for_subsystems(self, timeout: float) -> None:
        """Give the SFTP threads time to finish: a partial upload is moved aside and logged."""
        deadline = time.monotonic() + timeout
        while self.subsystems > 0 and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            logger.info("Closing SFTP session %r: %s", self, reason)
        self.closed.set()
        self.wake.set()
        if self.transport is not None:
            self.transport.close()
        else:
            self.sock.close()


class GatewayServerInterface(ServerInterface):
    """paramiko's view of one connection's policy: logins, and which requests are allowed.

    These callbacks run in paramiko's transport thread; each closes the database connection it
    used, since the thread is not one Django manages.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def _grant(self, grant: LoginGrant | None) -> int:
        if grant is None:
            return AUTH_FAILED
        limit = int(settings.SFTP_MAX_SESSIONS_PER_USER)
        if self.session.gateway.registry.user_count(grant.credential.username) >= limit:
            logger.warning(
                "SFTP login of %s refused: %d sessions already", grant.credential.username, limit
            )
            self.session.grant = grant
            self.session.record(
                ActivityEvent.REFUSED, detail=f"Too many sessions (at most {limit})."
            )
            self.session.grant = None
            return AUTH_FAILED
        # For a public key this is also called before the client proves it holds the key; the
        # grant only counts once paramiko reports the transport authenticated.
        self.session.grant = grant
        return AUTH_SUCCESSFUL

    def check_auth_password(self, username: str, password: Any) -> int:
        try:
            return self._grant(
                auth.password_check(
                    username=username,
                    password=password,
                    remote_address=self.session.remote_address,
                )
            )
        except Exception:
            logger.exception("SFTP password check failed for %r", username)
            return AUTH_FAILED
        finally:
            connections.close_all()

    def check_auth_publickey(self, username: str, key: Any) -> int:
        try:
            return self._grant(
                auth.publickey_check(
                    username=username,
                    fingerprint=str(key.fingerprint),
                    public_key=f"{key.get_name()} {key.get_base64()}",
                    remote_address=self.session.remote_address,
                )
            )
        except Exception:
            logger.exception("SFTP public key check failed for %r", username)
            return AUTH_FAILED
        finally:
            connections.close_all()

    def _refuse(self, what: str) -> None:
        logger.info("SFTP session %r: refused %s", self.session, what)
        try:
            self.session.record(ActivityEvent.REFUSED, detail=f"Refused {what}.")
        finally:
            connections.close_all()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session":
            self._refuse(f"a {kind!r} channel")
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if self.session.count("channels", 1) > MAX_CHANNELS_PER_CONNECTION:
            self._refuse("a channel beyond the limit of this connection")
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        return OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel: Any, name: str) -> bool:
        if name != "sftp":
            self._refuse(f"the subsystem {name!r}")
            return False
        if self.session.count("subsystems", 1) > MAX_SUBSYSTEMS_PER_CONNECTION:
            self.session.count("subsystems", -1)
            self._refuse("an SFTP session beyond the limit of this connection")
            return False
        started = bool(super().check_channel_subsystem_request(channel, name))
        if not started:
            self.session.count("subsystems", -1)
        return started

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
        self._refuse(f"the command {text[:200]!r} (only SFTP is offered)")
        return False

    def check_channel_shell_request(self, channel: Any) -> bool:
        self._refuse("a shell (only SFTP is offered)")
        return False

    def check_channel_pty_request(self, *args: Any) -> bool:
        return False

    def check_channel_x11_request(self, *args: Any) -> bool:
        self._refuse("X11 forwarding")
        return False

    def check_channel_forward_agent_request(self, channel: Any) -> bool:
        self._refuse("agent forwarding")
        return False

    def check_port_forward_request(self, address: str, port: int) -> bool:
        self._refuse(f"port forwarding from {address}:{port}")
        return False

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
        self._refuse(f"port forwarding to {destination[0]}:{destination[1]}")
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_global_request(self, kind: str, msg: Any) -> bool:
        return False


class SftpGateway:
    """The listening gateway. ``start()`` binds and serves in background threads; ``stop()``
    stops accepting, lets running uploads finish (bounded), then closes what is left."""

    def __init__(self, *, host: str, port: int, host_key: Any = None) -> None:
        self.host = host
        self.port = port
        self.host_key = host_key
        self.registry = SessionRegistry()
        self.stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start() first"
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        if self.host_key is None:
            self.host_key = host_key_load_or_create(host_key_path())
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, self.port), family=family, backlog=128)
        self._listener.settimeout(0.25)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="sftp-accept", daemon=True
        )
        self._accept_thread.start()
        return self.address

    # --- accepting ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                # Out of file descriptors, usually: back off instead of spinning.
                logger.exception("SFTP accept failed")
                time.sleep(0.1)
                continue
            session = Session(self, sock, address)
            if not self.registry.admit(session, int(settings.SFTP_MAX_SESSIONS)):
                logger.warning("SFTP connection from %s refused: too many sessions", address[0])
                sock.close()
                continue
            session.thread = threading.Thread(
                target=self._serve, args=(session,), name=f"sftp-{session.id}", daemon=True
            )
            session.thread.start()

    def _transport(self, sock: socket.socket) -> Any:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        transport = Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        transport.local_version = SERVER_VERSION
        options = transport.get_security_options()
        options.ciphers = CIPHERS
        options.digests = MACS
        options.kex = KEX
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", GatewaySFTPServer)
        return transport

    # --- one connection ----------------------------------------------------------------------

    def _serve(self, session: Session) -> None:
        try:
            self._run_session(session)
        except Exception:
            logger.exception("SFTP session %r failed", session)
        finally:
            session.admitted.set()
            self.registry.remove(session)
            session.close("connection finished")
            session.wait_for_subsystems(timeout=10)
            connections.close_all()

    def _run_session(self, session: Session) -> None:
        transport = session.transport = self._transport(session.sock)
        try:
            transport.start_server(server=GatewayServerInterface(session))
        except (SSHException, EOFError, OSError) as exc:
            logger.info("SSH negotiation with %s failed: %s", session.remote_address, exc)
            return
        if not self._wait_for_login(session):
            return
        grant = session.grant
        assert grant is not None
        limit = int(settings.SFTP_MAX_SESSIONS_PER_USER)
        if not self.registry.login(session, grant.credential.username, limit):
            session.record(ActivityEvent.REFUSED, detail=f"Too many sessions (at most {limit}).")
            return
        logger.info(
            "SFTP login: %s from %s (%s)", session.username, session.remote_address, grant.detail
        )
        services.login_record(
            credential=grant.credential, remote_address=session.remote_address, detail=grant.detail
        )
        session.logged_in = True
        session.admitted.set()
        self._watch(session)

    def _wait_for_login(self, session: Session) -> bool:
        """Wait until the client has logged in and opened a channel, within the login grace."""
        deadline = time.monotonic() + _setting("SFTP_LOGIN_GRACE_SECONDS")
        transport = session.transport
        while transport.is_active() and not self.stopping.is_set():
            channel = transport.accept(timeout=0.2)
            if channel is not None:
                # paramiko closes a channel nobody references (Channel.__del__), and until the
                # client asks for the subsystem this is the only reference.
                session.accepted.append(channel)
                return transport.is_authenticated() and session.grant is not None
            if time.monotonic() >= deadline:
                logger.info(
                    "SFTP connection from %s did not log in in time", session.remote_address
                )
                return False
        return False

    def _watch(self, session: Session) -> None:
        grant = session.grant
        assert grant is not None
        recheck = _setting("SFTP_SESSION_RECHECK_SECONDS")
        idle_timeout = _setting("SFTP_IDLE_TIMEOUT_SECONDS")
        tick = max(0.05, min(0.5, recheck, idle_timeout / 2))
        next_check = time.monotonic() + recheck
        transport = session.transport
        while transport.is_active() and not session.closed.is_set():
            session.wake.wait(tick)
            session.wake.clear()
            now = time.monotonic()
            if self.stopping.is_set() and session.open_uploads <= 0:
                self._drop(session, "The gateway is shutting down.")
                return
            if now - session.last_activity > idle_timeout:
                self._drop(session, f"Idle for more than {idle_timeout:g} seconds.")
                return
            if now >= next_check:
                next_check = now + recheck
                valid = selectors.session_is_valid(
                    credential_id=grant.credential.pk,
                    secret_version=grant.credential.secret_version,
                    key_id=grant.key_id,
                )
                if not valid:
                    self._drop(session, "The credentials were revoked, rotated or removed.")
                    return

    def _drop(self, session: Session, reason: str) -> None:
        session.record(ActivityEvent.DISCONNECTED, detail=reason)
        session.close(reason)

    # --- stopping ----------------------------------------------------------------------------

    def stop(self, *, grace: float | None = None) -> None:
        """Stop accepting; let uploads in progress finish for up to ``grace`` seconds; close."""
        if grace is None:
            grace = _setting("SFTP_SHUTDOWN_GRACE_SECONDS")
        self.stopping.set()
        if self._listener is not None:
            # shutdown() wakes the accept() that is waiting on the socket; close() alone may not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for session in self.registry.sessions():
            session.wake.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        deadline = time.monotonic() + grace
        for session in self.registry.sessions():
            if session.thread is not None:
                session.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for session in self.registry.sessions():
            session.close("shutdown grace expired")
        for session in self.registry.sessions():
            if session.thread is not None:
                session.thread.join(timeout=5)
