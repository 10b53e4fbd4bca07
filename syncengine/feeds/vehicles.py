"""The canonical vehicle schema every inventory feed is mapped to.

``VEHICLE_FIELDS`` maps each canonical field (the API's camelCase name) to the model column and
its kind. The parser produces these columns; the merge writes them; the API shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"  # str or None
    KEY = "key"  # str or None, kept exactly as given (stock numbers keep leading zeros)
    INT = "int"  # int or None
    MONEY = "money"  # decimal.Decimal (2 places) or None; 0 / blank / "Call" are None
    DATE = "date"  # datetime.date or None, read in the dealership's time zone
    BOOL = "bool"  # bool or None
    LIST = "list"  # list[str], never None
    CONDITION = "condition"  # "new" | "used" | "cpo" or None
    CURRENCY = "currency"  # an ISO 4217 code or None


@dataclass(frozen=True)
class VehicleField:
    name: str  # canonical (API) name, camelCase
    column: str  # model field, snake_case
    kind: Kind


VEHICLE_FIELDS: dict[str, VehicleField] = {
    field.name: field
    for field in [
        VehicleField("vin", "vin", Kind.KEY),
        VehicleField("stockNumber", "stock_number", Kind.KEY),
        VehicleField("condition", "condition", Kind.CONDITION),
        VehicleField("year", "year", Kind.INT),
        VehicleField("make", "make", Kind.TEXT),
        VehicleField("model", "model", Kind.TEXT),
        VehicleField("trim", "trim", Kind.TEXT),
        VehicleField("bodyStyle", "body_style", Kind.TEXT),
        VehicleField("exteriorColor", "exterior_color", Kind.TEXT),
        VehicleField("interiorColor", "interior_color", Kind.TEXT),
        VehicleField("mileage", "mileage", Kind.INT),
        VehicleField("price", "price", Kind.MONEY),
        VehicleField("msrp", "msrp", Kind.MONEY),
        VehicleField("invoice", "invoice", Kind.MONEY),
        VehicleField("bookValue", "book_value", Kind.MONEY),
        # The currency of the amounts: from a currency column or the codes the amounts carry.
        VehicleField("currency", "currency", Kind.CURRENCY),
        VehicleField("inStockDate", "in_stock_date", Kind.DATE),
        VehicleField("certified", "certified", Kind.BOOL),
        VehicleField("engine", "engine", Kind.TEXT),
        VehicleField("transmission", "transmission", Kind.TEXT),
        VehicleField("drivetrain", "drivetrain", Kind.TEXT),
        VehicleField("fuelType", "fuel_type", Kind.TEXT),
        VehicleField("doors", "doors", Kind.INT),
        VehicleField("description", "description", Kind.TEXT),
        VehicleField("features", "features", Kind.LIST),
        VehicleField("photoUrls", "photo_urls", Kind.LIST),
        VehicleField("vdpUrl", "vdp_url", Kind.TEXT),
    ]
}

VEHICLE_COLUMNS: tuple[str, ...] = tuple(field.column for field in VEHICLE_FIELDS.values())
