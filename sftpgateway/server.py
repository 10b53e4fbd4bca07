"""The SFTP gateway: a paramiko SSH server that offers the ``sftp`` subsystem and nothing else.

One supervising thread per connection (paramiko adds its transport thread and, once the client
asks for SFTP, a subsystem thread). The supervisor waits for the login, enforces the session caps,
then watches the session: idle timeout, credentials revoked or rotated (re-checked every
couple of seconds with one indexed query), and a gateway shutdown, which lets running uploads
finish before it closes the connection.

Before any of that, a connection must get past the defence of its source address, decided in
the accept thread from memory (``defender.AddressGuard``): a banned address, one opening
connections faster than its rate, or one with ``SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS``
connections still logging in is turned away at once, so one address can neither exhaust
``SFTP_MAX_SESSIONS`` nor make the gateway pay for key exchanges. Every connection must log in
within ``SFTP_LOGIN_GRACE_SECONDS`` of being accepted.
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
from dataclasses import dataclass
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
from sftpgateway.auth import LoginAttempt, LoginGrant
from sftpgateway.choices import ActivityEvent, DefenderEventKind
from sftpgateway.defender import AddressGuard, ban_lookup, turn_away
from sftpgateway.models import SftpCredential
from sftpgateway.sftp import GatewaySFTPServer
from sftpgateway.text import escape_log_records, printable

logger = logging.getLogger(__name__)
# Client-chosen names (users, files, commands) reach these loggers; none may start a line.
escape_log_records(
    "sftpgateway.server",
    "sftpgateway.sftp",
    "sftpgateway.auth",
    "sftpgateway.defender",
    "sftpgateway.services",
    "paramiko.transport",
    "paramiko.transport.sftp",
)

# PERFORMANCE.md: 44 MB/s with paramiko's default 2 MiB window, 109 MB/s with 128 MiB. The
# packet size matches OpenSSH's limit, so a 255 KiB SFTP write can travel in one SSH packet.
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**18 - 2**12
SERVER_VERSION = "SSH-2.0-RailyardSFTP"
# Channels a connection may open over its life, and SFTP sessions it may run at once.
MAX_CHANNELS_PER_CONNECTION = 64
MAX_SUBSYSTEMS_PER_CONNECTION = 4
# Password attempts on one connection (OpenSSH's MaxAuthTries); each one is scored anyway.
MAX_PASSWORD_ATTEMPTS_PER_CONNECTION = 6

# What paramiko would offer and the gateway does not, through its public ``disabled_algorithms``.
# What is left (paramiko 5.1): key exchange mlkem768x25519-sha256 (post-quantum hybrid, first)
# then curve25519-sha256@libssh.org; aes128/192/256-ctr and aes128/256-gcm@openssh.com;
# hmac-sha2-256/512-etm@openssh.com; host key ssh-ed25519. A paramiko that adds an algorithm
# offers it until it is listed here, so tests pin the exact lists (and run ssh-audit).
# chacha20-poly1305@openssh.com is not in paramiko 5.1; it would be offered once it is.
DISABLED_ALGORITHMS: dict[str, list[str]] = {
    "kex": [
        # NIST curves: ssh-audit fails them (constants of unexplained origin).
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        # Finite-field Diffie-Hellman: group14 is 2048 bits (112-bit strength); all of them are
        # classic only and cost the server a modular exponentiation per connection (DHEat).
        # Every client that reaches us has curve25519 (OpenSSH 6.5+, PuTTY 0.68+, libssh2 1.9+).
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group1-sha1",
        "diffie-hellman-group-exchange-sha1",
    ],
    "ciphers": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
    "macs": [
        # Encrypt-and-MAC (SFTP_LEGACY_MACS offers the SHA-2 pair again), SHA-1 and MD5.
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha1",
        "hmac-sha1-96",
        "hmac-md5",
        "hmac-md5-96",
    ],
}
# Encrypt-and-MAC, yet the only MACs libssh2 before 1.11 knows (curl and PHP's ssh2 on Debian 12
# and Ubuntu 22.04), which has no AES-GCM either.
LEGACY_MACS = ("hmac-sha2-256", "hmac-sha2-512")


def disabled_algorithms() -> dict[str, list[str]]:
    """``DISABLED_ALGORITHMS``, less the legacy MACs when ``SFTP_LEGACY_MACS`` allows them."""
    disabled = {kind: list(names) for kind, names in DISABLED_ALGORITHMS.items()}
    if settings.SFTP_LEGACY_MACS:
        disabled["macs"] = [name for name in disabled["macs"] if name not in LEGACY_MACS]
    return disabled


def source_address(address: Any) -> str:
    """The client's IP address as text; an IPv4 client of a dual-stack socket as plain IPv4."""
    host = str(address[0]) if address else ""
    return host.removeprefix("::ffff:") if host.startswith("::ffff:") and "." in host else host


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


