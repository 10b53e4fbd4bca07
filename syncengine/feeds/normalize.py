"""Vectorised normalisation of feed values into the canonical vehicle schema.

A feed column is first *encoded*: split into codes and its distinct values (a million-row file
has a few hundred distinct dates, makes or prices), so parsing runs once per distinct value and the
results are spread back to the rows with one numpy ``take``. Equal values then share one Python
string, which keeps the object columns small. Long free-text columns (descriptions, URLs)
are rarely repeated and are cheaper to process row by row, so they skip the hashing.

Everything here is pandas/numpy over whole columns, and lists are split with pyarrow kernels into
Arrow lists: nothing loops over rows in Python.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from syncengine.feeds.currencies import (
    CODE_VALUES,
    CURRENCY_INDEX,
    SHARED_SYMBOLS,
    SYMBOL_INDEX,
)
from syncengine.feeds.vehicles import Kind

# Values that mean "no value" in partners' exports (Excel's #N/A, a database's NULL, ...),
# matched case-insensitively after stripping. Listing every case variant lets pyarrow's ``isin``
# do the matching without lowercasing whole columns first.
NULL_SENTINELS = ("#n/a", "n/a", "na", "null", "nan", "none", "-")
NULL_VARIANTS = tuple(
    "".join(letters)
    for sentinel in NULL_SENTINELS
    for letters in itertools.product(*({char.lower(), char.upper()} for char in sentinel))
)
# Columns whose values are longer than this on average are processed without encoding.
LONG_VALUE_BYTES = 48
KM_TO_MILES = 0.621371

ObjectArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many dicts or lists.

    Each container allocated counts toward a collection, and every collection walks all live
    containers, so building a chunk's rows of ``extra`` dicts would spend much of its time in the
    GC. The objects built here hold only strings and cannot form cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Encoded:
    """One source column as codes (one per row) into its distinct, stripped values."""

    codes: npt.NDArray[np.intp]
    values: pd.Series  # distinct values, stripped
    present: BoolArray  # per distinct value: neither blank nor a null sentinel
    blank: BoolArray  # per distinct value: empty after stripping


def encode(column: pd.Series) -> Encoded:
    """Encode a column of raw strings (see the module docstring)."""
    rows = len(column)
    if rows and column.array.nbytes / rows > LONG_VALUE_BYTES:
        codes = np.arange(rows, dtype=np.intp)
        distinct = column.reset_index(drop=True)
    else:
        factor_codes, uniques = pd.factorize(column)
        codes = np.asarray(factor_codes, dtype=np.intp)
        distinct = pd.Series(uniques)
    # Stripping copies the column; long columns rarely need it, so look before copying.
    if _has_padding(distinct):
        distinct = distinct.str.strip()
    blank = _bools(distinct == "")
    sentinel = _bools(distinct.isin(NULL_VARIANTS))
    return Encoded(codes=codes, values=distinct, present=~(blank | sentinel), blank=blank)


# Whitespace that pads values in real files: spaces, tabs, no-break spaces (from web pages), stray
# CR/LF from quoted fields.
_PADDING = (" ", "\t", "\xa0", "\r", "\n")


def _has_padding(column: pd.Series) -> bool:
    return bool(
        _bools(column.str.startswith(_PADDING)).any() or _bools(column.str.endswith(_PADDING)).any()
    )


class Effect(StrEnum):
    """What an issue does to the row it is found in."""

    DOUBTED = "doubted"  # the value is stored as it is; a row warning says why it is doubtful
    DROPPED = "dropped"  # the value cannot be read: the row is imported with the field empty
    REJECTED = "rejected"  # the row is not imported (a key that cannot identify a vehicle)


@dataclass
class Issue:
    """Distinct values that were dropped, doubted or rejected, and how to say so (``{value}``)."""

    mask: BoolArray
    message: str
    effect: Effect = Effect.DROPPED


@dataclass
class FieldValues:
    """A field's normalised value per distinct source value."""

    data: npt.NDArray[np.generic]  # object (str or None), int64, float64 or bool
    missing: BoolArray  # True where the field has no value
    issues: list[Issue] = field(default_factory=list)
    # Amounts and currency columns: the currency each value names, as an index into
    # ``CURRENCY_CODES`` (0: none). None for every other kind of field.
    currency: npt.NDArray[np.int16] | None = None


def _bools(series: pd.Series) -> BoolArray:
    return series.to_numpy(dtype=bool, na_value=False)


