"""Mapping a feed's columns to the canonical vehicle fields.

Each provider names its columns its own way (vAuto "Stock #", HomeNet "Stock", Elead "StockNo").
Headers are matched after ``header_key`` normalisation, so case, spacing, underscores, dashes and
dots never matter: " Stock # ", "stock#" and "STOCK_#" are the same column. An integration's
custom mappings (``mapping_overrides``) beat the defaults, and can unmap a column (``None``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncengine.feeds.vehicles import VEHICLE_FIELDS

_SEPARATORS = re.compile(r"[\s_\-.]+")


def header_key(name: str) -> str:
    """How a header is compared: lowercased, without spaces, underscores, dashes or dots."""
    return _SEPARATORS.sub("", name.replace("\ufeff", "").strip().lower())


@dataclass
class MappedColumn:
    """One column of the file and the canonical field it feeds."""

    source: str  # the header after duplicate resolution ("Price", "Price_2"); "column_N" without
    position: int  # 0-based
    field: str | None  # canonical field name (a key of VEHICLE_FIELDS), or None when unmapped
    origin: str | None  # "default" (provider mapping), "custom" (mapping_overrides), or None


# Names every provider's files use: the canonical names themselves (camelCase and snake_case)
# and the common spellings of generic CSV exports.
GENERIC_ALIASES: dict[str, tuple[str, ...]] = {
    "vin": ("VIN", "VIN #", "VIN Number", "Vehicle VIN", "VIN No"),
    "stockNumber": ("Stock", "Stock #", "Stock Number", "Stock No", "Stock Num", "StockNo"),
    "condition": ("Condition", "New/Used", "New Used", "New or Used", "Vehicle Condition"),
    "year": ("Year", "Model Year", "Yr"),
    "make": ("Make",),
    "model": ("Model",),
    "trim": ("Trim", "Series", "Trim Level"),
    "bodyStyle": ("Body", "Body Style", "Body Type"),
    "exteriorColor": ("Exterior Color", "Exterior Colour", "Ext Color", "Color", "Colour"),
    "interiorColor": ("Interior Color", "Interior Colour", "Int Color"),
    "mileage": ("Mileage", "Miles", "Odometer", "Odometer Reading"),
    "price": ("Price", "Internet Price", "Selling Price", "Sale Price", "List Price"),
    "msrp": ("MSRP", "Retail Price"),
    "invoice": ("Invoice", "Invoice Price"),
    "bookValue": ("Book Value",),
    "inStockDate": ("In Stock Date", "Date In Stock", "Inventory Date", "Stock Date"),
    "certified": ("Certified", "Is Certified"),
    "engine": ("Engine", "Engine Description"),
    "transmission": ("Transmission", "Trans"),
    "drivetrain": ("Drivetrain", "Drive Train", "Drive Type"),
    "fuelType": ("Fuel", "Fuel Type"),
    "doors": ("Doors", "Door Count", "Number of Doors"),
    "description": ("Description", "Comments", "Vehicle Description", "Dealer Comments"),
    "features": ("Features", "Options", "Equipment", "Feature List", "Option List"),
    "photoUrls": ("Photos", "Photo URLs", "Photo Url List", "Image URLs", "Images", "Image List"),
    "vdpUrl": ("VDP URL", "VDP", "Vehicle URL", "Detail URL", "Vehicle Detail URL"),
}

# What each provider's exports call their columns, beyond the generic names.
PROVIDER_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "vauto": {
        "trim": ("Series", "Series Detail"),
        "exteriorColor": ("Colour",),
        "mileage": ("Odometer",),
        "inStockDate": ("Inventory Date", "Date In Stock"),
        "photoUrls": ("Photo Url List", "Photos"),
    },
    "homenet": {
        # HomeNet's "Type" column holds New/Used.
        "condition": ("Type",),
        "stockNumber": ("Stock",),
        "exteriorColor": ("ExteriorColor", "Ext_Color_Generic"),
        "interiorColor": ("InteriorColor", "Int_Color_Generic"),
        "trim": ("Trim", "Style_Description"),
        "mileage": ("Miles",),
        "price": ("SellingPrice",),
        "bookValue": ("BookValue",),
        "inStockDate": ("DateInStock",),
        "engine": ("EngineDescription", "Engine_Description"),
        "drivetrain": ("Drivetrain_Desc",),
        "fuelType": ("Fuel_Type",),
        "features": ("Options", "Categorized Options"),
        "photoUrls": ("ImageList",),
        "vdpUrl": ("VehicleDetailUrl", "Vehicle_Detail_URL"),
    },
    "elead": {
        "stockNumber": ("StockNo", "Stock No"),
        "condition": ("NewUsed", "New/Used"),
        "bodyStyle": ("BodyStyle",),
        "exteriorColor": ("ExtColor",),
        "interiorColor": ("IntColor",),
        "price": ("SalePrice", "ListPrice"),
        "inStockDate": ("DateReceived", "ReceivedDate"),
        "drivetrain": ("DriveType",),
        "features": ("Options",),
        "description": ("Comments",),
        "photoUrls": ("PhotoURLs", "ImageURLs"),
        "vdpUrl": ("VehicleURL", "VDPURL"),
    },
    "custom": {},
}

# Header-less files map by position when their provider has a fixed column order: vAuto's is
# that of its 25-column inventory export (the order tests/bench/feedgen.py writes). The others
# have no fixed order and map header-less files through custom mappings ("column_N") only.
POSITIONAL_LAYOUTS: dict[str, tuple[str | None, ...]] = {
    "vauto": (
        None,  # Dealer ID
        "vin",
        "stockNumber",
        "condition",
        "year",
        "make",
        "model",
        "trim",
        "bodyStyle",
        "exteriorColor",
        "interiorColor",
        "mileage",
        "price",
        "msrp",
        "inStockDate",
        "certified",
        "engine",
        "transmission",
        "drivetrain",
        "fuelType",
        "doors",
        "description",
        "features",
        "photoUrls",
        "vdpUrl",
    ),
}


def _alias_table(provider: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for name, field in VEHICLE_FIELDS.items():
        table[header_key(name)] = name
        table[header_key(field.column)] = name
    for name, aliases in GENERIC_ALIASES.items():
        table.update({header_key(alias): name for alias in aliases})
    for name, aliases in PROVIDER_ALIASES.get(provider, {}).items():
        table.update({header_key(alias): name for alias in aliases})
    return table


ALIASES: dict[str, dict[str, str]] = {
    provider: _alias_table(provider) for provider in PROVIDER_ALIASES
}
FIELD_KEYS: dict[str, str] = {
    **{header_key(field.column): name for name, field in VEHICLE_FIELDS.items()},
    **{header_key(name): name for name in VEHICLE_FIELDS},
}


def resolve_headers(raw: list[str]) -> tuple[list[str], list[str]]:
    """Unique source names for the header's fields, and warnings about what was renamed.

    A blank header becomes "column_N"; a repeated one (compared like mappings are) gets "_2",
    "_3", ... so that the first occurrence keeps its name and its mapping.
    """
    names: list[str] = []
    warnings: list[str] = []
    taken: set[str] = set()
    for position, header in enumerate(raw):
        name = header.replace("\ufeff", "").strip()
        if not name:
            name = f"column_{position + 1}"
            warnings.append(f"Column {position + 1} has no header; it is named {name!r}.")
        if header_key(name) in taken:
            suffix = 2
            while header_key(f"{name}_{suffix}") in taken:
                suffix += 1
            renamed = f"{name}_{suffix}"
            warnings.append(
                f"Duplicate header {name!r} at column {position + 1} renamed {renamed!r}."
            )
            name = renamed
        taken.add(header_key(name))
        names.append(name)
    return names, warnings


def map_columns(
    sources: list[str],
    *,
    provider: str,
    overrides: dict[str, str | None],
    positional: bool,
) -> tuple[list[MappedColumn], list[str]]:
    """Map each source column to a canonical field; return the columns and warnings.

    Defaults come from the provider's header aliases, or, for a header-less file
    (``positional``), from its positional layout. Overrides are matched against the source names
    like defaults are. Each field takes one column: a custom mapping beats a default one, then
    the leftmost column wins; the others are kept in ``extra``.
    """
    warnings: list[str] = []
    aliases = ALIASES.get(provider, ALIASES["custom"])
    layout = POSITIONAL_LAYOUTS.get(provider, ()) if positional else ()
    keys = [header_key(source) for source in sources]
    custom: dict[str, str | None] = {}
    for source_name, target in overrides.items():
        key = header_key(source_name)
        if key not in keys:
            warnings.append(f"The custom mapping of {source_name!r} matches no column of the file.")
            continue
        if target is None or not str(target).strip():
            custom[key] = None
            continue
        canonical = FIELD_KEYS.get(header_key(str(target)))
        if canonical is None:
            warnings.append(
                f"The custom mapping of {source_name!r} to {target!r} was ignored: "
                f"{target!r} is not a vehicle field."
            )
            continue
        custom[key] = canonical

    columns: list[MappedColumn] = []
    for position, (source, key) in enumerate(zip(sources, keys, strict=True)):
        if key in custom:
            target, origin = custom[key], "custom" if custom[key] else None
        elif positional:
            target = layout[position] if position < len(layout) else None
            origin = "default" if target else None
        else:
            target = aliases.get(key)
            origin = "default" if target else None
        columns.append(MappedColumn(source=source, position=position, field=target, origin=origin))

    for field in VEHICLE_FIELDS:
        claims = [column for column in columns if column.field == field]
        if len(claims) < 2:
            continue
        claims.sort(key=lambda column: (column.origin != "custom", column.position))
        winner = claims[0]
        for loser in claims[1:]:
            warnings.append(
                f"Column {loser.source!r} also maps to {field}; {winner.source!r} is used and "
                f"{loser.source!r} is kept in extra."
            )
            loser.field, loser.origin = None, None

    unmapped = [column.source for column in columns if column.field is None]
    if unmapped:
        listed = ", ".join(repr(source) for source in unmapped[:20])
        more = f" and {len(unmapped) - 20} more" if len(unmapped) > 20 else ""
        warnings.append(f"Columns not mapped to a vehicle field (kept in extra): {listed}{more}.")
    return columns, warnings
