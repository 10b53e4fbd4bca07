from config.api.routers import ApiRouter

from accounts import views

router = ApiRouter()
router.register("dealerships", views.DealershipViewSet, basename="dealership")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("events", views.EventViewSet, basename="event")
router.register("audit", views.AuditEntryViewSet, basename="audit")

urlpatterns = router.urls
