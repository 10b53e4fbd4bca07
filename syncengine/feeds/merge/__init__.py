"""The set-based merge of a feed file's normalised rows into the vehicle record store.

``VehicleMerge`` (``vehicle_merge``) is what the ingestion pipeline drives: ``stage()`` per
parsed chunk, then ``apply()`` in one transaction (or ``discard()``). ``rows`` hashes and
converts the parser's frames; ``keys`` finds a key's vehicle in compact numpy columns;
``tables`` holds the SQL side (temporary staging tables, bulk writes, reading the store's
state), shared by PostgreSQL and SQLite.
"""

from syncengine.feeds.merge.vehicle_merge import MergeCounts, VehicleMerge

__all__ = ["MergeCounts", "VehicleMerge"]
