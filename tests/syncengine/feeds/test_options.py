"""File options: from a file import's ``file`` object, and how they steer reading."""

from __future__ import annotations

import pytest

from syncengine.feeds.reader import FeedFileError, FeedOptions
from tests.syncengine.feeds.support import GOOD_VIN, csv_text, read, vin, write


def test_options_from_a_documented_import_file_object():
    # Given an import's file object as the API stores it
    file = {
        "skipAggregation": False,
        "type": "csv",
        "csv": {
            "rowDelimiter": "\r\n",
            "columnDelimiter": "|",
            "includeHeader": False,
            "wrapWithQuotes": False,
        },
        "encoding": "windows-1252",
    }

    # When options are made from it, then each setting is carried over
    assert FeedOptions.from_import_file(file) == FeedOptions(
        column_delimiter="|", row_delimiter="\r\n", include_header=False, encoding="windows-1252"
    )


@pytest.mark.parametrize(
    "file",
    [
        {},
        {"type": "csv"},
        {"type": "csv", "csv": {}},
        {"type": "csv", "csv": None},
        {"csv": {"columnDelimiter": "", "rowDelimiter": "\n\n", "includeHeader": "yes"}},
        {"csv": {"columnDelimiter": "ab"}, "encoding": "klingon"},
    ],
)
def test_missing_or_unusable_options_fall_back_to_detection(file):
    assert FeedOptions.from_import_file(file) == FeedOptions()


@pytest.mark.parametrize(("typed", "delimiter"), [("\t", "\t"), ("\\t", "\t"), ("tab", "\t")])
def test_a_tab_delimiter_however_it_was_typed(typed, delimiter):
    options = FeedOptions.from_import_file({"csv": {"columnDelimiter": typed}})
    assert options.column_delimiter == delimiter


@pytest.mark.parametrize(("name", "canonical"), [("UTF8", "utf-8"), ("cp1252", "windows-1252")])
def test_encoding_names_are_canonical(name, canonical):
    assert FeedOptions.from_import_file({"encoding": name}).encoding == canonical


def test_configured_windows_1252_is_used_even_when_the_start_looks_like_utf8(tmp_path):
    # Given a Windows-1252 file whose accented bytes happen to form valid UTF-8 ("Ã©")
    rows = [["VIN", "Stock #", "Make"], [GOOD_VIN, "1", "CafÃ©"]]
    path = write(tmp_path, csv_text(rows), encoding="cp1252")

    # When it is read with the encoding set in the options
    result = read(path, options=FeedOptions(encoding="windows-1252"))

    # Then the options win over detection
    assert result.frame["make"].tolist() == ["CafÃ©"]
    assert "set by the file options: Windows-1252" in result.file_warnings[0]


def test_configured_cr_rows_keep_line_feeds_inside_unquoted_fields(tmp_path):
    # Given an old Mac export: rows end with CR, and a description holds a bare LF, unquoted
    text = f"VIN,Stock #,Description\r{GOOD_VIN},1,first\nsecond\r{vin(2)},2,plain\r"
    path = write(tmp_path, text)

    # When it is read with rowDelimiter "\r"
    result = read(path, options=FeedOptions(row_delimiter="\r"))

    # Then the line feed is part of the field, not a new row
    assert result.frame["description"].tolist() == ["first\nsecond", "plain"]


def test_unknown_configured_encoding_is_a_file_error(tmp_path):
    path = write(tmp_path, csv_text([["VIN"], [GOOD_VIN]]))
    with pytest.raises(FeedFileError, match="unknown encoding"):
        read(path, options=FeedOptions(encoding="klingon"))


def test_unknown_time_zone_falls_back_to_utc_with_a_warning(tmp_path):
    rows = [["VIN", "Stock #", "Inventory Date"], [GOOD_VIN, "1", "2025-01-06T03:00:00Z"]]
    result = read(write(tmp_path, csv_text(rows)), timezone="Mars/Olympus_Mons")
    assert result.frame["in_stock_date"].tolist() == ["2025-01-06"]
    assert "Unknown time zone 'Mars/Olympus_Mons'; dates were read in UTC." in result.file_warnings


@pytest.mark.parametrize("delimiter", ['"', "ab", "x", "\n"])
def test_unusable_configured_delimiter_is_a_file_error(tmp_path, delimiter):
    path = write(tmp_path, csv_text([["VIN"], [GOOD_VIN]]))
    with pytest.raises(FeedFileError, match="column delimiter"):
        read(path, options=FeedOptions(column_delimiter=delimiter))


def test_tab_typed_as_backslash_t_in_options_works(tmp_path):
    path = write(tmp_path, csv_text([["VIN", "Stock #"], [GOOD_VIN, "1"]], delimiter="\t"))
    result = read(path, options=FeedOptions(column_delimiter="\\t"))
    assert result.frame["stock_number"].tolist() == ["1"]
