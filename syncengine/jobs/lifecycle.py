"""The lifecycle of a run: the one module that writes a SyncJob's status.

Every kind of run (a connector sync, a feed file's ingestion; exports and webhook deliveries
later) is a ``SyncJob`` row moved through the same states by the functions here. A kind supplies
only its work and the side effects particular to it (``RunKind``); the rest is shared:

    create     -> QUEUED      the row is committed, then its task is sent (the row is the outbox)
    claim      QUEUED -> RUNNING     attempts + 1: the fencing token of this claim
    heartbeat  RUNNING            a thread beats every JOB_HEARTBEAT_SECONDS
    checkpoint RUNNING            progress, stats, cursors; fenced
    finish     RUNNING -> COMPLETED | FAILED | CANCELLED   fenced, with the side effects
    requeue    RUNNING -> QUEUED  a retryable failure: back in the queue after a backoff
    release    RUNNING -> QUEUED  a lost worker (no heartbeat, or its process is gone)
    cancel     QUEUED -> CANCELLED at once; RUNNING: asked, it ends at its next checkpoint

The runs of one owner (an integration, a connection, or an export or a file import for its runs)
form a queue: at most one is RUNNING (partial unique indexes), and a run starts only when no
older run of its owner is still queued. A run that finds its owner busy stays QUEUED without a
message of its own; the run that ends sends the next one's task. So files of a feed apply in the
order they were received, and there is no polling loop. The sweep (``syncengine.jobs.sweep``)
only re-sends the first waiting run of an owner with nothing running, so it never starts a
second chain for a run that is merely waiting.

Fencing: ``attempts`` is the claim's token, and every write a run makes while RUNNING is
conditional on it (``Run.checkpoint``). A run whose claim was taken over writes nothing more: its
next checkpoint raises ``RunLost`` inside its batch's transaction, which rolls the batch back.
The final write of a run and its ending commit in one transaction that first locks the run's row
and checks the token, so a run is applied exactly once however many workers it passed through.

Takeover: a claim records its process (``claimant``). A task re-delivered after its worker died
(Celery re-delivers a killed child's task within a second) takes the run over at once when that
process is known to be gone from this machine; otherwise when the heartbeat is older than
JOB_HEARTBEAT_TIMEOUT_SECONDS. A worker starting, and the sweep, do the same for runs whose
worker is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db import connection as db_connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value, sql
from django.db.models.functions import Coalesce
from django.db.models.sql.constants import ROW_COUNT
from django.utils import timezone

from accounts.choices import EventType
from accounts.services import Actor, event_record
from config.api.errors import Conflict
from integrations.choices import IntegrationStatus
from integrations.models import Integration
from syncengine.choices import JobStatus
from syncengine.jobs import outcomes
from syncengine.models import SyncJob

logger = logging.getLogger(__name__)

LOG_LIMIT = 500
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
ENDED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# --- what a kind of run supplies --------------------------------------------------------------


class RunCancelled(Exception):
    """The run saw its cancel request at a checkpoint: it ends CANCELLED, keeping what it
    committed."""


class RunLost(Exception):
    """The run's claim is no longer its own (taken over after it stopped beating): it must
    stop writing. Raised inside a batch's transaction, it rolls the batch back."""


