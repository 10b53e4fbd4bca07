"""The connector catalog and connections.

``CONNECTION`` is the parent other apps nest their resources under (a connection's syncs,
snapshots and record store): see config/api/routers.py for the convention.
"""

from config.api.routers import ApiRouter
from connectors import views

router = ApiRouter()
router.register("integrations/connectors", views.ConnectorViewSet, basename="connector")
CONNECTION = router.register_parent(
    "integrations/connections", views.ConnectionViewSet, "connection"
)

urlpatterns = router.urls
