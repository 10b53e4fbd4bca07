"""Webhook subscriptions, their deliveries and the catalog of event types."""

from config.api.routers import ApiRouter
from webhooks import views

router = ApiRouter()
WEBHOOK = router.register_parent("webhooks", views.WebhookViewSet, "webhook")
router.register_nested(WEBHOOK, "deliveries", views.WebhookDeliveryViewSet, "webhook-delivery")

urlpatterns = router.urls
