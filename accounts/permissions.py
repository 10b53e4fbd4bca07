from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.tenancy import request_account


class IsAccountMember(BasePermission):
    """Authenticated, and acting for an account (an API key, or a user who belongs to one)."""

    message = "This user does not belong to an account."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request_account(request) is not None
