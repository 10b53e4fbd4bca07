"""Export filters, compiled to database conditions (never applied in Python).

The grammar, for every entity::

    {"<field>": <value>}                        equality (null: the field is missing or null)
    {"<field>": {"<operator>": <operand>, ...}}  every operator must hold

Operators: ``eq``, ``ne`` (also true where the field is missing), ``gt``, ``gte``, ``lt``,
``lte``, ``in`` (a non-empty list), ``contains`` (text: a case-insensitive substring; lists:
has an element equal to the operand), ``isNull`` (true: missing or null; false: present).

Fields are an entity's named fields (for vehicles the canonical ones, ``status``, the times...)
with typed operands (numbers for numbers, ISO 8601 text for dates and times, booleans for
booleans), or dotted paths into JSON: every name of a record-store entity that does not start
with ``_`` is a path into the record (``status``, ``data.plan``), and ``extra.<key>`` reaches
into a vehicle's unmapped columns. A JSON value is compared by the operand's type: a number
operand compares numerically with JSON numbers and with strings that hold a plain number
(``"24999.00"``); a string operand compares text with JSON strings (ISO dates compare in date
order); a boolean operand matches JSON booleans.

The same conditions run on PostgreSQL (``json`` operators on the text the store keeps, which
unlike ``jsonb`` accepts every record the store holds) and on SQLite (its JSON1 functions).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import BooleanField, Case, F, Q, Value, When
from django.db.models.expressions import Func
from django.db.models.fields import DecimalField, TextField
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IsNull,
    LessThan,
    LessThanOrEqual,
)

from exports.choices import FilterOperator
from exports.formats import ColumnType

Problems = dict[str, list[str]]

OPERATORS: tuple[str, ...] = tuple(FilterOperator.values)
ORDERING = ("gt", "gte", "lt", "lte")
MAX_IN_VALUES = 1000
MAX_TEXT_OPERAND = 1000
MAX_PATH_DEPTH = 10

# Which operators each type of named field takes (JSON paths take them all).
_TYPE_OPERATORS: dict[str, tuple[str, ...]] = {
    ColumnType.BOOLEAN: ("eq", "ne", "in", "isNull"),
    ColumnType.STRING_LIST: ("contains", "isNull"),
    ColumnType.JSON: ("isNull",),
}
_PLAIN_NUMBER = r"^\s*-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


@dataclass(frozen=True)
class FilterField:
    """A named field: the model field (lookup path) it is, and the type of its values."""

    lookup: str
    type: ColumnType
    is_uuid: bool = False


@dataclass(frozen=True)
class FilterSchema:
    """What can be filtered on for one entity.

    ``fields``: named fields. ``json_column``: the model field holding the entity's JSON,
    which every other name not starting with ``_`` is a dotted path into. ``json_prefixes``:
    ``{"extra": "extra"}`` makes ``extra.<path>`` a path into that JSON model field.
    """

    entity: str
    fields: Mapping[str, FilterField]
    json_column: str | None = None
    json_prefixes: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> FilterField | tuple[str, list[str]] | None:
        """The named field, or (JSON model field, path) for a JSON path, or None."""
        if name in self.fields:
            return self.fields[name]
        head, _, rest = name.partition(".")
        if head in self.json_prefixes and rest:
            return self.json_prefixes[head], rest.split(".")
        if self.json_column is not None and not name.startswith("_"):
            return self.json_column, name.split(".")
        return None

    def unknown_message(self) -> str:
        known = ", ".join(self.fields)
        if self.json_column is not None:
            return (
                f"Unknown field of {self.entity}; its own fields are {known}, and any other "
                "name (without a leading _) is a dotted path into its records."
            )
        paths = "".join(f", {prefix}.<key>" for prefix in self.json_prefixes)
        return f"Unknown field of {self.entity}; known fields: {known}{paths}."


class FilterError(ValueError):
    """A filter that does not fit its entity; ``problems`` maps each field to messages."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in problems.items()))
        self.problems = problems


# --- operand checks --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Operands beyond these are refused rather than handed to the database, where they overflow its
# types (bigint, numeric) or make Django give up on the query.
INTEGER_LIMIT = 2**63 - 1
NUMBER_LIMIT = Decimal(10) ** 30


def _whole_number(operand: Any) -> int | None:
    if isinstance(operand, int) and not isinstance(operand, bool):
        number = operand
    elif isinstance(operand, float) and math.isfinite(operand) and operand.is_integer():
        number = int(operand)
    else:
        return None
    return number if -INTEGER_LIMIT <= number <= INTEGER_LIMIT else None


