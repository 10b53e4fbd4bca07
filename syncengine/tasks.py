"""Thin Celery wrappers around the sync engine's services. Tasks take ids and are idempotent."""

from __future__ import annotations

from celery import shared_task

from syncengine import ingest


@shared_task(name="syncengine.tasks.ingest_feed_file")
def ingest_feed_file(feed_file_id: str) -> None:
    """Parse, map, validate and merge one received feed file (queue ``ingest``)."""
    ingest.feed_file_ingest(feed_file_id=feed_file_id)
