"""Normalising values: VINs, stock numbers, prices, mileage, dates (in the dealership's time
zone), conditions, booleans, years, null sentinels, lists and long text."""

from __future__ import annotations

import pandas as pd
import pytest

from syncengine.feeds.normalize import split_items
from tests.syncengine.feeds.support import GOOD_VIN, csv_text, read, read_values, vin, write

# --- VIN and stock number ---------------------------------------------------------------------


def test_vin_is_trimmed_unspaced_and_upper_cased(tmp_path):
    # Given a VIN typed in lower case with spaces
    path = write(tmp_path, csv_text([["VIN", "Stock #"], ["  1hgcm 82633a 004352 ", "1"]]))

    # When it is read
    result = read(path)

    # Then it is the canonical VIN, and it is the key, with no warning
    assert result.frame["vin"].tolist() == [GOOD_VIN]
    assert result.frame["key"].tolist() == [GOOD_VIN]
    assert result.row_warnings == []


def test_doubtful_vins_are_kept_with_a_warning(tmp_path):
    # Given VINs with a bad check digit, a wrong length, and letters a VIN never has
    rows = [
        ["VIN", "Stock #"],
        ["1HGCM82634A004352", "1"],
        ["1HGCM82633A00435", "2"],
        ["1HGCM8263OA004352", "3"],
    ]
    result = read(write(tmp_path, csv_text(rows)))

    # Then every row is imported under its VIN, and each doubt is a row warning
    assert result.frame["key"].tolist() == [
        "1HGCM82634A004352",
        "1HGCM82633A00435",
        "1HGCM8263OA004352",
    ]
    assert result.rejected == []
    assert result.row_warnings == [
        "Row 1: VIN 1HGCM82634A004352 fails its check digit",
        "Row 2: VIN 1HGCM82633A00435 is not 17 characters long",
        "Row 3: VIN 1HGCM8263OA004352 has characters a VIN cannot have (I, O, Q or punctuation)",
    ]


def test_check_digit_x_is_accepted(tmp_path):
    # Given the VIN of the textbook check-digit example, whose check digit is X
    path = write(tmp_path, csv_text([["VIN", "Stock #"], ["1M8GDM9AXKP042788", "1"]]))
    result = read(path)
    assert result.frame["vin"].tolist() == ["1M8GDM9AXKP042788"]
    assert result.row_warnings == []


@pytest.mark.parametrize("stock", ["00123", "0", "000000042"])
def test_stock_numbers_keep_their_leading_zeros(tmp_path, stock):
    path = write(tmp_path, csv_text([["VIN", "Stock #"], ["", f" {stock} "]]))
    result = read(path)
    assert result.frame["stock_number"].tolist() == [stock]
    assert result.frame["key"].tolist() == [f"stock:{stock}"]


# --- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("$12,995", 12995.0),
        ("12,995.00", 12995.0),
        ("12995 USD", 12995.0),
        ("$ 12995", 12995.0),
        ("12995.499", 12995.5),
        ("19,999.99", 19999.99),
        ("0", None),
        ("0.00", None),
        ("", None),
        ("Call", None),
        ("Call for price", None),
        ("CALL FOR PRICE", None),
        ("N/A", None),
        ("-", None),
    ],
)
def test_prices(tmp_path, text, amount):
    # Given a price as partners write them
    result = read_values(tmp_path, {"Price": text, "MSRP": text})

    # Then it is a decimal amount, or None when the dealer does not publish one, silently
    price = result.frame["price"].iloc[0]
    assert (None if price is pd.NA else price) == amount
    assert result.frame["price"].dtype == "Float64"
    assert result.row_warnings == []


