from config.api.routers import UUID_PATTERN, ApiRouter
from syncengine import views

router = ApiRouter()
router.register(
    rf"integrations/(?P<integration_id>{UUID_PATTERN})/logs",
    views.FeedLogViewSet,
    basename="feed-log",
)
router.register("mappings", views.MappingViewSet, basename="mapping")
router.register("vehicles", views.VehicleViewSet, basename="vehicle")

urlpatterns = router.urls
