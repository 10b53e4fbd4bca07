"""Connector syncs, a kind of run (``syncengine.jobs.lifecycle``): read a source connector entity by
entity, batch by batch, into the record store (or a snapshot), and forward what changed to a
destination connector.

The lifecycle claims, beats, fences, retries and ends the run; this module is its work. Each batch
is committed together with its cursor and the run's checkpoint, so a retry resumes after the last
committed batch, and a cancel or a lost worker never undoes what was committed. The source's read
and the destination's write happen outside any database transaction: a batch is read, its changes
are worked out against the store, sent to the destination, and only then committed, so a slow
source or destination holds no lock and no open transaction, and a batch the destination did not
take is not recorded as done. Retryable connector errors (timeouts, 5xx, 429) put the run back in
the queue with an exponential backoff; others fail it at once.
"""

from syncengine.sync.runner.kind import SYNC_RUNS, SyncRuns, sync_job_run

__all__ = ["SYNC_RUNS", "SyncRuns", "sync_job_run"]
