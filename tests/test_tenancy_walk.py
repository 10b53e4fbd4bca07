"""Every route that takes an object id answers another account's id with 404 and changes nothing.

The routes come from the OpenAPI schema (every operation whose path has a parameter), checked
against Django's URL resolver so that a route left out of the schema cannot escape the walk
either. Tenant A gets one object of every kind (tests/apiworld.py); tenant B then calls every
method of every route with A's ids and must get 404, with every row of the database unchanged,
no audit entry or event written and no task queued.

A new route is walked without any change here. A route whose parameter names a new kind of
object fails ``test_every_id_route_is_walked_or_listed`` until the kind is added to
tests/apiworld.py (or, when the route cannot be walked, the route is listed in ``NOT_WALKED``
with the reason).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from tests.apiworld import build_world, kind_of

pytestmark = pytest.mark.django_db

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
METHODS = ("get", "post", "put", "patch", "delete")

# Routes that take an id but are not walked, with the reason. Keep this short.
NOT_WALKED = {
    "/api/v1/templates/{token}/": (
        "A signed template link is its own credential (it works without an API key, for an "
        "hour); its signature, not the caller's account, decides (tests/integrations)."
    ),
}

# Apps whose rows a request could change; B's own API key records its use (last_used_at).
TENANT_APPS = (
    "accounts",
    "connectors",
    "integrations",
    "syncengine",
    "exports",
    "webhooks",
    "sftpgateway",
)
VOLATILE_FIELDS = {"accounts.apikey": {"last_used_at"}}


def id_routes() -> list[tuple[str, str]]:
    """``(path, method)`` of every operation whose path takes a parameter."""
    return [
        (path, method)
        for path, operations in SCHEMA["paths"].items()
        if "{" in path
        for method in operations
        if method in METHODS
    ]


def parameters(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


# Every kind of object a route's parameter names.
ALL_KINDS = {
    kind
    for path, _ in id_routes()
    for name in parameters(path)
    if (kind := kind_of(path, name)) is not None
}


def walked_routes() -> list[tuple[str, str]]:
    return [(path, method) for path, method in id_routes() if path not in NOT_WALKED]


def url_for(path: str, ids: dict[str, str]) -> str:
    url = path
    for name in parameters(path):
        url = url.replace(f"{{{name}}}", ids[kind_of(path, name) or ""])
    return url


def database_state() -> dict[str, list[str]]:
    """Every row of the tenant apps, as comparable text."""
    state = {}
    for model in apps.get_models():
        if model._meta.app_label not in TENANT_APPS:
            continue
        label = model._meta.label_lower
        volatile = VOLATILE_FIELDS.get(label, set())
        rows = model._base_manager.order_by().values()
        state[label] = sorted(
            repr(sorted((key, value) for key, value in row.items() if key not in volatile))
            for row in rows
        )
    return state


def _resolver_routes(patterns: list[Any], prefix: str = "") -> list[str]:
    """Every route of the URL conf, spelt as ``ResolverMatch.route`` spells it."""
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern).removeprefix("^")
        if isinstance(pattern, URLResolver):
            routes.extend(_resolver_routes(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


def test_every_id_route_is_walked_or_listed():
    unknown = [
        f"{method.upper()} {path}: {{{name}}}"
        for path, method in walked_routes()
        for name in parameters(path)
        if kind_of(path, name) is None
    ]
    assert unknown == [], (
        "Routes whose parameter names no kind of tests/apiworld.py: add the kind there (or list "
        f"the route in NOT_WALKED with the reason): {unknown}"
    )
    assert set(NOT_WALKED) <= {path for path, _ in id_routes()}, "NOT_WALKED lists a gone route"
    # A route left out of the schema (a plain Django view, an operation excluded from it) would
    # escape the walk: every route of the URL conf that takes a parameter must be in the schema.
    sample = dict.fromkeys(ALL_KINDS, "00000000-0000-4000-8000-000000000000")
    # A run's files are numbered, and so are webhook deliveries.
    sample |= {"export_file": "1", "webhook_delivery": "1"}
    documented = {resolve(url_for(path, sample)).route for path, _ in id_routes()}
    hidden = sorted(
        route
        for route in _resolver_routes(get_resolver().url_patterns)
        if route.startswith("api/v1/") and "<" in route and route not in documented
    )
    assert hidden == [], f"Routes with a parameter that the OpenAPI schema leaves out: {hidden}"


def test_another_accounts_ids_are_404_everywhere_and_change_nothing(
    tenant, other_tenant, django_capture_on_commit_callbacks
):
    world = build_world(account=tenant.account, client=tenant.client, kinds=ALL_KINDS)
    intruder = other_tenant.client
    leaks = []

    for path, method in walked_routes():
        url = url_for(path, world.ids)
        before = database_state()
        with django_capture_on_commit_callbacks() as callbacks:
            response = getattr(intruder, method)(url, {}, format="json")
        after = database_state()
        changed = sorted(table for table in after if after[table] != before[table])
        code = response.json()["error"]["code"] if response.status_code >= 400 else None
        if response.status_code != 404 or code != "NOT_FOUND" or changed or callbacks:
            leaks.append(
                f"{method.upper()} {path}: {response.status_code} {response.content[:200]!r}, "
                f"changed {changed}, {len(callbacks)} task(s) queued"
            )

    assert not leaks, "\n".join(leaks)
