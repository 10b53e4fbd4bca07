"""The merge's statements against a store whose statistics describe another integration only.

PostgreSQL's planner trusts the vehicle table's statistics. Analysed while it held a first
integration's rows, they estimate a second integration's rows at 1, and a join between them and
an unindexed staging table can become a nested loop that scans the whole staging table once per
vehicle (minutes for a file of a few hundred thousand rows). These tests look at the plans the
merge's statements get in exactly that state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from tests.factories import IntegrationFactory
from tests.syncengine.feeds.merge.conftest import T0, car, frame

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plans are PostgreSQL's"),
]

ROWS = 3000


@pytest.fixture
def plans() -> Iterator[list[tuple[str, str]]]:
    """Every statement the merge runs against its staging tables, with the plan PostgreSQL
    chose for it (EXPLAIN run just before the statement, in the same transaction)."""
    seen: list[tuple[str, str]] = []

    def explain(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if (
            not many
            and "merge_rows_" in sql
            and sql.lstrip().upper().startswith(("INSERT", "UPDATE"))
        ):
            cursor = context["cursor"]
            cursor.execute("EXPLAIN " + sql, params)
            seen.append((sql, "\n".join(row[0] for row in cursor.fetchall())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield seen


def _scans_staging_per_outer_row(plan: str) -> bool:
    """A nested loop whose inner side is a sequential scan of a staging table."""
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        if "Nested Loop" not in line:
            continue
        depth = len(line) - len(line.lstrip())
        children = []
        for child in lines[number + 1 :]:
            child_depth = len(child) - len(child.lstrip())
            if child_depth <= depth:
                break
            if child.lstrip().startswith("->") and child_depth <= depth + 6:
                children.append(child)
        if len(children) >= 2 and re.search(r"Seq Scan on merge_(rows|absent)_", children[-1]):
            return True
    return False


def test_a_second_integration_is_merged_without_a_nested_scan_of_the_staging_table(
    merge_file, integration, tenant, plans
):
    # Given a vehicle table analysed while it held only another integration's vehicles
    merge_file(frame(car(f"A{number:07d}") for number in range(ROWS)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE syncengine_vehicle")
    second = IntegrationFactory(account=tenant.account, dealership=integration.dealership)

    # When the second integration loads a file, then a file that changes every vehicle, then a
    # file that lacks half of them, with no ANALYZE in between (autovacuum has not run)
    first = merge_file(
        frame(car(f"B{number:07d}") for number in range(ROWS)), target=second, track_history=True
    )
    changed = merge_file(
        frame(car(f"B{number:07d}", price=99) for number in range(ROWS)),
        target=second,
        now=T0.replace(hour=13),
        track_history=True,
    )
    shorter = merge_file(
        frame(car(f"B{number:07d}", price=99) for number in range(ROWS // 2)),
        target=second,
        now=T0.replace(hour=14),
        track_history=True,
    )

    # Then every vehicle was applied, and no statement scans a staging table per vehicle
    assert (first.created, changed.updated, shorter.unchanged) == (ROWS, ROWS, ROWS // 2)
    assert plans, "the merge ran no statement against its staging tables"
    hazards = [sql for sql, plan in plans if _scans_staging_per_outer_row(plan)]
    assert hazards == []


def test_statements_with_nothing_to_do_are_not_run(merge_file, integration, plans):
    rows = [car(f"C{number:07d}") for number in range(50)]
    merge_file(frame(rows))
    plans.clear()

    # When the same file comes again: nothing to insert, rewrite or reset
    again = merge_file(frame(rows), now=T0.replace(hour=13))

    assert again.unchanged == 50
    assert plans == []
