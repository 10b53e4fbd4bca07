"""Fixtures for the merge: frames that follow the parser's frame contract, and a merge runner."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone

from syncengine.feeds.merge import MergeCounts, VehicleMerge
from syncengine.feeds.vehicles import VEHICLE_FIELDS, Kind
from syncengine.models import FeedFile
from tests.factories import DealershipFactory, IntegrationFactory

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

_DTYPES: dict[Kind, str] = {
    Kind.INT: "Int64",
    Kind.MONEY: "Float64",
    Kind.BOOL: "boolean",
}


def car(key: str, **values: Any) -> dict[str, Any]:
    """One normalised row keyed ``key`` (a VIN): a complete vehicle, ``values`` overriding."""
    vin = key
    row: dict[str, Any] = {
        "key": key,
        "vin": vin,
        "stock_number": f"S{vin[-5:]}",
        "condition": "used",
        "year": 2021,
        "make": "Toyota",
        "model": "Camry",
        "trim": "SE",
        "body_style": "Sedan",
        "exterior_color": "Blue",
        "interior_color": None,
        "mileage": 31_250,
        "price": 23_995.0,
        "msrp": None,
        "invoice": None,
        "book_value": 21_000.5,
        "currency": None,
        "in_stock_date": "2026-02-14",
        "certified": False,
        "engine": "2.5L I4",
        "transmission": "Automatic",
        "drivetrain": "FWD",
        "fuel_type": "Gasoline",
        "doors": 4,
        "description": "One owner, clean history.",
        "features": ["Bluetooth", "Backup Camera"],
        "photo_urls": [f"https://img.example.com/{vin}/1.jpg"],
        "vdp_url": f"https://dealer.example.com/{vin}",
        "extra": {"Lot": "A"},
    }
    row.update(values)
    return row


def frame(rows: Iterable[dict[str, Any]], *, first_row: int = 1) -> pd.DataFrame:
    """A chunk of the frame contract: row_number, key, the canonical columns, extra."""
    rows = list(rows)
    columns: dict[str, Any] = {
        "row_number": pd.Series(range(first_row, first_row + len(rows)), dtype="int64"),
        "key": pd.Series([row["key"] for row in rows], dtype=object),
    }
    for field in VEHICLE_FIELDS.values():
        values = [row[field.column] for row in rows]
        columns[field.column] = pd.Series(values, dtype=_DTYPES.get(field.kind, "object"))
    columns["extra"] = pd.Series([row["extra"] for row in rows], dtype=object)
    return pd.DataFrame(columns)


@pytest.fixture(params=["copied in", "inserted by apply"])
def new_vehicles(request, monkeypatch):
    """The two ways new vehicles get into the store: copied in while they are staged (inside a
    transaction on PostgreSQL, as a file run does; tests run in one) and inserted by
    ``apply()`` (SQLite, or no transaction)."""
    if request.param == "inserted by apply":
        monkeypatch.setattr(
            VehicleMerge, "__init__", functools.partialmethod(VehicleMerge.__init__, direct=False)
        )
    elif connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's merges insert new vehicles in apply()")
    return request.param


@pytest.fixture
def integration(tenant, new_vehicles):
    dealership = DealershipFactory(account=tenant.account)
    return IntegrationFactory(account=tenant.account, dealership=dealership)


@pytest.fixture
def merge_file(integration):
    """Stage ``chunks`` (frames) as one file of ``integration`` and apply it at ``now``."""

    def _merge(
        chunks: pd.DataFrame | list[pd.DataFrame],
        *,
        now: datetime = T0,
        strategy: str = "merge",
        sold_grace_syncs: int = 2,
        sold_grace_hours: float = 0,
        track_history: bool = False,
        target=None,
    ) -> MergeCounts:
        target = target or integration
        feed_file = FeedFile.objects.create(
            account=target.account,
            integration=target,
            filename="inventory.csv",
            received_at=now,
        )
        merge = VehicleMerge(
            integration=target,
            feed_file=feed_file,
            strategy=strategy,
            sold_grace_syncs=sold_grace_syncs,
            sold_grace_hours=sold_grace_hours,
            track_history=track_history,
            now=now,
        )
        for chunk in chunks if isinstance(chunks, list) else [chunks]:
            merge.stage(chunk)
        return merge.apply()

    return _merge


@pytest.fixture
def frozen(time_machine):
    """Freeze the clock at T0; the test moves it with ``frozen.move_to``."""
    time_machine.move_to(T0, tick=False)
    assert timezone.now() == T0
    return time_machine
