"""The Celery application: queues, routing by task module, and reliability defaults.

Every task is ``acks_late`` with ``reject_on_worker_lost``: a worker that dies mid-task leaves the
message on the broker for another worker, so tasks must be (and are) idempotent. The tasks that
run a job row are ``RunTask``s: one that cannot reach the database is retried, with a backoff.
"""

import os

from celery import Celery, Task
from django.db import InterfaceError, OperationalError
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = ("default", "ingest", "sync", "export", "webhooks")

# Routing by task module (glob patterns, first match wins).
TASK_ROUTES = {
    "sftpgateway.tasks.*": {"queue": "ingest"},
    "syncengine.tasks.ingest_*": {"queue": "ingest"},
    "syncengine.tasks.*": {"queue": "sync"},
    "connectors.tasks.*": {"queue": "sync"},
    "exports.tasks.*": {"queue": "export"},
    "webhooks.tasks.*": {"queue": "webhooks"},
    "*": {"queue": "default"},
}


class RunTask(Task):
    """A task that works a job row (``syncengine.jobs.lifecycle``). When it cannot reach the
    database (before or during its claim: a refused connection, a dropped one), nothing is written,
    so Celery sends it again after a growing, jittered delay (2 s doubling to 5 min), for as long
    as it takes, instead of acknowledging the message and leaving the run to the sweep, which
    could land on the same worker. Everything else a run meets is the lifecycle's to handle.

    A webhook endpoint's drain uses it too: its rows (the deliveries) are its outbox in the
    same way, and a drain that cannot reach the database has claimed nothing."""

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = None


app = Celery("railyard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes=TASK_ROUTES,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 2 * 60 * 60},
    timezone="UTC",
)
app.autodiscover_tasks()
