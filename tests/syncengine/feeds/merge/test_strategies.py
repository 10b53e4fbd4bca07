"""Strategies: overwrite removes what the file lacks, merge retires it after the sold grace,
update_only touches existing vehicles only; a retired vehicle that comes back is active again."""

from __future__ import annotations

from datetime import timedelta

from syncengine.feeds.merge import MergeCounts
from syncengine.models import Vehicle, VehicleVersion
from tests.syncengine.feeds.merge.conftest import T0, car, frame

VIN_A = "1HGCM82633A000001"
VIN_B = "1HGCM82633A000002"
VIN_C = "1HGCM82633A000003"
HOUR = timedelta(hours=1)


def _vehicle(key: str) -> Vehicle:
    return Vehicle.objects.get(key=key)


# --- overwrite ----------------------------------------------------------------------------


def test_overwrite_removes_the_vehicles_the_file_lacks(merge_file, frozen):
    # Given three stored vehicles
    merge_file(frame([car(VIN_A), car(VIN_B), car(VIN_C)]), strategy="overwrite")
    later = T0 + HOUR
    frozen.move_to(later, tick=False)

    # When an overwrite file holds only one of them
    counts = merge_file(frame([car(VIN_A)]), strategy="overwrite", now=later, track_history=True)

    # Then the other two are removed, now, with a version each
    assert counts == MergeCounts(total=1, unchanged=1, removed=2)
    for key in (VIN_B, VIN_C):
        vehicle = _vehicle(key)
        assert vehicle.status == "removed"
        assert vehicle.removed_at == vehicle.updated_at == later
        version = VehicleVersion.objects.get(vehicle=vehicle)
        assert version.change_type == "removed"
        assert version.changes == {"status": {"old": "active", "new": "removed"}}
    assert _vehicle(VIN_A).status == "active"


def test_overwrite_leaves_sold_and_removed_vehicles_alone(merge_file):
    # Given a removed and a sold vehicle
    merge_file(frame([car(VIN_A), car(VIN_B), car(VIN_C)]))
    Vehicle.objects.filter(key=VIN_B).update(status="sold", sold_at=T0)
    Vehicle.objects.filter(key=VIN_C).update(status="removed", removed_at=T0)

    # When an overwrite file lacks both
    counts = merge_file(frame([car(VIN_A)]), strategy="overwrite", now=T0 + HOUR)

    # Then nothing is counted as removed and they keep their status and time
    assert counts.removed == 0
    assert (_vehicle(VIN_B).status, _vehicle(VIN_B).sold_at) == ("sold", T0)
    assert (_vehicle(VIN_C).status, _vehicle(VIN_C).removed_at) == ("removed", T0)


# --- merge: the sold grace ------------------------------------------------------------------


def test_merge_sells_after_the_grace_syncs(merge_file, frozen):
    # Given two stored vehicles, and a grace of two syncs
    merge_file(frame([car(VIN_A), car(VIN_B)]))

    # When the first file without B arrives
    counts = merge_file(frame([car(VIN_A)]), now=T0 + HOUR, sold_grace_syncs=2)

    # Then B is still active, one sync missed since then
    assert counts.sold == 0
    vehicle = _vehicle(VIN_B)
    assert (vehicle.status, vehicle.missing_syncs, vehicle.missing_since) == (
        "active",
        1,
        T0 + HOUR,
    )
    assert vehicle.updated_at == T0

    # When the second file without B arrives
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 2 * HOUR, sold_grace_syncs=2)

    # Then B is sold, now
    assert counts.sold == 1
    vehicle = _vehicle(VIN_B)
    assert (vehicle.status, vehicle.missing_syncs) == ("sold", 2)
    assert vehicle.sold_at == vehicle.updated_at == T0 + 2 * HOUR
    assert vehicle.missing_since == T0 + HOUR