def _floats(series: pd.Series, usable: BoolArray) -> npt.NDArray[np.float64]:
    """Numbers from text; NaN where a value is not ``usable`` or not a finite number.

    pyarrow's strict cast is tried first (fast, and enough for clean columns); a column with
    something else in it goes through ``pd.to_numeric``, which turns the odd value into NaN.
    """
    if not usable.all():
        series = series.where(usable, "nan")
    try:
        numbers = series.astype("float64[pyarrow]")
    except (ValueError, TypeError):
        numbers = pd.to_numeric(series, errors="coerce")
    values = np.array(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def _objects(values: pd.Series, missing: BoolArray) -> ObjectArray:
    data = values.to_numpy(dtype=object, copy=True)
    data[missing] = None
    return data


def normalize_text(encoded: Encoded) -> FieldValues:
    """Stripped text; blank and null sentinels are None. Stock numbers keep leading zeros."""
    missing = ~encoded.present
    return FieldValues(_objects(encoded.values, missing), missing)


# ISO 3779 check digit: letters transliterate to numbers, positions carry weights, and the 9th
# character is the weighted sum mod 11 ("X" for 10). I, O and Q never appear in a VIN.
_VIN_TRANSLITERATION = np.zeros(256, dtype=np.int32)
for _digit in range(10):
    _VIN_TRANSLITERATION[ord(str(_digit))] = _digit
for _letters, _start in (("ABCDEFGH", 1), ("JKLMN", 1), ("P", 7), ("R", 9), ("STUVWXYZ", 2)):
    for _offset, _letter in enumerate(_letters):
        _VIN_TRANSLITERATION[ord(_letter)] = _start + _offset
_VIN_WEIGHTS = np.array([8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int32)
VIN_PATTERN = r"[A-HJ-NPR-Z0-9]{17}"


def _vin_matrix(vins: list[str] | ObjectArray) -> npt.NDArray[np.uint8]:
    """Well-formed VINs (17 characters of ``VIN_PATTERN``) as one row of bytes each."""
    if not len(vins):
        return np.zeros((0, 17), dtype=np.uint8)
    return np.frombuffer("".join(vins).encode("ascii"), dtype=np.uint8).reshape(-1, 17)


def _check_digit_ok(matrix: npt.NDArray[np.uint8]) -> BoolArray:
    remainder = (_VIN_TRANSLITERATION[matrix] @ _VIN_WEIGHTS) % 11
    expected = np.where(remainder == 10, ord("X"), ord("0") + remainder)
    return np.asarray(matrix[:, 8] == expected, dtype=bool)


def vin_check_digit_ok(vins: list[str] | ObjectArray) -> BoolArray:
    """Whether each well-formed VIN (17 characters of ``VIN_PATTERN``) has a valid check digit."""
    return _check_digit_ok(_vin_matrix(vins))


def normalize_vin(encoded: Encoded) -> FieldValues:
    """Upper-cased, without spaces.

    A VIN that cannot identify any vehicle rejects its row: a character other than a letter, a
    digit or a dash, no digit at all ("BADVIN", "TBD", "PENDING"), fewer than 5 or more than 17
    characters, or one character repeated ("00000000000000000"). Such values are placeholders or
    typing slips, and as keys they would merge unrelated vehicles into one.

    A wrong length, a letter a VIN never has (I, O, Q) or a wrong check digit is only a warning:
    vehicles made before 1981, Japanese domestic chassis numbers ("BNR32-123456") and VINs from
    outside North America (which need no check digit) break those rules and still identify a
    vehicle.
    """
    missing = ~encoded.present
    vins = encoded.values
    if _bools(vins.str.contains(r"\s", regex=True)).any():
        vins = vins.str.replace(r"\s+", "", regex=True)
    if _bools(vins.str.contains(r"[a-z]", regex=True)).any():
        vins = vins.str.upper()
    present = encoded.present
    rows = len(vins)
    # The usual VIN is well formed: its checks run on a matrix of its bytes. The rest (rare)
    # go through string operations.
    checkable = present & _bools(vins.str.fullmatch(VIN_PATTERN))
    matrix = _vin_matrix(vins[checkable].to_numpy(dtype=object))
    check_ok = np.ones(rows, dtype=bool)
    check_ok[checkable] = _check_digit_ok(matrix)
    characters_ok = checkable.copy()
    has_digit = np.zeros(rows, dtype=bool)
    has_digit[checkable] = ((matrix >= ord("0")) & (matrix <= ord("9"))).any(axis=1)
    repeated = np.zeros(rows, dtype=bool)
    repeated[checkable] = (matrix == matrix[:, :1]).all(axis=1)
    lengths = np.where(checkable, 17, 0)
    others = present & ~checkable
    if others.any():
        rest = vins[others]
        characters_ok[others] = _bools(rest.str.fullmatch(r"[A-Z0-9-]+"))
        has_digit[others] = _bools(rest.str.contains(r"[0-9]", regex=True))
        lengths[others] = rest.str.len().to_numpy(dtype=np.int64, na_value=0)
        # A string equals itself rotated by one character only when it is one character
        # repeated.
        repeated[others] = _bools(rest == rest.str.slice(1) + rest.str.slice(0, 1))
    has_digit &= characters_ok
    too_short = has_digit & (lengths < 5)
    too_long = has_digit & (lengths > 17)
    repeated &= has_digit & ~too_short & ~too_long
    usable = has_digit & ~too_short & ~too_long & ~repeated
    rejected = Effect.REJECTED
    doubted = Effect.DOUBTED
    return FieldValues(
        _objects(vins, missing),
        missing,
        [
            Issue(
                present & ~characters_ok,
                "VIN {value} has characters other than letters, digits and dashes",
                rejected,
            ),
            Issue(characters_ok & ~has_digit, "VIN {value} has no digit", rejected),
            Issue(too_short, "VIN {value} is shorter than 5 characters", rejected),
            Issue(too_long, "VIN {value} is longer than 17 characters", rejected),
            Issue(repeated, "VIN {value} is one character repeated", rejected),
            Issue(usable & (lengths != 17), "VIN {value} is not 17 characters long", doubted),
            Issue(
                usable & (lengths == 17) & ~checkable,
                "VIN {value} has characters a VIN cannot have (I, O, Q or punctuation)",
                doubted,
            ),
            Issue(usable & checkable & ~check_ok, "VIN {value} fails its check digit", doubted),
        ],
    )


CONDITIONS = {
    "n": "new",
    "new": "new",
    "u": "used",
    "used": "used",
    "pre-owned": "used",
    "preowned": "used",
    "pre owned": "used",
    "cpo": "cpo",
    "certified": "cpo",
    "certified pre-owned": "cpo",
    "certified preowned": "cpo",
    "certified pre owned": "cpo",
    "certified used": "cpo",
}
BOOLEANS = {
    "yes": True,
    "y": True,
    "true": True,
    "t": True,
    "1": True,
    "no": False,
    "n": False,
    "false": False,
    "f": False,
    "0": False,
}


def _lookup(encoded: Encoded, table: dict[str, object]) -> tuple[ObjectArray, BoolArray]:
    keys = encoded.values.str.lower().str.replace(r"\s+", " ", regex=True).to_numpy(dtype=object)
    data = np.array([table.get(key) for key in keys], dtype=object)  # once per distinct value
    known = np.array([key in table for key in keys], dtype=bool)
    return data, known


def normalize_condition(encoded: Encoded) -> FieldValues:
    """new / used / cpo from the many spellings feeds use (N, Used, Pre-Owned, CPO, ...)."""
    data, known = _lookup(encoded, dict(CONDITIONS))
    return FieldValues(
        data, ~known, [Issue(encoded.present & ~known, "condition {value} is not New, Used or CPO")]
    )


def normalize_bool(encoded: Encoded, name: str) -> FieldValues:
    """Yes/True/1/Y and No/False/0/N; anything else is None with a warning."""
    data, known = _lookup(encoded, dict(BOOLEANS))
    unknown = encoded.present & ~known
    missing = ~known
    return FieldValues(
        np.where(missing, False, data).astype(bool),
        missing,
        [Issue(unknown, f"{name} {{value}} is not yes or no")],
    )


# Words that mean the dealer does not publish a price: no amount, and nothing to warn about.
NO_PRICE = (
    r"(?i:(?:please\s+)?call\b.*|contact\b.*|tbd|tba|poa|p\.o\.a\.?"
    r"|(?:price\s+)?on\s+(?:request|application))"
)
# The parts of an amount: an ISO code, a minus, a currency symbol, the number, a symbol and a
# code, each optional but the number, in that order, with any spacing ("USD$12,995",
# "48900.00 CAD", "€ 12.995,00", "-$500", "12 995,00 kr"). pyarrow runs these patterns (RE2), so
# the no-break spaces are literal characters rather than escapes.
_GAP = "[\\s\u00a0\u202f\u2009]*"
_GROUP_SPACES = "[ '\u2019\u00a0\u202f\u2009]"
_SYMBOL = "[A-Za-z]{1,2}\\$|[$€£¥￥₹₩₺₽₪₱₫฿₴₦₸₲₡₨₾₼]|[Kk][Rr]"
AMOUNT_PATTERN = (
    f"^(?P<code_before>[A-Za-z]{{3}})?{_GAP}(?P<minus_before>-)?{_GAP}"
    f"(?P<symbol_before>{_SYMBOL})?{_GAP}(?P<minus>-)?{_GAP}"
    f"(?P<number>[0-9](?:[0-9.,]|{_GROUP_SPACES})*[0-9]|[0-9])"
    f"{_GAP}(?P<symbol_after>{_SYMBOL})?{_GAP}(?P<code_after>[A-Za-z]{{3}})?$"
)
# Decimal conventions, tried in this order on the number (see ``parse_amounts``). Thousands are
# grouped by threes after one to three leading digits that do not start with 0, or the Indian
# way (1,23,456); "G" stands for the grouping character.
_GROUPED = "[1-9][0-9]{0,2}(?:G[0-9]{3})+"
_GROUPED_INDIAN = "[1-9][0-9]?(?:G[0-9]{2})+G[0-9]{3}"
_WHOLE = (
    f"(?:[0-9]+|{_GROUPED.replace('G', ',')}|{_GROUPED.replace('G', '[.]')}"
    f"|{_GROUPED_INDIAN.replace('G', ',')})"
)
_POINT_DECIMAL = (
    f"(?:{_GROUPED.replace('G', ',')}|{_GROUPED_INDIAN.replace('G', ',')}|[0-9]+)[.][0-9]+"
)
_COMMA_DECIMAL = f"(?:{_GROUPED.replace('G', '[.]')}|[0-9]+),[0-9]+"
_SPACE_GROUPED = f"[1-9][0-9]{{0,2}}(?:{_GROUP_SPACES}[0-9]{{3}})+(?:[.,][0-9]+)?"
_SHARED_INDEX = dict.fromkeys(SHARED_SYMBOLS, 1)
# What most files write, read the same by every rule above: "12995", "12995.00", "$12,995".
_SIMPLE_AMOUNT = r"[$]?(?:[0-9]+|[1-9][0-9]{0,2}(?:,[0-9]{3})+)(?:[.][0-9]{1,2})?"


def _index_of(values: pd.Series, table: dict[str, int]) -> npt.NDArray[np.int16]:
    """Each value's integer in ``table``, upper-cased (0 where it has none).

    Such columns (codes, symbols) hold a handful of distinct values: they are looked up once each.
    """
    codes, uniques = pd.factorize(values)
    found = [table.get(str(unique).upper(), 0) for unique in uniques]
    return np.array([*found, 0], dtype=np.int16)[codes]  # code -1 (no value): the last, 0


def parse_amounts(numbers: pd.Series) -> npt.NDArray[np.float64]:
    """Amounts from numbers without sign or currency; NaN where a number fits no convention.

    * Spaces, no-break spaces and apostrophes group thousands ("12 995,00", "12'995.00").
    * A comma or a point followed by exactly three digits, after one to three leading digits
      (not a lone 0), groups thousands: "12,995" and "12.995" are 12995, "1.234.567" and
      "1,234,567" are 1234567 (and "1,23,456" is the Indian 123456).
    * Otherwise the last separator is the decimal one and the other, if any, groups thousands:
      "12,50" is 12.50, "1,234.56" and "1.234,56" are 1234.56, "12995.000" and "0.500" are
      decimals (a group of three needs one to three digits before it).
    * Anything else ("1,2,3", "12.34.56", "1.234.5") is not an amount.
    """
    spaced = _bools(numbers.str.contains(_GROUP_SPACES, regex=True))
    if spaced.any():
        ungrouped = numbers.str.replace(_GROUP_SPACES, "", regex=True)
        well_spaced = _bools(numbers.str.fullmatch(_SPACE_GROUPED))
        numbers = ungrouped.where(~spaced | well_spaced, "x")
    whole = _bools(numbers.str.fullmatch(_WHOLE))
    point = ~whole & _bools(numbers.str.fullmatch(_POINT_DECIMAL))
    comma = ~whole & ~point & _bools(numbers.str.fullmatch(_COMMA_DECIMAL))
    text = numbers.where(~whole, numbers.str.replace(r"[.,]", "", regex=True))
    if point.any():
        text = text.where(~point, numbers.str.replace(",", "", regex=False))
    if comma.any():
        text = text.where(
            ~comma, numbers.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        )
    return _floats(text, whole | point | comma)


@dataclass
class _Money:
    amounts: npt.NDArray[np.float64]  # NaN: not an amount
    currency: npt.NDArray[np.int16]  # 0: none named
    unknown: BoolArray  # a code that is no ISO 4217 code
    conflicting: BoolArray  # two different currencies


def _parse_money(text: pd.Series) -> _Money:
    """Amounts with their currencies from distinct values (``AMOUNT_PATTERN``)."""
    parts = text.str.extract(AMOUNT_PATTERN)
    matched = _bools(parts["number"].notna())
    codes = [parts["code_before"], parts["code_after"]]
    symbols = [parts["symbol_before"], parts["symbol_after"]]
    named = [_index_of(code, CURRENCY_INDEX) for code in codes]
    implied = [_index_of(symbol, SYMBOL_INDEX) for symbol in symbols]
    written = [_bools(code != "") for code in codes]
    marked = [_bools(symbol != "") for symbol in symbols]
    shared = [_index_of(symbol, _SHARED_INDEX) > 0 for symbol in symbols]
    unknown = matched & ((written[0] & (named[0] == 0)) | (written[1] & (named[1] == 0)))
    # Every currency the value names, in one column: a second, different one is a conflict.
    currency = np.zeros(len(text), dtype=np.int16)
    for candidate in (*named, *implied):
        clash = (currency != 0) & (candidate != 0) & (candidate != currency)
        currency = np.where(currency == 0, candidate, currency)
        currency[clash] = -1
    conflicting = matched & (currency < 0)
    minus = [_bools(parts[column] != "") for column in ("minus_before", "minus")]
    # Two minus signs, two symbols, or a symbol no currency uses ("XY$"): not an amount.
    matched = matched & ~(
        (minus[0] & minus[1])
        | (marked[0] & marked[1])
        | (marked[0] & (implied[0] == 0) & ~shared[0])
        | (marked[1] & (implied[1] == 0) & ~shared[1])
    )
    usable = matched & ~unknown & ~conflicting
    amounts = parse_amounts(parts["number"].where(usable, "0"))
    amounts[~usable] = np.nan
    amounts = np.where(minus[0] | minus[1], -amounts, amounts)
    return _Money(amounts, np.maximum(currency, 0).astype(np.int16), unknown, conflicting)


def normalize_money(encoded: Encoded, name: str) -> FieldValues:
    """Amounts like "$12,995", "12995.00", "48900.00 CAD", "CAD 48,900.00", "USD$12,995",
    "€ 12.995,00" or "12.995,00 EUR", rounded to cents, with the currency they name.

    The currency is the ISO 4217 code before or after the number, or a symbol only one currency
    uses (``currencies.SYMBOL_CODES``); "$" and the other shared symbols name none. Zero, blank
    and the no-price words (``NO_PRICE``: "Call for price", "TBD", "POA", ...) mean the dealer
    does not publish a price: None, silently. An unknown code ("100 XYZ"), two currencies in one
    value, a negative amount or anything else are None with a warning.
    """
    text = encoded.values
    rows = len(text)
    amounts = np.full(rows, np.nan)
    currency = np.zeros(rows, dtype=np.int16)
    unknown = np.zeros(rows, dtype=bool)
    conflicting = np.zeros(rows, dtype=bool)
    # Most files write "12995", "12995.00", "$12,995" or "12,995.00": no currency, one
    # convention. They skip the parsing below, which only the other values pay for.
    simple = encoded.present & _bools(text.str.fullmatch(_SIMPLE_AMOUNT))
    if simple.any():
        digits = text[simple].str.replace("$", "", regex=False).str.replace(",", "", regex=False)
        amounts[simple] = _floats(digits, np.ones(len(digits), dtype=bool))
    others = encoded.present & ~simple
    if others.any():
        parsed = _parse_money(text[others])
        amounts[others] = parsed.amounts
        currency[others] = parsed.currency
        unknown[others] = parsed.unknown
        conflicting[others] = parsed.conflicting
    readable = ~np.isnan(amounts)
    no_price = np.zeros(rows, dtype=bool)
    if (encoded.present & ~readable).any():
        no_price[encoded.present & ~readable] = _bools(
            text[encoded.present & ~readable].str.fullmatch(NO_PRICE)
        )
    unreadable = encoded.present & ~readable & ~no_price & ~unknown & ~conflicting
    negative = encoded.present & readable & (amounts < 0)
    missing = ~encoded.present | ~readable | (amounts <= 0)
    currency = np.where(missing, 0, np.maximum(currency, 0)).astype(np.int16)
    return FieldValues(
        np.round(np.where(missing, 0.0, amounts), 2),
        missing,
        [
            Issue(unreadable, f"{name} {{value}} is not an amount"),
            Issue(unknown & ~conflicting, f"{name} {{value}} is in an unknown currency"),
            Issue(conflicting, f"{name} {{value}} names two currencies"),
            Issue(negative, f"{name} {{value}} is negative"),
        ],
        currency,
    )


def normalize_currency(encoded: Encoded) -> FieldValues:
    """A currency column: an ISO 4217 code in any case ("cad"), or a symbol only one currency
    uses ("€"); anything else is None with a warning."""
    values = encoded.values
    currency = np.maximum(_index_of(values, CURRENCY_INDEX), _index_of(values, SYMBOL_INDEX))
    currency[~encoded.present] = 0
    missing = currency == 0
    return FieldValues(
        CODE_VALUES[currency],
        missing,
        [Issue(encoded.present & missing, "currency {value} is not an ISO 4217 currency code")],
        currency,
    )


def _whole_numbers(text: pd.Series, suffix: str | None = None) -> npt.NDArray[np.float64]:
    """Numbers with an optional unit ``suffix`` (a regex) and thousands separators; NaN where
    the value is not a whole number ("4.0" is, "4.5" is not)."""
    if suffix:
        text = text.str.replace(suffix, "", regex=True)
    digits = text.str.replace(",", "", regex=False)
    numbers = _floats(digits, _bools(digits.str.fullmatch(r"[0-9]+(?:\.[0-9]*)?")))
    numbers[numbers != np.floor(numbers)] = np.nan
    return numbers


def normalize_mileage(encoded: Encoded) -> FieldValues:
    """Miles from "12,345", "12,345 mi", "64460.0" or "1,500 km" (kilometres are converted)."""
    text = encoded.values
    kilometres = np.zeros(len(text), dtype=bool)
    if _bools(text.str.contains(r"[A-Za-z]", regex=True)).any():  # units: "mi", "km", ...
        kilometres = _bools(text.str.contains(r"(?i)(?:km|kms|kilometers?|kilometres?)$"))
        text = text.str.replace(
            r"(?i)\s*(?:mi|mi\.|miles?|km|kms|kilometers?|kilometres?)$", "", regex=True
        )
    numbers = _floats(text.str.replace(",", "", regex=False), encoded.present)
    numbers[numbers < 0] = np.nan
    miles = np.where(kilometres, numbers * KM_TO_MILES, numbers)
    missing = ~encoded.present | np.isnan(miles)
    return FieldValues(
        np.where(missing, 0, np.round(np.nan_to_num(miles))).astype(np.int64),
        missing,
        [Issue(encoded.present & np.isnan(miles), "mileage {value} is not a number of miles")],
    )


def normalize_year(encoded: Encoded, *, today: dt.date) -> FieldValues:
    """A model year from 1900 to next year + 1 (a 2027 model is sold in 2026 already)."""
    numbers = _whole_numbers(encoded.values)
    latest = today.year + 2
    in_range = (numbers >= 1900) & (numbers <= latest)
    missing = ~encoded.present | ~in_range
    return FieldValues(
        np.where(missing, 0, np.nan_to_num(numbers)).astype(np.int64),
        missing,
        [Issue(encoded.present & ~in_range, f"year {{value}} is not a model year (1900-{latest})")],
    )


def normalize_integer(encoded: Encoded, name: str) -> FieldValues:
    """A count such as doors: "4", "4.0", "4 Doors", "4dr"."""
    numbers = _whole_numbers(encoded.values, r"(?i)\s*-?\s*(?:doors?|dr)$")
    missing = ~encoded.present | np.isnan(numbers)
    return FieldValues(
        np.where(missing, 0, np.nan_to_num(numbers)).astype(np.int64),
        missing,
        [Issue(encoded.present & np.isnan(numbers), f"{name} {{value}} is not a whole number")],
    )


# Date-times without an offset are the dealership's local time already: only the calendar date
# matters. Formats are tried in order on what is still unparsed, so a file pays for the one it uses.
DATE_FORMATS = (
    "%m/%d/%Y",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "ISO8601",
)
# An instant with an explicit offset ("2025-01-06T03:00:00Z") is converted to the dealership's
# time zone first: it is still January 5th in Chicago.
OFFSET_DATE_TIME = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
)


def _parse_dates(text: pd.Series, date_format: str, *, utc: bool = False) -> pd.Series:
    """``text`` as date-times in ``date_format``; NaT where a value does not fit it or lies
    outside 1900-2100 (a "1/5/25" read as the year 25)."""
    try:
        dates = pd.to_datetime(text, format=date_format, utc=utc, errors="coerce")
    except (ValueError, TypeError, OverflowError):  # e.g. offsets mixed into naive ISO values
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    return dates.where(dates.dt.year.between(1900, 2100))


def normalize_date(encoded: Encoded, name: str, *, timezone: str) -> FieldValues:
    """ "YYYY-MM-DD" in the dealership's calendar, from the formats feeds use."""
    text = encoded.values
    data = np.full(len(text), None, dtype=object)
    todo = encoded.present.copy()
    with_offset = todo & _bools(text.str.match(OFFSET_DATE_TIME))
    if with_offset.any():
        instants = _parse_dates(text[with_offset], "ISO8601", utc=True)
        local = instants.dt.tz_convert(timezone).dt.strftime("%Y-%m-%d")
        parsed = local.notna().to_numpy(dtype=bool)
        positions = np.flatnonzero(with_offset)[parsed]
        data[positions] = local[parsed].to_numpy(dtype=object)
        todo[positions] = False
    for date_format in DATE_FORMATS:
        if not todo.any():
            break
        dates = _parse_dates(text[todo], date_format)
        parsed = dates.notna().to_numpy(dtype=bool)
        if parsed.any():
            positions = np.flatnonzero(todo)[parsed]
            data[positions] = dates[parsed].dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
            todo[positions] = False
    return FieldValues(
        data, ~encoded.present | todo, [Issue(todo, f"{name} {{value}} is not a date")]
    )


def normalize(
    encoded: Encoded, *, name: str, kind: Kind, timezone: str, today: dt.date
) -> FieldValues:
    """Normalise one encoded source column as canonical field ``name`` of ``kind``."""
    if name == "vin":
        return normalize_vin(encoded)
    if name == "mileage":
        return normalize_mileage(encoded)
    if name == "year":
        return normalize_year(encoded, today=today)
    if kind == Kind.INT:
        return normalize_integer(encoded, name)
    if kind == Kind.MONEY:
        return normalize_money(encoded, name)
    if kind == Kind.DATE:
        return normalize_date(encoded, name, timezone=timezone)
    if kind == Kind.BOOL:
        return normalize_bool(encoded, name)
    if kind == Kind.CONDITION:
        return normalize_condition(encoded)
    if kind == Kind.CURRENCY:
        return normalize_currency(encoded)
    return normalize_text(encoded)


# --- lists ---------------------------------------------------------------------------------------

# Photo lists are pipe- or semicolon-separated, or comma-separated; photo URLs themselves may
# contain commas (image CDNs put resize options in the path: ".../w_640,h_480/1.jpg"), so in a
# comma-separated list a comma separates two photos only when the next item starts a URL.
_ITEM_SEPARATOR = re.compile(r"[|;]")
_COMMA_BEFORE_URL = re.compile(r",(?=\s*https?://)", re.IGNORECASE)
_LIST_BATCH_ROWS = 20_000
LIST_TYPE = pa.list_(pa.string())
LIST_DTYPE = pd.ArrowDtype(LIST_TYPE)


def split_items(text: str, *, urls: bool) -> list[str]:
    """One list value's items: split on "|" or ";" (else "," - see above), stripped, no empties.

    The definition ``split_lists`` follows for whole columns.
    """
    if text.strip().lower() in NULL_SENTINELS:
        return []
    if "|" in text or ";" in text:
        parts = _ITEM_SEPARATOR.split(text)
    elif urls:
        parts = _COMMA_BEFORE_URL.split(text)
    else:
        parts = text.split(",")
    return [item for item in (part.strip() for part in parts) if item]


# ``split_lists`` runs ``split_items`` with pyarrow kernels, whose notions of whitespace and case
# are not Python's: RE2's ``\s`` is ASCII only (no \x0b, \x1c-\x1f, \x85, no-break spaces...),
# and Arrow's trimming follows a Unicode table of its own. So the characters are spelled out:
# ``PYTHON_WHITESPACE`` is every character ``str.strip()`` and the ``re`` module's ``\s`` treat
# as whitespace (a test checks it against the running Python), and the patterns name each
# letter's cases, including the long s (U+017F) that Python's IGNORECASE matches to "s", rather
# than ``(?i)``, as RE2 folds case its own way.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_CLASS = "[" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_WHITESPACE) + "]"
_SENTINEL_PATTERN = (
    f"^{_SPACE_CLASS}*(?:"
    + "|".join(
        "".join(
            f"[{char}{char.upper()}]" if char.isalpha() else re.escape(char) for char in sentinel
        )
        for sentinel in NULL_SENTINELS
    )
    + f"){_SPACE_CLASS}*$"
)
# A comma before a URL becomes a "|" (items split on "|" hold none), and the whitespace and the
# URL stay with the next item, as ``_COMMA_BEFORE_URL.split`` leaves them.
_URL_COMMA_PATTERN = f",({_SPACE_CLASS}*[hH][tT][tT][pP][sS\u017f]?://)"


def _split(items: pa.Array, separator: str) -> tuple[pa.Array, npt.NDArray[np.int32]]:
    """Every string of ``items`` split on ``separator``: the parts, and where each string's
    parts start among them (one more offset at the end)."""
    parts = pc.split_pattern(items, separator)
    return pc.list_flatten(parts), np.asarray(parts.offsets)


def _piped_urls(texts: pa.Array) -> pa.Array:
    """``texts`` with each comma before a URL written as "|". Most are followed by the URL right
    away, which a plain replacement finds far faster than the regex the others need."""
    piped = pc.replace_substring(texts, ",https://", "|https://")
    piped = pc.replace_substring(piped, ",http://", "|http://")
    others = pc.match_substring_regex(piped, _URL_COMMA_PATTERN)
    if pc.any(others).as_py():
        replaced = pc.replace_substring_regex(piped.filter(others), _URL_COMMA_PATTERN, "|\\1")
        piped = pc.replace_with_mask(piped, others, replaced)
    return piped


def _split_batch(text: pa.Array, *, urls: bool) -> pa.ListArray:
    """``split_items`` of every string of ``text`` (a null is an empty list).

    A "|" or a ";" separates items wherever it is, so every row is split on both; a row left in
    one piece is then split on its commas (before a URL only, when ``urls``). Splitting costs
    about what scanning for separators would, and most rows have them.
    """
    text = pc.fill_null(text, "")
    sentinels = pc.match_substring_regex(text, _SENTINEL_PATTERN)
    if pc.any(sentinels).as_py():
        text = pc.if_else(sentinels, "", text)
    items, row_offsets = _split(text, "|")
    items, item_offsets = _split(items, ";")
    offsets = item_offsets[row_offsets]
    whole = offsets[:-1][np.diff(offsets) == 1]  # the one item of each row left in one piece
    if len(whole):
        texts = items.take(pa.array(whole))
        piped = _piped_urls(texts) if urls else pc.replace_substring(texts, ",", "|")
        mask = np.zeros(len(items), dtype=bool)
        mask[whole] = True
        items, item_offsets = _split(pc.replace_with_mask(items, pa.array(mask), piped), "|")
        offsets = item_offsets[offsets]
    items = pc.utf8_trim(items, characters=PYTHON_WHITESPACE)
    kept = np.asarray(pc.greater(pc.binary_length(items), 0))
    if not kept.all():
        kept_before = np.zeros(len(kept) + 1, dtype=np.int32)
        np.cumsum(kept, out=kept_before[1:])
        offsets = kept_before[offsets]
        items = items.filter(pa.array(kept))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), items)


