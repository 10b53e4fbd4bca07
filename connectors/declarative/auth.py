"""How a manifest connector authenticates its requests: an API key in a header or the query,
a bearer token, HTTP Basic, or OAuth 2.0 (client credentials, or a refresh token).

OAuth 2.0 access tokens live only in the connector instance (one run, or one connection test):
one is obtained before the first request, obtained again shortly before it expires
(``expiryMarginSeconds``) and whenever the API answers 401. A token endpoint that answers a
refresh with a new refresh token has rotated it, and usually invalidated the old one: the new
one is stored at once in the connection's encrypted credentials
(``connectors.services.connection_credentials_rotate``), before any other request, so that no
later run is left holding a dead token.
"""

from __future__ import annotations

import base64
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from connectors import http
from connectors.declarative import templates
from connectors.registry import ConnectorError
from connectors.services import connection_credentials_rotate

logger = logging.getLogger(__name__)

# Module attribute so tests can move it: when access tokens are due for a refresh.
clock = time.monotonic

DEFAULT_EXPIRES_IN_SECONDS = 3600


@dataclass
class Authenticator:
    """Headers and query parameters that authenticate one request."""

    connector_id: str
    spec: dict[str, Any]
    # The connection's config and resolved credentials, as templates see them.
    context: dict[str, Any]
    timeout: float = http.DEFAULT_TIMEOUT_SECONDS
    _access_token: str | None = field(default=None, init=False)
    _expires_at: float = field(default=0.0, init=False)

    @property
    def kind(self) -> str:
        return str(self.spec.get("type", "none"))

    @property
    def can_refresh(self) -> bool:
        return self.kind == "oauth2"

    def headers(self) -> dict[str, str]:
        kind = self.kind
        if kind == "apiKey" and self.spec["in"] == "header":
            return {self.spec["name"]: self._value("value")}
        if kind == "bearer":
            return {"Authorization": f"Bearer {self._value('token')}"}
        if kind == "basic":
            password = templates.render_text(self.spec.get("password", ""), self.context)
            pair = f"{self._value('username')}:{password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
        if kind == "oauth2":
            return {"Authorization": f"Bearer {self.access_token()}"}
        return {}

    def params(self) -> dict[str, str]:
        if self.kind == "apiKey" and self.spec["in"] == "query":
            return {self.spec["name"]: self._value("value")}
        return {}

    def invalidate(self) -> None:
        """Forget the access token (the API refused it): the next request obtains another."""
        self._access_token = None

    def access_token(self) -> str:
        margin = float(self.spec.get("expiryMarginSeconds", 60))
        if self._access_token is None or clock() >= self._expires_at - margin:
            self._obtain()
        assert self._access_token is not None
        return self._access_token

    def _value(self, key: str) -> str:
        value = templates.render_text(self.spec[key], self.context)
        if not value:
            raise ConnectorError(
                f"authentication.{key} of {self.connector_id} is empty: "
                f"{self.spec[key]} is not set in the connection.",
                retryable=False,
            )
        return value

    def _obtain(self) -> None:
        grant = self.spec["grantType"]
        form: dict[str, str] = {"grant_type": grant}
        refresh_key = self.spec.get("refreshTokenCredential")
        credentials = self.context["credentials"]
        refresh_token = ""
        if grant == "refresh_token":
            assert refresh_key is not None  # the manifest schema requires it
            refresh_token = str(credentials.get(refresh_key) or "")
            if not refresh_token:
                raise ConnectorError(
                    f"The connection has no credentials.{refresh_key} to obtain an access token "
                    "with.",
                    retryable=False,
                )
            form["refresh_token"] = refresh_token
        if self.spec.get("scopes"):
            form["scope"] = " ".join(self.spec["scopes"])
        extra = templates.render(self.spec.get("tokenParams") or {}, self.context)
        form.update({key: str(value) for key, value in extra.items()})
        client_id, client_secret = self._value("clientId"), self._value("clientSecret")
        headers = {}
        if self.spec.get("clientAuthentication", "basic") == "basic":
            # RFC 6749 2.3.1: both form-encoded before they are joined.
            pair = f"{_form_encoded(client_id)}:{_form_encoded(client_secret)}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        else:
            form.update({"client_id": client_id, "client_secret": client_secret})
        token_url = self._value("tokenUrl")
        started = clock()
        try:
            answer = http.request(
                "POST",
                token_url,
                form=form,
                headers=headers,
                timeout=self.timeout,
                follow_redirects=False,
            )
        except http.HttpStatusError as error:
            if error.retryable:
                raise
            raise ConnectorError(
                f"The token endpoint refused to issue an access token ({error.message}); "
                "authorize the connection again.",
                retryable=False,
            ) from error
        body = answer.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(
                "The token endpoint answered without an access_token.", retryable=False
            )
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else DEFAULT_EXPIRES_IN_SECONDS
        except (TypeError, ValueError):
            lifetime = DEFAULT_EXPIRES_IN_SECONDS
        self._access_token = token
        self._expires_at = started + lifetime
        rotated = body.get("refresh_token")
        if grant == "refresh_token" and isinstance(rotated, str) and rotated != refresh_token:
            assert refresh_key is not None
            self._store_rotated(refresh_key, previous=refresh_token, current=rotated)

    def _store_rotated(self, key: str, *, previous: str, current: str) -> None:
        self.context["credentials"][key] = current
        stored = connection_credentials_rotate(
            connector_id=self.connector_id, key=key, previous=previous, current=current
        )
        if not stored:
            logger.warning(
                "%s rotated the refresh token of a connection, but no %s connection stores the "
                "previous one (credentials.%s given as a ${NAME} reference?): the new one is used "
                "for this run only.",
                self.connector_id,
                self.connector_id,
                key,
            )


def _form_encoded(value: str) -> str:
    return urllib.parse.quote_plus(value)