class RunFailure(Exception):
    """A failure the kind has put in words, and whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass
class Outcome:
    """How a run's work ended. ``commit``, when given, is the run's last write: the lifecycle
    runs it in the ending's transaction, after checking the claim is still this run's, so the
    work is applied exactly once (a file's merge). ``cleanup`` runs after the ending, whatever
    happened. ``detail`` is the kind's own, for its hooks."""

    status: str = JobStatus.COMPLETED
    error: str = ""
    message: str = ""
    stats: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    commit: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    detail: Any = None


@dataclass(frozen=True)
class Gate:
    """What a kind says before a queued run is claimed: start (the default), wait ``delay``
    (not an attempt), or end without starting."""

    wait: timedelta | None = None
    end: bool = False
    reason: str = ""
    counts_as_failure: bool = True


GO = Gate()


class RunKind:
    """A kind of run: its task, its work, and the side effects of its transitions that are its
    own. Every hook runs inside the transaction of the transition."""

    kind: str
    task: str  # the Celery task that executes a run of this kind, given the run's id
    # The events of the run's ending (written by ``_ended``, the one place for them).
    completed_event: str = EventType.SYNC_COMPLETED
    failed_event: str = EventType.SYNC_FAILED
    # The work and the ending share one transaction (on PostgreSQL): what the work writes is
    # seen by nobody until the run completes, and undone when it does not. The run's own
    # writes meanwhile (checkpoints) go through a second connection, so its progress and its
    # fencing stay visible to the API and to the sweep. For work that writes as it goes but
    # must apply all or nothing (a feed file's new vehicles, see ``VehicleMerge``).
    one_transaction: bool = False

    def gate(self, job: SyncJob, now: datetime) -> Gate:
        """Whether a queued run may be claimed now."""
        return GO

    def work(self, run: Run) -> Outcome:
        raise NotImplementedError

    def classify(self, error: Exception) -> RunFailure:
        """An unexpected exception of the work, in words; not retryable unless the kind knows."""
        return RunFailure(f"Unexpected error: {type(error).__name__}: {error}", retryable=False)

    def claimed(self, job: SyncJob) -> None:
        """The run was claimed (``job.attempts`` is the new token)."""

    def released(self, job: SyncJob) -> None:
        """The run went back to the queue (a retry, or its worker was lost)."""

    def ended(self, job: SyncJob, outcome: Outcome, status: str) -> None:
        """The run ends ``status``; the hook may fill ``outcome.stats`` and ``progress``."""

    def payload(self, job: SyncJob, outcome: Outcome, status: str) -> dict[str, Any]:
        """The payload of the run's ``integration.sync.completed|failed`` event."""
        payload: dict[str, Any] = {"jobId": str(job.pk), "mode": job.mode, "trigger": job.trigger}
        if job.integration_id and job.integration is not None:
            payload["integration"] = {"id": str(job.integration_id), "name": job.integration.name}
        if job.connection_id and job.connection is not None:
            payload["connection"] = {"id": str(job.connection_id), "name": job.connection.name}
        payload["status"] = status
        if outcome.error:
            payload["error"] = outcome.error
        if outcome.stats is not None:
            payload["stats"] = outcome.stats
        return payload

    def integration_error(self, job: SyncJob, outcome: Outcome) -> str:
        """What a failed run leaves as its integration's ``lastError``."""
        return outcome.error

    def event_integration_id(self, job: SyncJob) -> Any:
        """The integration the run's events are filed under (webhook subscriptions filter by
        it): the run's own by default."""
        return job.integration_id


_KINDS: dict[str, RunKind] = {}


def kind_register(kind: RunKind) -> RunKind:
    """Make a kind of run known (modules register theirs when imported, see ``apps.py``)."""
    _KINDS[kind.kind] = kind
    return kind


def kind_of(job: SyncJob) -> RunKind:
    try:
        return _KINDS[job.kind]
    except KeyError:
        raise LookupError(f"No kind of run {job.kind!r} is registered.") from None


# --- the job log ------------------------------------------------------------------------------


def job_log(
    job: SyncJob, message: str, *, level: str = "info", save: bool = True, fresh: bool = False
) -> None:
    """Append a line to the job's log (kept to the last LOG_LIMIT lines).

    Several processes write to one log (the runner, a cancel request, the sweep), so ``save``
    appends to the stored lines under a row lock, and ``fresh`` starts from the stored lines when
    the caller saves the row itself."""
    line = {"at": timezone.now().isoformat(), "level": level, "message": message}
    if not save:
        if fresh:
            job.log = SyncJob.objects.filter(pk=job.pk).values_list("log", flat=True).first() or []
        job.log = [*job.log[-(LOG_LIMIT - 1) :], line]
        return
    with transaction.atomic():
        stored = (
            SyncJob.objects.select_for_update()
            .filter(pk=job.pk)
            .values_list("log", flat=True)
            .first()
        )
        job.log = [*(stored or [])[-(LOG_LIMIT - 1) :], line]
        SyncJob.objects.filter(pk=job.pk).update(log=job.log)


def log_line(message: str, *, level: str = "info") -> dict[str, str]:
    """A log line for a job not saved yet."""
    return {"at": timezone.now().isoformat(), "level": level, "message": message}


# --- owners and their queue -------------------------------------------------------------------


def _owner(job: SyncJob) -> dict[str, Any]:
    """The filter of the runs that share ``job``'s queue: an export's or a file import's runs
    (which belong to no integration or connection, so they neither wait for nor hold up their
    feeds and syncs), else its integration's, else its connection's own (a connection's runs
    have no integration)."""
    if job.export_id is not None:
        return {"export_id": job.export_id}
    if job.file_import_id is not None:
        return {"file_import_id": job.file_import_id}
    if job.integration_id is not None:
        return {"integration_id": job.integration_id}
    return {"integration_id": None, "connection_id": job.connection_id}


def _older(job: SyncJob) -> Q:
    """Runs created before ``job`` (ties broken by id): ahead of it in its owner's queue."""
    return Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, pk__lt=job.pk)


def _ahead(job: SyncJob) -> QuerySet[SyncJob]:
    """The runs ``job`` waits for: its owner's running run, and its owner's older queued runs."""
    owner = SyncJob.objects.filter(**_owner(job)).exclude(pk=job.pk)
    return owner.filter(
        Q(status=JobStatus.RUNNING) | (Q(status=JobStatus.QUEUED) & _older(job))
    ).order_by("created_at", "pk")