@dataclass(frozen=True)
class Refusal:
    """Why a connection is turned away, and whether its source address is to blame."""

    reason: str
    by_address: bool


class SessionRegistry:
    """The live connections, for the caps (in total, per address still logging in, per
    username) and for shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._by_username: dict[str, set[Session]] = {}
        self._logging_in: dict[str, set[Session]] = {}

    def admit(self, session: Session, *, total: int, per_address: int | None) -> Refusal | None:
        """Register a new connection, or say why not."""
        address = session.remote_address
        with self._lock:
            if len(self._sessions) >= total:
                return Refusal(f"too many connections (at most {total})", by_address=False)
            pending = self._logging_in.get(address, set())
            if per_address is not None and len(pending) >= per_address:
                return Refusal(
                    f"{per_address} connections from {address} are logging in already",
                    by_address=True,
                )
            self._sessions.add(session)
            self._logging_in.setdefault(address, set()).add(session)
            return None

    def _logged_in(self, session: Session) -> None:
        pending = self._logging_in.get(session.remote_address)
        if pending is not None:
            pending.discard(session)
            if not pending:
                del self._logging_in[session.remote_address]

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
            self._logged_in(session)
            return True

    def remove(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
            self._logged_in(session)
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
        self.remote_address = source_address(address)
        self.accepted_at = time.monotonic()
        self.transport: Any = None
        self.grant: LoginGrant | None = None
        self.logged_in = False
        # What the defender needs to know when the connection ends: whether it authenticated,
        # whether a failure was scored already, whether it was turned away for a ban.
        self.authenticated = False
        self.password_attempts = 0
        self.scored = False
        self.banned = False
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

    def login_deadline(self) -> float:
        return self.accepted_at + _setting("SFTP_LOGIN_GRACE_SECONDS")

    @property
    def may_still_log_in(self) -> bool:
        return not self.banned and self.password_attempts <= MAX_PASSWORD_ATTEMPTS_PER_CONNECTION

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

    def score(self, kind: str) -> None:
        """Count an event against the source address; a ban ends this connection too."""
        try:
            verdict = services.defender_event_record(address=self.remote_address, kind=kind)
        except Exception:
            logger.exception("Could not score %s for %r", kind, self)
            return
        if verdict.banned_until is not None:
            self.gateway.guard.remember_ban(self.remote_address, verdict.banned_until)

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

    def _answer(self, attempt: LoginAttempt) -> int:
        session = self.session
        session.scored = session.scored or attempt.scored
        if attempt.banned_until is not None:
            # Banned by this failure or before it: no further attempt on this connection; the
            # supervisor closes it (closing from paramiko's own thread is not safe).
            session.banned = True
            session.gateway.guard.remember_ban(session.remote_address, attempt.banned_until)
            return AUTH_FAILED
        grant = attempt.grant
        if grant is None:
            return AUTH_FAILED
        # Known credentials: whatever follows, this is not a connection that never logs in.
        session.authenticated = True
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
        session = self.session
        session.password_attempts += 1
        if not session.may_still_log_in:
            return AUTH_FAILED
        try:
            return self._answer(
                auth.password_check(
                    username=username,
                    password=password,
                    remote_address=session.remote_address,
                )
            )
        except Exception:
            logger.exception("SFTP password check failed for %r", username)
            return AUTH_FAILED
        finally:
            connections.close_all()

    def check_auth_publickey(self, username: str, key: Any) -> int:
        if self.session.banned:
            return AUTH_FAILED
        try:
            return self._answer(
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
        self._refuse(f"port forwarding from {printable(address)[:200]}:{port}")
        return False

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
        self._refuse(f"port forwarding to {printable(destination[0])[:200]}:{destination[1]}")
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
        self.guard = AddressGuard()
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
        self.guard.start()
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
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        """Serve a new connection in a thread of its own, or turn it away at once.

        Only memory is consulted here (no query, no handshake), so a flood from one address
        costs little and delays nobody else's connections.
        """
        session = Session(self, sock, address)
        remote = session.remote_address
        throttled = not services.address_is_safelisted(remote)
        if throttled and self.guard.banned(remote):
            self.guard.count_refused_banned(remote)
            turn_away(sock)
            return
        if throttled and not self.guard.take_token(remote):
            self.guard.count_over_limits(remote)
            turn_away(sock)
            return
        per_address = int(settings.SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS) if throttled else None
        refusal = self.registry.admit(
            session, total=int(settings.SFTP_MAX_SESSIONS), per_address=per_address
        )
        if refusal is not None:
            if refusal.by_address:
                self.guard.count_over_limits(remote)  # logged and scored in batches
            else:
                # The gateway is full: not this address's doing, so not scored.
                logger.warning("SFTP connection from %s refused: %s", remote, refusal.reason)
            turn_away(sock)
            return
        session.thread = threading.Thread(
            target=self._serve, args=(session,), name=f"sftp-{session.id}", daemon=True
        )
        session.thread.start()

    def _transport(self, sock: socket.socket) -> Any:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        transport = Transport(
            sock,
            default_window_size=WINDOW_SIZE,
            default_max_packet_size=MAX_PACKET_SIZE,
            disabled_algorithms=disabled_algorithms(),
        )
        transport.local_version = SERVER_VERSION
        # paramiko waits 15 s for the client's banner and 15 s more for the key exchange; the
        # whole way to a login gets the login grace, and no more.
        grace = _setting("SFTP_LOGIN_GRACE_SECONDS")
        transport.banner_timeout = min(float(transport.banner_timeout), grace)
        transport.handshake_timeout = min(float(transport.handshake_timeout), grace)
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
            session.close("connection finished")
            session.wait_for_subsystems(timeout=10)
            if self._never_logged_in(session):
                session.score(DefenderEventKind.NO_LOGIN)
            # Last: stop() waits for the sessions in the registry, database writes included.
            self.registry.remove(session)
            connections.close_all()

    def _never_logged_in(self, session: Session) -> bool:
        """A connection that ended without credentials ever matching, and was not scored or
        refused for anything else (a scan, a silent socket, keys nobody registered)."""
        return not (
            session.authenticated or session.scored or session.banned or self.stopping.is_set()
        )

    def _run_session(self, session: Session) -> None:
        banned_until = ban_lookup(session.remote_address)
        if banned_until is not None:
            # Banned by another gateway process, or not yet known here.
            session.banned = True
            self.guard.remember_ban(session.remote_address, banned_until)
            self.guard.count_refused_banned(session.remote_address)
            turn_away(session.sock)
            return
        transport = session.transport = self._transport(session.sock)
        negotiated = threading.Event()
        try:
            transport.start_server(event=negotiated, server=GatewayServerInterface(session))
        except (SSHException, EOFError, OSError) as exc:
            logger.info("SSH negotiation with %s failed: %s", session.remote_address, exc)
            return
        while not negotiated.wait(0.2):
            if time.monotonic() >= session.login_deadline() or self.stopping.is_set():
                logger.info("SSH negotiation with %s took too long", session.remote_address)
                return
        if not transport.is_active():
            logger.info(
                "SSH negotiation with %s failed: %s",
                session.remote_address,
                transport.get_exception() or "connection closed",
            )
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
        """Wait until the client has logged in and opened a channel, within the login grace
        (counted from the connection's arrival: the key exchange took part of it)."""
        deadline = session.login_deadline()
        transport = session.transport
        while transport.is_active() and not self.stopping.is_set() and session.may_still_log_in:
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
        self.guard.stop()
