from config.api.routers import ApiRouter
from integrations.urls import INTEGRATION
from sftpgateway import views

router = ApiRouter()
router.register_nested(
    INTEGRATION, "sftp", views.IntegrationSftpViewSet, "integration-sftp", singleton=True
)
router.register_nested(
    INTEGRATION, "sftp/keys", views.IntegrationSftpKeyViewSet, "integration-sftp-key"
)
router.register_nested(
    INTEGRATION, "sftp/activity", views.IntegrationSftpActivityViewSet, "integration-sftp-activity"
)

urlpatterns = router.urls
