"""How the API's URLs are made: one router, one way to nest a resource, one spelling of path
parameters.

The convention
--------------
1. Every URL under ``/api/v1/`` comes from an ``ApiRouter`` registration: no hand-written
   ``path`` or ``re_path`` views. Every route answers with or without a trailing slash.
2. A top-level resource is a viewset registered with ``router.register(prefix, viewset)``; one
   that others nest under is registered with ``router.register_parent(...)``, which returns its
   ``Parent`` handle (URL prefix and id parameter) for other apps' routers to nest under.
3. A resource that belongs to another one is a viewset of its own, registered under its parent
   with ``router.register_nested(parent, prefix, viewset)``: a collection of the parent's rows
   (``/integrations/{integrationId}/flows``, ``.../sftp/keys/{keyId}``) or, with
   ``singleton=True``, the one row a parent has (``/integrations/{integrationId}/sftp``, whose
   URL is the prefix itself; its verbs are ``@action(detail=True)``). The viewset declares its
   parent (``parent_viewset``, checked at registration) and derives from
   ``NestedViewSetMixin``: ``get_parent()`` finds the parent through the parent viewset's own
   tenant-scoped queryset before anything else happens, so a nested route can neither forget
   the tenant nor scope differently from its parent's URL: another account's parent is the same
   404 there and here. ``register_nested`` returns a ``Parent`` as well, so resources nest to
   any depth.
4. ``@action`` only for what is not a resource of its own: verbs on an object or a collection
   (``clone``, ``test``, ``rotate``, ``cancel``, ``reprocess``, ``revisions/create``,
   ``connections/register``) and documents computed from the object's own fields (an
   integration's ``template``, ``dependencies`` and ``installSteps``, a mapping's ``preview``).
5. Path parameters are camelCase and named after what they identify: ``<resource>Id``
   (``integrationId``, ``connectionId``, ``exportId``, ``revisionId``, ``shareId``, ``keyId``,
   ``jobId``, ``logId`` ...), the same name at every depth, never a bare ``id`` or ``pk``.
   Viewsets set ``lookup_url_kwarg`` accordingly. The one exception is ``token``, which is a
   signed credential, not an id.

tests/test_api_conventions.py fails on a route that is not a router's or spells a parameter
otherwise; tests/test_tenancy_walk.py calls every route that takes an id with another account's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from rest_framework.generics import GenericAPIView
from rest_framework.routers import DynamicRoute, Route, SimpleRouter

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The id a schema generator's parent stands for: it builds querysets that never run.
_SCHEMA_PARENT_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Parent:
    """A registered resource that other resources nest under."""

    prefix: str  # its URL regex without the id: "integrations", "integrations/(?P<...>...)/x"
    lookup: str  # the name of its id parameter: "integrationId"
    lookup_regex: str
    viewset: type[Any]

    @property
    def item_prefix(self) -> str:
        """The URL regex of one object: where its nested resources go."""
        return rf"{self.prefix}/(?P<{self.lookup}>{self.lookup_regex})"


class NestedViewSetMixin(GenericAPIView[Any]):
    """A viewset registered with ``ApiRouter.register_nested``: it finds its parent first."""

    # The viewset of the parent resource; its get_queryset() decides which parents exist for
    # the caller (its tenant scoping), so the parent is found exactly as at its own URL.
    parent_viewset: type[GenericAPIView[Any]] | None = None
    _parent: Model | None = None

    def _parent_view(self) -> GenericAPIView[Any]:
        assert self.parent_viewset is not None, f"{type(self).__name__} declares no parent_viewset"
        return self.parent_viewset(
            request=self.request,
            args=self.args,
            kwargs=self.kwargs,
            format_kwarg=getattr(self, "format_kwarg", None),
            action="retrieve",
            swagger_fake_view=getattr(self, "swagger_fake_view", False),
        )

    def get_parent_queryset(self) -> QuerySet[Any]:
        """The parents the caller may reach: those of the parent's own URL. Override to narrow
        them further (the SFTP login exists for feed integrations only)."""
        return self._parent_view().get_queryset()

    def get_parent(self) -> Any:
        """The parent object of the URL, within the caller's account; a 404 otherwise."""
        if self._parent is not None:
            return self._parent
        parent_view = self._parent_view()
        if getattr(self, "swagger_fake_view", False):
            # Schema generation: no request and no database, only querysets that never run.
            self._parent = parent_view.get_queryset().model(pk=_SCHEMA_PARENT_ID)
        else:
            lookup_field = parent_view.lookup_field
            lookup_kwarg = parent_view.lookup_url_kwarg or lookup_field
            self._parent = get_object_or_404(
                self.get_parent_queryset(), **{lookup_field: self.kwargs[lookup_kwarg]}
            )
        return self._parent