def list_series(lists: pa.ListArray | pa.ChunkedArray) -> pd.Series:
    """A LIST column of the frame contract from Arrow lists of strings."""
    return pd.Series(pd.arrays.ArrowExtensionArray(lists), dtype=LIST_DTYPE)


def empty_lists(rows: int) -> pd.Series:
    """A LIST column of ``rows`` empty lists."""
    offsets = pa.array(np.zeros(rows + 1, dtype=np.int32))
    return list_series(pa.ListArray.from_arrays(offsets, pa.array([], type=pa.string())))


def split_lists(column: pd.Series, *, urls: bool) -> pd.Series:
    """Each row's list of items (photo URLs when ``urls``, else features) as a LIST column of
    the frame contract (``LIST_DTYPE``, an empty list for nothing); ``split_items`` per row.

    The whole column is split with pyarrow kernels, in batches so that the temporaries of a
    batch, not of the column, are alive at a time.
    """
    text = pa.array(column, from_pandas=True)
    batches = []
    for start in range(0, len(text), _LIST_BATCH_ROWS):
        batch = text.slice(start, _LIST_BATCH_ROWS)
        if isinstance(batch, pa.ChunkedArray):
            batch = batch.combine_chunks()
        batches.append(_split_batch(batch.cast(pa.string()), urls=urls))
    return list_series(pa.chunked_array(batches, type=LIST_TYPE))
