"""The content hash: equal for equal content however it arrives, different for any change."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from syncengine.feeds.merge.rows import content_hashes, random_uuid_hex
from syncengine.feeds.vehicles import VEHICLE_COLUMNS
from tests.syncengine.feeds.merge.conftest import car, frame

ROWS = [
    car("1HGCM82633A000001"),
    car("1HGCM82633A000002", price=None, features=[], extra={}),
    car("stock:77", vin=None, certified=None, photo_urls=["a", "b"], extra={"X": "1", "Y": ""}),
]


def test_the_hash_does_not_depend_on_chunking():
    # Given the same rows as one chunk and as chunks of one row
    whole = content_hashes(frame(ROWS))

    # When each row is hashed alone
    alone = [content_hashes(frame([row]))[0] for row in ROWS]

    # Then the hashes agree
    assert whole.tolist() == alone


def test_the_hash_does_not_depend_on_the_columns_dtypes():
    # Given the rows with pandas' own dtypes instead of the contract's
    given = frame(ROWS)
    loose = given.copy()
    for column in VEHICLE_COLUMNS:
        if loose[column].dtype == object and column not in ("features", "photo_urls"):
            loose[column] = loose[column].astype("str")
    loose["price"] = loose["price"].astype("float64")
    loose["in_stock_date"] = [dt.date(2026, 2, 14)] * len(ROWS)

    # When both are hashed
    # Then the hashes agree
    assert content_hashes(loose).tolist() == content_hashes(given).tolist()


def test_the_hash_is_the_same_in_every_process():
    # A hash stored by one worker must match the one another worker computes: no per-process
    # seed (Python's hash() would differ between runs).
    assert content_hashes(frame([car("1HGCM82633A000001")])).tolist() == [6555894780923925555]


@pytest.mark.parametrize(
    "change",
    [
        {"price": 23_995.01},
        {"price": None},
        {"mileage": 31_251},
        {"make": "toyota"},
        {"trim": None},
        {"interior_color": ""},
        {"certified": None},
        {"certified": True},
        {"in_stock_date": "2026-02-15"},
        {"features": ["Backup Camera", "Bluetooth"]},
        {"features": ["Bluetooth", "Backup Camera", ""]},
        {"photo_urls": []},
        {"extra": {"Lot": "B"}},
        {"extra": {"Lot": "A", "Age": "1"}},
        {"extra": {}},
        {"make": "Camry", "model": "Toyota"},
        {"currency": "CAD"},
    ],
)
def test_any_change_changes_the_hash(change):
    # Given a row and the same row with one change
    base = car("1HGCM82633A000001")

    # When both are hashed
    hashes = content_hashes(frame([base, {**base, **change}]))

    # Then they differ
    assert hashes[0] != hashes[1]


def test_a_vehicle_without_a_currency_keeps_the_hash_it_was_stored_with():
    # Given rows hashed before the currency column existed (a frame without it, as an older
    # parser made them) and the same rows with no currency
    rows = [car("1HGCM82633A000001"), car("1HGCM82633A000002", price=None)]
    before = content_hashes(frame(rows).drop(columns=["currency"]))

    # When they are hashed with the column, empty
    after = content_hashes(frame(rows))

    # Then the hashes are those already stored: an upgrade rewrites no vehicle
    assert after.tolist() == before.tolist()
    assert content_hashes(frame([{**rows[0], "currency": "CAD"}]))[0] != after[0]


def test_money_is_compared_in_cents():
    # 19999.9 and 19999.90 are the same price; a sub-cent float error is no change either.
    hashes = content_hashes(
        frame([car("V1", price=19_999.9), car("V1", price=19_999.90), car("V1", price=0.1 + 0.2)])
    )
    assert hashes[0] == hashes[1]
    assert hashes[2] == content_hashes(frame([car("V1", price=0.3)]))[0]


def test_an_empty_list_differs_from_a_list_of_one_empty_string():
    hashes = content_hashes(frame([car("V1", features=[]), car("V1", features=[""])]))
    assert hashes[0] != hashes[1]


def test_random_uuids_are_valid_version_4():
    # Given a batch of generated ids
    ids = random_uuid_hex(1000)

    # Then each is a distinct, well-formed version 4 UUID
    assert len(set(ids)) == 1000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == value
