"""Mixpanel: a destination for events, user profiles and group profiles.

The records it is sent are already in Mixpanel's shape (``syncengine.sync.transform``'s event
tasks: ``track_events``, ``user_properties``, ``group_properties``); this connector sorts them by
kind, batches them within Mixpanel's documented limits and sends them:

- events to the Import API, ``POST /import?strict=1`` (with ``project_id`` for a service
  account), at most 2000 events and 10 MB of uncompressed JSON a request. ``strict=1`` makes
  Mixpanel validate each event and answer 400 naming the ones it refused (it imports the rest);
  each event's ``$insert_id`` makes sending a batch again harmless, since Mixpanel de-duplicates
  on it;
- profile updates to ``POST /engage#profile-batch-update`` and group updates to
  ``POST /groups#group-batch-update``, at most 2000 a request (and 2 MB), each carrying the
  project token as ``$token``; ``verbose=1`` makes Mixpanel say whether it took them (it answers
  200 either way) and ``ip=0`` keeps it from placing profiles at Railyard's address.

Credentials are a service account (``username`` and ``secret``, basic auth; Import API only) or
the project ``token`` (basic auth username for the Import API, and ``$token`` of profile and group
updates), or both. Hosts are the project's data residency region's: ``api.mixpanel.com``,
``api-eu.mixpanel.com`` or ``api-in.mixpanel.com`` (``mixpanel.com``, ``eu.mixpanel.com``,
``in.mixpanel.com`` for the app API ``test()`` asks); ``apiUrl`` replaces both.

Every request goes through ``connectors.http`` (the egress policy; 429 answers retried after their
Retry-After, 429 and 5xx beyond that retryable, other answers not).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

from connectors import http
from connectors.choices import ConnectorCategory, ConnectorStatus
from connectors.registry import Connector, ConnectorError, TestResult, register

REGIONS: dict[str, tuple[str, str]] = {
    # region: (ingestion API, app API)
    "US": ("https://api.mixpanel.com", "https://mixpanel.com"),
    "EU": ("https://api-eu.mixpanel.com", "https://eu.mixpanel.com"),
    "IN": ("https://api-in.mixpanel.com", "https://in.mixpanel.com"),
}
IMPORT_BATCH = (2000, 10 * 1024 * 1024)  # events, bytes of JSON
PROFILE_BATCH = (2000, 2 * 1024 * 1024)  # updates, bytes of JSON
FAILURES_NAMED = 3
TIMEOUT_SECONDS = 60.0


@register
class MixpanelConnector(Connector):
    id = "mixpanel"
    name = "Mixpanel"
    # An analytics destination; the catalog's categories have none closer than API.
    category = ConnectorCategory.API
    status = ConnectorStatus.BETA
    description = (
        "Events (Import API), user profiles and group profiles of a Mixpanel project, from an "
        "integration's track_events, user_properties and group_properties tasks."
    )
    features = ["events", "user_properties", "group_properties"]
    is_destination = True
    config_properties = {
        "projectId": {
            "type": ["string", "integer"],
            "pattern": r"^[0-9]+$",
            "minimum": 1,
            "description": "The project's id (Project Settings > Overview).",
        },
        "region": {
            "type": "string",
            "enum": sorted(REGIONS),
            "default": "US",
            "description": "The project's data residency: US, EU or IN.",
        },
        "apiUrl": {
            "type": "string",
            "pattern": r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
            "description": "Replaces the region's hosts (a proxy, or a test server).",
        },
    }
    config_required = ["projectId"]
    credentials_schema = {
        "type": "object",
        "description": "A service account (username and secret), the project token, or both.",
        "properties": {
            "username": {"type": "string", "minLength": 1},
            "secret": {"type": "string", "minLength": 1},
            "token": {"type": "string", "minLength": 1},
        },
        "dependentRequired": {"username": ["secret"], "secret": ["username"]},
        "anyOf": [{"required": ["username", "secret"]}, {"required": ["token"]}],
        "additionalProperties": False,
    }

    @classmethod
    def validate_credentials(cls, credentials: dict[str, Any]) -> dict[str, list[str]]:
        errors = super().validate_credentials(credentials)
        if isinstance(credentials, dict) and "_" in errors:
            # jsonschema's anyOf message would quote the whole object, secrets included.
            given = set(credentials)
            account = {"username", "secret"}
            messages = []
            if unknown := sorted(given - account - {"token"}):
                messages.append(f"Unknown credentials: {', '.join(unknown)}.")
            if (given & account and not account <= given) or not (
                account <= given or "token" in given
            ):
                messages.append(
                    "Give a service account (username and secret), the project token, or both."
                )
            errors["_"] = messages or errors["_"]
        return errors

    # --- where and how ---------------------------------------------------------------------

    def _hosts(self) -> tuple[str, str]:
        override = str(self.config.get("apiUrl") or "").rstrip("/")
        if override:
            return override, override
        region = str(self.config.get("region") or "US").upper()
        if region not in REGIONS:
            raise ConnectorError(f"Mixpanel has no region {region!r}.", retryable=False)
        return REGIONS[region]

    def _service_account(self) -> tuple[str, str] | None:
        username, secret = self.credentials.get("username"), self.credentials.get("secret")
        return (str(username), str(secret)) if username and secret else None

    def _token(self) -> str | None:
        token = self.credentials.get("token")
        return str(token) if token else None

    def _import_auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and query of an Import API request: the service account with the project id,
        else the project token as the username (without project_id, which would ask Mixpanel
        for a service account)."""
        account = self._service_account()
        if account is not None:
            return _basic(*account), {"project_id": str(self.config.get("projectId"))}
        token = self._token()
        if token is None:
            raise ConnectorError(
                "The Mixpanel connection has neither a service account nor a project token.",
                retryable=False,
            )
        return _basic(token, ""), {}

    # --- the connector -------------------------------------------------------------------------

    def test(self) -> TestResult:
        """A service account is checked with the app API's ``GET /api/app/me``, which also says
        whether it can reach the project. Mixpanel has no request that only checks a project
        token, so a token alone is checked by importing an empty batch with it: a wrong token
        is a 401, and nothing is imported."""
        started = time.monotonic()
        try:
            if self._service_account() is not None:
                return self._test_service_account(started)
            return self._test_token(started)
        except ConnectorError as error:
            return TestResult(success=False, latency_ms=_since(started), error=error.message)

    def _test_service_account(self, started: float) -> TestResult:
        account = self._service_account()
        assert account is not None
        try:
            answer = http.get_json(
                f"{self._hosts()[1]}/api/app/me", headers=_basic(*account), timeout=30.0
            )
        except http.HttpStatusError as error:
            if error.status in (401, 403):
                message = "Mixpanel refused the service account's username or secret."
                return TestResult(success=False, latency_ms=_since(started), error=message)
            raise
        body = answer.json()
        results = body.get("results") if isinstance(body, dict) else None
        projects = results.get("projects") if isinstance(results, dict) else None
        project = str(self.config.get("projectId"))
        if isinstance(projects, dict) and project not in {str(key) for key in projects}:
            return TestResult(
                success=False,
                latency_ms=_since(started),
                error=f"The service account has no access to project {project}.",
            )
        return TestResult(success=True, latency_ms=_since(started), permissions=self._permissions())

    def _test_token(self, started: float) -> TestResult:
        headers, params = self._import_auth()
        try:
            http.request(
                "POST",
                f"{self._hosts()[0]}/import",
                params={"strict": "1", **params},
                headers=headers,
                json_body=[],
                timeout=30.0,
            )
        except http.HttpStatusError as error:
            if error.status in (401, 403):
                message = "Mixpanel refused the project token."
                return TestResult(success=False, latency_ms=_since(started), error=message)
            if error.status != 400:  # a 400 refuses the empty batch, not the token
                raise
        return TestResult(success=True, latency_ms=_since(started), permissions=self._permissions())

    def _permissions(self) -> list[str]:
        granted = ["events"]
        if self._token() is not None:
            granted += ["user_properties", "group_properties"]
        return granted

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        """Send events, profile updates and group updates, in batches Mixpanel takes; returns
        how many were sent."""
        events, profiles, groups = _sorted(entity, records)
        if (profiles or groups) and self._token() is None:
            raise ConnectorError(
                "Mixpanel takes profile and group updates with the project token only: add "
                "credentials.token to the connection.",
                retryable=False,
            )
        if events:
            self._import(entity, events)
        if profiles:
            self._update("engage", profiles)
        if groups:
            self._update("groups", groups)
        return len(records)

    def _import(self, entity: str, events: list[dict[str, Any]]) -> None:
        headers, params = self._import_auth()
        url = f"{self._hosts()[0]}/import"
        for batch in _batches(events, *IMPORT_BATCH):
            try:
                http.request(
                    "POST",
                    url,
                    params={"strict": "1", **params},
                    headers=headers,
                    json_body=batch,
                    timeout=TIMEOUT_SECONDS,
                )
            except http.HttpStatusError as error:
                if error.status == 400:
                    raise ConnectorError(
                        f"Mixpanel refused events of {entity}: {_refusal(error)}",
                        retryable=False,
                    ) from error
                raise

    def _update(self, endpoint: str, updates: list[dict[str, Any]]) -> None:
        token = self._token()
        url = f"{self._hosts()[0]}/{endpoint}"
        for batch in _batches([{**update, "$token": token} for update in updates], *PROFILE_BATCH):
            answer = http.request(
                "POST",
                url,
                params={"verbose": "1", "ip": "0"},
                json_body=batch,
                timeout=TIMEOUT_SECONDS,
            )
            body = answer.json()
            # verbose=1: {"status": 1, "error": null} when taken; without it, a bare 1 or 0.
            status = body.get("status") if isinstance(body, dict) else body
            if status != 1:
                detail = body.get("error") if isinstance(body, dict) else None
                kind = "profile" if endpoint == "engage" else "group"
                raise ConnectorError(
                    f"Mixpanel refused {kind} updates: {detail or 'no reason given'}.",
                    retryable=False,
                )


