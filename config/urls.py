from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz

# Every URL of the API comes from an app's ApiRouter; resources of an integration or a connection
# nest under the parents integrations.urls and connectors.urls declare (config/api/routers.py).
api_v1 = [
    path("", include("exports.urls")),
    path("", include("webhooks.urls")),
    path("", include("connectors.urls")),
    path("", include("sftpgateway.urls")),
    path("", include("syncengine.urls")),
    path("", include("integrations.urls")),
    path("", include("accounts.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
]

# Django's own error pages, in the API's envelope (DRF views answer through its exception handler).
handler400 = "config.api.errors.json_bad_request"
handler403 = "config.api.errors.json_permission_denied"
handler404 = "config.api.errors.json_not_found"
handler500 = "config.api.errors.json_server_error"