def _bounded_decimal(number: Decimal) -> Decimal:
    if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
        raise ValueError("takes a number below 10^30 in size")
    return number


def _parse_timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _typed_operand(kind: str, operand: Any) -> Any:
    """The operand as the named field's Python type; ValueError says what was expected."""
    if kind == ColumnType.STRING:
        if not isinstance(operand, str):
            raise ValueError("takes a string")
        return operand
    if kind == ColumnType.INTEGER:
        if (number := _whole_number(operand)) is not None:
            return number
        raise ValueError("takes a whole number")
    if kind in (ColumnType.DECIMAL, ColumnType.FLOAT):
        if _is_number(operand):
            return _bounded_decimal(Decimal(str(operand)))
        if isinstance(operand, str):
            try:
                parsed = Decimal(operand.strip())
            except InvalidOperation:
                raise ValueError("takes a number") from None
            return _bounded_decimal(parsed)
        raise ValueError("takes a number")
    if kind == ColumnType.BOOLEAN:
        if not isinstance(operand, bool):
            raise ValueError("takes true or false")
        return operand
    if kind == ColumnType.DATE:
        try:
            return dt.date.fromisoformat(operand)
        except (TypeError, ValueError):
            raise ValueError("takes a date as YYYY-MM-DD") from None
    if kind == ColumnType.TIMESTAMP:
        try:
            return _parse_timestamp(operand)
        except (TypeError, ValueError):
            raise ValueError("takes an ISO 8601 date or time, e.g. 2025-01-01T00:00:00Z") from None
    if kind == ColumnType.STRING_LIST:
        if not isinstance(operand, str):
            raise ValueError("takes a string (an element of the list)")
        return operand
    raise ValueError("cannot be compared")


def _json_operand(operator: str, operand: Any) -> Any:
    """Checks an operand compared with a JSON value (its type picks the comparison)."""
    if _is_number(operand):
        _bounded_decimal(Decimal(str(operand)))
    if operator in ORDERING:
        if _is_number(operand) or isinstance(operand, str):
            return operand
        raise ValueError("takes a number or a string")
    if operator == "contains":
        if isinstance(operand, str):
            return operand
        raise ValueError("takes a string")
    if operand is None or isinstance(operand, bool | str) or _is_number(operand):
        return operand
    raise ValueError("takes a string, number, boolean or null")


def _operand_problem(
    target: FilterField | tuple[str, list[str]], operator: str, operand: Any
) -> str | None:
    if operator == "isNull":
        return None if isinstance(operand, bool) else "isNull takes true or false."
    if operator == "in":
        if not isinstance(operand, list) or not operand:
            return "in takes a non-empty list."
        if len(operand) > MAX_IN_VALUES:
            return f"in takes at most {MAX_IN_VALUES} values."
        for item in operand:
            if problem := _operand_problem(target, "eq", item):
                return problem.replace("eq ", "in ", 1)
        return None
    if isinstance(operand, str) and len(operand) > MAX_TEXT_OPERAND:
        return f"{operator} takes at most {MAX_TEXT_OPERAND} characters."
    if isinstance(target, FilterField):
        allowed = _TYPE_OPERATORS.get(target.type)
        if allowed is not None and operator not in allowed:
            return f"{operator} does not apply to a {target.type} field; use: {', '.join(allowed)}."
        if operator == "contains" and target.type not in (
            ColumnType.STRING,
            ColumnType.STRING_LIST,
        ):
            return f"contains applies to text and list fields, not to a {target.type} field."
        if operand is None and operator in ("eq", "ne"):
            return None
        if target.is_uuid and operator != "contains":
            try:
                uuid.UUID(operand)
            except (TypeError, ValueError, AttributeError):
                return f"{operator} takes an id (a UUID); got {operand!r:.60}."
        try:
            _typed_operand(target.type, operand)
        except ValueError as error:
            return f"{operator} {error}; got {operand!r:.60}."
        return None
    try:
        _json_operand(operator, operand)
    except ValueError as error:
        return f"{operator} {error}; got {operand!r:.60}."
    return None


def _path_problem(path: list[str]) -> str | None:
    if len(path) > MAX_PATH_DEPTH:
        return f"A path has at most {MAX_PATH_DEPTH} parts."
    if any(not part or '"' in part for part in path):
        return 'Each part of a dotted path must be non-empty and hold no ".'
    return None


