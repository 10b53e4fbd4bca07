"""Feed logs, field mappings, vehicles, jobs, and the syncs, snapshots and record store of an
integration or a connection, nested under the parents integrations.urls and connectors.urls
declare (see config/api/routers.py for the convention)."""

from config.api.routers import ApiRouter
from connectors.urls import CONNECTION
from integrations.urls import INTEGRATION
from syncengine import views

router = ApiRouter()
router.register("mappings", views.MappingViewSet, basename="mapping")
router.register("vehicles", views.VehicleViewSet, basename="vehicle")
router.register("jobs", views.SyncJobViewSet, basename="sync-job")

router.register_nested(INTEGRATION, "logs", views.FeedLogViewSet, "feed-log")
router.register_nested(INTEGRATION, "sync", views.IntegrationSyncViewSet, "integration-sync")
router.register_nested(INTEGRATION, "jobs", views.IntegrationJobViewSet, "integration-job")
INTEGRATION_SNAPSHOT = router.register_nested(
    INTEGRATION, "snapshots", views.IntegrationSnapshotViewSet, "integration-snapshot"
)
router.register_nested(
    INTEGRATION_SNAPSHOT,
    "records",
    views.IntegrationSnapshotRecordViewSet,
    "integration-snapshot-record",
)
router.register_nested(INTEGRATION, "records", views.IntegrationRecordViewSet, "integration-record")
router.register_nested(INTEGRATION, "streams", views.IntegrationStreamViewSet, "integration-stream")

router.register_nested(CONNECTION, "sync", views.ConnectionSyncViewSet, "connection-sync")
CONNECTION_SNAPSHOT = router.register_nested(
    CONNECTION, "snapshots", views.ConnectionSnapshotViewSet, "connection-snapshot"
)
router.register_nested(
    CONNECTION_SNAPSHOT,
    "records",
    views.ConnectionSnapshotRecordViewSet,
    "connection-snapshot-record",
)
router.register_nested(CONNECTION, "records", views.ConnectionRecordViewSet, "connection-record")
router.register_nested(CONNECTION, "streams", views.ConnectionStreamViewSet, "connection-stream")

urlpatterns = router.urls
