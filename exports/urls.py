from django.urls import re_path

from config.api.routers import UUID_PATTERN, ApiRouter
from exports import views

router = ApiRouter()
router.register("integrations/exports", views.ExportViewSet, basename="export")

urlpatterns = [
    re_path(
        rf"^integrations/(?P<integrationId>{UUID_PATTERN})/exports/?$",
        views.IntegrationExportListView.as_view(),
        name="integration-exports",
    ),
    *router.urls,
]
