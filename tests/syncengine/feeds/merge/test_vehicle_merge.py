"""The merge of a file's rows into the vehicle store: creates, updates, unchanged rows, repeats,
counts, isolation, discarding and atomicity."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from syncengine.feeds.merge import MergeCounts, VehicleMerge
from syncengine.feeds.merge.tables import MergeTables
from syncengine.models import Vehicle, VehicleVersion
from tests.factories import IntegrationFactory
from tests.syncengine.feeds.merge.conftest import T0, car, frame

VIN_A = "1HGCM82633A000001"
VIN_B = "1HGCM82633A000002"
VIN_C = "1HGCM82633A000003"


def _snapshot(integration) -> list[Any]:
    return list(Vehicle.objects.filter(integration=integration).order_by("key").values())


def _merge(integration, **overrides) -> VehicleMerge:
    options = {
        "integration": integration,
        "feed_file": None,
        "strategy": "merge",
        "sold_grace_syncs": 2,
        "sold_grace_hours": 0,
        "track_history": True,
        "now": T0,
    }
    options.update(overrides)
    return VehicleMerge(**options)


def test_first_load_creates_every_vehicle_with_its_values(merge_file, integration):
    # Given an empty store and a file of two vehicles
    rows = [
        car(VIN_A, price=23_995.5, certified=True, extra={"Lot": "B", "Age": "12"}),
        car("stock:0042", vin=None, stock_number="0042", mileage=None, features=[]),
    ]

    # When it is merged
    counts = merge_file(frame(rows))

    # Then both vehicles exist, active, with the integration's account and dealership
    assert counts == MergeCounts(total=2, created=2)
    vin_car = Vehicle.objects.get(integration=integration, key=VIN_A)
    assert vin_car.account_id == integration.account_id
    assert vin_car.dealership_id == integration.dealership_id
    assert vin_car.status == "active"
    assert vin_car.first_seen_at == vin_car.last_seen_at == T0
    assert vin_car.price == Decimal("23995.50")
    assert vin_car.book_value == Decimal("21000.50")
    assert vin_car.msrp is None
    assert vin_car.in_stock_date == dt.date(2026, 2, 14)
    assert vin_car.certified is True
    assert vin_car.features == ["Bluetooth", "Backup Camera"]
    assert vin_car.extra == {"Lot": "B", "Age": "12"}
    assert vin_car.content_hash is not None
    stock_car = Vehicle.objects.get(integration=integration, key="stock:0042")
    assert stock_car.vin is None
    assert stock_car.stock_number == "0042"
    assert stock_car.mileage is None
    assert stock_car.features == []


def test_first_load_with_history_records_each_creation(merge_file, integration):
    # Given an empty store
    # When a file of two vehicles is merged with history on
    merge_file(frame([car(VIN_A), car(VIN_B)]), track_history=True)

    # Then each vehicle has one "created" version of that file, at the merge's time
    versions = VehicleVersion.objects.filter(vehicle__integration=integration)
    assert sorted(versions.values_list("vehicle__key", "change_type")) == [
        (VIN_A, "created"),
        (VIN_B, "created"),
    ]
    assert {version.created_at for version in versions} == {T0}
    assert all(version.feed_file_id is not None for version in versions)


def test_the_same_content_again_writes_nothing(merge_file, integration):
    # Given a store loaded from a file
    rows = [car(VIN_A), car(VIN_B, extra={"Lot": "C", "Age": "3"})]
    merge_file(frame(rows), track_history=True)
    before = _snapshot(integration)
    versions_before = VehicleVersion.objects.count()

    # When the same content is merged an hour later (extra's keys in another order)
    rows[1]["extra"] = {"Age": "3", "Lot": "C"}
    counts = merge_file(frame(rows), now=T0 + timedelta(hours=1), track_history=True)

    # Then nothing changed: no row rewritten (updated_at and last_seen_at kept), no version
    assert counts == MergeCounts(total=2, unchanged=2)
    assert _snapshot(integration) == before
    assert VehicleVersion.objects.count() == versions_before


def test_one_changed_field_updates_only_that_vehicle_and_records_it(merge_file, integration):
    # Given two stored vehicles
    merge_file(frame([car(VIN_A), car(VIN_B)]), track_history=True)
    untouched = Vehicle.objects.get(key=VIN_B)
    later = T0 + timedelta(hours=2)

    # When a file lowers one vehicle's price and adds a photo
    rows = [
        car(VIN_A, price=22_500.0, photo_urls=[f"https://img.example.com/{VIN_A}/1.jpg", "x"]),
        car(VIN_B),
    ]
    counts = merge_file(frame(rows), now=later, track_history=True)

    # Then only that vehicle is rewritten, and its version holds the old and new values
    assert counts == MergeCounts(total=2, updated=1, unchanged=1)
    changed = Vehicle.objects.get(key=VIN_A)
    assert changed.price == Decimal("22500.00")
    assert changed.updated_at == changed.last_seen_at == later
    assert changed.first_seen_at == T0
    assert Vehicle.objects.get(key=VIN_B).updated_at == untouched.updated_at
    version = VehicleVersion.objects.get(vehicle=changed, change_type="updated")
    assert version.created_at == later
    assert version.changes == {
        "price": {"old": "23995.00", "new": "22500.00"},
        "photoUrls": {
            "old": [f"https://img.example.com/{VIN_A}/1.jpg"],
            "new": [f"https://img.example.com/{VIN_A}/1.jpg", "x"],
        },
    }


def test_history_records_nulls_dates_and_extra_as_json(merge_file, integration):
    # Given a stored vehicle
    merge_file(frame([car(VIN_A)]), track_history=True)

    # When its date moves, its trim disappears and an unmapped column changes
    row = car(VIN_A, in_stock_date="2026-02-20", trim=None, extra={"Lot": "D"})
    merge_file(frame([row]), track_history=True)

    # Then the version records exactly those changes, JSON-safe
    version = VehicleVersion.objects.get(change_type="updated")
    assert version.changes == {
        "inStockDate": {"old": "2026-02-14", "new": "2026-02-20"},
        "trim": {"old": "SE", "new": None},
        "extra": {"old": {"Lot": "A"}, "new": {"Lot": "D"}},
    }


def test_without_history_no_version_is_written(merge_file):
    # Given a stored vehicle, merged without history
    merge_file(frame([car(VIN_A)]))

    # When it changes and another disappears for good
    merge_file(frame([car(VIN_A, mileage=40_000)]), strategy="overwrite")

    # Then no version was written at all
    assert not VehicleVersion.objects.exists()


def test_repeated_keys_last_row_wins_within_and_across_chunks(merge_file, integration):
    # Given an empty store and a file whose chunks repeat keys
    first = frame([car(VIN_A, price=1.0), car(VIN_B), car(VIN_A, price=2.0)], first_row=1)
    second = frame([car(VIN_A, price=3.0), car(VIN_C), car(VIN_B, mileage=7)], first_row=4)

    # When it is merged
    counts = merge_file([first, second])

    # Then the last row of each key wins and the repeats are counted
    assert counts.duplicates == 3
    assert counts.created == 3
    assert counts.total == 6
    assert Vehicle.objects.get(key=VIN_A).price == Decimal("3.00")
    assert Vehicle.objects.get(key=VIN_B).mileage == 7
    assert Vehicle.objects.filter(integration=integration).count() == 3


def test_a_repeat_that_restores_the_stored_content_changes_nothing(merge_file, integration):
    # Given a stored vehicle
    merge_file(frame([car(VIN_A)]), track_history=True)
    before = _snapshot(integration)

    # When a file first changes it and then, in a later chunk, repeats it as stored
    chunks = [frame([car(VIN_A, price=1.0)]), frame([car(VIN_A)], first_row=2)]
    counts = merge_file(chunks, track_history=True)

    # Then the last row wins: the vehicle is unchanged and nothing is recorded
    assert counts == MergeCounts(total=2, unchanged=1, duplicates=1)
    assert _snapshot(integration) == before
    assert not VehicleVersion.objects.filter(change_type="updated").exists()


def test_rows_staged_and_duplicates_are_known_before_apply(integration):
    # Given a merge
    merge = _merge(integration)

    # When two chunks with a repeat are staged
    merge.stage(frame([car(VIN_A), car(VIN_B)]))
    merge.stage(frame([car(VIN_B), car(VIN_C)], first_row=3))

    # Then the distinct keys and the repeats are counted already
    assert merge.rows_staged == 3
    assert merge.duplicates == 1
    merge.discard()


def test_counts_add_up_to_the_distinct_keys(merge_file, integration):
    # Given stored vehicles: A unchanged next time, B changed, C sold, D absent next time
    merge_file(frame([car(VIN_A), car(VIN_B), car(VIN_C), car("1HGCM82633A000004")]))
    Vehicle.objects.filter(key=VIN_C).update(status="sold", sold_at=T0)

    # When a file keeps A, changes B, brings C back, repeats A and adds E
    rows = [car(VIN_A), car(VIN_B, doors=2), car(VIN_C), car(VIN_A), car("1HGCM82633A000005")]
    counts = merge_file(frame(rows), now=T0 + timedelta(days=1), sold_grace_syncs=1)

    # Then every distinct key is counted once
    assert counts == MergeCounts(
        total=5,
        created=1,
        updated=2,
        unchanged=1,
        sold=1,
        reactivated=1,
        duplicates=1,
    )
    distinct = counts.created + counts.updated + counts.unchanged + counts.skipped
    assert distinct == counts.total - counts.duplicates == 4


def test_another_integrations_vehicle_with_the_same_key_is_untouched(
    merge_file, integration, other_tenant
):
    # Given another tenant's integration holding the same VIN, and a sibling integration
    foreign = IntegrationFactory(account=other_tenant.account)
    sibling = IntegrationFactory(account=integration.account, dealership=integration.dealership)
    merge_file(frame([car(VIN_A, price=10.0)]), target=foreign)
    merge_file(frame([car(VIN_A, price=20.0), car(VIN_B)]), target=sibling)
    others_before = list(
        Vehicle.objects.exclude(integration=integration).order_by("key", "price").values()
    )

    # When our integration loads, changes and then overwrites with an empty file
    merge_file(frame([car(VIN_A, price=30.0)]))
    merge_file(frame([car(VIN_A, price=31.0)]))
    merge_file(frame([]), strategy="overwrite")

    # Then the other integrations' vehicles are exactly as they were
    assert (
        list(Vehicle.objects.exclude(integration=integration).order_by("key", "price").values())
        == others_before
    )
    assert Vehicle.objects.get(integration=integration).status == "removed"


def test_discard_leaves_nothing_and_is_safe_to_repeat(integration):
    # Given a merge that staged a chunk
    merge = _merge(integration)
    merge.stage(frame([car(VIN_A), car(VIN_B)]))

    # When it is discarded, twice
    merge.discard()
    merge.discard()

    # Then nothing was written, and the merge cannot be applied any more
    assert not Vehicle.objects.exists()
    assert not VehicleVersion.objects.exists()
    with pytest.raises(RuntimeError):
        merge.apply()


def test_discard_after_apply_is_harmless(integration):
    # Given an applied merge
    merge = _merge(integration)
    merge.stage(frame([car(VIN_A)]))
    merge.apply()

    # When it is discarded afterwards
    merge.discard()

    # Then what it applied stays
    assert Vehicle.objects.filter(key=VIN_A).exists()


def test_an_error_inside_apply_leaves_the_store_as_it_was(merge_file, integration, monkeypatch):
    # Given a stored inventory
    merge_file(frame([car(VIN_A), car(VIN_B)]), track_history=True)
    before = _snapshot(integration)
    versions_before = list(VehicleVersion.objects.values())

    # When a file that creates, changes and retires vehicles fails half-way through apply()
    # (after the inserts and updates, at the statement that retires absent vehicles)
    original = MergeTables.execute
    calls = {"n": 0}

    def failing_execute(self, template, params, **fragments):
        if "missing_syncs + 1" in template or "missing_syncs + 1" in str(fragments):
            raise RuntimeError("database went away")
        calls["n"] += 1
        return original(self, template, params, **fragments)

    monkeypatch.setattr(MergeTables, "execute", failing_execute)
    merge = _merge(integration, sold_grace_syncs=1)
    merge.stage(frame([car(VIN_A, price=1.0), car(VIN_C)]))
    with pytest.raises(RuntimeError, match="database went away"):
        merge.apply()
    merge.discard()

    # Then every statement before the failure (the versions and the update; the insert too
    # where it is one, not a copy while staging) was rolled back with it
    assert calls["n"] >= 2
    assert _snapshot(integration) == before
    assert list(VehicleVersion.objects.values()) == versions_before


def test_the_currency_is_stored_and_its_change_recorded(merge_file, integration):
    # Given a vehicle stored without a currency
    merge_file(frame([car(VIN_A)]), track_history=True)

    # When the next file says its amounts are in Canadian dollars
    counts = merge_file(
        frame([car(VIN_A, currency="CAD")]), now=T0 + timedelta(hours=1), track_history=True
    )

    # Then the vehicle is updated with its currency, and the change is in its history
    assert counts == MergeCounts(total=1, updated=1)
    vehicle = Vehicle.objects.get(integration=integration, key=VIN_A)
    assert vehicle.currency == "CAD"
    version = VehicleVersion.objects.get(vehicle=vehicle, change_type="updated")
    assert version.changes == {"currency": {"old": None, "new": "CAD"}}


def test_an_empty_store_and_an_empty_file(merge_file):
    # Given nothing
    # When an empty file is merged
    counts = merge_file(frame([]))

    # Then nothing happens
    assert counts == MergeCounts()
    assert not Vehicle.objects.exists()


def test_a_frame_without_the_contracts_columns_is_refused(integration):
    # Given a merge
    merge = _merge(integration)

    # When a chunk lacks a canonical column
    # Then it is refused before anything is staged
    with pytest.raises(ValueError, match="price"):
        merge.stage(frame([car(VIN_A)]).drop(columns=["price"]))
    merge.discard()


def test_an_unknown_strategy_is_refused(integration):
    with pytest.raises(ValueError, match="strategy"):
        _merge(integration, strategy="replace")