def _conditions(value: Any) -> dict[str, Any]:
    """A field's condition as {operator: operand}; a bare value is equality."""
    if isinstance(value, dict):
        return value
    return {"eq": value}


def filter_problems(schema: FilterSchema, filter_: Any) -> Problems:
    """What is wrong with ``filter_`` for this entity, keyed by field (empty when valid): an
    unknown field, an unknown operator, an operand of the wrong type."""
    if not isinstance(filter_, Mapping):
        return {"_": ["The filter must be a JSON object."]}
    problems: Problems = {}
    for name, condition in filter_.items():
        messages: list[str] = []
        target = schema.resolve(name) if isinstance(name, str) else None
        if target is None:
            problems[str(name)] = [schema.unknown_message()]
            continue
        if isinstance(target, tuple) and (problem := _path_problem(target[1])):
            messages.append(problem)
        conditions = _conditions(condition)
        if not conditions:
            messages.append(f"Give at least one operator ({', '.join(OPERATORS)}).")
        for operator, operand in conditions.items():
            if operator not in OPERATORS:
                messages.append(
                    f"Unknown operator {operator!r}; use one of: {', '.join(OPERATORS)}."
                )
            elif problem := _operand_problem(target, operator, operand):
                messages.append(problem)
        if messages:
            problems[name] = messages
    return problems


# --- JSON path expressions -------------------------------------------------------------------


def pg_json(column_sql: str) -> str:
    """A JSON model field's SQL as PostgreSQL ``json``. The store keeps what sources send,
    and PostgreSQL refuses to turn a ``\\u0000`` escape into text (whichever field a query reads),
    so the escape is read as U+FFFD: the same length, still valid JSON wherever it stands."""
    return f"replace(({column_sql})::text, '\\u0000', '\\ufffd')::json"


class JSONPath(Func):
    """A value at a path inside a JSON model field (``jsonb``, or JSON kept as text).

    ``mode``: ``text`` (strings as they are, other values as JSON text), ``type`` (``string``,
    ``number``, ``boolean``, ``null``, ``array``, ``object``; NULL when missing), or ``number``
    (JSON numbers and strings holding a plain number, as a decimal; NULL otherwise).
    """

    arity = 1

    def __init__(self, column: str, path: list[str], mode: str) -> None:
        output = DecimalField() if mode == "number" else TextField()
        super().__init__(F(column), output_field=output)
        self.path = list(path)
        self.mode = mode

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        document = pg_json(column)
        path = "%s::text[]"
        if self.mode == "type":
            return f"json_typeof({document} #> {path})", [*params, self.path]
        text = f"({document} #>> {path})"
        if self.mode == "text":
            return text, [*params, self.path]
        sql = (
            f"(CASE json_typeof({document} #> {path}) WHEN 'number' THEN {text}::numeric "
            f"WHEN 'string' THEN CASE WHEN {text} ~ %s THEN trim({text})::numeric END END)"
        )
        return sql, [
            *params,
            self.path,
            *params,
            self.path,
            *params,
            self.path,
            _PLAIN_NUMBER,
            *params,
            self.path,
        ]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f'."{part}"' for part in self.path)
        kind = f"json_type({column}, %s)"
        value = f"json_extract({column}, %s)"
        if self.mode == "type":
            sql = (
                f"(CASE {kind} WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
                f"WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN "
                f"'boolean' ELSE {kind} END)"
            )
            return sql, [*params, path, *params, path]
        if self.mode == "text":
            sql = (
                f"(CASE {kind} WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                f"ELSE CAST({value} AS TEXT) END)"
            )
            return sql, [*params, path, *params, path]
        sql = (
            f"(CASE WHEN {kind} IN ('integer', 'real') THEN {value} "
            f"WHEN {kind} = 'text' AND {value} REGEXP %s THEN CAST(trim({value}) AS REAL) END)"
        )
        return sql, [
            *params,
            path,
            *params,
            path,
            *params,
            path,
            *params,
            path,
            _PLAIN_NUMBER,
            *params,
            path,
        ]


