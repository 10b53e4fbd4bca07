"""Integrations, file imports and flows; the resources nested under an integration.

``INTEGRATION`` is the parent other apps nest their resources under (exports, the SFTP login,
feed logs, jobs, the record store), ``FILE_IMPORT`` the one of a file import's runs: see
config/api/routers.py for the convention.
"""

from config.api.routers import ApiRouter
from integrations import views

router = ApiRouter()
INTEGRATION = router.register_parent("integrations", views.IntegrationViewSet, "integration")
router.register_nested(INTEGRATION, "flows", views.IntegrationFlowViewSet, "integration-flow")
router.register_nested(INTEGRATION, "imports", views.IntegrationImportViewSet, "integration-import")
router.register_nested(
    INTEGRATION, "connections", views.IntegrationConnectionViewSet, "integration-connection"
)
router.register_nested(INTEGRATION, "ashares", views.IntegrationShareViewSet, "integration-share")
router.register_nested(
    INTEGRATION, "revisions", views.IntegrationRevisionViewSet, "integration-revision"
)
router.register_nested(INTEGRATION, "audit", views.IntegrationAuditViewSet, "integration-audit")
FILE_IMPORT = router.register_parent("imports", views.FileImportViewSet, "import")
router.register("flows", views.FlowViewSet, basename="flow")
# A signed link to an integration's template: the token is the credential, not an id.
router.register("templates", views.TemplateDownloadViewSet, basename="integration-template")

urlpatterns = router.urls
