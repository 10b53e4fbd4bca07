from accounts import views
from config.api.routers import ApiRouter

router = ApiRouter()
router.register("dealerships", views.DealershipViewSet, basename="dealership")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("events", views.EventViewSet, basename="event")
router.register("audit", views.AuditEntryViewSet, basename="audit")

urlpatterns = router.urls