class JSONArrayHas(Func):
    """True when the JSON at ``path`` (the whole field for an empty path) is an array with an
    element equal to the string ``element``."""

    arity = 1
    output_field = BooleanField()
    conditional = True

    def __init__(self, column: str, path: list[str], element: str) -> None:
        super().__init__(F(column))
        self.path = list(path)
        self.element = element

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        node = f"({pg_json(column)} #> %s::text[])"
        # Only compiled column SQL and placeholders are joined; every value is bound.
        sql = (
            "EXISTS (SELECT 1 FROM json_array_elements_text("  # noqa: S608
            f"CASE WHEN json_typeof({node}) = 'array' THEN {node} END) AS element(value) "
            "WHERE element.value = %s)"
        )
        return sql, [*params, self.path, *params, self.path, self.element]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f'."{part}"' for part in self.path)
        # Only compiled column SQL and placeholders are joined; every value is bound.
        sql = (
            f"(json_type({column}, %s) = 'array' AND EXISTS (SELECT 1 FROM "  # noqa: S608
            f"json_each({column}, %s) AS element WHERE element.type = 'text' "
            "AND element.value = %s))"
        )
        return sql, [*params, path, *params, path, self.element]


def _not(condition: Q) -> Q:
    """The negation of ``condition`` counting NULL (a missing value) as not matching it."""
    return Q(
        Case(When(condition, then=Value(False)), default=Value(True), output_field=BooleanField())
    )


class _Number(Func):
    """A number operand compared with a JSON number: ``numeric`` on PostgreSQL (exact), and
    a REAL on SQLite, whose comparisons of a number with text are never numeric."""

    arity = 0
    output_field = DecimalField()

    def __init__(self, value: Decimal) -> None:
        super().__init__()
        self.value = value

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return "%s::numeric", [str(self.value)]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return "CAST(%s AS REAL)", [str(self.value)]


_ORDER_LOOKUPS: dict[str, Any] = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}


def _json_condition(column: str, path: list[str], operator: str, operand: Any) -> Q:
    text = JSONPath(column, path, "text")
    kind = JSONPath(column, path, "type")
    if operator == "isNull" or (operator == "eq" and operand is None):
        null = Q(IsNull(kind, True)) | Q(Exact(kind, "null"))
        return null if operator == "eq" or operand else _not(null)
    if operator == "ne":
        return _not(_json_condition(column, path, "eq", operand))
    if operator == "in":
        matches = Q()
        for item in operand:
            matches |= _json_condition(column, path, "eq", item)
        return matches
    if operator == "contains":
        substring = Q(Exact(kind, "string")) & Q(IContains(text, operand))
        return substring | Q(JSONArrayHas(column, path, operand))
    if isinstance(operand, bool):
        return Q(Exact(kind, "boolean")) & Q(Exact(text, "true" if operand else "false"))
    lookup = _ORDER_LOOKUPS[operator]
    if _is_number(operand):
        return Q(lookup(JSONPath(column, path, "number"), _Number(Decimal(str(operand)))))
    return Q(Exact(kind, "string")) & Q(lookup(text, operand))


def _field_condition(target: FilterField, operator: str, operand: Any) -> Q:
    lookup = target.lookup
    if operator == "isNull" or (operator == "eq" and operand is None):
        return Q(**{f"{lookup}__isnull": True if operator == "eq" else operand})
    if operator == "ne" and operand is None:
        return Q(**{f"{lookup}__isnull": False})
    if target.type == ColumnType.STRING_LIST:
        return Q(JSONArrayHas(lookup, [], operand))
    if operator == "in":
        values = [_typed_operand(target.type, item) for item in operand if item is not None]
        matches = Q(**{f"{lookup}__in": values})
        if None in operand:
            matches |= Q(**{f"{lookup}__isnull": True})
        return matches
    value = _typed_operand(target.type, operand)
    if operator == "eq":
        return Q(**{lookup: value})
    if operator == "ne":
        return ~Q(**{lookup: value})
    if operator == "contains":
        return Q(**{f"{lookup}__icontains": value})
    return Q(**{f"{lookup}__{operator}": value})


def compile_filter(schema: FilterSchema, filter_: Mapping[str, Any] | None) -> Q:
    """The filter as one ORM condition on the entity's model (an empty filter matches all);
    ``FilterError`` with field-precise problems when it does not fit the entity."""
    if not filter_:
        return Q()
    if problems := filter_problems(schema, filter_):
        raise FilterError(problems)
    condition = Q()
    for name, value in filter_.items():
        target = schema.resolve(name)
        assert target is not None
        for operator, operand in _conditions(value).items():
            if isinstance(target, FilterField):
                condition &= _field_condition(target, operator, operand)
            else:
                column, path = target
                condition &= _json_condition(column, path, operator, operand)
    return condition