def test_unreadable_price_is_none_with_a_warning(tmp_path):
    result = read_values(tmp_path, {"Price": "twelve grand", "Invoice": "-500"})
    assert result.frame["price"].iloc[0] is pd.NA
    assert result.frame["invoice"].iloc[0] is pd.NA
    assert result.row_warnings == [
        "Row 1: price 'twelve grand' is not an amount",
        "Row 1: invoice -500 is negative",
    ]


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        # An ISO 4217 code before or after the number, in any case, spaced or not
        ("48900.00 CAD", 48900.0, "CAD"),
        ("CAD 48,900.00", 48900.0, "CAD"),
        ("cad48900", 48900.0, "CAD"),
        ("USD$12,995", 12995.0, "USD"),
        ("12995 USD", 12995.0, "USD"),
        ("€ 12.995,00", 12995.0, "EUR"),
        ("12.995,00 EUR", 12995.0, "EUR"),
        ("12995€", 12995.0, "EUR"),
        # A symbol one currency owns names it; a shared one ("$", "£", "kr") names none
        ("US$12,995", 12995.0, "USD"),
        ("CA$48,900", 48900.0, "CAD"),
        ("₹ 5,00,000", 500000.0, "INR"),
        ("$12,995", 12995.0, None),
        ("£9,995", 9995.0, None),
        ("129 900 kr", 129900.0, None),
        ("12995.00", 12995.0, None),
    ],
)
def test_amounts_keep_the_currency_they_name(tmp_path, text, amount, currency):
    # Given a price written with or without a currency
    result = read_values(tmp_path, {"Price": text})

    # Then the amount is read, the vehicle gets the currency the value names, and nothing warns
    assert result.frame["price"].tolist() == [amount]
    assert result.frame["currency"].tolist() == [currency]
    assert result.row_warnings == []
    assert result.warned_rows == 0


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        # Both separators: the last one is the decimal separator
        ("1,234.56", 1234.56),
        ("1.234,56", 1234.56),
        ("1,234,567.89", 1234567.89),
        ("1.234.567,89", 1234567.89),
        # One separator and exactly three digits after one to three leading digits: thousands
        ("12,995", 12995.0),
        ("12.995", 12995.0),
        ("1,234,567", 1234567.0),
        ("1.234.567", 1234567.0),
        # One separator otherwise: decimals
        ("12,50", 12.5),
        ("12.5", 12.5),
        ("12995.000", 12995.0),
        ("12995,5", 12995.5),
        ("0.500", 0.5),
        # Spaces and apostrophes group thousands
        ("12 995,00", 12995.0),
        ("12\u00a0995,00", 12995.0),
        ("12'995.00", 12995.0),
    ],
)
def test_decimal_conventions(tmp_path, text, amount):
    result = read_values(tmp_path, {"Price": text})
    assert result.frame["price"].tolist() == [amount]
    assert result.row_warnings == []


@pytest.mark.parametrize("text", ["TBD", "tba", "POA", "Price on request", "Contact dealer"])
def test_no_price_words_are_no_price_without_a_warning(tmp_path, text):
    result = read_values(tmp_path, {"Price": text})
    assert result.frame["price"].iloc[0] is pd.NA
    assert result.row_warnings == []
    assert result.warned_rows == 0


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("48900 XYZ", "price '48900 XYZ' is in an unknown currency"),
        ("abc", "price abc is not an amount"),
        ("USD 100 CAD", "price 'USD 100 CAD' names two currencies"),
        ("1,2,3", "price 1,2,3 is not an amount"),
        ("12.34.56", "price 12.34.56 is not an amount"),
        ("XY$100", "price XY$100 is not an amount"),
    ],
)
def test_unreadable_amounts_are_left_empty_with_a_warning(tmp_path, text, warning):
    # Given a price that is not an amount in a known currency
    result = read_values(tmp_path, {"Price": text})

    # Then the row is imported without a price or currency, and the value is reported
    assert result.frame["price"].iloc[0] is pd.NA
    assert result.frame["currency"].tolist() == [None]
    assert result.row_warnings == [f"Row 1: {warning}"]
    assert result.warned_rows == 1
    [dropped] = result.dropped
    assert (dropped.row_number, dropped.field, dropped.value) == (1, "price", text)
    assert dropped.values == {"VIN": GOOD_VIN, "Stock #": "A1", "Price": text}


def test_currency_column_and_amounts_in_another_currency(tmp_path):
    # Given a currency column, and amounts that name a currency of their own
    rows = [
        ["VIN", "Stock #", "Currency", "Price", "MSRP"],
        [vin(1), "1", "cad", "48,900", "52000 CAD"],
        [vin(2), "2", "CAD", "100 USD", "52000 CAD"],
        [vin(3), "3", "", "$9,995", "10995 USD"],
        [vin(4), "4", "dollars", "9995", ""],
    ]
    result = read(write(tmp_path, csv_text(rows)))

    # Then each vehicle has one currency: its column's, else the first its amounts name, and an
    # amount in another currency is left empty with a warning
    assert result.frame["currency"].tolist() == ["CAD", "CAD", "USD", None]
    assert result.frame["price"].tolist()[0] == 48900.0
    assert result.frame["price"].isna().tolist() == [False, True, False, False]
    assert result.frame["msrp"].tolist()[:3] == [52000.0, 52000.0, 10995.0]
    assert result.row_warnings == [
        "Row 2: price '100 USD' is not in the vehicle's currency, CAD",
        "Row 4: currency dollars is not an ISO 4217 currency code",
    ]
    assert result.warned_rows == 2