def _sorted(
    entity: str, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Events, profile updates and group updates, by their shape."""
    events: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for record in records:
        if "$group_key" in record and "$group_id" in record:
            groups.append(record)
        elif "$distinct_id" in record:
            profiles.append(record)
        elif isinstance(record.get("event"), str) and isinstance(record.get("properties"), dict):
            events.append(record)
        else:
            raise ConnectorError(
                f"Mixpanel takes events, profile updates or group updates; the records of "
                f"{entity} are none of these. Give the integration a track_events, "
                f"user_properties or group_properties task for {entity}, or leave {entity} out "
                "with sync tasks for the entities to send.",
                retryable=False,
            )
    return events, profiles, groups


def _batches(
    items: list[dict[str, Any]], max_items: int, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """Consecutive batches of at most ``max_items`` whose JSON array is at most ``max_bytes``
    (a single item larger than that goes alone, for Mixpanel to refuse by name)."""
    batch: list[dict[str, Any]] = []
    size = 2  # the array's brackets
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":"), default=str).encode()) + 1
        if batch and (len(batch) == max_items or size + item_size > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def _refusal(error: http.HttpStatusError) -> str:
    """Mixpanel's reason for a 400, with the first events it names in ``failed_records``
    (their ``$insert_id``, field and message) when the answer's body is at hand."""
    body = error.body
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = None
    failed = answer.get("failed_records") if isinstance(answer, dict) else None
    if not isinstance(failed, list) or not failed:
        return error.message
    named = []
    for failure in failed[:FAILURES_NAMED]:
        if not isinstance(failure, dict):
            continue
        insert_id = failure.get("$insert_id") or failure.get("insert_id") or "?"
        where = f" ({failure['field']})" if failure.get("field") else ""
        named.append(f"event {insert_id}{where}: {failure.get('message') or 'invalid'}")
    more = len(failed) - len(named)
    imported = answer.get("num_records_imported") if isinstance(answer, dict) else None
    return (
        f"{len(failed)} event(s) failed validation"
        + (f" ({imported} imported)" if imported is not None else "")
        + ": "
        + "; ".join(named)
        + (f"; and {more} more" if more > 0 else "")
        + "."
    )


def _basic(username: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