def due(now: datetime) -> Q:
    """Queued runs whose backoff, if any, is over."""
    return Q(status=JobStatus.QUEUED) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def active_job(
    *,
    integration: Integration | None = None,
    connection: Any = None,
    export: Any = None,
    file_import: Any = None,
) -> SyncJob | None:
    """The oldest queued or running run of an integration, a connection, an export or a file
    import, if there is one."""
    jobs = SyncJob.objects.filter(status__in=ACTIVE_STATUSES)
    if integration is not None:
        jobs = jobs.filter(integration=integration)
    if connection is not None:
        jobs = jobs.filter(connection=connection)
    if export is not None:
        jobs = jobs.filter(export=export)
    if file_import is not None:
        jobs = jobs.filter(file_import=file_import)
    return jobs.order_by("created_at", "pk").first()


# --- creating and dispatching -----------------------------------------------------------------


def run_create(*, kind: str, message: str = "", dispatch: bool = True, **fields: Any) -> SyncJob:
    """Create a QUEUED run of ``kind``; its task is sent once the caller's transaction commits
    (``dispatch=False``: the caller sends it).

    ``fields`` are the row's (account, integration or connection, trigger, mode, ...)."""
    log = [log_line(message)] if message else []
    job = SyncJob.objects.create(kind=kind, status=JobStatus.QUEUED, log=log, **fields)
    if dispatch:
        transaction.on_commit(lambda: runs_dispatch([job.pk]), robust=True)
    return job


def runs_create(jobs: list[SyncJob]) -> list[SyncJob]:
    """Create many QUEUED runs at once (the scheduler's); their tasks are sent on commit."""
    for job in jobs:
        job.status = JobStatus.QUEUED
    SyncJob.objects.bulk_create(jobs)
    if jobs:
        ids = [job.pk for job in jobs]
        transaction.on_commit(lambda: runs_dispatch(ids), robust=True)
    return jobs


def runs_dispatch(job_ids: Iterable[uuid.UUID | str], *, countdown: float | None = None) -> int:
    """Send the tasks of committed runs; returns how many were sent. A broker failure is
    logged, not raised: the rows are committed, and the sweep sends them again."""
    from config.celery import app

    ids = [str(job_id) for job_id in job_ids]
    if not ids:
        return 0
    kinds = dict(SyncJob.objects.filter(pk__in=ids).values_list("pk", "kind"))
    sent: list[str] = []
    try:
        # One producer (one broker connection) for the batch: acquiring one per message costs
        # about a third of each send.
        with app.producer_or_acquire() as producer:
            for job_id in ids:
                kind = kinds.get(uuid.UUID(job_id))
                if kind is None:
                    continue
                app.send_task(
                    _KINDS[kind].task, (job_id,), countdown=countdown or 0, producer=producer
                )
                sent.append(job_id)
    except Exception:
        logger.exception(
            "Could not send the tasks of runs after %d sent; the sweep will", len(sent)
        )
    if sent:
        # For a countdown, when the task is due: the sweep gives a message that long, plus
        # JOB_REDISPATCH_AFTER_SECONDS, before it counts it as lost.
        at = timezone.now() + timedelta(seconds=countdown or 0)
        SyncJob.objects.filter(pk__in=sent).update(dispatched_at=at)
    return len(sent)