# --- VINs that cannot be keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("BADVIN", "VIN BADVIN has no digit"),
        ("TBD", "VIN TBD has no digit"),
        (
            "1HGCM/82633A004352",
            "VIN 1HGCM/82633A004352 has characters other than letters, digits and dashes",
        ),
        ("1234", "VIN 1234 is shorter than 5 characters"),
        ("1HGCM82633A0043521", "VIN 1HGCM82633A0043521 is longer than 17 characters"),
        ("00000000000000000", "VIN 00000000000000000 is one character repeated"),
    ],
)
def test_a_vin_that_cannot_identify_a_vehicle_rejects_its_row(tmp_path, text, reason):
    # Given a row whose VIN is a placeholder or garbage, even with a stock number
    rows = [["VIN", "Stock #", "Year"], [GOOD_VIN, "1", "2020"], [text, "2", "2021"]]

    result = read(write(tmp_path, csv_text(rows)))

    # Then that row is not imported; the rejection names the field, the value and the reason
    assert result.frame["key"].tolist() == [GOOD_VIN]
    [rejected] = result.rejected
    assert (rejected.row_number, rejected.field, rejected.value) == (2, "vin", text)
    assert rejected.reason == reason
    assert rejected.values == {"VIN": text, "Stock #": "2", "Year": "2021"}


@pytest.mark.parametrize("text", ["BNR32-123456", "12345", "1HGCM82633A00435", "WVWZZZ1JZXW000001"])
def test_vins_of_older_and_imported_vehicles_stay_keys(tmp_path, text):
    # Given a Japanese chassis number, a short pre-1981 serial, a VIN one character short and a
    # European VIN without a check digit
    result = read(write(tmp_path, csv_text([["VIN", "Stock #"], [text, "1"]])))

    # Then the row is imported under it (at most with a doubt in the warnings)
    assert result.frame["key"].tolist() == [text]
    assert result.rejected == []
    assert result.warned_rows == 0


def test_values_left_empty_are_counted_per_row(tmp_path):
    # Given rows with unreadable values: two in one row, one in another, none in a third
    rows = [
        ["VIN", "Stock #", "Year", "Price", "Odometer", "Inventory Date"],
        [vin(1), "1", "notayear", "abc", "12,000", "01/05/2025"],
        [vin(2), "2", "2020", "$9,995", "low", "02/30/2025"],
        [vin(3), "3", "2021", "$8,995", "9,000", "01/06/2025"],
    ]
    result = read(write(tmp_path, csv_text(rows)))

    # Then every row is imported, the bad values empty, and each is reported with its field
    assert result.frame["key"].tolist() == [vin(1), vin(2), vin(3)]
    assert result.warned_rows == 2
    assert [(note.row_number, note.field, note.value) for note in result.dropped] == [
        (1, "year", "notayear"),
        (1, "price", "abc"),
        (2, "mileage", "low"),
        (2, "inStockDate", "02/30/2025"),
    ]
    assert result.dropped[0].message.startswith("year notayear is not a model year")


# --- mileage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "miles"),
    [
        ("12,345", 12345),
        ("12,345 mi", 12345),
        ("12345 miles", 12345),
        ("64460.0", 64460),
        ("1500 KM", 932),
        ("1,500 km", 932),
        ("0", 0),
        ("N/A", None),
        ("", None),
    ],
)
def test_mileage(tmp_path, text, miles):
    result = read_values(tmp_path, {"Odometer": text})
    mileage = result.frame["mileage"].iloc[0]
    assert (None if mileage is pd.NA else mileage) == miles
    assert result.frame["mileage"].dtype == "Int64"
    assert result.row_warnings == []


def test_unreadable_mileage_is_none_with_a_warning(tmp_path):
    result = read_values(tmp_path, {"Odometer": "low"})
    assert result.frame["mileage"].iloc[0] is pd.NA
    assert result.row_warnings == ["Row 1: mileage low is not a number of miles"]


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("01/05/2025", "2025-01-05"),
        ("1/5/2025", "2025-01-05"),
        ("1/5/2025 11:30:00 PM", "2025-01-05"),
        ("1/5/2025 9:15 AM", "2025-01-05"),
        ("2025-01-05", "2025-01-05"),
        ("2025-01-05 23:59:59", "2025-01-05"),
        ("2025-01-05T23:59:59", "2025-01-05"),
        # An instant with an offset is a local date in Chicago (UTC-6 in January) ...
        ("2025-01-06T03:00:00Z", "2025-01-05"),
        ("2025-01-06T05:59:59+00:00", "2025-01-05"),
        ("2025-01-06T06:00:00Z", "2025-01-06"),
        ("2025-01-05T23:30:00-05:00", "2025-01-05"),
        ("", None),
        ("NULL", None),
    ],
)
def test_dates_are_local_calendar_dates(tmp_path, text, date):
    # Given a dealership in Chicago
    result = read_values(tmp_path, {"Inventory Date": text}, timezone="America/Chicago")

    # Then the in-stock date is its calendar date there
    assert result.frame["in_stock_date"].tolist() == [date]
    assert result.row_warnings == []


