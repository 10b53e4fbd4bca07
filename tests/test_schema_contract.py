"""The OpenAPI schema is the contract: schemathesis sends generated requests to every operation
and checks each answer against the schema.

Checks: no 5xx (``not_a_server_error``), every status code documented for its operation, the
documented content type, and the body valid against the documented schema. Two tests:

- ``test_every_operation_keeps_its_contract``: one pytest test per operation of the schema (a
  new endpoint is covered without any change here), each with ``EXAMPLES`` generated requests,
  valid and invalid ones (schemathesis's positive and negative modes). A path parameter naming
  an object is given the id of a real object of the test tenant most of the time
  (tests/apiworld.py), so requests get past the 404 of a random id.
- ``test_workflows_keep_their_contract``: schemathesis's state machine chains operations along
  the links it infers (a POST's ``id`` into the GET, PATCH and DELETE of that id), ``SCENARIOS``
  scenarios of at most ``STEPS`` steps.

Every request goes through ``config.wsgi.application`` in this process, with the API key of a
tenant of scope ``admin``, inside the test's database transaction; each request (and each
scenario) runs in a savepoint that is rolled back, so every example starts from the same state
and a failure replays exactly. Outbound connections that generated requests trigger (connection
tests, syncs) meet the test settings' egress policy, which refuses everything but loopback.

The example counts are fixed and generation is derandomized: the same requests every run, about
a minute on a 2-core machine. To search harder locally, raise ``EXAMPLES`` (or enable
schemathesis's coverage phase in ``CONFIG``, about four times the requests).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.apiworld import World, kind_of

EXAMPLES = 10
SCENARIOS = 20
STEPS = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": EXAMPLES},
        "phases": {
            # Every boundary value of every parameter: thorough, but four times the requests.
            "coverage": {"enabled": False},
            # Scenarios build on what their steps create: valid requests take them further.
            "stateful": {"generation": {"mode": "positive", "allow-x00": False}},
        },
    }
)
HYPOTHESIS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(hypothesis.HealthCheck),
}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``config.wsgi.application`` with the test's transaction kept open.

    After each request Django closes a database connection that is not in autocommit mode, as
    production wants; inside a test that would end the test's transaction. Django's test client
    keeps it open the same way: the signal is disconnected while the request runs and until its
    response is closed.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


RAW_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(RAW_SCHEMA, config=CONFIG)
schema.app = wsgi_app


def _real_ids(case: Any, world: World) -> None:
    """Three path parameters in four name a real object of the tenant; the rest keep the
    generated value (mostly a 404). Decided by the generated value, so runs repeat."""
    for name, value in case.path_parameters.items():
        kind = kind_of(case.operation.path, name)
        if kind is not None and zlib.crc32(str(value).encode()) % 4:
            case.path_parameters[name] = world.id(kind)


@pytest.fixture
def world(tenant):
    """The tenant's objects, each made the first time a request names its kind (once per
    operation: a fixture lives as long as the operation's test, across its examples)."""
    return World(account=tenant.account, client=tenant.client)


@schema.parametrize()
@hypothesis.settings(**HYPOTHESIS)
@override_settings(API_RATE_LIMIT="1000000/minute")
@pytest.mark.django_db
def test_every_operation_keeps_its_contract(case, tenant, world):
    # Objects are made outside the savepoint below: they stay for the next examples.
    _real_ids(case, world)
    headers = {"Authorization": f"Bearer {tenant.raw_key}"}

    with transaction.atomic():
        response = case.call(headers=headers)
        transaction.set_rollback(True)

    case.validate_response(response, checks=CHECKS, headers=headers)


