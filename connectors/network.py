"""Connectors reach their systems only through the egress policy (config.egress); these turn the
policy's answers into the connector's one error type."""

from __future__ import annotations

import socket

from config.egress import EgressRefused, IPAddress, egress_connect, egress_resolve, name_unknown
from connectors.registry import ConnectorError


def _unresolved(host: str, error: OSError) -> ConnectorError:
    return ConnectorError(
        f"Could not resolve host {host!r}: {error}.", retryable=not name_unknown(error)
    )


def checked_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` the policy lets a connector use (connect to these, not the
    name); a refusal is a ``ConnectorError`` no retry can fix."""
    try:
        return egress_resolve(host, port)
    except EgressRefused as error:
        raise ConnectorError(error.message, retryable=False) from None
    except OSError as error:
        raise _unresolved(host, error) from None


def checked_connection(host: str, port: int, *, timeout: float) -> socket.socket:
    """A TCP connection to a checked address of ``host``; failures are ``ConnectorError``s."""
    try:
        return egress_connect(host, port, timeout=timeout)
    except EgressRefused as error:
        raise ConnectorError(error.message, retryable=False) from None
    except socket.gaierror as error:
        raise _unresolved(host, error) from None