def _next_dispatch(owner: dict[str, Any]) -> None:
    """Send the task of the first run waiting in ``owner``'s queue (after a run of the owner
    ended), if it is due, nothing of the owner runs, and it has no message on its way: its last
    one was spent waiting (``_wait``), never sent, or sent so long ago that it counts as lost."""
    now = timezone.now()
    runs = SyncJob.objects.filter(**owner)
    if runs.filter(status=JobStatus.RUNNING).exists():
        return
    head = runs.filter(status=JobStatus.QUEUED).order_by("created_at", "pk").first()
    if head is None or (head.next_attempt_at is not None and head.next_attempt_at > now):
        return
    quiet = now - timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS)
    if head.dispatched_at is None or head.dispatched_at < quiet:
        runs_dispatch([head.pk])


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff before attempt ``attempt + 1``: base * 2 ** (attempt - 1), capped."""
    seconds = settings.JOB_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempt - 1)
    return timedelta(seconds=min(seconds, settings.JOB_RETRY_BACKOFF_MAX_SECONDS))


# --- who holds a claim ------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _start_ticks(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, None if there is none."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The second field (the command) is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[-1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


@cache
def _machine() -> dict[str, str]:
    """What tells this machine and pid namespace apart: the kernel's boot id (a container
    shares its host's) and the pid namespace (which containers do not share). Empty where
    there is no /proc: there, no claim is ever judged gone by its process."""
    boot = _read("/proc/sys/kernel/random/boot_id").strip()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return {"boot": boot, "pidns": namespace} if boot and namespace else {}


def claimant_me() -> dict[str, Any]:
    """This process, as a claim records it."""
    pid = os.getpid()
    me: dict[str, Any] = {"host": socket.gethostname(), "pid": pid}
    ticks = _start_ticks(pid)
    if ticks is not None:
        me["started"] = ticks[1]
    me.update(_machine())
    return me


# Runs this process is executing right now: a claim of this very process on any other run was
# left behind by a task that ended without ending its run (say the database was unreachable).
_executing: set[str] = set()
_executing_lock = threading.Lock()


def claimant_gone(claimant: dict[str, Any] | None, *, job_id: Any) -> bool:
    """Whether the process holding a claim is known to be gone: it ran on this machine, in
    this pid namespace, and no process with its pid and start time lives; or it is this very
    process, which is not executing the run. Unknown (another machine, no /proc): False, and
    the heartbeat timeout decides."""
    if not claimant:
        return False
    machine = _machine()
    if not machine or any(claimant.get(key) != value for key, value in machine.items()):
        return False
    pid = claimant.get("pid")
    if not isinstance(pid, int):
        return False
    me = claimant_me()
    if pid == me["pid"] and claimant.get("started") == me.get("started"):
        with _executing_lock:
            return str(job_id) not in _executing
    ticks = _start_ticks(pid)
    # A zombie is a process that has ended and is waiting to be reaped.
    return ticks is None or ticks[0] == "Z" or ticks[1] != claimant.get("started")


def _abandoned(job: SyncJob, now: datetime) -> str | None:
    """Why a RUNNING run is no longer worked on, or None while it may still be."""
    if claimant_gone(job.claimant, job_id=job.pk):
        host = (job.claimant or {}).get("host", "?")
        pid = (job.claimant or {}).get("pid", "?")
        return f"Its worker process ({host}, pid {pid}) is gone."
    timeout = timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    if job.heartbeat_at is None or job.heartbeat_at <= now - timeout:
        silent = int((now - (job.heartbeat_at or job.started_at or job.created_at)).total_seconds())
        return f"Its worker stopped answering (no heartbeat for {silent} s)."
    return None


# --- the run handle given to a kind's work ----------------------------------------------------


class Run:
    """A claimed run, as its work sees it. Every write is fenced by the claim's token."""

    def __init__(self, job: SyncJob, kind: RunKind) -> None:
        self.job = job
        self.kind = kind
        self.token = job.attempts
        # The connection of the run's own writes while its work holds a transaction open on
        # the default one (``RunKind.one_transaction``); None: the default connection.
        self.side: BaseDatabaseWrapper | None = None

    def _mine(self) -> QuerySet[SyncJob]:
        return SyncJob.objects.filter(pk=self.job.pk, attempts=self.token, status=JobStatus.RUNNING)

    def _update_mine(self, **values: Any) -> int:
        """Update the run's row if the claim is still this run's; the rows updated (0 or 1)."""
        mine = self._mine()
        if self.side is None:
            return mine.update(**values)
        query = mine.query.chain(sql.UpdateQuery)
        assert isinstance(query, sql.UpdateQuery)
        query.add_update_values(values)
        rows: int = query.get_compiler(connection=self.side).execute_sql(ROW_COUNT)
        return rows

    def checkpoint(self, **fields: Any) -> None:
        """Save progress (stats, progress, cursors, ...) with a heartbeat. Raises ``RunLost``
        when the claim is no longer this run's; inside a batch's transaction, that rolls the
        batch back, so what a run says it did is what was committed."""
        for name, value in fields.items():
            setattr(self.job, name, value)
        if not self._update_mine(heartbeat_at=timezone.now(), **fields):
            raise RunLost("The run's claim was taken over; it stops here.")

    def beat(self) -> None:
        """Only say the run is alive (the heartbeat thread; a wait on a slow source)."""
        self._mine().update(heartbeat_at=timezone.now())

    def cancel_requested(self) -> bool:
        asked = SyncJob.objects.filter(pk=self.job.pk, cancel_requested_at__isnull=False)
        if self.side is None:
            return asked.exists()
        # Not on the default connection, which may be busy with the work's writes.
        return bool(asked.query.exists().get_compiler(connection=self.side).has_results())

    def stop_if_cancelled(self) -> None:
        if self.cancel_requested():
            raise RunCancelled()

    def log(self, message: str, *, level: str = "info") -> None:
        job_log(self.job, message, level=level)