def test_merge_keeps_a_vehicle_missing_for_less_than_the_grace_hours(merge_file, frozen):
    # Given a stored vehicle and a grace of 24 hours (syncs off)
    merge_file(frame([car(VIN_A), car(VIN_B)]))
    grace = {"sold_grace_syncs": 0, "sold_grace_hours": 24}

    # When B is missing from a file, and still an hour later
    frozen.move_to(T0 + HOUR, tick=False)
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR, **grace)
    frozen.move_to(T0 + 2 * HOUR, tick=False)
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 2 * HOUR, **grace)

    # Then it stays active
    assert counts.sold == 0
    assert _vehicle(VIN_B).status == "active"
    assert _vehicle(VIN_B).missing_syncs == 2

    # When it is still missing 25 hours after its first miss
    frozen.move_to(T0 + 26 * HOUR, tick=False)
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 26 * HOUR, **grace)

    # Then it is sold
    assert counts.sold == 1
    assert _vehicle(VIN_B).status == "sold"
    assert _vehicle(VIN_B).sold_at == T0 + 26 * HOUR


def test_merge_needs_both_thresholds(merge_file, frozen):
    # Given a grace of two syncs and 24 hours
    merge_file(frame([car(VIN_A), car(VIN_B)]))
    grace = {"sold_grace_syncs": 2, "sold_grace_hours": 24}

    # When B misses two syncs within an hour
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR, **grace)
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 2 * HOUR, **grace)

    # Then the hours are not over yet: still active
    assert counts.sold == 0
    assert _vehicle(VIN_B).status == "active"

    # When it misses a third sync a day after its first miss
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 25 * HOUR, **grace)

    # Then both thresholds are met: sold
    assert counts.sold == 1
    assert _vehicle(VIN_B).status == "sold"


def test_merge_with_both_thresholds_zero_sells_at_the_first_miss(merge_file):
    # Given a stored vehicle and no grace at all
    merge_file(frame([car(VIN_A), car(VIN_B)]))

    # When the first file without it arrives
    counts = merge_file(
        frame([car(VIN_A)]),
        now=T0 + HOUR,
        sold_grace_syncs=0,
        sold_grace_hours=0,
        track_history=True,
    )

    # Then it is sold at once, with a version
    assert counts.sold == 1
    vehicle = _vehicle(VIN_B)
    assert (vehicle.status, vehicle.sold_at) == ("sold", T0 + HOUR)
    version = VehicleVersion.objects.get(vehicle=vehicle)
    assert version.change_type == "sold"
    assert version.changes == {"status": {"old": "active", "new": "sold"}}


def test_the_identical_file_again_still_advances_the_missing_counters(merge_file):
    # Given a store where B has already missed one file
    merge_file(frame([car(VIN_A), car(VIN_B)]))
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR, sold_grace_syncs=3)

    # When the same file (same content) is uploaded again, as a new sync
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 2 * HOUR, sold_grace_syncs=3)

    # Then nothing is updated, but B's miss counts
    assert counts == MergeCounts(total=1, unchanged=1)
    assert _vehicle(VIN_B).missing_syncs == 2
    assert _vehicle(VIN_B).missing_since == T0 + HOUR

    # And the third identical upload sells it
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 3 * HOUR, sold_grace_syncs=3)
    assert counts.sold == 1


def test_a_vehicle_back_after_a_missed_sync_is_reset_but_not_rewritten(merge_file):
    # Given B missed one file
    merge_file(frame([car(VIN_A), car(VIN_B)]), track_history=True)
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR)

    # When it is back, unchanged
    counts = merge_file(frame([car(VIN_A), car(VIN_B)]), now=T0 + 2 * HOUR, track_history=True)

    # Then its missed syncs are forgotten and it was seen now, but its content is untouched
    assert counts == MergeCounts(total=2, unchanged=2)
    vehicle = _vehicle(VIN_B)
    assert (vehicle.missing_syncs, vehicle.missing_since) == (0, None)
    assert vehicle.last_seen_at == T0 + 2 * HOUR
    assert vehicle.updated_at == T0
    assert not VehicleVersion.objects.exclude(change_type="created").exists()


