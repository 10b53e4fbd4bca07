from config.api.routers import ApiRouter
from exports import views
from integrations.urls import FILE_IMPORT, INTEGRATION

router = ApiRouter()
EXPORT = router.register_parent("integrations/exports", views.ExportViewSet, basename="export")
EXPORT_RUN = router.register_nested(EXPORT, "runs", views.ExportRunViewSet, "export-run")
router.register_nested(EXPORT_RUN, "files", views.ExportRunFileViewSet, "export-run-file")
router.register_nested(FILE_IMPORT, "run", views.ImportRunStartViewSet, "import-run-start")
router.register_nested(FILE_IMPORT, "runs", views.ImportRunViewSet, "import-run")
router.register_nested(INTEGRATION, "exports", views.IntegrationExportViewSet, "integration-export")

urlpatterns = router.urls