@contextlib.contextmanager
def _heartbeats(run: Run) -> Iterator[None]:
    """Beat from a thread while the run works: one step can take longer than the heartbeat
    timeout (a source sorting a large table before its first row, a slow destination, a large
    chunk of a file), and a live run must not be taken over. A worker that dies stops beating;
    a hung run is ended by the task time limit."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    run.beat()
                except Exception:
                    logger.warning("Heartbeat of run %s failed", run.job.pk, exc_info=True)
        finally:
            db_connection.close()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"railyard-heartbeat-{run.job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- transitions ------------------------------------------------------------------------------


def _integration_running(job: SyncJob) -> None:
    if job.integration_id is not None:
        Integration.all_objects.filter(pk=job.integration_id).update(
            status=IntegrationStatus.RUNNING, latest_job_id=job.pk
        )


def _claim(job: SyncJob, kind: RunKind) -> str:
    """QUEUED -> RUNNING, if ``job`` is the first of its owner's queue and nothing of its owner
    runs: "claimed", "waiting" (its turn has not come) or "gone" (not queued any more)."""
    now = timezone.now()
    ahead = SyncJob.objects.filter(**_owner(job), status=JobStatus.QUEUED).filter(_older(job))
    try:
        with transaction.atomic():
            claimed = (
                SyncJob.objects.filter(
                    pk=job.pk, status=JobStatus.QUEUED, cancel_requested_at__isnull=True
                )
                .filter(~Exists(ahead))
                .update(
                    status=JobStatus.RUNNING,
                    attempts=F("attempts") + 1,
                    # The run started with its first attempt; retries keep that time.
                    started_at=Coalesce(F("started_at"), Value(now)),
                    heartbeat_at=now,
                    claimant=claimant_me(),
                    next_attempt_at=None,
                )
            )
            if claimed:
                job.refresh_from_db()
                _integration_running(job)
                kind.claimed(job)
    except IntegrityError:
        # The partial unique index: another run of the owner is RUNNING.
        return "waiting"
    if claimed:
        return "claimed"
    current = SyncJob.objects.filter(pk=job.pk).values_list("status", "cancel_requested_at").first()
    if current is not None and current[0] == JobStatus.QUEUED and current[1] is None:
        return "waiting"
    return "gone"


def _wait(job: SyncJob) -> None:
    """The run's owner is busy: it stays QUEUED, and this task's message is spent, so the run
    has none on its way; the ending of the run before it sends one. The reason is logged once.

    The order matters: the run is marked as having no message first, then the runs ahead are
    looked at. An ending that commits after that look sees the mark and sends; one that
    committed before it leaves nothing ahead, and this run is sent from here."""
    SyncJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(dispatched_at=None)
    blocker = _ahead(job).first()
    if blocker is None:
        _next_dispatch(_owner(job))
        return
    owner = (
        "export"
        if job.export_id
        else "file import"
        if job.file_import_id
        else "integration"
        if job.integration_id
        else "connection"
    )
    if blocker.status == JobStatus.RUNNING:
        message = (
            f"Another job of this {owner} is running ({blocker.pk}); this one waits its turn "
            "and starts when that one ends."
        )
    else:
        message = (
            f"An earlier job of this {owner} is queued ({blocker.pk}); this one waits its "
            "turn, in the order the jobs were created."
        )
    last = job.log[-1]["message"] if job.log else None
    if last != message:
        job_log(job, message)


def _requeue_queued(job: SyncJob, *, delay: timedelta, message: str) -> None:
    """A queued run that must wait ``delay`` before its claim (import dependencies): the same
    single chain goes on, with a countdown."""
    job_log(job, message, save=False, fresh=True)
    waiting = SyncJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        next_attempt_at=timezone.now() + delay, log=job.log
    )
    if waiting:
        runs_dispatch([job.pk], countdown=delay.total_seconds())


def _end(
    job: SyncJob,
    kind: RunKind,
    outcome: Outcome,
    *,
    held: Q,
    counts_as_failure: bool = True,
) -> SyncJob | None:
    """End a run that is still as ``held`` says (QUEUED, or RUNNING with its token): its row,
    its work's last write (``outcome.commit``) and every side effect in one transaction.
    Returns the ended row, or None when the run had moved on."""
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = (
                SyncJob.objects.select_for_update(of=("self",))
                .select_related("account", "integration", "connection")
                .filter(held)
                .first()
            )
            if locked is None:
                return None
            status = outcome.status
            if status == JobStatus.COMPLETED and locked.cancel_requested_at is not None:
                if kind.one_transaction and outcome.commit is not None:
                    # The work's writes are in this transaction, and its cleanup undoes them
                    # along with whatever this ending wrote: end it afresh, after the rollback.
                    raise RunCancelled()
                # A cancel accepted after the last checkpoint still ends the run CANCELLED.
                status = JobStatus.CANCELLED
                outcome.message = "Cancelled; what was committed before is kept."
            if status == JobStatus.COMPLETED and outcome.commit is not None:
                outcome.commit()
            kind.ended(locked, outcome, status)
            error = outcome.error if status == JobStatus.FAILED else ""
            job_log(
                locked,
                error or outcome.message or f"Job {status.lower()}.",
                level="error" if error else "info",
                save=False,
            )
            changes: dict[str, Any] = {
                "status": status,
                "error": error,
                "completed_at": now,
                "next_attempt_at": None,
                "claimant": None,
                "log": locked.log,
            }
            if outcome.stats is not None:
                changes["stats"] = outcome.stats
            if outcome.progress is not None:
                changes["progress"] = outcome.progress
            SyncJob.objects.filter(pk=locked.pk).update(**changes)
            for name, value in changes.items():
                setattr(locked, name, value)
            _ended(locked, kind, outcome, status=status, counts_as_failure=counts_as_failure)
            transaction.on_commit(lambda: _next_dispatch(_owner(locked)), robust=True)
    finally:
        if outcome.cleanup is not None:
            outcome.cleanup()
    return locked


def _ended(
    job: SyncJob, kind: RunKind, outcome: Outcome, *, status: str, counts_as_failure: bool
) -> None:
    """What an ending leaves on the run's integration, and its event."""
    if job.integration_id is not None:
        if status == JobStatus.COMPLETED:
            outcomes.integration_run_succeeded(
                integration_id=job.integration_id, now=timezone.now()
            )
        elif status == JobStatus.FAILED and counts_as_failure:
            outcomes.integration_run_failed(
                integration_id=job.integration_id, error=kind.integration_error(job, outcome)
            )
        else:
            outcomes.integration_run_stopped(integration_id=job.integration_id)
            if status == JobStatus.FAILED:
                Integration.all_objects.filter(pk=job.integration_id).update(
                    last_error=outcome.error
                )
    if status in (JobStatus.COMPLETED, JobStatus.FAILED):
        event_record(
            account=job.account,
            type=kind.completed_event if status == JobStatus.COMPLETED else kind.failed_event,
            integration_id=kind.event_integration_id(job),
            payload=kind.payload(job, outcome, status),
        )