def test_instant_dates_follow_the_dealership_time_zone(tmp_path):
    # Given the same instant read for a dealership in Chicago and one in Berlin
    values = {"Inventory Date": "2025-07-01T02:30:00Z"}
    chicago = read_values(tmp_path, values, timezone="America/Chicago")
    berlin = read_values(tmp_path, values, timezone="Europe/Berlin")

    # Then each gets its own local date
    assert chicago.frame["in_stock_date"].tolist() == ["2025-06-30"]
    assert berlin.frame["in_stock_date"].tolist() == ["2025-07-01"]


def test_unparseable_date_is_none_with_a_warning(tmp_path):
    result = read_values(tmp_path, {"Inventory Date": "13/45/2025"})
    assert result.frame["in_stock_date"].tolist() == [None]
    assert result.row_warnings == ["Row 1: inStockDate 13/45/2025 is not a date"]


# --- condition, booleans, years, doors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("N", "new"),
        ("new", "new"),
        ("NEW", "new"),
        ("U", "used"),
        ("Used", "used"),
        ("Pre-Owned", "used"),
        ("CPO", "cpo"),
        ("Certified", "cpo"),
        ("Certified Pre-Owned", "cpo"),
        ("certified  pre-owned", "cpo"),
        ("", None),
    ],
)
def test_conditions(tmp_path, text, condition):
    result = read_values(tmp_path, {"New/Used": text})
    assert result.frame["condition"].tolist() == [condition]
    assert result.row_warnings == []


def test_unknown_condition_is_none_with_a_warning(tmp_path):
    result = read_values(tmp_path, {"New/Used": "Demo"})
    assert result.frame["condition"].tolist() == [None]
    assert result.row_warnings == ["Row 1: condition Demo is not New, Used or CPO"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Yes", True),
        ("TRUE", True),
        ("1", True),
        ("Y", True),
        ("No", False),
        ("false", False),
        ("0", False),
        ("N", False),
        ("", None),
    ],
)
def test_booleans(tmp_path, text, value):
    result = read_values(tmp_path, {"Certified": text})
    certified = result.frame["certified"].tolist()[0]
    assert (None if certified is pd.NA else certified) is value
    assert result.frame["certified"].dtype == "boolean"


def test_unknown_boolean_is_none_with_a_warning(tmp_path):
    result = read_values(tmp_path, {"Certified": "maybe"})
    assert result.frame["certified"].iloc[0] is pd.NA
    assert result.row_warnings == ["Row 1: certified maybe is not yes or no"]


@pytest.mark.parametrize(("text", "year"), [("2020", 2020), ("2021.0", 2021), ("1900", 1900)])
def test_years(tmp_path, text, year):
    result = read_values(tmp_path, {"Year": text})
    assert result.frame["year"].tolist() == [year]


def test_year_outside_the_model_year_range_is_none_with_a_warning(tmp_path):
    rows = [["VIN", "Stock #", "Year"], [vin(1), "1", "1899"], [vin(2), "2", "2999"]]
    rows.append([vin(3), "3", "recent"])
    result = read(write(tmp_path, csv_text(rows)))
    assert result.frame["year"].isna().tolist() == [True, True, True]
    assert [warning.split(" is ")[0] for warning in result.row_warnings] == [
        "Row 1: year 1899",
        "Row 2: year 2999",
        "Row 3: year recent",
    ]


@pytest.mark.parametrize(("text", "doors"), [("4", 4), ("2.0", 2), ("4 Doors", 4), ("", None)])
def test_doors(tmp_path, text, doors):
    result = read_values(tmp_path, {"Doors": text})
    value = result.frame["doors"].iloc[0]
    assert (None if value is pd.NA else value) == doors


