"""Lifecycle hooks for apps below ``integrations`` (the SFTP gateway, for one).

Such an app cannot be imported from here, yet creating a feed integration must issue its SFTP
credentials in the same transaction, and deleting one must revoke them. The app registers
callbacks in its ``AppConfig.ready()``:

    on_integration_created(issue_credentials)   # returns a dict merged into the create response
    on_integration_deleted(revoke_credentials)

Callbacks run inside the service's transaction: an exception rolls the whole change back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.services import Actor
    from integrations.models import Integration

CreatedHook = Callable[["Integration", "Actor"], dict[str, Any] | None]
DeletedHook = Callable[["Integration", "Actor"], None]

_created: list[CreatedHook] = []
_deleted: list[DeletedHook] = []


def on_integration_created(hook: CreatedHook) -> CreatedHook:
    if hook not in _created:
        _created.append(hook)
    return hook


def on_integration_deleted(hook: DeletedHook) -> DeletedHook:
    if hook not in _deleted:
        _deleted.append(hook)
    return hook


def run_created_hooks(integration: Integration, actor: Actor) -> dict[str, Any]:
    """Run every created-hook; their returned dicts are merged (shown once, in the response)."""
    provisioned: dict[str, Any] = {}
    for hook in _created:
        provisioned.update(hook(integration, actor) or {})
    return provisioned


def run_deleted_hooks(integration: Integration, actor: Actor) -> None:
    for hook in _deleted:
        hook(integration, actor)