def _mine(job: SyncJob, token: int) -> Q:
    return Q(pk=job.pk, status=JobStatus.RUNNING, attempts=token)


def _requeue(run: Run, *, delay: timedelta, message: str, error: str) -> SyncJob | None:
    """RUNNING -> QUEUED after a retryable failure, to start again after ``delay``. A run whose
    cancel was asked for meanwhile ends CANCELLED instead."""
    job = run.job
    with transaction.atomic():
        locked = SyncJob.objects.select_for_update().filter(_mine(job, run.token)).first()
        if locked is None:
            return None
        if locked.cancel_requested_at is not None:
            requeued = False
        else:
            job_log(locked, message, level="warning", save=False)
            SyncJob.objects.filter(pk=locked.pk).update(
                status=JobStatus.QUEUED,
                next_attempt_at=timezone.now() + delay,
                heartbeat_at=None,
                claimant=None,
                error=error,
                log=locked.log,
            )
            locked.status = JobStatus.QUEUED
            run.kind.released(locked)
            requeued = True
    if not requeued:
        return _end(
            job,
            run.kind,
            Outcome(status=JobStatus.CANCELLED, message="Cancelled; committed batches are kept."),
            held=_mine(job, run.token),
        )
    runs_dispatch([job.pk], countdown=delay.total_seconds())
    return locked


def run_release(job: SyncJob, *, now: datetime | None = None) -> str | None:
    """Take back a RUNNING run whose worker is lost (``_abandoned``): QUEUED to start again at
    once, or CANCELLED when a cancel was asked for, or FAILED once it has had JOB_MAX_ATTEMPTS
    attempts. Returns "requeued", "cancelled" or "failed", or None when the run is alive or
    has moved on (a row locked by its own ending is left alone)."""
    now = now or timezone.now()
    kind = kind_of(job)
    with transaction.atomic():
        locked = (
            SyncJob.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("account", "integration", "connection")
            .filter(pk=job.pk, status=JobStatus.RUNNING)
            .first()
        )
        if locked is None:
            return None
        reason = _abandoned(locked, now)
        if reason is None:
            return None
        held = _mine(locked, locked.attempts)
        if locked.cancel_requested_at is not None:
            _end(
                locked,
                kind,
                Outcome(status=JobStatus.CANCELLED, message=f"{reason} It was being cancelled."),
                held=held,
            )
            return "cancelled"
        if locked.attempts >= settings.JOB_MAX_ATTEMPTS:
            _end(
                locked,
                kind,
                Outcome(
                    status=JobStatus.FAILED,
                    error=f"{reason} Gave up after {locked.attempts} attempts.",
                ),
                held=held,
            )
            return "failed"
        job_log(
            locked,
            f"{reason} Queued again; it starts over from its last committed batch.",
            level="warning",
            save=False,
        )
        SyncJob.objects.filter(pk=locked.pk).update(
            status=JobStatus.QUEUED,
            next_attempt_at=now,
            heartbeat_at=None,
            claimant=None,
            log=locked.log,
        )
        locked.status = JobStatus.QUEUED
        kind.released(locked)
    return "requeued"


def run_cancel(*, job: SyncJob, actor: Actor) -> SyncJob:
    """Cancel a run: a queued one never starts; a running one stops at its next checkpoint,
    keeps what it committed and ends CANCELLED. Cancelling a cancelled run changes nothing; an
    ended one is a ``Conflict``."""
    now = timezone.now()
    who = actor.name or actor.type
    with transaction.atomic():
        locked = SyncJob.objects.select_for_update().get(pk=job.pk)
        if locked.status == JobStatus.CANCELLED:
            return locked
        if locked.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            raise Conflict(
                f"The job already ended {locked.status}; there is nothing to cancel.",
                details={"status": [locked.status]},
            )
        if locked.cancel_requested_at is None:
            SyncJob.objects.filter(pk=locked.pk).update(cancel_requested_at=now)
        if locked.status == JobStatus.QUEUED:
            _end(
                locked,
                kind_of(locked),
                Outcome(
                    status=JobStatus.CANCELLED, message=f"Cancelled by {who} before it started."
                ),
                held=Q(pk=locked.pk, status=JobStatus.QUEUED),
            )
        elif locked.cancel_requested_at is None:
            job_log(locked, f"Cancel requested by {who}; stopping at its next checkpoint.")
    return SyncJob.objects.get(pk=job.pk)


