"""The egress policy's decisions. Ranges other than loopback are tested on the decision function
with given addresses, never by connecting; connections in these tests go to loopback only."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config import egress
from config.egress import EgressRefused, decide, egress_http_client, egress_resolve, parse_rules


def allowed(address: str, port: int = 443, host: str = "example.test") -> bool:
    return decide(host=host, address=ipaddress.ip_address(address), port=port).allowed


@pytest.fixture
def production_default(settings):
    """The policy as a production installation has it with nothing configured."""
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    settings.REDIS_URL = "redis://10.20.30.40:6379/0"
    settings.CELERY_BROKER_URL = "redis://10.20.30.40:6379/0"
    return settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("100.100.100.200", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to judge, not to bind)
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved (documentation)"),
        ("2001:db8::1", "reserved (documentation)"),
    ],
)
def test_the_default_refuses_internal_and_reserved_ranges(production_default, address, reason):
    decision = decide(host="example.test", address=ipaddress.ip_address(address), port=443)

    assert not decision.allowed
    assert decision.reason.endswith(f"is a {reason} address")


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "172.16.5.4", "192.168.1.20", "fd12:3456::1", "8.8.8.8", "2606:4700::1"]
)
def test_the_default_allows_private_and_public_addresses(production_default, address):
    # A self-hosted platform's sources live on the operator's private network.
    assert allowed(address)


def test_the_platforms_own_services_are_refused_even_on_a_private_address(production_default):
    assert not allowed("10.20.30.40", port=6379)
    assert decide(host="cache", address=ipaddress.ip_address("10.20.30.40"), port=6379).reason == (
        "10.20.30.40:6379 is Railyard's own Redis"
    )
    # The same host on another port is just a private address.
    assert allowed("10.20.30.40", port=8080)


def test_allowing_loopback_does_not_allow_the_platforms_own_loopback_services(settings):
    # Given development settings that let connections reach loopback, and a local Redis
    settings.EGRESS_ALLOW = "127.0.0.0/8,::1"
    settings.EGRESS_DENY = ""
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"

    # Then any loopback address on Redis's port is still refused; other ports are allowed
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert not allowed(address, port=6379), address
    assert allowed("127.0.0.1", port=8080)


def test_an_allow_rule_naming_the_port_opens_an_own_service(settings):
    settings.EGRESS_ALLOW = "127.0.0.0/8,127.0.0.1:6379"
    settings.EGRESS_DENY = ""
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"

    assert allowed("127.0.0.1", port=6379)
    assert not allowed("127.0.0.2", port=6379)


def test_the_most_specific_rule_wins_and_deny_wins_a_tie(production_default):
    production_default.EGRESS_DENY = "10.0.0.0/8,192.168.1.0/24"
    production_default.EGRESS_ALLOW = "10.1.0.0/16,192.168.1.0/24"

    assert not allowed("10.2.0.1")  # only the /8 deny matches
    assert allowed("10.1.0.1")  # the /16 allow is more specific
    assert not allowed("192.168.1.5")  # equal prefixes: deny


def test_host_name_rules_beat_address_rules(production_default):
    production_default.EGRESS_DENY = "*.internal.example"
    production_default.EGRESS_ALLOW = "metadata.cloud.example"

    assert not allowed("10.0.0.8", host="billing.internal.example")
    assert allowed("10.0.0.8", host="billing.example")
    # An operator may name a host that resolves to a refused range.
    assert allowed("169.254.169.254", host="metadata.cloud.example")


def test_rules_can_be_limited_to_a_port(production_default):
    production_default.EGRESS_DENY = "10.0.0.0/8:22"

    assert not allowed("10.0.0.8", port=22)
    assert allowed("10.0.0.8", port=2222)


@pytest.mark.parametrize("rule", ["10.0.0.0/33", "db.example:99999", "not a host", "/tmp/x"])
def test_an_invalid_rule_is_a_configuration_error(rule):
    with pytest.raises(ValueError, match="Egress rule"):
        parse_rules(rule, allow=True)


@pytest.mark.parametrize("host", ["/var/run/postgresql", "@abstract", "db1,db2", "db%eth0"])
def test_socket_paths_and_host_lists_are_refused(host):
    with pytest.raises(EgressRefused, match="only network host names and addresses"):
        egress_resolve(host, 5432)


def test_a_name_with_one_refused_address_is_refused_for_all_of_them(settings, monkeypatch):
    # Given a name that resolves to an allowed and a refused address
    settings.EGRESS_ALLOW = "127.0.0.1"
    settings.EGRESS_DENY = "0.0.0.0/0"

    def two_answers(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.9", port)),
        ]

    monkeypatch.setattr(egress.socket, "getaddrinfo", two_answers)

    with pytest.raises(EgressRefused) as refused:
        egress_resolve("mixed.example", 80)

    assert refused.value.message == (
        "Connections to mixed.example:80 are refused by the egress policy: "
        "127.0.0.9 is denied by EGRESS_DENY (0.0.0.0/0)."
    )


# --- HTTP through the policy (loopback listeners only) ---------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """An HTTP server on 127.0.0.1 recording each request's Host header; /redirect sends the
    client to the Location in the query string."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "host": self.headers.get("Host", "")})
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.split("=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_port, seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_request_goes_to_the_checked_address_not_a_second_lookup(
    settings, monkeypatch, listener
):
    # Given a name whose first answer is allowed and whose later answers would not be (DNS
    # rebinding): only 127.0.0.1 is allowed, and the listener is only there
    port, seen = listener
    settings.EGRESS_ALLOW = "127.0.0.1"
    settings.EGRESS_DENY = "0.0.0.0/0,::/0"
    answers = iter(["127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = next(answers, "127.0.0.77")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    # When a client of the policy fetches a URL by that name
    with egress_http_client(timeout=5) as client:
        answer = client.get(f"http://rebind.example:{port}/data")

    # Then it reached the checked address, and the server saw the name in Host
    assert answer.status_code == 200
    assert seen == [{"path": "/data", "host": f"rebind.example:{port}"}]


def test_a_redirect_is_checked_like_any_request(settings, listener):
    port, seen = listener
    settings.EGRESS_ALLOW = "127.0.0.1"
    settings.EGRESS_DENY = "0.0.0.0/0,::/0"

    with (
        egress_http_client(timeout=5, follow_redirects=True) as client,
        pytest.raises(EgressRefused) as refused,
    ):
        client.get(f"http://127.0.0.1:{port}/redirect?to=http://127.0.0.2:{port}/secret")

    assert "127.0.0.2 is denied by EGRESS_DENY" in refused.value.message
    assert [request["path"] for request in seen] == [f"/redirect?to=http://127.0.0.2:{port}/secret"]


def test_a_refused_destination_is_never_contacted(production_default, listener):
    port, seen = listener

    with egress_http_client(timeout=5) as client, pytest.raises(EgressRefused):
        client.get(f"http://127.0.0.1:{port}/")

    assert seen == []


def test_a_redirect_to_an_allowed_address_is_followed(settings, listener):
    port, seen = listener
    settings.EGRESS_ALLOW = "127.0.0.1"
    settings.EGRESS_DENY = "0.0.0.0/0,::/0"

    with egress_http_client(timeout=5, follow_redirects=True) as client:
        answer = client.get(f"http://127.0.0.1:{port}/redirect?to=/final")

    assert answer.status_code == 200
    assert [request["path"] for request in seen][-1] == "/final"
