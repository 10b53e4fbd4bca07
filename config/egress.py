"""The egress policy: where a tenant's configuration may make Railyard connect.

Every outbound connection a tenant directs (a connector's database, API or SFTP server, and the
destinations of exports and webhooks) goes through this module: the host is resolved once, every
address it resolves to is checked, and the connection is made to a checked address, never to the
name again (a second lookup could answer differently: DNS rebinding). HTTP redirects are requests
like any other and are checked the same way.

The decision for one address, in order:

1. The operator's rules, ``EGRESS_ALLOW`` and ``EGRESS_DENY`` (comma-separated CIDRs, addresses or
   host names, ``*.`` wildcards for names, each optionally with ``:port``). The most specific
   matching rule wins: a host name beats any CIDR, a longer prefix beats a shorter one, a rule with
   a port beats the same rule without; on a tie, deny wins.
2. Railyard's own backing services (the database, Redis, the broker) are refused unless an allow
   rule names their port explicitly: allowing ``127.0.0.0/8`` for local development must not hand
   tenants the platform's own database.
3. Without a matching rule: loopback, link-local (cloud metadata), unspecified, multicast,
   documentation and other reserved ranges, and known metadata addresses are refused; everything
   else, private ranges included (a self-hosted platform's sources live there), is allowed.

The default does not depend on ``DEBUG``; ``make run`` and the test settings allow loopback
through ``EGRESS_ALLOW`` themselves.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused unless an operator rule allows them. (Private ranges are deliberately absent.)
REFUSED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("100.100.100.200/32", "cloud metadata"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("ff00::/8", "multicast"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("100::/64", "reserved (discard)"),
)
_REFUSED = tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in REFUSED_RANGES)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# A host name rule is more specific than any network.
_NAME_SPECIFICITY = 1000


class EgressRefused(Exception):
    """The egress policy refuses this destination. The message names the policy and the reason;
    it is safe to show the tenant (it names only their own host)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Rule:
    """One entry of ``EGRESS_ALLOW`` or ``EGRESS_DENY``."""

    text: str
    allow: bool
    network: IPNetwork | None = None
    host_pattern: str | None = None
    port: int | None = None

    def matches(self, *, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host_pattern is not None:
            return fnmatchcase(host.lower().rstrip("."), self.host_pattern)
        assert self.network is not None
        return address.version == self.network.version and address in self.network

    @property
    def specificity(self) -> float:
        base = _NAME_SPECIFICITY if self.network is None else self.network.prefixlen
        return base + (0.5 if self.port is not None else 0)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or ``v4cidr:port`` -> (target, port); bare IPv6 has no port."""
    if entry.startswith("["):
        target, _, rest = entry[1:].partition("]")
        return target, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        target, _, port = entry.partition(":")
        return target, int(port)
    return entry, None


def parse_rules(value: str, *, allow: bool) -> list[Rule]:
    """Parse a comma-separated rule list; an unparseable entry is a configuration error."""
    rules = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            target, port = _split_port(entry)
            if port is not None and not 0 < port < 65536:
                raise ValueError(port)
        except ValueError:
            raise ValueError(f"Egress rule {entry!r} has an invalid port.") from None
        try:
            network = ipaddress.ip_network(target, strict=False)
        except ValueError:
            if not target or any(char in target for char in "/ "):
                message = f"Egress rule {entry!r} is neither a CIDR nor a host name."
                raise ValueError(message) from None
            rules.append(Rule(entry, allow, host_pattern=target.lower().rstrip("."), port=port))
        else:
            rules.append(Rule(entry, allow, network=network, port=port))
    return rules


@lru_cache(maxsize=8)
def _rules(allow: str, deny: str) -> tuple[Rule, ...]:
    return (*parse_rules(allow, allow=True), *parse_rules(deny, allow=False))


def _normalized(address: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 reaches 127.0.0.1: judge it as the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _url_endpoint(url: str, default_port: int) -> tuple[str, int] | None:
    if not url or url.startswith(("unix:", "redis+socket:")):
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        return parts.hostname, parts.port or default_port
    except ValueError:
        return None


def own_service_endpoints() -> list[tuple[str, int, str]]:
    """(host, port, what) of the platform's own backing services reachable over TCP."""
    endpoints: list[tuple[str, int, str]] = []
    database = settings.DATABASES["default"]
    if database.get("HOST") and not str(database["HOST"]).startswith("/"):
        endpoints.append((str(database["HOST"]), int(database.get("PORT") or 5432), "database"))
    for url, what in ((settings.REDIS_URL, "Redis"), (settings.CELERY_BROKER_URL, "broker")):
        endpoint = _url_endpoint(str(url or ""), 6379 if "redis" in str(url) else 5672)
        if endpoint:
            endpoints.append((*endpoint, what))
    return endpoints


@lru_cache(maxsize=8)
def _own_addresses(
    endpoints: tuple[tuple[str, int, str], ...],
) -> tuple[tuple[IPNetwork, int, str], ...]:
    """The networks and ports that are the platform's own services. A service on a loopback
    address is reachable through every loopback address (and ::1), so all of them count."""
    owned: list[tuple[IPNetwork, int, str]] = []
    for host, port, what in endpoints:
        try:
            addresses = {_normalized(address) for address in _resolve(host, port)}
        except OSError:
            continue
        for address in addresses:
            if address.is_loopback or address.is_unspecified:
                owned.extend((network, port, what) for network in _LOOPBACK)
            else:
                owned.append((ipaddress.ip_network(address), port, what))
    return tuple(owned)


def decide(*, host: str, address: IPAddress, port: int) -> Decision:
    """The policy's decision for connecting to ``address``:``port``, reached as ``host``.

    Pure apart from settings (and resolving the platform's own service names once): tests of
    ranges other than loopback call this, never a connection.
    """
    address = _normalized(address)
    matching = [
        rule
        for rule in _rules(settings.EGRESS_ALLOW, settings.EGRESS_DENY)
        if rule.matches(host=host, address=address, port=port)
    ]
    chosen = max(matching, key=lambda rule: (rule.specificity, not rule.allow), default=None)
    if chosen is not None and not chosen.allow:
        return Decision(False, f"{address} is denied by EGRESS_DENY ({chosen.text})")
    if chosen is None or chosen.port is None:
        for network, own_port, what in _own_addresses(tuple(own_service_endpoints())):
            if port == own_port and address.version == network.version and address in network:
                return Decision(False, f"{address}:{port} is Railyard's own {what}")
    if chosen is not None:
        return Decision(True, f"allowed by EGRESS_ALLOW ({chosen.text})")
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return Decision(False, f"{address} is a {reason} address")
    return Decision(True, "allowed by default")


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as error:
        # A name IDNA cannot encode (an empty or over-long label) does not resolve either.
        message = f"{host!r} is not a valid host name: {error}"
        raise socket.gaierror(socket.EAI_NONAME, message) from None

    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%")[0]), None)
    return list(seen)


def egress_resolve(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` and check every address it has; the checked addresses to connect to.

    Raises ``EgressRefused`` when the host is not a plain network name or any of its addresses is
    refused (a name that also points somewhere forbidden is not trusted for its other addresses),
    and ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    name = host.strip().strip("[]")
    if not name or name.startswith(("/", "@")) or any(char in name for char in ",% \t\n"):
        raise EgressRefused(
            f"Connections to {host!r} are refused by the egress policy: "
            "only network host names and addresses are allowed."
        )
    addresses = _resolve(name, port)
    for address in addresses:
        decision = decide(host=name, address=address, port=port)
        if not decision.allowed:
            raise EgressRefused(
                f"Connections to {host}:{port} are refused by the egress policy: {decision.reason}."
            )
    return addresses


def egress_connect(host: str, port: int, *, timeout: float) -> socket.socket:
    """A TCP connection to ``host``:``port`` through the egress policy (for SSH and the like)."""
    last_error: OSError | None = None
    for address in egress_resolve(host, port):
        try:
            return socket.create_connection((str(address), port), timeout=timeout)
        except OSError as error:
            last_error = error
    raise last_error or OSError(f"{host} has no address")


class EgressTransport(httpx.HTTPTransport):
    """An httpx transport that sends every request (redirects included) only to an address the
    egress policy allows: the URL's host is replaced by the checked address, while the Host
    header and TLS (SNI and certificate checks) keep the name."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            addresses = egress_resolve(host, port)
        except OSError as error:
            raise httpx.ConnectError(
                f"{host} does not resolve: {error}", request=request
            ) from error
        last_error: httpx.TransportError | None = None
        for address in addresses:
            request.url = request.url.copy_with(host=str(address))
            request.extensions = {**request.extensions, "sni_hostname": host}
            try:
                return super().handle_request(request)
            except httpx.ConnectError as error:
                last_error = error
            finally:
                request.url = request.url.copy_with(host=host)
        assert last_error is not None
        raise last_error


def egress_http_client(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request passes the egress policy."""
    transport_options = {key: options.pop(key) for key in ("retries", "verify") if key in options}
    return httpx.Client(transport=EgressTransport(**transport_options), **options)


_E = TypeVar("_E", bound=BaseException)


def error_behind(error: BaseException, kind: type[_E]) -> _E | None:
    """The exception of ``kind`` behind ``error`` (httpx wraps transport errors), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def egress_error(error: BaseException) -> EgressRefused | None:
    """The ``EgressRefused`` behind an exception, if any."""
    return error_behind(error, EgressRefused)


def name_unknown(error: BaseException) -> bool:
    """Whether ``error`` comes from a host name that does not resolve, which waiting will not
    fix, rather than from a resolver that could not answer now (``EAI_AGAIN``)."""
    lookup = error_behind(error, socket.gaierror)
    return lookup is not None and lookup.errno != socket.EAI_AGAIN
