"""Each export format writes rows that its ordinary readers read back as they were: csv, json,
pyarrow and lxml on tricky values, gzip, parts split at a size limit, and option checks."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import zoneinfo
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from exports.formats import (
    FORMATS,
    Column,
    ColumnType,
    ExportDataError,
    RowStream,
    format_options,
    format_options_problems,
    open_writer,
    write_parts,
    xml_name,
)

COLUMNS = [
    Column("name"),
    Column("price", ColumnType.DECIMAL),
    Column("mileage", ColumnType.INTEGER),
    Column("ratio", ColumnType.FLOAT),
    Column("certified", ColumnType.BOOLEAN),
    Column("inStockDate", ColumnType.DATE),
    Column("updatedAt", ColumnType.TIMESTAMP),
    Column("photoUrls", ColumnType.STRING_LIST),
    Column("extra", ColumnType.JSON),
]
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
TRICKY = [
    (
        'He said "hi", then\nleft;\ttab\r\nend',
        Decimal("24999.99"),
        123456,
        0.1,
        True,
        dt.date(2025, 1, 15),
        dt.datetime(2025, 1, 15, 4, 0, 0, 123456, tzinfo=CHICAGO),
        ["https://p.example/a,b.jpg", 'say "cheese"', "ünïcødé ☃"],
        {"Dealer ID": "48213", "nested": {"n": [1, 2.5, None]}},
    ),
    (None, None, None, None, None, None, None, None, None),
    (
        "",
        Decimal("0.10"),
        -1,
        -2.5e-8,
        False,
        dt.date(1999, 12, 31),
        dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC),
        [],
        {},
    ),
    ("日本語 🚗 <tag> & 'amp'", Decimal("1E+2"), 0, 1e300, None, None, None, ["x"], "plain"),
]


def write(format_, rows=TRICKY, columns=COLUMNS, **options):
    sink = io.BytesIO()
    writer = open_writer(format_options(format_, options), sink=sink, columns=columns)
    writer.write_rows(rows)
    stats = writer.close()
    data = sink.getvalue()
    assert stats.bytes == len(data)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    return stats, data


def test_csv_round_trips_through_the_csv_module():
    stats, data = write("CSV")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))

    assert stats.rows == 4
    assert rows[0] == [column.name for column in COLUMNS]
    assert rows[1] == [
        'He said "hi", then\nleft;\ttab\r\nend',
        "24999.99",
        "123456",
        "0.1",
        "true",
        "2025-01-15",
        "2025-01-15T10:00:00.123456Z",
        json.dumps(TRICKY[0][7], ensure_ascii=False),
        json.dumps(TRICKY[0][8], ensure_ascii=False),
    ]
    assert rows[2] == [""] * 9
    assert rows[3][1:8] == [
        "0.10",
        "-1",
        "-2.5e-08",
        "false",
        "1999-12-31",
        "2025-06-01T12:00:00Z",
        "[]",
    ]
    assert rows[4][:2] == ["日本語 🚗 <tag> & 'amp'", "100"]
    assert rows[4][8] == "plain"
    assert json.loads(rows[1][7]) == TRICKY[0][7]


def test_csv_options_of_exports_and_of_file_imports():
    _, data = write("CSV", delimiter=";", quoteAll=True, lineEnding="\r\n", includeHeader=False)
    text = data.decode()
    assert text.startswith('"He said ""hi"", then\nleft;\ttab\r\nend";"24999.99";')
    assert text.endswith("\r\n")
    assert text.count("\r\n") == 4 + 1  # four rows, and the one inside the first value
    assert '"";"";""' in text  # with quoteAll, missing values are quoted empty fields too
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert len(rows) == 4
    assert rows[0][0] == TRICKY[0][0]

    # The file import's names for the same options, and its replacements
    _, data = write(
        "CSV",
        columnDelimiter="|",
        rowDelimiter="\n",
        wrapWithQuotes=False,
        includeHeader=True,
        replaceTabWithSpace=True,
        replaceNewlineWithSpace=True,
    )
    rows = list(csv.reader(io.StringIO(data.decode(), newline=""), delimiter="|"))
    assert rows[1][0] == 'He said "hi", then left; tab end'
    assert [len(row) for row in rows] == [9] * 5


def test_csv_quotes_a_lone_carriage_return_so_readers_keep_the_row_whole():
    _, data = write("CSV", rows=[("a\rb", None, None, None, None, None, None, None, None)])
    assert data.decode().split("\n")[1] == '"a\rb",,,,,,,,'


@pytest.mark.parametrize("json_lines", [False, True])
def test_json_round_trips_with_numbers_as_numbers_and_exact_decimals(json_lines):
    _, data = write("JSON", jsonLines=json_lines)
    text = data.decode()
    if json_lines:
        rows = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    else:
        rows = json.loads(text, parse_float=Decimal)

    assert len(rows) == 4
    first = rows[0]
    assert first["name"] == TRICKY[0][0]
    assert first["price"] == Decimal("24999.99")
    assert '"price":24999.99' in text  # a number, written exactly
    assert first["mileage"] == 123456
    assert first["certified"] is True
    assert first["inStockDate"] == "2025-01-15"
    assert dt.datetime.fromisoformat(first["updatedAt"]) == TRICKY[0][6]
    assert first["photoUrls"] == TRICKY[0][7]
    assert first["extra"] == {"Dealer ID": "48213", "nested": {"n": [1, Decimal("2.5"), None]}}
    assert rows[1] == dict.fromkeys(first)
    assert rows[2]["price"] == Decimal("0.10")
    assert rows[2]["photoUrls"] == []
    assert rows[3]["price"] == 100
    assert rows[3]["extra"] == "plain"


def test_json_writes_what_orjson_refuses():
    columns = [Column("big", ColumnType.INTEGER), Column("text")]
    _, data = write("JSON", rows=[(2**70, "lone \ud800 surrogate")], columns=columns)
    assert json.loads(data)[0]["big"] == 2**70


def test_empty_files_are_valid_in_every_format():
    for format_ in FORMATS:
        stats, _data = write(format_, rows=[])
        assert stats.rows == 0
    assert json.loads(write("JSON", rows=[])[1]) == []
    assert pq.read_table(io.BytesIO(write("PARQUET", rows=[])[1])).num_rows == 0
    assert len(etree.fromstring(write("XML", rows=[])[1])) == 0
    assert write("CSV", rows=[])[1].decode().startswith("name,price")


def test_parquet_round_trips_with_typed_columns():
    _, data = write("PARQUET")
    table = pq.read_table(io.BytesIO(data))

    assert table.schema.field("price").type == pa.decimal128(12, 2)
    assert table.schema.field("mileage").type == pa.int64()
    assert table.schema.field("ratio").type == pa.float64()
    assert table.schema.field("certified").type == pa.bool_()
    assert table.schema.field("inStockDate").type == pa.date32()
    assert table.schema.field("updatedAt").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("photoUrls").type == pa.list_(pa.string())
    assert pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression == "SNAPPY"
    rows = table.to_pylist()
    assert rows[0]["name"] == TRICKY[0][0]
    assert rows[0]["price"] == Decimal("24999.99")
    assert rows[0]["updatedAt"] == TRICKY[0][6]
    assert rows[0]["photoUrls"] == TRICKY[0][7]
    assert json.loads(rows[0]["extra"]) == TRICKY[0][8]
    assert rows[1] == dict.fromkeys(rows[0])
    assert rows[2]["photoUrls"] == []
    assert rows[2]["name"] == ""
    assert rows[3]["price"] == Decimal("100.00")
    assert rows[3]["extra"] == "plain"


def test_parquet_row_groups_are_bounded_and_the_codec_is_an_option():
    columns = [Column("n", ColumnType.INTEGER), Column("text")]
    rows = ((n, f"row {n}") for n in range(25_000))
    _, data = write("PARQUET", rows=rows, columns=columns, rowGroupSize=10_000, compression="zstd")
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        10_000,
        10_000,
        5_000,
    ]
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def copy_text(values):
    """A row as PostgreSQL's text COPY writes it: tab-separated, ``\\N`` for a missing value, a
    backslash and control characters escaped, booleans t/f, timestamps in UTC without an
    offset, lists and objects as JSON."""

    def field(value):
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, dt.datetime):
            text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        elif isinstance(value, Decimal):
            text = format(value, "f")
        elif isinstance(value, list | dict):
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = str(value)
        for char, escape in zip("\\\n\r\t\b\f\v", "\\nrtbfv", strict=True):
            text = text.replace(char, "\\" + escape)
        return text

    return ("\t".join(field(value) for value in values) + "\n").encode()


PLAIN_LISTS: list[tuple[object, ...]] = [
    ("a", None, 1, None, True, None, None, ["https://p.example/1.jpg", "x, y"], {"k": 1}),
    ("b", None, 2, None, False, None, None, [], None),
    ("c", None, 3, None, None, None, None, None, []),
    ("d", None, 4, None, None, None, None, ["", "日本語"], "text"),
]
ESCAPES = [
    (
        "back\\slash, \\n is no line feed, \\\\N no null\b\f\v end\\",
        Decimal("0.01"),
        None,
        None,
        None,
        None,
        dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=CHICAGO),
        ["tab\there", "back\\slash"],
        {"nested": {"line": "1\n2"}},
    ),
    ("\\N", *[None] * 8),
]


@pytest.mark.parametrize("rows", [TRICKY, PLAIN_LISTS, ESCAPES], ids=["tricky", "plain", "esc"])
def test_parquet_from_postgres_text_rows_equals_the_parquet_from_typed_rows(rows):
    from exports.formats import COPY_TEXT_DIALECT

    encoded = RowStream((copy_text(row) for row in rows), encoded=COPY_TEXT_DIALECT)
    _, from_text = write("PARQUET", rows=encoded)
    _, typed = write("PARQUET", rows=rows)

    text_table = pq.read_table(io.BytesIO(from_text))
    assert text_table.schema == pq.read_table(io.BytesIO(typed)).schema
    text_rows, typed_rows = text_table.to_pylist(), pq.read_table(io.BytesIO(typed)).to_pylist()
    for text_row, typed_row in zip(text_rows, typed_rows, strict=True):
        # JSON text of objects may differ in layout; its content may not
        assert _json(text_row.pop("extra")) == _json(typed_row.pop("extra"))
    assert text_rows == typed_rows
    assert text_rows[0]["name"] == rows[0][0]
    assert text_rows[-1]["name"] == rows[-1][0]


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def test_a_value_postgres_gives_that_its_parquet_column_cannot_hold_names_the_column():
    from exports.formats import COPY_TEXT_DIALECT

    row = copy_text(("a", None, None, None, None, None, None, None, None))
    infinite = row.replace(b"\\N\t\\N\t\\N\n", b"infinity\t\\N\t\\N\n")
    encoded = RowStream([infinite], encoded=COPY_TEXT_DIALECT)
    with pytest.raises(ExportDataError, match="'updatedAt' \\(timestamp\\)"):
        write("PARQUET", rows=encoded)


def test_a_value_that_does_not_fit_its_parquet_column_names_the_column():
    with pytest.raises(
        ExportDataError, match="'mileage' \\(integer\\) cannot hold the value 'many'"
    ):
        write("PARQUET", rows=[("a", None, "many", None, None, None, None, None, None)])


def test_xml_is_well_formed_escaped_and_without_characters_xml_cannot_hold():
    rows = [
        *TRICKY,
        ("bell\x07 nul-free\x0b \ufffe end", None, None, None, None, None, None, None, None),
    ]
    _, data = write("XML", rows=rows, rootElement="1 inventory", rowElement="vehicle")
    root = etree.fromstring(data)

    assert root.tag == "_1_inventory"
    vehicles = root.findall("vehicle")
    assert len(vehicles) == 5
    first = vehicles[0]
    assert first.findtext("name") == TRICKY[0][0]  # its carriage returns included
    assert first.findtext("price") == "24999.99"
    assert first.findtext("certified") == "true"
    assert first.findtext("updatedAt") == "2025-01-15T10:00:00.123456Z"
    assert [item.text for item in first.iterfind("photoUrls/item")] == TRICKY[0][7]
    assert json.loads(first.findtext("extra", "")) == TRICKY[0][8]
    assert len(vehicles[1]) == 0  # missing values leave their elements out
    assert vehicles[2].findtext("name") == ""
    assert vehicles[3].findtext("name") == "日本語 🚗 <tag> & 'amp'"
    assert vehicles[4].findtext("name") == "bell nul-free  end"


def test_xml_keeps_a_carriage_return_inside_a_value():
    _, data = write("XML", rows=[("a\r\nb\rc", *[None] * 8)])
    assert etree.fromstring(data)[0].findtext("name") == "a\r\nb\rc"


@pytest.mark.parametrize(
    ("name", "element"),
    [
        ("price", "price"),
        ("Dealer ID", "Dealer_ID"),
        ("2door", "_2door"),
        ("xmlData", "_xmlData"),
        ("a:b", "a_b"),
        ("", "_"),
        ("-x", "_-x"),
        ("ünï", "ünï"),
    ],
)
def test_xml_names_are_sanitised(name, element):
    assert xml_name(name) == element
    etree.Element(element)  # lxml accepts it


def test_xml_columns_whose_names_collide_once_sanitised_stay_apart():
    columns = [Column("Dealer ID"), Column("Dealer_ID")]
    _, data = write("XML", rows=[("a", "b")], columns=columns)
    row = etree.fromstring(data)[0]
    assert [(child.tag, child.text) for child in row] == [("Dealer_ID", "a"), ("Dealer_ID_2", "b")]


@pytest.mark.parametrize("format_", ["CSV", "JSON", "XML"])
def test_gzip_compresses_text_formats(format_):
    _, plain = write(format_)
    _stats, packed = write(format_, compression="gzip")
    assert gzip.decompress(packed) == plain
    assert format_options(format_, {"compression": "gzip"}).extension.endswith(".gz")


def test_dict_rows_are_read_by_column_name():
    columns = [Column("a"), Column("b", ColumnType.INTEGER)]
    _, data = write("CSV", rows=[{"b": 2, "a": "x", "ignored": 1}, {"a": "y"}], columns=columns)
    assert data.decode() == "a,b\nx,2\ny,\n"


# --- parts ---------------------------------------------------------------------------------


class Parts:
    """Sinks for ``write_parts``: each part's bytes, kept once its block ends normally."""

    def __init__(self):
        self.files: dict[int, bytes] = {}

    @contextlib.contextmanager
    def open(self, number):
        sink = io.BytesIO()
        yield sink
        self.files[number] = sink.getvalue()