class ApiRouter(SimpleRouter):
    """The project's router (see the module docstring for the convention it enforces)."""

    def __init__(self) -> None:
        super().__init__()
        # Clients usually send no trailing slash; both spellings answer.
        self.trailing_slash = "/?"
        self._singletons = _SingletonRouter()

    @staticmethod
    def _lookup_of(viewset: type[Any]) -> tuple[str, str]:
        lookup_field: str = getattr(viewset, "lookup_field", "pk")
        lookup: str = getattr(viewset, "lookup_url_kwarg", None) or lookup_field
        regex: str = getattr(viewset, "lookup_value_regex", "[^/.]+")  # SimpleRouter's default
        return lookup, regex

    def register_parent(self, prefix: str, viewset: type[Any], basename: str) -> Parent:
        """Register a top-level resource that others nest under; returns its handle."""
        self.register(prefix, viewset, basename)
        lookup, regex = self._lookup_of(viewset)
        return Parent(prefix=prefix, lookup=lookup, lookup_regex=regex, viewset=viewset)

    def register_nested(
        self,
        parent: Parent,
        prefix: str,
        viewset: type[Any],
        basename: str,
        *,
        singleton: bool = False,
    ) -> Parent:
        """Register ``viewset`` under one object of ``parent`` at ``prefix``; returns its handle.

        A collection answers at ``<parent>/<id>/<prefix>`` and its items at
        ``.../<prefix>/<its id>``; a singleton answers at ``<parent>/<id>/<prefix>`` itself.
        """
        nested: Any = viewset  # checked without narrowing the type register() expects
        declared = getattr(nested, "parent_viewset", None)
        if not issubclass(nested, NestedViewSetMixin) or declared is None:
            raise TypeError(f"{viewset.__name__} must be a NestedViewSetMixin with parent_viewset")
        if not issubclass(parent.viewset, declared):
            raise TypeError(
                f"{viewset.__name__} declares {declared.__name__} as its parent, "
                f"but is registered under {parent.viewset.__name__}"
            )
        full_prefix = f"{parent.item_prefix}/{prefix}"
        if singleton:
            self._singletons.register(full_prefix, viewset, basename)
        else:
            self.register(full_prefix, viewset, basename)
        lookup, regex = self._lookup_of(viewset)
        return Parent(prefix=full_prefix, lookup=lookup, lookup_regex=regex, viewset=viewset)

    def get_urls(self) -> list[Any]:
        return [*super().get_urls(), *self._singletons.get_urls()]


class _SingletonRouter(SimpleRouter):
    """Routes of a resource its parent has exactly one of: no id of its own in the URL."""

    routes = [
        Route(
            url=r"^{prefix}{trailing_slash}$",
            mapping={
                "get": "retrieve",
                "put": "update",
                "patch": "partial_update",
                "delete": "destroy",
            },
            name="{basename}-detail",
            detail=True,
            initkwargs={"suffix": "Instance"},
        ),
        DynamicRoute(
            url=r"^{prefix}/{url_path}{trailing_slash}$",
            name="{basename}-{url_name}",
            detail=True,
            initkwargs={},
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
