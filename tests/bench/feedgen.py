"""A generator of realistic vAuto-style inventory feeds, for benchmarks and large tests.

``write_vauto_feed(path, rows, seed=...)`` writes a 25-column CSV with CRLF line endings of about
815 bytes per row (the size PERFORMANCE.md measures with): VINs with valid check digits, stock
numbers with leading zeros, prices like ``$12,995``, mileage like ``12,345``, ``MM/DD/YYYY``
dates, a quoted description with commas, comma-separated features, 10 to 18 pipe-separated photo
URLs (short ones, so that the row keeps that size) and one column no vehicle field maps to
("Dealer ID").

The same ``seed`` always describes the same inventory. A variant of it is written with
``changed_ratio`` and ``new_ratio``: that share of rows gets a lower price and a higher mileage
(a "changed" vehicle), and that share of rows is replaced by a vehicle that was not in the base
inventory (one sold, one arrived, so the row count stays ``rows``). The choice of rows depends only
on the seed, so the variant of a seed always changes the same vehicles.

``messy=True`` writes the same inventory with the value formats real exports mix, row by row:
prices as ``$12,995``, ``12995.00``, ``USD 12,995`` or ``Call for price``; mileage as ``12,345
mi``, ``12345``, ``12,345 miles`` or kilometres; dates and date-times in seven formats (one with a
UTC offset); Yes/No/Y/N/1/0/true/false; conditions spelt N, Pre-Owned, CPO...; doors as ``4dr``;
padded lower-case VINs and padded stock numbers; descriptions with quotes and line breaks;
features with spaces after the commas or pipes; photo lists separated by pipes, by ``"; "`` or
by commas between URLs that contain commas themselves (image CDN resize options). The format of
each value depends only on the seed and the row, so a variant changes values, not formats.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

VAUTO_HEADER = [
    "Dealer ID",
    "VIN",
    "Stock #",
    "New/Used",
    "Year",
    "Make",
    "Model",
    "Series",
    "Body",
    "Colour",
    "Interior Color",
    "Odometer",
    "Price",
    "MSRP",
    "Inventory Date",
    "Certified",
    "Engine",
    "Transmission",
    "Drivetrain",
    "Fuel",
    "Doors",
    "Description",
    "Features",
    "Photo Url List",
    "VDP URL",
]

# (make, WMI, models) - real manufacturer identifiers, so generated VINs look like real ones.
MAKES = [
    ("Honda", "1HG", ["Accord", "Civic", "CR-V", "Pilot", "Odyssey"]),
    ("Ford", "1FT", ["F-150", "Escape", "Explorer", "Mustang", "Bronco"]),
    ("Toyota", "4T1", ["Camry", "Corolla", "RAV4", "Highlander", "Tacoma"]),
    ("Chevrolet", "1G1", ["Malibu", "Silverado 1500", "Equinox", "Tahoe", "Traverse"]),
    ("BMW", "WBA", ["330i", "X3", "X5", "M340i", "530i"]),
    ("Volkswagen", "3VW", ["Jetta", "Tiguan", "Atlas", "Golf GTI", "Passat"]),
    ("Hyundai", "5NP", ["Elantra", "Sonata", "Tucson", "Santa Fe", "Palisade"]),
    ("Kia", "KNA", ["Forte", "Sportage", "Sorento", "Telluride", "K5"]),
    ("Nissan", "1N4", ["Altima", "Sentra", "Rogue", "Pathfinder", "Frontier"]),
    ("Subaru", "JF1", ["Outback", "Forester", "Crosstrek", "Impreza", "Ascent"]),
]
TRIMS = ["Base", "LX", "EX-L", "Sport", "Limited", "Touring", "SE", "XLE", "Premium", "Platinum"]
BODIES = ["Sedan", "SUV", "Crew Cab Pickup", "Hatchback", "Minivan", "Coupe"]
COLOURS = ["Black", "White", "Silver", "Gray", "Blue", "Red", "Green", "Brown", "Pearl White"]
INTERIORS = ["Black", "Gray", "Beige", "Tan", "Ivory"]
ENGINES = ["2.0L I4", "1.5L I4 Turbo", "3.5L V6", "5.0L V8", "2.5L I4", "Electric"]
TRANSMISSIONS = ["Automatic", "CVT", "6-Speed Manual", "8-Speed Automatic", "10-Speed Automatic"]
DRIVETRAINS = ["FWD", "AWD", "4WD", "RWD"]
FUELS = ["Gasoline", "Hybrid", "Diesel", "Electric"]
FEATURES = [
    "Bluetooth",
    "Backup Camera",
    "Heated Seats",
    "Sunroof",
    "Navigation",
    "Apple CarPlay",
    "Android Auto",
    "Leather Seats",
    "Keyless Entry",
    "Remote Start",
    "Blind Spot Monitor",
    "Lane Keep Assist",
    "Adaptive Cruise",
    "Power Liftgate",
    '20" Alloy Wheels',
    "Third Row Seat",
]
WORDS = [
    "clean", "carfax", "one", "owner", "low", "miles", "well", "maintained", "great",
    "condition", "local", "trade", "non", "smoker", "fully", "serviced", "new", "tires", "new",
    "brakes", "warranty", "available", "financing", "easy", "approval", "call", "today", "test",
    "drive", "loaded", "must", "see", "priced", "to", "sell", "fuel", "efficient", "spacious",
    "comfortable", "reliable", "family", "vehicle", "garage", "kept",
]  # fmt: skip

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
VIN_VALUES = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
YEAR_CODES = {year: "ABCDEFGHJKLMNPRST"[year - 2010] for year in range(2010, 2027)}


def vin_with_check_digit(vin: str) -> str:
    """``vin`` (17 characters, position 9 a placeholder) with its ISO 3779 check digit set."""
    total = sum(VIN_VALUES[char] * weight for char, weight in zip(vin, VIN_WEIGHTS, strict=True))
    check = total % 11
    return vin[:8] + ("X" if check == 10 else str(check)) + vin[9:]


def _vehicle(rng: random.Random, serial: int) -> list[str]:
    """One vehicle's row in the clean formats; draws a fixed number of values from ``rng``."""
    make, wmi, models = MAKES[rng.randrange(len(MAKES))]
    model = models[rng.randrange(len(models))]
    year = rng.randrange(2012, 2026)
    is_new = year >= 2025 and rng.random() < 0.7
    vds = "".join(rng.choices(VIN_ALPHABET, k=5))
    plant = VIN_ALPHABET[(serial // 1_000_000) % len(VIN_ALPHABET)]
    vin = vin_with_check_digit(f"{wmi}{vds}0{YEAR_CODES[year]}{plant}{serial % 1_000_000:06d}")
    stock = f"{serial % 10_000_000:07d}"  # vAuto stock numbers keep their leading zeros
    mileage = rng.randrange(5, 40) if is_new else rng.randrange(3_000, 140_000)
    price = rng.randrange(9_000, 75_000) // 5 * 5
    month, day = rng.randrange(1, 13), rng.randrange(1, 29)
    certified = not is_new and rng.random() < 0.2
    condition = "New" if is_new else ("Certified" if certified else "Used")
    words = rng.choices(WORDS, k=rng.randrange(8, 14))
    description = f"{year} {make} {model}, " + " ".join(words) + ". Call us, we are open daily!"
    features = ",".join(rng.sample(FEATURES, k=rng.randrange(2, 6)))
    photos = "|".join(
        f"https://p.rly.io/{stock}{index:02d}.jpg" for index in range(rng.randrange(10, 19))
    )
    return [
        "48213",
        vin,
        stock,
        condition,
        str(year),
        make,
        model,
        TRIMS[rng.randrange(len(TRIMS))],
        BODIES[rng.randrange(len(BODIES))],
        COLOURS[rng.randrange(len(COLOURS))],
        INTERIORS[rng.randrange(len(INTERIORS))],
        f"{mileage:,}",
        f"${price:,}",
        f"${price + rng.randrange(1_000, 6_000):,}",
        f"{month:02d}/{day:02d}/2024",
        "Yes" if certified else "No",
        ENGINES[rng.randrange(len(ENGINES))],
        TRANSMISSIONS[rng.randrange(len(TRANSMISSIONS))],
        DRIVETRAINS[rng.randrange(len(DRIVETRAINS))],
        FUELS[rng.randrange(len(FUELS))],
        str(rng.choice((2, 4, 4, 4))),
        description,
        features,
        photos,
        f"https://example-motors.com/v/{vin}",
    ]


DATE_LAYOUTS = (
    "{m:02d}/{d:02d}/{y}",
    "{y}-{m:02d}-{d:02d}",
    "{m}/{d}/{y} {h}:{mi:02d}:00 PM",
    "{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:00",
    "{y}-{m:02d}-{d:02d} {h:02d}:{mi:02d}:00",
    "{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:00Z",
    "{m:02d}/{d:02d}/{yy:02d}",
)
BOOLEAN_WORDS = (("Yes", "No"), ("Y", "N"), ("1", "0"), ("true", "false"), ("TRUE", "FALSE"))
CONDITION_WORDS = {
    "New": ("New", "N", "new", "NEW"),
    "Used": ("Used", "U", "Pre-Owned", "used"),
    "Certified": ("Certified", "CPO", "Certified Pre-Owned", "certified"),
}


def _amount(rng: random.Random, value: int) -> str:
    layout = rng.randrange(10)
    if layout < 4:
        return f"${value:,}"
    if layout < 6:
        return f"{value}.00"
    if layout < 7:
        return f"USD {value:,}"
    if layout < 8:
        return f"${value:,}.00"
    if layout < 9:
        return str(value)
    return "Call for price"


def _photos(rng: random.Random, stock: str, count: int) -> str:
    layout = rng.randrange(10)
    if layout < 5:
        return "|".join(f"https://p.rly.io/{stock}{index:02d}.jpg" for index in range(count))
    if layout < 8:  # resize options with commas inside each URL, commas between them
        return ",".join(
            f"https://img.rly.io/w_640,h_480,c_fill/{stock}{index:02d}.jpg"
            for index in range(count)
        )
    return "; ".join(f"https://p.rly.io/{stock}{index:02d}.jpg" for index in range(count))


def _messy(row: list[str], rng: random.Random) -> list[str]:
    """``row`` (clean formats) in the formats real exports mix; draws a fixed number of values
    from ``rng`` whatever the row holds."""
    draws = [rng.random() for _ in range(8)]
    picks = [rng.randrange(1_000_000) for _ in range(8)]
    messy = list(row)
    vin, stock = row[1], row[2]
    if draws[0] < 0.3:
        messy[1] = f" {vin.lower()} "
    if draws[1] < 0.2:
        messy[2] = f"{stock}  "
    spellings = CONDITION_WORDS[row[3]]
    messy[3] = spellings[picks[0] % len(spellings)]
    mileage = int(row[11].replace(",", ""))
    mileage_layout = picks[1] % 10
    if mileage_layout < 4:
        messy[11] = f"{mileage:,} mi"
    elif mileage_layout < 6:
        messy[11] = str(mileage)
    elif mileage_layout < 8:
        messy[11] = f"{mileage:,} miles"
    elif mileage_layout < 9:
        messy[11] = f"{mileage}.0"
    else:
        messy[11] = f"{round(mileage / 0.621371):,} km"
    price_rng = random.Random(picks[2])
    price, msrp = (int(value.strip("$").replace(",", "")) for value in row[12:14])
    messy[12] = _amount(price_rng, price)
    messy[13] = "" if draws[2] < 0.1 else _amount(price_rng, msrp)
    month, day, year = (int(part) for part in row[14].split("/"))
    hour, minute = 1 + picks[3] % 11, picks[4] % 60
    messy[14] = DATE_LAYOUTS[picks[5] % len(DATE_LAYOUTS)].format(
        m=month, d=day, y=year, yy=year % 100, h=hour, mi=minute
    )
    yes, no = BOOLEAN_WORDS[picks[6] % len(BOOLEAN_WORDS)]
    messy[15] = yes if row[15] == "Yes" else no
    doors = row[20]
    messy[20] = f"{doors}dr" if draws[3] < 0.2 else (f"{doors} Doors" if draws[3] < 0.3 else doors)
    if draws[4] < 0.3:
        messy[21] = row[21].replace(", ", ',\n"', 1).replace(". Call", '."\nCall', 1)
    if draws[5] < 0.4:
        messy[22] = row[22].replace(",", ", ")
    elif draws[5] < 0.6:
        messy[22] = row[22].replace(",", "|")
    photo_count = row[23].count("|") + 1
    messy[23] = _photos(random.Random(picks[7]), stock, photo_count)
    return messy


def write_vauto_feed(
    path: Path | str,
    rows: int,
    *,
    seed: int = 0,
    changed_ratio: float = 0.0,
    new_ratio: float = 0.0,
    messy: bool = False,
) -> None:
    """Write a ``rows``-row vAuto-style feed of the inventory ``seed`` describes to ``path``.

    ``changed_ratio`` of the rows get a price $500 lower and 250 more miles; ``new_ratio`` of the
    rows are replaced by vehicles not in the base inventory (see the module docstring); ``messy``
    mixes value formats.
    """
    inventory = random.Random(seed)  # the base inventory: same draws whatever the ratios
    variation = random.Random(f"{seed}:variation")  # which rows change: also fixed per seed
    arrivals = random.Random(f"{seed}:arrivals")  # the vehicles that replace sold ones
    formats = random.Random(f"{seed}:formats")  # the messy formats: fixed per seed and row
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(VAUTO_HEADER)
        for index in range(rows):
            row = _vehicle(inventory, index)
            roll = variation.random()
            if roll < new_ratio:
                row = _vehicle(arrivals, rows + index)
            elif roll < new_ratio + changed_ratio:
                price = int(row[12].strip("$").replace(",", ""))
                mileage = int(row[11].replace(",", ""))
                row[12] = f"${max(price - 500, 1_000):,}"
                row[11] = f"{mileage + 250:,}"
            if messy:
                row = _messy(row, formats)
            writer.writerow(row)
