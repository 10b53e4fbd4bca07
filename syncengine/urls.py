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

# Sync jobs, snapshots and the record store, under their integration or connection.
INTEGRATION = rf"integrations/(?P<integration_id>{UUID_PATTERN})"
CONNECTION = rf"integrations/connections/(?P<connectionId>{UUID_PATTERN})"
SNAPSHOT = rf"snapshots/(?P<snapshotId>{UUID_PATTERN})"

router.register("jobs", views.SyncJobViewSet, basename="sync-job")
router.register(f"{INTEGRATION}/sync", views.IntegrationSyncViewSet, basename="integration-sync")
router.register(f"{INTEGRATION}/jobs", views.IntegrationJobViewSet, basename="integration-job")
router.register(
    f"{INTEGRATION}/snapshots", views.IntegrationSnapshotViewSet, basename="integration-snapshot"
)
router.register(
    f"{INTEGRATION}/{SNAPSHOT}/records",
    views.IntegrationSnapshotRecordViewSet,
    basename="integration-snapshot-record",
)
router.register(
    f"{INTEGRATION}/records", views.IntegrationRecordViewSet, basename="integration-record"
)
router.register(
    f"{INTEGRATION}/streams", views.IntegrationStreamViewSet, basename="integration-stream"
)
router.register(f"{CONNECTION}/sync", views.ConnectionSyncViewSet, basename="connection-sync")
router.register(
    f"{CONNECTION}/snapshots", views.ConnectionSnapshotViewSet, basename="connection-snapshot"
)
router.register(
    f"{CONNECTION}/{SNAPSHOT}/records",
    views.ConnectionSnapshotRecordViewSet,
    basename="connection-snapshot-record",
)
router.register(
    f"{CONNECTION}/records", views.ConnectionRecordViewSet, basename="connection-record"
)
router.register(
    f"{CONNECTION}/streams", views.ConnectionStreamViewSet, basename="connection-stream"
)

urlpatterns = router.urls