@override_settings(API_RATE_LIMIT="1000000/minute")
@pytest.mark.django_db
def test_workflows_keep_their_contract(tenant):
    headers = {"Authorization": f"Bearer {tenant.raw_key}"}
    # Revoking the key the scenario runs with would leave it nothing but 401s; revocation has
    # tests of its own (tests/accounts). A scenario may create a connection of a real connector
    # from the catalog with a generated host; testing it would resolve that name (DNS traffic
    # off this machine). The operation still runs above, on the tenant's own connection.
    linked = schema.exclude(method="DELETE", path="/api/v1/api-keys/{apiKeyId}/").exclude(
        method="POST", path="/api/v1/integrations/connections/{connectionId}/test/"
    )

    class Workflows(linked.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self._savepoint = transaction.atomic()
            self._savepoint.__enter__()

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    run_state_machine_as_test(
        Workflows,
        settings=hypothesis.settings(
            max_examples=SCENARIOS, stateful_step_count=STEPS, **HYPOTHESIS
        ),
    )


# --- what the generated requests above would find only by chance ------------------------------

COMPONENTS = RAW_SCHEMA["components"]["schemas"]
METHODS = ("get", "post", "put", "patch", "delete")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in RAW_SCHEMA["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_values_that_can_be_null_or_absent_are_documented_so():
    integration = COMPONENTS["Integration"]["properties"]
    for name in ("sourceAppName", "sourceAppType", "destinationAppName", "destinationAppType"):
        assert integration[name].get("nullable") is True, name
    # Sent keys only on the way in; runNow is never answered.
    assert "required" not in COMPONENTS["ScheduleRequest"]
    assert "runNow" not in COMPONENTS["Schedule"]["properties"]
    assert "required" not in COMPONENTS["SyncSettingsRequest"]
    # A new import's mapping is {}.
    assert "fields" not in COMPONENTS["ImportMapping"].get("required", [])
    # A successful connection test has no error.
    assert "error" not in COMPONENTS["ConnectionTestResult"]["required"]


def test_every_operation_documents_the_errors_it_can_answer():
    missing = []
    for path, method, operation in operations():
        wanted = {"400", "429"}
        if "{" in path:
            wanted.add("404")
        if "requestBody" in operation:
            wanted |= {"413", "415"}
        if operation.get("security"):
            wanted |= {"401", "403"}
        missing += [
            f"{method.upper()} {path}: {code}" for code in wanted - set(operation["responses"])
        ]

    assert missing == []


def _documented_path(path: str) -> str:
    """The schema's spelling of ``path``, matched with any parameter names (the shape of a
    route is what matters here; tests/test_api_conventions.py checks the names)."""
    shape = re.sub(r"{\w+}", "{}", path)
    matches = [known for known in RAW_SCHEMA["paths"] if re.sub(r"{\w+}", "{}", known) == shape]
    assert len(matches) == 1, (path, matches)
    return matches[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/dealerships/{dealershipId}/"),
        ("delete", "/api/v1/integrations/connections/{connectionId}/"),
        ("post", "/api/v1/integrations/{integrationId}/ashares/"),
        ("post", "/api/v1/integrations/{integrationId}/installSteps/"),
        ("post", "/api/v1/integrations/{integrationId}/uninstallSteps/"),
        ("post", "/api/v1/integrations/{integrationId}/sync/"),
        ("post", "/api/v1/integrations/connections/{connectionId}/sync/"),
        ("post", "/api/v1/jobs/{jobId}/cancel/"),
    ],
)
def test_operations_that_can_conflict_document_409(method, path):
    assert "409" in RAW_SCHEMA["paths"][_documented_path(path)][method]["responses"]


def _unbounded_strings(node: Any, where: str) -> list[str]:
    """Paths of writable string properties with no length limit (nor enum, format or pattern)."""
    if not isinstance(node, dict) or "$ref" in node or node.get("readOnly"):
        return []
    found = []
    if (
        node.get("type") == "string"
        and "maxLength" not in node
        and "enum" not in node
        and "pattern" not in node
        and node.get("format") not in ("uuid", "date-time", "date", "binary")
    ):
        found.append(where)
    for key in ("allOf", "anyOf", "oneOf"):
        for item in node.get(key, []):
            found += _unbounded_strings(item, where)
    for name, item in node.get("properties", {}).items():
        found += _unbounded_strings(item, f"{where}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        found += _unbounded_strings(node["additionalProperties"], f"{where}.*")
    if isinstance(node.get("items"), dict):
        found += _unbounded_strings(node["items"], f"{where}[]")
    return found


def test_every_free_text_a_client_sends_has_a_length_limit():
    sent = {
        f"{method.upper()} {path}": media["schema"]
        for path, method, operation in operations()
        for media in operation.get("requestBody", {}).get("content", {}).values()
    }
    sent.update((name, schema) for name, schema in COMPONENTS.items() if name.endswith("Request"))

    unbounded = [found for name, node in sent.items() for found in _unbounded_strings(node, name)]

    assert unbounded == []