# --- executing a run (the body of every run's task) -------------------------------------------


def run_execute(job_id: Any, *, redelivered: bool = False) -> SyncJob | None:
    """Start a queued run, or take over an abandoned one, and work it to its end (or back into
    the queue). Idempotent: a run that ended, that another worker is working on, or whose turn
    has not come is left alone. ``redelivered``: the broker delivers this task again because
    the worker that had it died before acknowledging it."""
    job = SyncJob.objects.select_related("account", "integration", "connection").filter(pk=job_id)
    current = job.first()
    if current is None or current.status in ENDED_STATUSES:
        return current
    kind = kind_of(current)
    now = timezone.now()
    if current.status == JobStatus.RUNNING:
        if _abandoned(current, now) is None:
            if redelivered:
                # Its worker may be gone without this machine being able to tell (another
                # host): look again once its heartbeat would be stale.
                assert current.heartbeat_at is not None  # _abandoned says so
                timeout = timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
                wait = (current.heartbeat_at + timeout - now).total_seconds() + 1
                runs_dispatch([current.pk], countdown=max(1.0, wait))
            return current
        if run_release(current, now=now) != "requeued":
            return job.first()
        current = job.first()
        if current is None or current.status != JobStatus.QUEUED:
            return current
    return _start(current, kind)


def _start(job: SyncJob, kind: RunKind) -> SyncJob | None:
    now = timezone.now()
    if job.cancel_requested_at is not None:
        _end(
            job,
            kind,
            Outcome(status=JobStatus.CANCELLED, message="Cancelled before it started."),
            held=Q(pk=job.pk, status=JobStatus.QUEUED),
        )
        return _reload(job)
    if job.next_attempt_at is not None and job.next_attempt_at > now + timedelta(seconds=1):
        # Arrived before its backoff ran out: the same chain goes on.
        runs_dispatch([job.pk], countdown=(job.next_attempt_at - now).total_seconds())
        return job
    if _ahead(job).exists():
        _wait(job)
        return job
    gate = kind.gate(job, now)
    if gate.end:
        _end(
            job,
            kind,
            Outcome(status=JobStatus.FAILED, error=gate.reason),
            held=Q(pk=job.pk, status=JobStatus.QUEUED),
            counts_as_failure=gate.counts_as_failure,
        )
        return _reload(job)
    if gate.wait is not None:
        _requeue_queued(job, delay=gate.wait, message=gate.reason)
        return _reload(job)
    claim = _claim(job, kind)
    if claim == "waiting":
        _wait(job)
        return job
    if claim == "gone":
        return _reload(job)
    return _work(job, kind)


def _reload(job: SyncJob) -> SyncJob | None:
    return (
        SyncJob.objects.select_related("account", "integration", "connection")
        .filter(pk=job.pk)
        .first()
    )


def _work(job: SyncJob, kind: RunKind) -> SyncJob | None:
    run = Run(job, kind)
    key = str(job.pk)
    with _executing_lock:
        _executing.add(key)
    try:
        with _heartbeats(run):
            job_log(job, f"Attempt {job.attempts} started.")
            try:
                with _one_transaction(run):
                    outcome = kind.work(run)
                    _end(job, kind, outcome, held=_mine(job, run.token))
            except RunCancelled:
                message = (
                    "Cancelled; nothing of it was applied."
                    if kind.one_transaction
                    else "Cancelled between batches; committed batches are kept."
                )
                _end(
                    job,
                    kind,
                    Outcome(status=JobStatus.CANCELLED, message=message),
                    held=_mine(job, run.token),
                )
            except RunLost as lost:
                job_log(job, str(lost), level="warning")
            except Exception as error:  # every failure ends the run or puts it back
                _failed(run, _failure(kind, error))
    finally:
        with _executing_lock:
            _executing.discard(key)
    return _reload(job)


@contextlib.contextmanager
def _one_transaction(run: Run) -> Iterator[None]:
    """The transaction of a ``one_transaction`` kind's work and ending, with the run's second
    connection; nothing for other kinds, on SQLite (one writer: the second connection would
    wait for the first), or when the caller already holds a transaction."""
    if (
        not run.kind.one_transaction
        or db_connection.vendor != "postgresql"
        or db_connection.in_atomic_block
    ):
        yield
        return
    run.side = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with transaction.atomic():
            yield
    finally:
        side, run.side = run.side, None
        side.close()


