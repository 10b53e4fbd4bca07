"""Reading whole feed files: encodings, delimiters, line endings, compression, broken uploads,
row-level rejections, chunking, the preview and the frame contract."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from syncengine.feeds.reader import FeedFileError, FeedOptions, open_feed
from syncengine.feeds.vehicles import VEHICLE_COLUMNS, VEHICLE_FIELDS, Kind
from tests.bench.feedgen import write_vauto_feed
from tests.syncengine.feeds.support import GOOD_VIN, csv_text, read, vin, write

HEADER = ["VIN", "Stock #", "Make", "Model", "Price", "Description"]


def inventory(count: int) -> list[list[str]]:
    """A header and ``count`` plain vehicle rows."""
    return [HEADER] + [
        [vin(number), f"{number:05d}", "Honda", "Accord", f"${10_000 + number:,}", "Clean"]
        for number in range(1, count + 1)
    ]


# --- encodings -------------------------------------------------------------------------------


def test_utf8_bom_does_not_stick_to_the_first_header(tmp_path):
    # Given a UTF-8 file with a byte order mark (Excel's "CSV UTF-8")
    path = write(tmp_path, b"\xef\xbb\xbf" + csv_text(inventory(1)).encode())

    # When it is read
    result = read(path)

    # Then "VIN" is recognised and the encoding is reported
    assert result.field("vin").source == "VIN"
    assert result.frame["vin"].tolist() == [vin(1)]
    assert "UTF-8 (with BOM)" in result.file_warnings[0]


def test_windows_1252_file_is_decoded(tmp_path):
    # Given a legacy export in Windows-1252 (n with tilde, an en dash)
    rows = [HEADER, [GOOD_VIN, "1", "Cañon Motors", "Bentley \u2013 Continental", "1", "Señor"]]
    path = write(tmp_path, csv_text(rows), encoding="cp1252")

    # When it is read
    result = read(path)

    # Then the text is right and the detected encoding is reported
    assert result.frame["make"].tolist() == ["Cañon Motors"]
    assert result.frame["model"].tolist() == ["Bentley \u2013 Continental"]
    assert "Windows-1252" in result.file_warnings[0]


def test_stray_windows_1252_bytes_late_in_a_utf8_file_are_read_as_windows_1252(tmp_path):
    # Given a UTF-8 file (with a UTF-8 "é" up front) whose last row was pasted from an old system
    head = csv_text([HEADER, [vin(1), "1", "Citroën", "C5", "1", "Déjà vu"]]).encode()
    padding = csv_text([[vin(n), str(n), "Honda", "Fit", "1", "x" * 100] for n in range(2, 20_000)])
    tail = csv_text([[vin(20_000), "20000", "Cañon", "Z", "1", "ok"]]).encode("cp1252")
    path = write(tmp_path, head + padding.encode() + tail)

    # When it is read
    result = read(path)

    # Then both spellings survive, and the fallback is reported once
    assert result.frame["make"].iloc[0] == "Citroën"
    assert result.frame["make"].iloc[-1] == "Cañon"
    assert sum("not valid UTF-8" in warning for warning in result.row_warnings) == 1


def test_file_options_saying_utf8_reject_a_file_that_is_not(tmp_path):
    # Given a Windows-1252 file and file options that promise UTF-8
    rows = [HEADER, [GOOD_VIN, "1", "Cañon", "X", "1", ""]]
    path = write(tmp_path, csv_text(rows), encoding="cp1252")

    # When it is read, then the whole file is refused with the reason
    with pytest.raises(FeedFileError, match="not valid UTF-8"):
        read(path, options=FeedOptions(encoding="utf-8"))


def test_binary_file_is_rejected(tmp_path):
    # Given an upload that is not text at all
    path = write(tmp_path, bytes(range(256)) * 64)

    # When it is opened, then it is refused
    with pytest.raises(FeedFileError, match="not a text file"):
        read(path)


# --- line endings, quoting, delimiters --------------------------------------------------------


@pytest.mark.parametrize(("line_end", "name"), [("\r\n", "CRLF"), ("\n", "LF"), ("\r", "CR")])
def test_every_line_ending_reads_the_same(tmp_path, line_end, name):
    # Given the same rows with CRLF, LF or bare CR (old Mac exports) line endings
    path = write(tmp_path, csv_text(inventory(3), line_end=line_end))

    # When it is read
    result = read(path)

    # Then every row is there, with nothing of the line break left in the last column
    assert result.frame["vin"].tolist() == [vin(1), vin(2), vin(3)]
    assert result.frame["description"].tolist() == ["Clean"] * 3
    assert f"{name} line endings" in result.file_warnings[0]


def test_quoted_fields_keep_embedded_newlines_and_doubled_quotes(tmp_path):
    # Given a description spanning lines, with commas and "doubled" quotes, and CRLF endings
    text = (
        "VIN,Stock #,Description,Make\r\n"
        f'{GOOD_VIN},1,"Line one, with a comma\r\nLine two: 20"" wheels",Honda\r\n'
        f"{vin(2)},2,Plain,Ford\r\n"
    )
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then the description is one field and the next row is intact
    assert result.frame["description"].tolist() == [
        'Line one, with a comma\r\nLine two: 20" wheels',
        "Plain",
    ]
    assert result.frame["make"].tolist() == ["Honda", "Ford"]
    assert result.frame["row_number"].tolist() == [1, 2]


def test_bare_cr_file_with_a_multiline_quoted_field(tmp_path):
    # Given a bare-CR file whose quoted description holds a line feed
    path = write(tmp_path, f'VIN,Stock #,Description\r{GOOD_VIN},1,"one\ntwo"\r{vin(2)},2,x\r')

    # When it is read
    result = read(path)

    # Then the record splits on CR only between rows
    assert result.frame["description"].tolist() == ["one\ntwo", "x"]
    assert "CR line endings" in result.file_warnings[0]


@pytest.mark.parametrize(
    ("delimiter", "name"), [(",", "comma"), ("|", "pipe"), ("\t", "tab"), (";", "semicolon")]
)
def test_delimiter_is_detected(tmp_path, delimiter, name):
    # Given a file delimited by pipes, tabs or semicolons, with commas in its free text
    rows = [HEADER, [GOOD_VIN, "1", "Honda", "Accord", "12995", "Clean, one owner, low miles"]]
    path = write(tmp_path, csv_text(rows, delimiter=delimiter))

    # When it is read
    result = read(path)

    # Then the columns are split on the right character
    assert result.frame["description"].tolist() == ["Clean, one owner, low miles"]
    assert result.frame["price"].tolist() == [12995.0]
    assert f"{name}-delimited" in result.file_warnings[0]


def test_configured_delimiter_overrides_detection(tmp_path):
    # Given a semicolon file whose rows hold more commas than semicolons
    text = "VIN;Stock #;Description\n" + f"{GOOD_VIN};1;a, b, c, d, e\n" + f"{vin(2)};2;f, g, h\n"
    path = write(tmp_path, text)

    # When it is read with the delimiter set in the file options
    result = read(path, options=FeedOptions(column_delimiter=";"))

    # Then the options win
    assert result.frame["description"].tolist() == ["a, b, c, d, e", "f, g, h"]
    assert "set by the file options: semicolon-delimited" in result.file_warnings[0]


def test_trailing_delimiter_on_every_line_drops_the_empty_column(tmp_path):
    # Given every line ending with a delimiter (an empty last header)
    text = f"VIN,Stock #,Make,\r\n{GOOD_VIN},1,Honda,\r\n{vin(2)},2,Ford,\r\n"
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then nothing about the empty column shows: no extra value, no warning, no rejection
    assert [column.source for column in result.columns] == ["VIN", "Stock #", "Make"]
    assert result.frame["extra"].tolist() == [{}, {}]
    assert result.rejected == []
    assert len(result.file_warnings) == 1


# --- row-level problems -----------------------------------------------------------------------


def test_row_with_more_fields_than_the_header_is_rejected_with_its_values(tmp_path):
    # Given a row with an unquoted comma in its description (two fields too many)
    text = (
        "VIN,Stock #,Make,Description\n"
        f"{GOOD_VIN},1,Honda,Great car, low miles, one owner\n"
        f"{vin(2)},2,Ford,Fine\n"
    )
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then that row is rejected with its raw values; the next row is imported
    assert [(row.row_number, row.reason) for row in result.rejected] == [
        (1, "row has 6 fields, the header has 4")
    ]
    assert result.rejected[0].values == {
        "VIN": GOOD_VIN,
        "Stock #": "1",
        "Make": "Honda",
        "Description": "Great car",
        "column_5": " low miles",
        "column_6": " one owner",
    }
    assert result.frame["vin"].tolist() == [vin(2)]


def test_rejected_values_are_cut_to_500_characters(tmp_path):
    # Given a keyless row with a very long description
    path = write(tmp_path, csv_text([["VIN", "Stock #", "Description"], ["", "", "x" * 2000]]))

    # When it is read
    result = read(path)

    # Then the sample keeps 500 characters
    assert result.rejected[0].values["Description"] == "x" * 500


def test_short_row_is_padded_and_accepted(tmp_path):
    # Given a row that stops after the stock number (with its line break)
    text = f"VIN,Stock #,Make,Model\n{GOOD_VIN},1\n{vin(2)},2,Ford,F-150\n"
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then it is imported with the missing fields empty
    assert result.frame["vin"].tolist() == [GOOD_VIN, vin(2)]
    assert result.frame["make"].tolist() == [None, "Ford"]
    assert result.rejected == []


def test_blank_vin_falls_back_to_the_stock_number_and_no_key_is_rejected(tmp_path):
    # Given rows without a VIN, with and without a stock number, and an N/A VIN
    text = "VIN,Stock #,Make\n,00123,Honda\n,,Ford\nN/A,  ,Kia\n"
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then the first is keyed by stock number; the others are rejected
    assert result.frame["key"].tolist() == ["stock:00123"]
    assert result.frame["vin"].tolist() == [None]
    assert [(row.row_number, row.reason) for row in result.rejected] == [
        (2, "no VIN and no stock number"),
        (3, "no VIN and no stock number"),
    ]
    assert result.rejected[1].values == {"VIN": "N/A", "Stock #": "  ", "Make": "Kia"}


def test_duplicate_vins_are_all_kept_for_the_merge_to_resolve(tmp_path):
    # Given the same VIN twice (a re-listed vehicle)
    rows = [HEADER, [GOOD_VIN, "1", "Honda", "Accord", "100", ""]]
    rows.append([GOOD_VIN, "1", "Honda", "Accord", "90", ""])
    path = write(tmp_path, csv_text(rows))

    # When it is read
    result = read(path)

    # Then both rows are in the frame, in file order (the merge lets the last win)
    assert result.frame["key"].tolist() == [GOOD_VIN, GOOD_VIN]
    assert result.frame["price"].tolist() == [100.0, 90.0]


def test_blank_and_whitespace_only_lines_are_skipped(tmp_path):
    # Given blank lines, whitespace-only lines and an Excel ",,," line among the rows
    text = f"VIN,Stock #,Make\n\n{GOOD_VIN},1,Honda\n   \n,,\n\t\n{vin(2)},2,Ford\n\n"
    path = write(tmp_path, text)

    # When it is read
    result = read(path)

    # Then only the two vehicles come out, and nothing is rejected
    assert result.frame["vin"].tolist() == [GOOD_VIN, vin(2)]
    assert result.rejected == []


# --- unusable files ---------------------------------------------------------------------------


def test_zero_byte_file_is_rejected(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(FeedFileError, match="The file is empty"):
        read(path)


@pytest.mark.parametrize("text", ["VIN,Stock #,Make\r\n", "VIN,Stock #,Make", "VIN,Stock #\n\n\n"])
def test_header_only_file_is_rejected(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(FeedFileError, match="has a header but no rows"):
        read(path)


def test_file_of_empty_rows_is_rejected(tmp_path):
    path = write(tmp_path, "VIN,Stock #,Make\n,,\n,,\n")
    with pytest.raises(FeedFileError, match="has a header but no rows"):
        read(path)


def test_short_last_row_without_final_newline_means_a_truncated_upload(tmp_path):
    # Given an upload cut off in the middle of its last row
    text = csv_text(inventory(3))
    path = write(tmp_path, text[: text.rindex(",Accord")])

    # When it is read, then the whole file is refused
    with pytest.raises(FeedFileError, match=r"last row \(row 3\) has 3 of 6 fields.*truncated"):
        read(path)


def test_truncation_is_found_after_many_chunks(tmp_path):
    # Given a larger file cut short
    text = csv_text(inventory(50))
    path = write(tmp_path, text[: text.rindex(",Honda")])

    # When it is read in small chunks, then the error still comes
    with pytest.raises(FeedFileError, match="truncated"):
        read(path, chunk_rows=7)


def test_complete_last_row_without_final_newline_is_fine(tmp_path):
    # Given a file whose complete last row has no line break (many exporters do that)
    path = write(tmp_path, csv_text(inventory(3)).rstrip("\r\n"))

    # When it is read
    result = read(path)

    # Then all rows are there, the last one intact
    assert result.frame["vin"].tolist() == [vin(1), vin(2), vin(3)]
    assert result.frame["description"].tolist() == ["Clean"] * 3


def test_unterminated_quote_at_end_of_file_is_rejected(tmp_path):
    # Given an upload that ends inside a quoted description
    text = csv_text(inventory(2)) + f'{vin(3)},3,Honda,Fit,1,"Half a descr'
    path = write(tmp_path, text)

    # When it is read, then it is refused as truncated
    with pytest.raises(FeedFileError, match=r"quoted field.*never closed"):
        read(path)


def test_no_column_for_vin_or_stock_number_is_rejected(tmp_path):
    path = write(tmp_path, "Make,Model\nHonda,Fit\n")
    with pytest.raises(FeedFileError, match=r"No column maps to vin or stockNumber.*'Make'"):
        read(path)


# --- compressed uploads -----------------------------------------------------------------------


def test_gzip_upload_is_recognised_by_its_content(tmp_path):
    # Given a gzip-compressed feed named like a plain CSV
    path = write(tmp_path, gzip.compress(csv_text(inventory(3)).encode()), name="feed.csv")

    # When it is read
    result = read(path)

    # Then it is decompressed
    assert result.frame["vin"].tolist() == [vin(1), vin(2), vin(3)]
    assert "(gzip)" in result.file_warnings[0]


def test_zip_upload_reads_its_largest_file(tmp_path):
    # Given a zip with a readme, a Mac resource fork and the feed
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("README.txt", "Inventory export")
        zipped.writestr("__MACOSX/._inventory.csv", "x" * 10_000)
        zipped.writestr("inventory.csv", csv_text(inventory(3)))
    path = write(tmp_path, archive.getvalue(), name="upload.dat")

    # When it is read
    result = read(path)

    # Then the feed inside is used
    assert result.frame["vin"].tolist() == [vin(1), vin(2), vin(3)]
    assert "zip member 'inventory.csv'" in result.file_warnings[0]


def test_zip_without_a_file_is_rejected(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("exports/", "")
    path = write(tmp_path, archive.getvalue(), name="feed.zip")
    with pytest.raises(FeedFileError, match="zip archive has no file"):
        read(path)


def test_damaged_gzip_is_rejected(tmp_path):
    compressed = gzip.compress(csv_text(inventory(200)).encode())
    path = write(tmp_path, compressed[: len(compressed) // 2])
    with pytest.raises(FeedFileError, match=r"compressed upload \(gzip\) is damaged"):
        read(path)


def test_damaged_zip_is_rejected(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("inventory.csv", csv_text(inventory(3)))
    path = write(tmp_path, archive.getvalue()[:40], name="feed.zip")
    with pytest.raises(FeedFileError, match="zip"):
        read(path)


# --- chunks, preview, contract ----------------------------------------------------------------


def test_small_chunks_give_the_same_rows_as_one_chunk(tmp_path):
    # Given ten rows, the fourth without VIN or stock number
    rows = inventory(10)
    rows[4][0] = rows[4][1] = ""
    path = write(tmp_path, csv_text(rows))

    # When it is read in chunks of 3 and in one chunk
    small = read(path, chunk_rows=3)
    whole = read(path)

    # Then the frames and rejections are the same and row numbers continue across chunks
    assert small.chunk_sizes == [3, 3, 3, 1]
    assert whole.chunk_sizes == [10]
    pd.testing.assert_frame_equal(small.frame, whole.frame)
    assert small.frame["row_number"].tolist() == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert [row.row_number for row in small.rejected] == [4]


def test_preview_gives_the_first_rows_normalised(tmp_path):
    # Given a 25-row file
    path = write(tmp_path, csv_text(inventory(25)))

    # When the mapping preview asks for 10 rows
    with open_feed(
        path,
        provider="vauto",
        options=FeedOptions(),
        mapping_overrides={},
        timezone="UTC",
    ) as reader:
        chunk = reader.preview(10)
        again = reader.preview(3)

    # Then it gets them, normalised, and can ask again
    assert chunk.frame["row_number"].tolist() == list(range(1, 11))
    assert chunk.frame["price"].tolist()[:2] == [10001.0, 10002.0]
    assert again.frame["vin"].tolist() == [vin(1), vin(2), vin(3)]


def test_frame_follows_the_contract(tmp_path):
    # Given a feed with every kind of value, and one with almost nothing
    rows = [
        ["VIN", "Stock #", "New/Used", "Year", "Price", "Inventory Date", "Certified", "Photos"],
        [GOOD_VIN, "007", "Used", "2020", "$9,995", "01/05/2025", "Yes", "a.jpg|b.jpg"],
        [vin(2), "008", "", "", "", "", "", ""],
    ]
    full = read(write(tmp_path, csv_text(rows)))
    bare = read(write(tmp_path, "Stock #\n1\n", name="bare.csv"), provider="custom")

    for result in (full, bare):
        frame = result.frame
        # Then the columns are exactly the contract's, in order
        assert list(frame.columns) == ["row_number", "key", *VEHICLE_COLUMNS, "extra"]
        assert frame["row_number"].dtype == np.int64
        assert frame["key"].dtype == object
        for field in VEHICLE_FIELDS.values():
            column = frame[field.column]
            expected = {
                Kind.INT: "Int64",
                Kind.MONEY: "Float64",
                Kind.BOOL: "boolean",
                Kind.LIST: "list<item: string>[pyarrow]",
            }
            assert str(column.dtype) == expected.get(field.kind, "object"), field.column
            values = column.tolist()
            if field.kind in (Kind.KEY, Kind.TEXT, Kind.CONDITION, Kind.DATE):
                assert all(value is None or isinstance(value, str) for value in values)
            if field.kind == Kind.LIST:
                assert all(isinstance(value, list) for value in values)
        assert all(isinstance(value, dict) for value in frame["extra"])

    assert full.row(1)["condition"] is None
    assert full.row(1)["photo_urls"] == []
    assert full.frame["in_stock_date"].tolist() == ["2025-01-05", None]
    assert bare.frame["key"].tolist() == ["stock:1"]
    assert bare.frame["year"].iloc[0] is pd.NA


def test_list_and_extra_cells_are_separate_objects(tmp_path):
    # Given two rows without photos
    rows = [["VIN", "Stock #", "Photos", "Dealer"], [vin(1), "1", "", "7"], [vin(2), "2", "", "7"]]
    result = read(write(tmp_path, csv_text(rows)))

    # When a consumer changes the list it got for one row, and one row's extra
    result.frame["photo_urls"].iloc[0].append("x.jpg")
    result.frame["extra"].iloc[0]["note"] = "changed"

    # Then the frame's lists are untouched (a list cell is a new Python list each time), and so
    # is the other row's extra
    assert result.frame["photo_urls"].tolist() == [[], []]
    assert result.frame["extra"].iloc[1] == {"Dealer": "7"}


def test_utf16_with_byte_order_mark_is_decoded(tmp_path):
    # Given Excel's "Unicode Text" export: UTF-16 with a BOM, tab-delimited
    rows = [HEADER, [GOOD_VIN, "1", "Citroën", "C5", "1", "Déjà vu"]]
    path = write(tmp_path, csv_text(rows, delimiter="\t"), encoding="utf-16")

    # When it is read
    result = read(path)

    # Then it reads like any other file
    assert result.frame["make"].tolist() == ["Citroën"]
    assert result.frame["description"].tolist() == ["Déjà vu"]
    assert "UTF-16, tab-delimited" in result.file_warnings[0]


def test_encoding_fallback_in_the_first_megabyte_is_reported_once(tmp_path):
    # Given a UTF-8 file with one Windows-1252 byte near its start
    head = csv_text([HEADER, [vin(1), "1", "Citroën", "C5", "1", ""]]).encode()
    tail = csv_text([[vin(2), "2", "Cañon", "Z", "1", ""]]).encode("cp1252")
    path = write(tmp_path, head + tail)

    # When it is read
    result = read(path)

    # Then the fallback is a file warning, not repeated for the rows
    assert result.frame["make"].tolist() == ["Citroën", "Cañon"]
    assert sum("not valid UTF-8" in warning for warning in result.file_warnings) == 1
    assert not any("not valid UTF-8" in warning for warning in result.row_warnings)


def test_a_file_rejecting_every_row_keeps_values_only_for_a_sample(tmp_path):
    # Given 3,000 rows that all have one field more than the header (a header column is missing)
    rows = [["VIN", "Stock #"]] + [[vin(n), str(n), "extra"] for n in range(3_000)]
    path = write(tmp_path, csv_text(rows))

    # When it is read
    result = read(path)

    # Then every row is rejected and counted, and the first thousand carry their values
    assert len(result.rejected) == 3_000
    assert result.frame.empty
    assert {row.reason for row in result.rejected} == {"row has 3 fields, the header has 2"}
    assert result.rejected[0].values == {"VIN": vin(0), "Stock #": "0", "column_3": "extra"}
    assert all(row.values for row in result.rejected[:1000])
    assert not any(row.values for row in result.rejected[1000:])


def test_row_warnings_are_capped_per_chunk(tmp_path):
    # Given 1,500 rows whose VINs all fail the check digit
    def bad_vin(number: int) -> str:
        good = vin(number)
        return good[:8] + ("1" if good[8] == "0" else "0") + good[9:]

    rows = [["VIN", "Stock #"]] + [[bad_vin(n), str(n)] for n in range(1_500)]
    path = write(tmp_path, csv_text(rows))

    # When it is read
    result = read(path)

    # Then the first thousand are listed in row order, and the rest summed up
    assert len(result.frame) == 1_500
    assert len(result.row_warnings) == 1_001
    assert result.row_warnings[0] == f"Row 1: VIN {bad_vin(0)} fails its check digit"
    assert result.row_warnings[-1] == "500 more row warnings, up to row 1500, are not listed."


def test_generated_vauto_feed_reads_cleanly(tmp_path):
    # Given the benchmark's generated vAuto feed (valid VINs, "$12,995", "12,345", photo lists)
    path = tmp_path / "vauto.csv"
    write_vauto_feed(path, 500, seed=7)

    # When it is read in a few chunks
    result = read(path, chunk_rows=200)

    # Then every row is imported without a warning, and the values are normalised
    assert len(result.frame) == 500
    assert result.rejected == []
    assert result.row_warnings == []
    assert result.frame["row_number"].tolist() == list(range(1, 501))
    assert result.frame["stock_number"].str.len().eq(7).all()
    assert result.frame["price"].notna().all()
    assert result.frame["condition"].isin(["new", "used", "cpo"]).all()
    assert all(10 <= len(photos) <= 18 for photos in result.frame["photo_urls"])
    assert result.frame["extra"].tolist() == [{"Dealer ID": "48213"}] * 500
