"""An in-process source and destination connector for runner tests.

A connection's ``config.dataset`` names a ``Dataset``: its entities' records (read in cursor
order, in batches, like the real connectors), failures to inject after a number of batches,
and a hook called before each batch is yielded (a test cancels a running job from there). As a
destination it keeps what was written. The real connectors are tested against real servers; this
one lets a test steer the runner's every branch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.choices import ConnectorCategory, SyncMode
from connectors.models import Connection
from connectors.registry import Connector, ConnectorError, EntitySpec, ReadBatch, TestResult
from syncengine.models import SyncJob
from syncengine.sync.runner import sync_job_run
from tests.factories import ConnectionFactory


@dataclass
class Dataset:
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=lambda: ["id"])
    cursor_field: str | None = "updated"
    # (batches to yield first, retryable) -> the next read raises ConnectorError, once.
    fail_after: tuple[int, bool] | None = None
    # Called before batch number n is read (before an injected failure of that batch).
    before_batch: Callable[[str, int], None] | None = None
    reads: list[dict[str, Any]] = field(default_factory=list)
    written: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


DATASETS: dict[str, Dataset] = {}


class MemoryConnector(Connector):
    id = "test_memory"
    name = "Test Memory"
    category = ConnectorCategory.API
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL, SyncMode.SNAPSHOT]
    config_properties = {"dataset": {"type": "string"}}
    config_required = ["dataset"]
    is_source = True
    is_destination = True
    # Records the date range it is given (``Dataset.reads``) for tests to check.
    filters_by_date = True

    @property
    def dataset(self) -> Dataset:
        return DATASETS[self.config["dataset"]]

    def test(self) -> TestResult:
        return TestResult(success=True, latency_ms=0, version="memory", permissions=["read"])

    def discover(self) -> list[EntitySpec]:
        data = self.dataset
        return [
            EntitySpec(name=name, primary_key=data.primary_key, cursor_field=data.cursor_field)
            for name in data.records
        ]

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        data = self.dataset
        data.reads.append({"entity": entity, "cursor": cursor, "dateRange": date_range})
        records = list(data.records[entity])
        field_name = data.cursor_field
        if field_name is not None:
            records.sort(key=lambda record: record[field_name])
            if cursor is not None:
                records = [record for record in records if record[field_name] > cursor]
        highest = cursor
        for number, start in enumerate(range(0, len(records), batch_size)):
            if data.before_batch is not None:
                data.before_batch(entity, number)
            if data.fail_after is not None and number == data.fail_after[0]:
                retryable = data.fail_after[1]
                data.fail_after = None
                raise ConnectorError("The source timed out.", retryable=retryable)
            batch = records[start : start + batch_size]
            if field_name is not None:
                highest = batch[-1][field_name]
            yield ReadBatch(records=[dict(record) for record in batch], cursor=highest)

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        self.dataset.written.setdefault(entity, []).extend(dict(record) for record in records)
        return len(records)


def connection_for(tenant, dataset: Dataset, name: str = "main") -> Connection:
    """A test_memory connection of the tenant reading ``dataset``."""
    DATASETS[name] = dataset
    return ConnectionFactory(
        account=tenant.account, connector_id="test_memory", config={"dataset": name}
    )


def customers(count: int, *, start: int = 1, day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": number,
            "name": f"Customer {number}",
            "updated": f"2025-01-{day:02d}T00:00:{number:02d}",
        }
        for number in range(start, start + count)
    ]


def run(job: SyncJob) -> SyncJob:
    """Run the job in this process, as the worker's task would, and reload it."""
    sync_job_run(job.pk)
    job.refresh_from_db()
    return job
