"""Mapping columns to canonical fields: provider defaults, header drift, duplicates, custom
mappings (overrides), and header-less feeds."""

from __future__ import annotations

import pytest

from syncengine.feeds.reader import FeedFileError, FeedOptions, MappedColumn
from tests.bench.feedgen import VAUTO_HEADER
from tests.syncengine.feeds.support import GOOD_VIN, csv_text, read, vin, write


def mapping(result) -> dict[str, str | None]:
    return {column.source: column.field for column in result.columns}


def test_vauto_export_maps_every_vehicle_column(tmp_path):
    # Given the header of a vAuto inventory export
    row = [
        "48213", GOOD_VIN, "00417", "Used", "2019", "Honda", "Accord", "EX-L", "Sedan", "Black",
        "Gray", "41,200", "$21,995", "$25,000", "03/14/2025", "Yes", "1.5L I4 Turbo", "CVT",
        "FWD", "Gasoline", "4", "One owner", "Sunroof,Heated Seats", "a.jpg|b.jpg",
        "https://dealer.example/v/1",
    ]  # fmt: skip
    path = write(tmp_path, csv_text([VAUTO_HEADER, row]))

    # When it is read as a vAuto feed
    result = read(path, provider="vauto")

    # Then every column but the dealer id maps, by default
    assert mapping(result) == {
        "Dealer ID": None,
        "VIN": "vin",
        "Stock #": "stockNumber",
        "New/Used": "condition",
        "Year": "year",
        "Make": "make",
        "Model": "model",
        "Series": "trim",
        "Body": "bodyStyle",
        "Colour": "exteriorColor",
        "Interior Color": "interiorColor",
        "Odometer": "mileage",
        "Price": "price",
        "MSRP": "msrp",
        "Inventory Date": "inStockDate",
        "Certified": "certified",
        "Engine": "engine",
        "Transmission": "transmission",
        "Drivetrain": "drivetrain",
        "Fuel": "fuelType",
        "Doors": "doors",
        "Description": "description",
        "Features": "features",
        "Photo Url List": "photoUrls",
        "VDP URL": "vdpUrl",
    }
    assert {column.origin for column in result.columns if column.field} == {"default"}
    assert result.frame["extra"].tolist() == [{"Dealer ID": "48213"}]
    assert result.frame["trim"].tolist() == ["EX-L"]
    assert result.frame["mileage"].tolist() == [41200]


def test_vauto_alternative_headers(tmp_path):
    # Given a vAuto export configured with the longer column names
    header = [
        "VIN", "Stock #", "Trim", "Exterior Color", "Mileage", "Internet Price", "Invoice",
        "Book Value", "Date In Stock", "Comments", "Options", "Photos",
    ]  # fmt: skip
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "1", *[""] * 10]]))

    # When it is read, then they map too
    assert list(mapping(read(path, provider="vauto")).values()) == [
        "vin", "stockNumber", "trim", "exteriorColor", "mileage", "price", "invoice",
        "bookValue", "inStockDate", "description", "features", "photoUrls",
    ]  # fmt: skip


def test_homenet_export(tmp_path):
    # Given HomeNet's column names ("Type" is new/used there)
    header = [
        "DealerId", "VIN", "Stock", "Type", "Year", "Make", "Model", "Trim", "Body",
        "ExteriorColor", "InteriorColor", "Miles", "SellingPrice", "MSRP", "BookValue",
        "Invoice", "Certified", "DateInStock", "Description", "Options", "ImageList",
        "EngineDescription", "Transmission", "Drivetrain", "Fuel_Type", "Doors",
    ]  # fmt: skip
    row = [
        "77", GOOD_VIN, "H100", "U", "2018", "Ford", "F-150", "XLT", "Pickup", "Red", "Gray",
        "52000", "28995", "0", "24000", "26000", "False", "2025-02-01", "Nice", "Tow Package",
        "a.jpg,b.jpg", "5.0L V8", "Automatic", "4WD", "Gasoline", "4",
    ]  # fmt: skip
    path = write(tmp_path, csv_text([header, row]))

    # When it is read as a HomeNet feed
    result = read(path, provider="homenet")

    # Then everything but the dealer id maps
    assert [source for source, field in mapping(result).items() if field is None] == ["DealerId"]
    assert mapping(result)["Type"] == "condition"
    assert mapping(result)["ImageList"] == "photoUrls"
    vehicle = result.row()
    assert vehicle["condition"] == "used"
    assert vehicle["stock_number"] == "H100"
    assert vehicle["price"] == 28995.0
    assert vehicle["mileage"] == 52000
    assert vehicle["in_stock_date"] == "2025-02-01"
    assert vehicle["engine"] == "5.0L V8"
    assert vehicle["fuel_type"] == "Gasoline"


