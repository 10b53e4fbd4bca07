"""Credential references: a stored credential may say ``${NAME}`` instead of holding the secret,
and the server fills it in from its environment when the credential is used.

The environment is the platform's, not the tenant's, so a reference resolves only when the name
matches one of the operator's ``CREDENTIAL_ENV_ALLOW`` patterns (shell-style ``*`` wildcards) and
is none of the variables Railyard or its libraries read for themselves, whatever the patterns say.
A name that is not allowed and a name that is not set get the same answer, so a tenant cannot
probe which variables exist.
"""

from __future__ import annotations

import os
import re
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Read by libraries on the platform's behalf (database clients, cloud SDKs, Django, Celery, SSH),
# on top of every name the settings module reads (``settings.ENVIRONMENT_NAMES_READ``).
PLATFORM_PREFIXES = (
    "DJANGO_", "CELERY_", "PG", "AWS_", "AZURE_", "GOOGLE_", "REDIS", "SSH_", "KRB5", "PYTHON",
)  # fmt: skip


class UnresolvableReference(Exception):
    """A ``${NAME}`` that does not resolve (not allowed, or not set: the same to the tenant)."""

    def __init__(self, *, name: str, field: str) -> None:
        self.name = name
        self.field = field
        self.message = (
            f"{field} refers to ${{{name}}}, which is not an environment variable this server "
            "provides to connections (CREDENTIAL_ENV_ALLOW)."
        )
        super().__init__(self.message)


def reference_allowed(name: str) -> bool:
    """Whether the operator lets credentials refer to the environment variable ``name``."""
    if name in settings.ENVIRONMENT_NAMES_READ or name.upper().startswith(PLATFORM_PREFIXES):
        return False
    patterns = [p.strip() for p in settings.CREDENTIAL_ENV_ALLOW.split(",") if p.strip()]
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _lookup(name: str, field: str) -> str:
    value = os.environ.get(name) if reference_allowed(name) else None
    if value is None:
        raise UnresolvableReference(name=name, field=field)
    return value


def references_resolve(value: Any, *, field: str) -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced (dicts and lists walked);
    raises ``UnresolvableReference`` for the first one that does not resolve."""
    if isinstance(value, dict):
        return {k: references_resolve(item, field=f"{field}.{k}") for k, item in value.items()}
    if isinstance(value, list):
        return [references_resolve(item, field=f"{field}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    return REFERENCE.sub(lambda match: _lookup(match.group(1), field), value)


def references_check(value: Any, *, field: str) -> dict[str, list[str]]:
    """Validation errors (field -> messages) for every reference in ``value`` that would not
    resolve now; used when credentials are saved."""
    errors: dict[str, list[str]] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            errors.update(references_check(item, field=f"{field}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            errors.update(references_check(item, field=f"{field}[{index}]"))
    elif isinstance(value, str):
        for match in REFERENCE.finditer(value):
            try:
                _lookup(match.group(1), field)
            except UnresolvableReference as error:
                errors.setdefault(field, []).append(error.message)
    return errors