def _failure(kind: RunKind, error: Exception) -> RunFailure:
    if isinstance(error, RunFailure):
        return error
    if isinstance(error, SoftTimeLimitExceeded):
        return RunFailure("The run reached the task time limit.", retryable=True)
    if isinstance(error, (IntegrityError, OperationalError, InterfaceError)):
        # The database: a lost connection, a lock timeout, a clash with a run that was taken
        # over while it still wrote. All pass; the retry resumes from the last commit.
        logger.warning("Run failed on a database error", exc_info=True)
        if isinstance(error, (OperationalError, InterfaceError)):
            # The connection may be unusable: a fresh one for the ending, or the ending fails
            # too and the task is retried (config.celery.RunTask), which takes the run over.
            with contextlib.suppress(DatabaseError):
                db_connection.close_if_unusable_or_obsolete()
        return RunFailure(f"Database error: {type(error).__name__}: {error}", retryable=True)
    logger.exception("Run failed")
    return kind.classify(error)


def _failed(run: Run, failure: RunFailure) -> None:
    """Requeue a retryable failure with a backoff while attempts remain; otherwise end FAILED."""
    job = run.job
    if failure.retryable and run.token < settings.JOB_MAX_ATTEMPTS:
        delay = retry_delay(run.token)
        _requeue(
            run,
            delay=delay,
            error=failure.message,
            message=(
                f"Attempt {run.token} of {settings.JOB_MAX_ATTEMPTS} failed: {failure.message} "
                f"Retrying in {int(delay.total_seconds())} s from the last committed batch."
            ),
        )
        return
    error = failure.message
    if failure.retryable:
        error = f"{error} (gave up after {run.token} attempts)"
    _end(job, run.kind, Outcome(status=JobStatus.FAILED, error=error), held=_mine(job, run.token))


# --- recovery: lost workers and lost messages -------------------------------------------------


@dataclass
class SweepCounts:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0
    redispatched: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requeued": self.requeued,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "redispatched": self.redispatched,
        }


def runs_recover(*, now: datetime | None = None, limit: int = 1000) -> SweepCounts:
    """Take back the running runs whose worker is lost: stale heartbeats, and claims of
    processes known to be gone from this machine. Then send the first waiting run of each owner
    that is due and free to start and has had no message for JOB_REDISPATCH_AFTER_SECONDS (or
    never had one): only the first, so a run waiting its turn is never sent on its own."""
    now = now or timezone.now()
    counts = SweepCounts()
    stale_before = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    running = SyncJob.objects.filter(status=JobStatus.RUNNING).only(
        "pk", "heartbeat_at", "claimant", "kind"
    )
    machine = _machine()
    candidates = list(running.filter(heartbeat_at__lt=stale_before)[:limit])
    if machine:
        # The claims of this machine: a gone process needs no timeout.
        local = running.filter(claimant__boot=machine["boot"], heartbeat_at__gte=stale_before)
        candidates += [job for job in local[:limit] if claimant_gone(job.claimant, job_id=job.pk)]
    requeued: list[uuid.UUID] = []
    for job in candidates:
        outcome = run_release(job, now=now)
        if outcome is not None:
            setattr(counts, outcome, getattr(counts, outcome) + 1)
        if outcome == "requeued":
            requeued.append(job.pk)
    # A run taken back is the first of its owner's queue (it was running): it goes at once.
    runs_dispatch(requeued)
    sent = set(requeued)
    heads = [pk for pk in _heads_to_send(now, limit=limit) if pk not in sent]
    counts.redispatched = runs_dispatch(heads)
    return counts


def _heads_to_send(now: datetime, *, limit: int) -> list[uuid.UUID]:
    """The first run of each owner's queue that is due, has nothing of its owner running, and
    had no message for JOB_REDISPATCH_AFTER_SECONDS (or never had one)."""
    quiet = now - timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS)
    heads: list[uuid.UUID] = []
    for column in ("integration_id", "connection_id", "export_id", "file_import_id"):
        queued = SyncJob.objects.filter(due(now)).filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=quiet)
        )
        owner: dict[str, Any] = {column: OuterRef(column)}
        if column == "integration_id":
            queued = queued.filter(integration_id__isnull=False)
        elif column in ("export_id", "file_import_id"):
            queued = queued.filter(**{f"{column}__isnull": False})
        else:
            queued = queued.filter(integration_id__isnull=True, connection_id__isnull=False)
            owner["integration_id__isnull"] = True
        older = SyncJob.objects.filter(status=JobStatus.QUEUED, **owner).filter(
            Q(created_at__lt=OuterRef("created_at"))
            | Q(created_at=OuterRef("created_at"), pk__lt=OuterRef("pk"))
        )
        busy = SyncJob.objects.filter(status=JobStatus.RUNNING, **owner)
        heads += (
            queued.filter(~Exists(older), ~Exists(busy))
            .order_by("created_at")
            .values_list("pk", flat=True)[:limit]
        )
    return heads


def runs_recover_local() -> None:
    """A worker starting: runs whose worker process on this machine is gone are taken back and
    sent at once, rather than after the heartbeat timeout (a worker killed and restarted)."""
    try:
        runs_recover()
    except DatabaseError:
        logger.warning("Could not look for runs left by a dead worker", exc_info=True)
    finally:
        db_connection.close()
