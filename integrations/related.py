"""Resources of other apps that belong to an integration.

Apps below ``integrations`` (exports, for one) may not be imported from here, yet an integration's
template, revisions and dependency list must include their objects. Such an app registers a
provider in its ``AppConfig.ready()``::

    register_related("exports", lambda integration: [...json-safe dicts...])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from integrations.models import Integration

RelatedProvider = Callable[["Integration"], list[dict[str, Any]]]

_PROVIDERS: dict[str, RelatedProvider] = {}


def register_related(name: str, provider: RelatedProvider) -> None:
    """Register ``provider`` as the source of ``name`` objects of an integration."""
    _PROVIDERS[name] = provider


def related_resources(integration: Integration) -> dict[str, list[dict[str, Any]]]:
    """Every registered app's objects of ``integration``, keyed by the registered name."""
    return {name: provider(integration) for name, provider in sorted(_PROVIDERS.items())}
