from typing import Any

from rest_framework import exceptions, status
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.choices import ApiKeyScope
from accounts.models import ApiKey
from accounts.tenancy import request_account
from config.api.errors import ApplicationError


class IsAccountMember(BasePermission):
    """Authenticated, and acting for an account (an API key, or a user who belongs to one)."""

    message = "This user does not belong to an account."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request_account(request) is not None


class ScopeRequired(ApplicationError, exceptions.PermissionDenied):
    """The request's API key is valid but its scope does not cover the request.

    Also a DRF ``PermissionDenied``, so DRF's own permission probes (the actions an ``OPTIONS``
    answer lists) read it as "not allowed" rather than as an error.
    """

    status_code = status.HTTP_403_FORBIDDEN
    code = "FORBIDDEN"

    def __init__(self, message: str, *, details: dict[str, Any]) -> None:
        ApplicationError.__init__(self, message, details=details)
        exceptions.PermissionDenied.__init__(self, message)


def required_scope(request: Request, view: Any) -> ApiKeyScope:
    """The scope a request needs: the view's ``required_scope`` if it names one, else ``read``
    for safe methods (GET, HEAD, OPTIONS) and ``write`` for everything else.

    ``required_scope`` can be set on a view class (every action of it) or per action through
    ``@action(..., required_scope=ApiKeyScope.ADMIN)``.
    """
    explicit = getattr(view, "required_scope", None)
    if explicit:
        return ApiKeyScope(explicit)
    return ApiKeyScope.READ if request.method in SAFE_METHODS else ApiKeyScope.WRITE


class HasApiKeyScope(BasePermission):
    """An API key may do only what its scope allows; refused requests get 403 naming the scope.

    Scopes bound API keys only: a signed-in user (the browsable API, staff in the admin) acts with
    the full rights of their account.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        needed = required_scope(request, view)
        if api_key.allows(needed):
            return True
        raise ScopeRequired(
            f"This API key has scope {api_key.scope!r}; this request needs {needed.value!r}.",
            details={"requiredScope": needed.value, "keyScope": api_key.scope},
        )
