"""Export filters run in the database, on canonical vehicle fields and on record JSON paths, on
whichever database the suite runs on (run it on both SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exports.entities import VEHICLES, entity_source, export_problems
from exports.querying import FilterError
from tests.exports.conftest import add_vehicle, put_records

CONTRACTS = [
    ("c1", {"status": "ACTIVE", "createdAt": "2025-02-01T10:00:00Z", "price": 120,
            "data": {"plan": "gold", "seats": 5}, "tags": ["vip", "eu"], "auto": True}),
    ("c2", {"status": "ACTIVE", "createdAt": "2024-12-31T23:59:59Z", "price": 99.5,
            "data": {"plan": "silver"}, "tags": ["us"], "auto": False}),
    ("c3", {"status": "CANCELLED", "createdAt": "2025-03-05T00:00:00Z", "price": "250.00",
            "data": {"plan": "Gold Plus"}, "tags": [], "note": "call back"}),
    ("c4", {"status": "PENDING", "createdAt": "2025-01-01T00:00:00Z", "price": None,
            "data": {"plan": None}}),
    ("c5", {"status": "ACTIVE", "price": "Call", "data": "flat", "auto": "yes"}),
]  # fmt: skip


@pytest.fixture
def contracts(account):
    put_records(account, "contracts", CONTRACTS)
    return account


def keys(account, filter_, entity="contracts"):
    source = entity_source(account=account, entity=entity, filter=filter_)
    position = [column.name for column in source.columns].index(
        "_key" if entity != VEHICLES else "key"
    )
    return sorted(row[position] for row in source.rows())


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({}, ["c1", "c2", "c3", "c4", "c5"]),
        ({"status": "ACTIVE"}, ["c1", "c2", "c5"]),
        ({"status": {"eq": "ACTIVE"}}, ["c1", "c2", "c5"]),
        ({"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}}, ["c1"]),
        ({"status": {"ne": "ACTIVE"}}, ["c3", "c4"]),
        ({"status": {"in": ["PENDING", "CANCELLED"]}}, ["c3", "c4"]),
        ({"createdAt": {"lt": "2025-01-01"}}, ["c2"]),
        ({"createdAt": {"isNull": True}}, ["c5"]),
        ({"createdAt": {"isNull": False}}, ["c1", "c2", "c3", "c4"]),
        # Numbers compare numerically with JSON numbers and strings holding a plain number.
        ({"price": {"gt": 100}}, ["c1", "c3"]),
        ({"price": {"gte": 99.5, "lte": 120}}, ["c1", "c2"]),
        ({"price": {"lt": 100}}, ["c2"]),
        ({"price": 120}, ["c1"]),
        ({"price": {"ne": 120}}, ["c2", "c3", "c4", "c5"]),
        ({"price": None}, ["c4"]),
        ({"price": {"isNull": True}}, ["c4"]),
        # Dotted paths reach into nested objects; a path through a non-object is missing.
        ({"data.plan": "gold"}, ["c1"]),
        ({"data.plan": {"contains": "GOLD"}}, ["c1", "c3"]),
        ({"data.plan": {"isNull": True}}, ["c4", "c5"]),
        ({"data.seats": {"gte": 5}}, ["c1"]),
        # contains: a case-insensitive substring of text, or an element of a list.
        ({"note": {"contains": "CALL"}}, ["c3"]),
        ({"tags": {"contains": "vip"}}, ["c1"]),
        ({"tags": {"contains": "v"}}, []),
        # Booleans match JSON booleans only.
        ({"auto": True}, ["c1"]),
        ({"auto": {"eq": False}}, ["c2"]),
        ({"auto": {"ne": True}}, ["c2", "c3", "c4", "c5"]),
        # The store's own columns.
        ({"_key": {"in": ["c2", "c4"]}}, ["c2", "c4"]),
        ({"_key": {"gt": "c3"}}, ["c4", "c5"]),
    ],
)
def test_record_filters_select_rows_in_the_database(contracts, filter_, expected):
    assert keys(contracts, filter_) == expected


def test_a_record_holding_a_nul_escape_does_not_break_a_filter(account):
    # Given a record whose text holds \u0000, which PostgreSQL's jsonb refuses
    put_records(account, "notes", [("n1", {"text": "a\u0000b", "n": 1}), ("n2", {"n": 2})])

    # When filtering on another field, then the query runs and selects by it
    assert keys(account, {"n": {"gte": 1}}, entity="notes") == ["n1", "n2"]
    assert keys(account, {"text": {"isNull": True}}, entity="notes") == ["n2"]


@pytest.fixture
def lot(integration):
    add_vehicle(
        integration,
        "V1",
        price=Decimal("15000.00"),
        year=2018,
        make="Toyota",
        features=["Sunroof", "Heated Seats"],
        extra={"Dealer ID": "48213"},
        certified=True,
    )
    add_vehicle(
        integration,
        "V2",
        price=Decimal("32500.50"),
        year=2023,
        make="Ford",
        status="sold",
        certified=False,
    )
    add_vehicle(
        integration,
        "V3",
        price=None,
        year=2020,
        make="ford",
        model=None,
        in_stock_date="2025-02-10",
    )
    return integration.account  # fmt: skip


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"price": {"gt": 20000}}, ["V2"]),
        ({"price": {"gte": "15000.00", "lt": 20000}}, ["V1"]),
        ({"price": {"isNull": True}}, ["V3"]),
        ({"year": {"in": [2018, 2020]}}, ["V1", "V3"]),
        ({"make": {"contains": "FOR"}}, ["V2", "V3"]),
        ({"make": "Ford"}, ["V2"]),
        ({"status": {"ne": "sold"}}, ["V1", "V3"]),
        ({"model": None}, ["V3"]),
        ({"model": {"ne": "F-150"}}, ["V3"]),
        ({"certified": True}, ["V1"]),
        ({"certified": {"isNull": True}}, ["V3"]),
        ({"features": {"contains": "Sunroof"}}, ["V1"]),
        ({"extra.Dealer ID": "48213"}, ["V1"]),
        ({"inStockDate": {"gte": "2025-01-01"}}, ["V3"]),
        ({"createdAt": {"gte": "2000-01-01T00:00:00Z"}}, ["V1", "V2", "V3"]),
        ({"createdAt": {"lt": "2000-01-01"}}, []),
    ],
)
def test_vehicle_filters_select_rows_in_the_database(lot, filter_, expected):
    assert keys(lot, filter_, entity=VEHICLES) == expected


def test_another_accounts_vehicles_and_records_are_never_exported(lot, contracts, integration):
    # Given another account with its own vehicles and records
    from tests.factories import AccountFactory, IntegrationFactory

    other = AccountFactory(name="Rival Motors")
    add_vehicle(IntegrationFactory(account=other), "OTHER")
    put_records(other, "contracts", [("x1", {"status": "ACTIVE"})])

    # Then each account's export sees its own rows only
    assert keys(lot, {}, entity=VEHICLES) == ["V1", "V2", "V3"]
    assert keys(contracts, {"status": "ACTIVE"}) == ["c1", "c2", "c5"]


@pytest.mark.parametrize(
    ("filter_", "key", "message"),
    [
        ({"colour": "red"}, "filter.colour", "Unknown field of vehicles; known fields: id,"),
        ({"price": {"between": [1, 2]}}, "filter.price", "Unknown operator 'between'; use one of:"),
        ({"price": {"gt": "cheap"}}, "filter.price", "gt takes a number; got 'cheap'."),
        ({"year": {"in": [2020, "x"]}}, "filter.year", "in takes a whole number; got 'x'."),
        ({"year": {"in": []}}, "filter.year", "in takes a non-empty list."),
        ({"certified": {"gt": True}}, "filter.certified", "gt does not apply to a boolean field"),
        ({"createdAt": {"gte": "yesterday"}}, "filter.createdAt", "takes an ISO 8601 date or time"),
        ({"make": {"isNull": "yes"}}, "filter.make", "isNull takes true or false."),
        ({"features": {"eq": "x"}}, "filter.features", "eq does not apply to a string_list field"),
        ({"integrationId": "nope"}, "filter.integrationId", "eq takes an id (a UUID); got 'nope'."),
    ],
)
def test_invalid_vehicle_filters_are_reported_per_field(account, filter_, key, message):
    problems = export_problems(account=account, entities=[VEHICLES], filter=filter_)
    assert list(problems) == [key]
    assert message in " ".join(problems[key])


def test_record_filters_report_operands_and_store_fields_but_take_any_path(contracts):
    problems = export_problems(
        account=contracts,
        entities=["contracts"],
        filter={
            "data.plan": {"eq": "gold"},
            "price": {"gt": [1]},
            "_owner": "me",
            "status": {"like": "A%"},
            "a..b": 1,
        },
    )
    assert problems["filter.price"] == ["gt takes a number or a string; got [1]."]
    assert "its own fields are _key, _integrationId" in problems["filter._owner"][0]
    assert problems["filter.status"][0].startswith("Unknown operator 'like'")
    assert "each part of a dotted path must be non-empty" in problems["filter.a..b"][0].lower()
    assert "filter.data.plan" not in problems


def test_unknown_entities_are_reported_with_the_ones_the_account_has(contracts):
    problems = export_problems(account=contracts, entities=["contracts", "invoices"])
    assert problems == {
        "entities": ["No entity 'invoices' in this account; it has: vehicles, contracts."]
    }


def test_a_filter_must_fit_every_entity_of_the_export(contracts):
    # "note" is a path into contracts' records, but vehicles have no such field
    problems = export_problems(
        account=contracts, entities=["contracts", VEHICLES], filter={"note": "x"}
    )
    assert list(problems) == ["filter.note"]


def test_compiling_an_invalid_filter_raises_with_the_problems(lot):
    with pytest.raises(FilterError) as raised:
        entity_source(account=lot, entity=VEHICLES, filter={"price": {"gt": "x"}})
    assert raised.value.problems == {"price": ["gt takes a number; got 'x'."]}
