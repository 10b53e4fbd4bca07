"""Webhook subscriptions, their deliveries and the catalog of event types."""

from config.api.routers import ApiRouter

router = ApiRouter()

urlpatterns = router.urls