# --- null sentinels and text --------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentinel", ["#N/A", "N/A", "NA", "NULL", "null", "nan", "NaN", "None", "-"]
)
def test_null_sentinels_mean_no_value_everywhere(tmp_path, sentinel):
    # Given a sentinel in every kind of column
    values = {
        "Make": sentinel,
        "New/Used": sentinel,
        "Year": sentinel,
        "Price": sentinel,
        "Odometer": sentinel,
        "Inventory Date": sentinel,
        "Certified": sentinel,
        "Photos": sentinel,
        "Features": sentinel,
        "Lot": sentinel,
    }

    # When it is read
    result = read_values(tmp_path, values)

    # Then every field is empty, nothing is warned about, and extra stays empty
    vehicle = result.frame.iloc[0]
    assert vehicle["make"] is None
    assert vehicle["condition"] is None
    assert vehicle["in_stock_date"] is None
    for column in ("year", "price", "mileage", "certified"):
        assert vehicle[column] is pd.NA, column
    assert vehicle["photo_urls"] == []
    assert vehicle["features"] == []
    assert vehicle["extra"] == {}
    assert result.row_warnings == []


def test_text_is_stripped_and_blank_is_none(tmp_path):
    result = read_values(tmp_path, {"Make": "  Honda ", "Model": "   ", "Series": "\tEX-L\t"})
    vehicle = result.row()
    assert (vehicle["make"], vehicle["model"], vehicle["trim"]) == ("Honda", None, "EX-L")


def test_one_megabyte_description_survives_intact(tmp_path):
    # Given a 1 MB description with quotes, commas and line breaks
    paragraph = 'Loaded, "like new", one owner.\nService records available; ask us! '
    description = (paragraph * (1_048_576 // len(paragraph) + 1))[:1_048_576].strip()
    rows = [["VIN", "Stock #", "Description"], [GOOD_VIN, "1", description], [vin(2), "2", "x"]]
    path = write(tmp_path, csv_text(rows))

    # When it is read
    result = read(path)

    # Then it is the same text, and the next row is intact
    assert result.frame["description"].tolist() == [description, "x"]


# --- lists --------------------------------------------------------------------------------------


def test_150_photo_urls_with_commas_inside_urls(tmp_path):
    # Given 150 photos whose CDN URLs carry commas, pipe-separated in one row, comma-separated
    # in another
    urls = [f"https://cdn.example/w_640,h_480,c_fill/v{number}/photo.jpg" for number in range(150)]
    rows = [
        ["VIN", "Stock #", "Photo Url List"],
        [vin(1), "1", "|".join(urls)],
        [vin(2), "2", ",".join(urls)],
        [vin(3), "3", " ; ".join(urls[:3]) + " ;"],
    ]
    path = write(tmp_path, csv_text(rows))

    # When it is read
    result = read(path)

    # Then each list has every URL whole
    assert result.frame["photo_urls"].tolist() == [urls, urls, urls[:3]]


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("Sunroof,Heated Seats,Navigation", ["Sunroof", "Heated Seats", "Navigation"]),
        ("Sunroof, Heated Seats , Navigation,", ["Sunroof", "Heated Seats", "Navigation"]),
        ("Sunroof|Heated Seats||Navigation", ["Sunroof", "Heated Seats", "Navigation"]),
        ("3.5L V6, 24V|Tow Package", ["3.5L V6, 24V", "Tow Package"]),
        ("Sunroof; Leather", ["Sunroof", "Leather"]),
        ("Sunroof", ["Sunroof"]),
        ("", []),
    ],
)
def test_features(tmp_path, text, items):
    result = read_values(tmp_path, {"Features": text})
    assert result.frame["features"].tolist() == [items]


@pytest.mark.parametrize(
    ("text", "urls", "items"),
    [
        ("https://a/1.jpg,https://a/2,x.jpg", True, ["https://a/1.jpg", "https://a/2,x.jpg"]),
        ("https://a/1.jpg, HTTP://a/2.jpg", True, ["https://a/1.jpg", "HTTP://a/2.jpg"]),
        ("https://a/1,2.jpg", True, ["https://a/1,2.jpg"]),
        (" a | b |", True, ["a", "b"]),
        ("a,b", False, ["a", "b"]),
        ("None", False, []),
    ],
)
def test_split_items(text, urls, items):
    assert split_items(text, urls=urls) == items


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("1/5/25", "2025-01-05"),
        ("2025-01-05 10:00:00 +05", "2025-01-04"),
        ("2025-01-05T10:00:00.123", "2025-01-05"),
        ("01/05/0001", None),
        ("2025-13-01", None),
    ],
)
def test_more_date_shapes(tmp_path, text, date):
    result = read_values(tmp_path, {"Inventory Date": text}, timezone="America/Chicago")
    assert result.frame["in_stock_date"].tolist() == [date]