def test_elead_export(tmp_path):
    # Given Elead's column names
    header = [
        "StockNo", "VIN", "NewUsed", "Year", "Make", "Model", "BodyStyle", "ExtColor",
        "IntColor", "Mileage", "SalePrice", "MSRP", "DateReceived", "DriveType", "FuelType",
        "Comments", "Options", "PhotoURLs", "VehicleURL",
    ]  # fmt: skip
    row = [
        "E9", GOOD_VIN, "New", "2025", "Kia", "K5", "Sedan", "White", "Black", "12",
        "27,500", "28,000", "1/2/2025", "FWD", "Gasoline", "New arrival", "A|B", "x.jpg",
        "https://dealer.example/e9",
    ]  # fmt: skip
    path = write(tmp_path, csv_text([header, row]))

    # When it is read as an Elead feed
    result = read(path, provider="elead")

    # Then every column maps
    assert None not in mapping(result).values()
    vehicle = result.row()
    assert (vehicle["stock_number"], vehicle["condition"], vehicle["price"]) == ("E9", "new", 27500)
    assert vehicle["in_stock_date"] == "2025-01-02"
    assert vehicle["vdp_url"] == "https://dealer.example/e9"


def test_custom_feed_with_canonical_and_generic_names(tmp_path):
    # Given a hand-made CSV using the canonical camelCase names and a few generic ones
    header = ["vin", "stockNumber", "condition", "exterior_color", "Mileage", "photoUrls", "Type"]
    path = write(
        tmp_path, csv_text([header, [GOOD_VIN, "C1", "Used", "Blue", "9", "p.jpg", "SUV"]])
    )

    # When it is read as a custom feed
    result = read(path, provider="custom")

    # Then the canonical names map; HomeNet's "Type" means nothing here
    assert mapping(result) == {
        "vin": "vin",
        "stockNumber": "stockNumber",
        "condition": "condition",
        "exterior_color": "exteriorColor",
        "Mileage": "mileage",
        "photoUrls": "photoUrls",
        "Type": None,
    }


def test_headers_match_whatever_their_case_and_spacing(tmp_path):
    # Given headers that drifted in case and spacing
    header = ["vin", " Stock # ", "PHOTO_URL_LIST", "inventory-date", "new / used"]
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "5", "a.jpg", "01/05/2025", "N"]]))

    # When it is read
    result = read(path)

    # Then they map, and the source names are the trimmed headers
    assert mapping(result) == {
        "vin": "vin",
        "Stock #": "stockNumber",
        "PHOTO_URL_LIST": "photoUrls",
        "inventory-date": "inStockDate",
        "new / used": "condition",
    }
    assert result.row()["stock_number"] == "5"
    assert result.row()["condition"] == "new"


def test_duplicate_header_is_renamed_and_the_first_keeps_the_mapping(tmp_path):
    # Given two "Price" columns
    header = ["VIN", "Stock #", "Price", "Make", "Price"]
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "1", "100", "Kia", "200"]]))

    # When it is read
    result = read(path)

    # Then the second is "Price_2", reported, and kept in extra
    assert [(c.source, c.position, c.field) for c in result.columns][2:] == [
        ("Price", 2, "price"),
        ("Make", 3, "make"),
        ("Price_2", 4, None),
    ]
    assert "Duplicate header 'Price' at column 5 renamed 'Price_2'." in result.file_warnings
    assert result.row()["price"] == 100.0
    assert result.row()["extra"] == {"Price_2": "200"}


def test_case_drifted_duplicate_is_a_duplicate_too(tmp_path):
    path = write(tmp_path, csv_text([["VIN", "vin", "Stock #"], [GOOD_VIN, vin(2), "1"]]))
    result = read(path)
    assert [column.source for column in result.columns] == ["VIN", "vin_2", "Stock #"]
    assert result.row()["vin"] == GOOD_VIN


def test_blank_header_gets_a_positional_name(tmp_path):
    path = write(tmp_path, csv_text([["VIN", "", "Stock #"], [GOOD_VIN, "note", "1"]]))
    result = read(path)
    assert [column.source for column in result.columns] == ["VIN", "column_2", "Stock #"]
    assert result.row()["extra"] == {"column_2": "note"}
    assert "Column 2 has no header; it is named 'column_2'." in result.file_warnings


def test_each_field_takes_the_leftmost_column(tmp_path):
    # Given two columns that both mean price
    header = ["VIN", "Stock #", "Price", "Internet Price"]
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "1", "100", "95"]]))

    # When it is read
    result = read(path)

    # Then "Price" is used, "Internet Price" is kept in extra, and that is reported
    assert mapping(result)["Internet Price"] is None
    assert result.row()["price"] == 100.0
    assert result.row()["extra"] == {"Internet Price": "95"}
    assert (
        "Column 'Internet Price' also maps to price; 'Price' is used and 'Internet Price' is "
        "kept in extra." in result.file_warnings
    )