def numbered_rows(count):
    return ((n, f"vehicle {n:06d} " + "x" * (n % 50)) for n in range(count))


@pytest.mark.parametrize("format_", ["CSV", "JSON", "XML"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_text_parts_stay_under_the_limit_and_hold_every_row_once(format_, compression):
    columns = [Column("n", ColumnType.INTEGER), Column("label")]
    parts = Parts()
    options = format_options(format_, {"compression": compression})
    limit = 64 * 1024 if compression == "none" else 8 * 1024
    stats = write_parts(
        options,
        columns=columns,
        rows=numbered_rows(20_000),
        open_sink=parts.open,
        max_part_bytes=limit,
    )
    assert len(stats) == len(parts.files) > 2
    assert all(len(parts.files[i + 1]) == s.bytes <= limit for i, s in enumerate(stats))
    # Parts are filled, not cut early: all but the last are within a row or two of the limit.
    assert all(s.bytes > limit * 0.9 for s in stats[:-1])
    numbers = []
    for number in sorted(parts.files):
        data = parts.files[number]
        if compression == "gzip":
            data = gzip.decompress(data)
        if format_ == "CSV":
            numbers += [int(row[0]) for row in list(csv.reader(io.StringIO(data.decode())))[1:]]
        elif format_ == "JSON":
            numbers += [row["n"] for row in json.loads(data)]
        else:
            numbers += [int(row.findtext("n", "")) for row in etree.fromstring(data)]
    assert numbers == list(range(20_000))
    assert sum(s.rows for s in stats) == 20_000


def test_parquet_parts_split_at_row_groups():
    columns = [Column("n", ColumnType.INTEGER), Column("label")]
    parts = Parts()
    options = format_options("PARQUET", {"rowGroupSize": 1_000, "compression": "none"})
    stats = write_parts(
        options,
        columns=columns,
        rows=numbered_rows(20_000),
        open_sink=parts.open,
        max_part_bytes=200 * 1024,
    )
    assert len(stats) > 2
    numbers = []
    for number in sorted(parts.files):
        numbers += pq.read_table(io.BytesIO(parts.files[number])).column("n").to_pylist()
        assert len(parts.files[number]) <= 200 * 1024 + 64 * 1024
    assert numbers == list(range(20_000))


def test_parquet_parts_from_encoded_rows_lose_and_repeat_nothing(monkeypatch):
    # Encoded rows (as COPY gives them) are typed a chunk at a time on a second thread; a
    # part that fills up hands the chunk read meanwhile to the next part.
    from exports.formats import TRANSFER_DIALECT, parquetfile

    monkeypatch.setattr(parquetfile, "ENCODED_CHUNK_BYTES", 4_000)
    columns = [Column("n", ColumnType.INTEGER), Column("label")]
    encoded = RowStream(
        (f'{n},"row {n}, quoted"\n'.encode() for n in range(30_000)), encoded=TRANSFER_DIALECT
    )
    parts = Parts()
    options = format_options("PARQUET", {"rowGroupSize": 1_000, "compression": "none"})
    stats = write_parts(
        options, columns=columns, rows=encoded, open_sink=parts.open, max_part_bytes=120 * 1024
    )

    assert len(stats) > 2
    tables = [pq.read_table(io.BytesIO(parts.files[n])) for n in sorted(parts.files)]
    assert [n for table in tables for n in table.column("n").to_pylist()] == list(range(30_000))
    assert tables[0].column("label")[5].as_py() == "row 5, quoted"
    assert [s.rows for s in stats] == [table.num_rows for table in tables]


def test_parquet_from_postgres_text_rows_has_full_row_groups_in_parts(monkeypatch):
    # Chunks of encoded rows end where row groups end, so every row group but a part's last
    # holds rowGroupSize rows; a part that fills up hands the chunks queued after it to the
    # next part.
    from exports.formats import COPY_TEXT_DIALECT, parquetfile

    monkeypatch.setattr(parquetfile, "ENCODED_CHUNK_BYTES", 3_000)
    monkeypatch.setattr(parquetfile, "ENCODED_CHUNKS_QUEUED", 5)
    columns = [Column("n", ColumnType.INTEGER), Column("label")]
    encoded = RowStream(
        (f"{n}\trow {n},\\tquoted\n".encode() for n in range(25_500)), encoded=COPY_TEXT_DIALECT
    )
    parts = Parts()
    options = format_options("PARQUET", {"rowGroupSize": 1_000, "compression": "none"})
    stats = write_parts(
        options, columns=columns, rows=encoded, open_sink=parts.open, max_part_bytes=100 * 1024
    )

    assert len(stats) > 2
    files = [pq.ParquetFile(io.BytesIO(parts.files[n])) for n in sorted(parts.files)]
    groups = [
        [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] for file in files
    ]
    assert all(size == 1_000 for sizes in groups for size in sizes[:-1])
    assert all(sizes[-1] == 1_000 for sizes in groups[:-1])
    assert groups[-1][-1] == 500
    tables = [file.read() for file in files]
    assert [n for table in tables for n in table.column("n").to_pylist()] == list(range(25_500))
    assert tables[0].column("label")[5].as_py() == "row 5,\tquoted"
    assert [s.rows for s in stats] == [table.num_rows for table in tables]
    assert all(len(parts.files[n]) <= 100 * 1024 for n in parts.files)


def test_a_row_larger_than_the_limit_is_a_part_alone():
    columns = [Column("text")]
    parts = Parts()
    rows = [("a",), ("b" * 5000,), ("c",)]
    stats = write_parts(
        format_options("CSV"), columns=columns, rows=rows, open_sink=parts.open, max_part_bytes=1000
    )
    assert [s.rows for s in stats] == [1, 1, 1]


def test_no_rows_still_make_one_part():
    parts = Parts()
    stats = write_parts(format_options("JSON"), columns=COLUMNS, rows=[], open_sink=parts.open)
    assert [s.rows for s in stats] == [0]
    assert json.loads(parts.files[1]) == []


def test_a_failing_part_is_not_kept_and_the_error_reaches_the_caller():
    parts = Parts()

    def rows():
        yield (1, "fine")
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_parts(
            format_options("CSV"),
            columns=[Column("n", ColumnType.INTEGER), Column("label")],
            rows=rows(),
            open_sink=parts.open,
        )
    assert parts.files == {}


def test_rows_already_encoded_in_the_writers_dialect_are_written_as_they_are():
    options = format_options("CSV", {"delimiter": ";"})
    encoded = RowStream([b"1;a\n", b"2;b\n"], encoded=options.dialect)
    sink = io.BytesIO()
    writer = open_writer(options, sink=sink, columns=[Column("n"), Column("label")])
    writer.write_rows(encoded)
    writer.close()
    assert sink.getvalue() == b"n;label\n1;a\n2;b\n"


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("format_", "options", "problems"),
    [
        ("CSV", {"delimiter": ";;"}, {"delimiter": ["Must be a single character."]}),
        (
            "CSV",
            {"delimiter": '"'},
            {"delimiter": ["May not be a quote, carriage return or line feed."]},
        ),
        ("CSV", {"lineEnding": "\n\n"}, {"lineEnding": ['Must be "\\n", "\\r\\n" or "\\r".']}),
        ("CSV", {"quoteAll": "yes"}, {"quoteAll": ["Must be true or false."]}),
        (
            "CSV",
            {"delimiter": ",", "columnDelimiter": ";"},
            {"columnDelimiter": ["Conflicts with delimiter; give one of them."]},
        ),
        ("CSV", {"compression": "zip"}, {"compression": ["Must be one of: none, gzip."]}),
        (
            "CSV",
            {"jsonLines": True},
            {
                "jsonLines": [
                    "Not an option of CSV; use: compression, maxFileSizeMb, delimiter, "
                    "includeHeader, quoteAll, lineEnding, replaceTabWithSpace, "
                    "replaceNewlineWithSpace, columnDelimiter, rowDelimiter, wrapWithQuotes."
                ]
            },
        ),
        (
            "PARQUET",
            {"compression": "gzip", "rowGroupSize": 10},
            {"rowGroupSize": ["Must be a whole number from 1,000 to 1,000,000."]},
        ),
        (
            "XML",
            {"rootElement": ""},
            {"rootElement": ["Must be a non-empty string (an XML element name)."]},
        ),
        ("JSON", {"maxFileSizeMb": 0}, {"maxFileSizeMb": ["Must be a number from 1 to 5242880."]}),
        ("YAML", {}, {"format": ["'YAML' is not a format; use one of: CSV, JSON, PARQUET, XML."]}),
        ("csv", {"includeHeader": False}, {}),
    ],
)
def test_format_options_are_checked_per_option(format_, options, problems):
    assert format_options_problems(format_, options) == problems


def test_defaults():
    csv_options = format_options("csv")
    assert (csv_options.format, csv_options.extension, csv_options.max_part_bytes) == (
        "CSV",
        "csv",
        256 * 1024 * 1024,
    )
    assert format_options("PARQUET").compression == "snappy"
    assert (
        format_options("JSON", {"jsonLines": True, "compression": "gzip"}).extension == "jsonl.gz"
    )
