from config.api.routers import ApiRouter
from exports import views
from integrations.urls import INTEGRATION

router = ApiRouter()
router.register("integrations/exports", views.ExportViewSet, basename="export")
router.register_nested(INTEGRATION, "exports", views.IntegrationExportViewSet, "integration-export")

urlpatterns = router.urls
