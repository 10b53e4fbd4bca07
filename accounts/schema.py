"""OpenAPI description of the API-key authentication (loaded by AccountsConfig.ready)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key: `Authorization: Bearer ry_<prefix>_<secret>`. A key's scope bounds "
                "what it may do: `read` keys only GET, HEAD and OPTIONS; `write` keys also "
                "create, change and delete; `admin` keys also manage API keys. A request beyond "
                "the key's scope is 403 FORBIDDEN with `details.requiredScope`. Repeated failed "
                "authentications from one address, or for one key, are answered 429."
            ),
        }
