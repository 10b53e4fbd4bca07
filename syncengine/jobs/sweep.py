"""The beat task that keeps every kind of run moving (every JOB_SWEEP_SECONDS): nothing stays
RUNNING after its worker is gone, nothing QUEUED is forgotten.

- A running run whose heartbeat is older than JOB_HEARTBEAT_TIMEOUT_SECONDS, or whose worker
  process is known to be gone from this machine, goes back to the queue (it resumes from its last
  committed batch; a file is applied again from the start, never half), or ends CANCELLED when a
  cancel was asked for, or FAILED after JOB_MAX_ATTEMPTS attempts.
- The first run waiting in an integration's or a connection's queue, due and free to start, whose
  task was never sent (the broker was down) or was sent more than JOB_REDISPATCH_AFTER_SECONDS
  ago, is sent again; running it twice is harmless, the claim is conditional. Runs behind it are
  left alone: they are sent, in order, as the ones before them end.

The transitions themselves are ``syncengine.jobs.lifecycle``'s.
"""

from __future__ import annotations

from datetime import datetime

from syncengine.jobs import lifecycle

SWEEP_LIMIT = 1000


def jobs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Take back runs of lost workers and re-send lost messages; what it did, counted."""
    return lifecycle.runs_recover(now=now, limit=SWEEP_LIMIT).as_dict()
