"""The sync engine's models: runs (``runs``), the connector sync engine's record store
(``records``) and the feed engine's files and vehicles (``feeds``)."""

from syncengine.models.feeds import FeedFile, PulledFile, Vehicle, VehicleVersion
from syncengine.models.records import Record, Snapshot, SnapshotRecord, SyncStream
from syncengine.models.runs import SyncJob

__all__ = [
    "FeedFile",
    "PulledFile",
    "Record",
    "Snapshot",
    "SnapshotRecord",
    "SyncJob",
    "SyncStream",
    "Vehicle",
    "VehicleVersion",
]