def test_a_sold_vehicle_that_returns_is_active_again(merge_file):
    # Given a vehicle sold after missing a file
    merge_file(frame([car(VIN_A), car(VIN_B)]))
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR, sold_grace_syncs=1)
    assert _vehicle(VIN_B).status == "sold"

    # When it is back in a file, unchanged
    counts = merge_file(frame([car(VIN_A), car(VIN_B)]), now=T0 + 2 * HOUR, track_history=True)

    # Then it is active again, counted as reactivated (and updated), its retirement cleared
    assert counts == MergeCounts(total=2, updated=1, unchanged=1, reactivated=1)
    vehicle = _vehicle(VIN_B)
    assert vehicle.status == "active"
    assert (vehicle.sold_at, vehicle.missing_syncs, vehicle.missing_since) == (None, 0, None)
    assert vehicle.last_seen_at == vehicle.updated_at == T0 + 2 * HOUR
    version = VehicleVersion.objects.get(vehicle=vehicle)
    assert version.change_type == "reactivated"
    assert version.changes == {"status": {"old": "sold", "new": "active"}}


def test_a_removed_vehicle_that_returns_changed_records_both(merge_file):
    # Given a vehicle removed by an overwrite
    merge_file(frame([car(VIN_A), car(VIN_B)]), strategy="overwrite")
    merge_file(frame([car(VIN_A)]), strategy="overwrite", now=T0 + HOUR)

    # When it returns with another price
    counts = merge_file(
        frame([car(VIN_A), car(VIN_B, price=19_000.0)]),
        strategy="overwrite",
        now=T0 + 2 * HOUR,
        track_history=True,
    )

    # Then one version records the status and the price
    assert (counts.updated, counts.reactivated) == (1, 1)
    vehicle = _vehicle(VIN_B)
    assert (vehicle.status, vehicle.removed_at) == ("active", None)
    assert VehicleVersion.objects.get(vehicle=vehicle).changes == {
        "status": {"old": "removed", "new": "active"},
        "price": {"old": "23995.00", "new": "19000.00"},
    }


def test_merge_keeps_sold_vehicles_sold_while_they_stay_away(merge_file):
    # Given a sold vehicle
    merge_file(frame([car(VIN_A), car(VIN_B)]))
    merge_file(frame([car(VIN_A)]), now=T0 + HOUR, sold_grace_syncs=1)

    # When more files without it arrive
    counts = merge_file(frame([car(VIN_A)]), now=T0 + 2 * HOUR, sold_grace_syncs=1)

    # Then it is not sold again, nor counted
    assert counts.sold == 0
    assert (_vehicle(VIN_B).sold_at, _vehicle(VIN_B).missing_syncs) == (T0 + HOUR, 1)


# --- update_only ----------------------------------------------------------------------------


def test_update_only_skips_new_keys_and_ignores_absent_ones(merge_file):
    # Given two stored vehicles
    merge_file(frame([car(VIN_A), car(VIN_B)]))

    # When an update_only file changes A, lacks B and brings a new C (twice)
    rows = [car(VIN_A, mileage=1), car(VIN_C), car(VIN_C)]
    counts = merge_file(frame(rows), strategy="update_only", now=T0 + HOUR, sold_grace_syncs=1)

    # Then A is updated, C skipped (once, the repeat counted), B untouched
    assert counts == MergeCounts(total=3, updated=1, skipped=1, duplicates=1)
    assert _vehicle(VIN_A).mileage == 1
    assert not Vehicle.objects.filter(key=VIN_C).exists()
    vehicle = _vehicle(VIN_B)
    assert (vehicle.status, vehicle.missing_syncs, vehicle.updated_at) == ("active", 0, T0)


def test_update_only_reactivates_an_existing_sold_vehicle(merge_file):
    # Given a sold vehicle
    merge_file(frame([car(VIN_A)]))
    Vehicle.objects.filter(key=VIN_A).update(status="sold", sold_at=T0)

    # When an update_only file holds it
    counts = merge_file(frame([car(VIN_A)]), strategy="update_only", now=T0 + HOUR)

    # Then it exists, so it is active again
    assert (counts.updated, counts.reactivated) == (1, 1)
    assert _vehicle(VIN_A).status == "active"
