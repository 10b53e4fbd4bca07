"""The ``{{ ... }}`` templates of a manifest: a dotted name looked up in the request's context.

There are no expressions, filters or code: a template names a value, nothing more, so a manifest
cannot compute anything the engine did not hand it. The names a manifest may use are

- ``config.<key>``: the connection's config (a property's schema default when it is not set);
- ``credentials.<key>``: the connection's credentials, resolved;
- ``cursor``: the last cursor value synced (a stream's ``cursor.start`` before the first sync),
  written as ``cursor.format`` says when the stream gives one;
- ``page.size``, ``page.number``, ``page.offset``, ``page.cursor``: the page being requested;
- ``window.start``, ``window.end``: the bounds of the date window being read;
- ``stream.name``;

and in a destination's write requests (``destination``):

- ``entity``: the destination entity the records go to;
- ``upsertKey``: the name of the field that identifies a record;
- ``batch.number`` (1, 2, ... within the run and entity) and ``batch.size``;
- ``records`` and ``keys``: the records of a batch and their upsertKey values;
- ``record``, ``record.<field>`` and ``key``: the record of a one-record request and its
  upsertKey value.

A string that is one template and nothing else takes the value's own type (a number stays a
number in a JSON body), and "nothing" (a value that is not set) when the value is not set: such
a query parameter or body field is left out. Inside a longer string a value that is not set
reads as "", and an object or array as its JSON text. In a URL (``baseUrl``, a stream's
``path``) every value after the very start is percent-encoded, so a config value cannot add path
segments or a query.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
ROOTS = {
    "config": None,  # any key the manifest's config declares
    "credentials": None,  # any key the manifest's credentials declare
    "cursor": set(),
    "page": {"size", "number", "offset", "cursor"},
    "window": {"start", "end"},
    "stream": {"name"},
    # A destination's write requests.
    "entity": set(),
    "upsertKey": set(),
    "batch": {"number", "size"},
    "records": set(),
    "keys": set(),
    "record": None,  # the record, or any field of it
    "key": set(),
}


class Omitted:
    """What a whole-string template renders to when its value is not set."""

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = Omitted()


def names(value: Any) -> Iterator[str]:
    """Every name the templates in ``value`` (a string, or JSON of strings) refer to."""
    if isinstance(value, str):
        yield from TEMPLATE.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from names(item)
    elif isinstance(value, list):
        for item in value:
            yield from names(item)


def lookup(context: dict[str, Any], name: str) -> Any:
    value: Any = context
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def render(value: Any, context: dict[str, Any], *, quote: bool = False) -> Any:
    """``value`` with its templates filled in from ``context``; dicts and lists item by item,
    leaving out items that render to ``OMITTED``. ``quote`` percent-encodes each value put into
    a longer string (a URL path: a config value cannot add path segments)."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole is not None:
            found = lookup(context, whole.group(1))
            if found is None or found == "":
                return OMITTED
            return urllib.parse.quote(str(found), safe="") if quote else found

        def fill(match: re.Match[str]) -> str:
            text = _text(lookup(context, match.group(1)))
            return urllib.parse.quote(text, safe="") if quote else text

        return TEMPLATE.sub(fill, value)
    if isinstance(value, dict):
        rendered = {key: render(item, context, quote=quote) for key, item in value.items()}
        return {key: item for key, item in rendered.items() if item is not OMITTED}
    if isinstance(value, list):
        return [
            item for item in (render(i, context, quote=quote) for i in value) if item is not OMITTED
        ]
    return value


def _text(value: Any) -> str:
    """A value inside a longer string: "" when not set, JSON for an object or array."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def unset(value: Any, context: dict[str, Any]) -> bool:
    """Whether ``value`` has templates and every one of them names a value that is not set."""
    found = list(names(value))
    return bool(found) and all(lookup(context, name) in (None, "") for name in found)


def render_text(value: str, context: dict[str, Any], *, quote: bool = False) -> str:
    """A template rendered as text ("" when it is one template whose value is not set)."""
    rendered = render(value, context, quote=quote)
    return "" if rendered is OMITTED else str(rendered)


def render_url(value: str, context: dict[str, Any]) -> str:
    """A URL template: a value at its very start (the scheme and host, from config) is put in as
    it is, every later one percent-encoded, so that no value can add path segments or a query."""

    def fill(match: re.Match[str]) -> str:
        found = lookup(context, match.group(1))
        text = "" if found is None else str(found)
        return text if match.start() == 0 else urllib.parse.quote(text, safe="")

    return TEMPLATE.sub(fill, value.strip())
