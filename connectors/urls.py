from config.api.routers import ApiRouter
from connectors import views

router = ApiRouter()
router.register("integrations/connectors", views.ConnectorViewSet, basename="connector")
router.register("integrations/connections", views.ConnectionViewSet, basename="connection")

urlpatterns = router.urls