def test_custom_mappings_beat_defaults_and_none_unmaps(tmp_path):
    # Given a feed and the integration's custom mappings
    header = ["VIN", "Stock #", "Price", "Internet Price", "Description", "Lot"]
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "1", "100", "95", "Nice", "North"]]))
    overrides = {
        "internet_price": "price",  # matched like defaults are
        "Description": None,  # unmapped on purpose
        "LOT": "interior_color",  # a snake_case target works too
    }

    # When it is read
    result = read(path, overrides=overrides)

    # Then the custom mappings win, with their origin
    columns = {column.source: column for column in result.columns}
    assert columns["Internet Price"] == MappedColumn("Internet Price", 3, "price", "custom")
    assert columns["Price"] == MappedColumn("Price", 2, None, None)
    assert columns["Description"] == MappedColumn("Description", 4, None, None)
    assert columns["Lot"] == MappedColumn("Lot", 5, "interiorColor", "custom")
    vehicle = result.row()
    assert (vehicle["price"], vehicle["description"], vehicle["interior_color"]) == (
        95.0,
        None,
        "North",
    )
    assert vehicle["extra"] == {"Price": "100", "Description": "Nice"}


def test_unusable_custom_mappings_are_reported(tmp_path):
    path = write(tmp_path, csv_text([["VIN", "Stock #", "Lot"], [GOOD_VIN, "1", "N"]]))
    result = read(path, overrides={"Lot": "parkingSpot", "Color": "exteriorColor"})
    assert (
        "The custom mapping of 'Lot' to 'parkingSpot' was ignored: 'parkingSpot' is not a "
        "vehicle field." in result.file_warnings
    )
    assert "The custom mapping of 'Color' matches no column of the file." in result.file_warnings
    assert mapping(result)["Lot"] is None


def test_unmapped_columns_are_listed_once(tmp_path):
    header = ["VIN", "Stock #", "Lot", "Age", "Buyer"]
    path = write(tmp_path, csv_text([header, [GOOD_VIN, "1", "N", "12", ""]]))
    result = read(path)
    assert (
        "Columns not mapped to a vehicle field (kept in extra): 'Lot', 'Age', 'Buyer'."
        in result.file_warnings
    )
    assert result.row()["extra"] == {"Lot": "N", "Age": "12"}


# --- header-less feeds ------------------------------------------------------------------------


def test_header_less_feed_maps_through_custom_mappings_by_position(tmp_path):
    # Given a custom feed without a header row, and mappings keyed by column position
    path = write(tmp_path, f"{GOOD_VIN},Honda,$5000,extra\n{vin(2)},Kia,,\n")
    overrides: dict[str, str | None] = {"column_1": "vin", "column_2": "make", "Column_3": "price"}

    # When it is read with includeHeader false
    result = read(
        path, provider="custom", overrides=overrides, options=FeedOptions(include_header=False)
    )

    # Then the first line is data and the columns map by position
    assert [(c.source, c.field, c.origin) for c in result.columns] == [
        ("column_1", "vin", "custom"),
        ("column_2", "make", "custom"),
        ("column_3", "price", "custom"),
        ("column_4", None, None),
    ]
    assert result.frame["row_number"].tolist() == [1, 2]
    assert result.frame["make"].tolist() == ["Honda", "Kia"]
    assert result.frame["extra"].tolist() == [{"column_4": "extra"}, {}]


def test_header_less_feed_without_mappings_is_rejected(tmp_path):
    path = write(tmp_path, f"{GOOD_VIN},Honda\n")
    with pytest.raises(FeedFileError, match="No column maps to vin or stockNumber"):
        read(path, provider="custom", options=FeedOptions(include_header=False))


def test_header_less_vauto_feed_maps_by_its_layout(tmp_path):
    # Given a vAuto export without its header row
    row = ["48213", GOOD_VIN, "0042", "New", "2025", "Kia", "EV9", "Land", "SUV"] + [""] * 16
    path = write(tmp_path, csv_text([row]))

    # When it is read with includeHeader false
    result = read(path, provider="vauto", options=FeedOptions(include_header=False))

    # Then the standard vAuto column order applies
    assert result.field("stockNumber").source == "column_3"
    vehicle = result.row()
    assert (vehicle["vin"], vehicle["stock_number"], vehicle["model"]) == (GOOD_VIN, "0042", "EV9")
    assert vehicle["extra"] == {"column_1": "48213"}
