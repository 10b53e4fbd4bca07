"""The API's one JSON parser: what every request body must be before any view or serializer sees
it.

A body is refused with a 400 naming the path of the offending value (``config.headers.X``) when
a string or an object key holds a NUL character or a lone UTF-16 surrogate (``\\u0000``,
``\\ud800``), or when it nests deeper than ``API_MAX_JSON_DEPTH`` containers. JSON allows all
three; PostgreSQL stores none of the first two (``text`` and ``jsonb`` refuse NUL, UTF-8 has no
encoding for a lone surrogate), and deep nesting only exhausts the recursion of every later step
(validation, ``json.dumps``, the database driver). Checking once here means no serializer, JSON
field or service has to remember it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

from config.api.errors import BadRequest


def printable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as ``\\uXXXX``: safe to echo in an answer
    (a lone surrogate cannot even be encoded as UTF-8, so echoing it would fail the response)."""
    return "".join(
        f"\\u{ord(char):04x}" if char == "\x00" or "\ud800" <= char <= "\udfff" else char
        for char in text
    )


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "Must not contain NUL (\\u0000) characters."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "Must not contain lone surrogates (\\ud800-\\udfff); send valid Unicode text."
    return None


# A value's place in the document, kept as a chain (parent's trail, key or index) so that a path
# is spelt out only for the value being refused.
Trail = tuple[Any, str | int] | None


def _path(trail: Trail) -> str:
    keys: list[str | int] = []
    while trail is not None:
        trail, key = trail
        keys.append(key)
    path = ""
    for key in reversed(keys):
        if isinstance(key, int):
            path += f"[{key}]"
        else:
            path += f".{key}" if path else key
    return path or "body"


def json_check(data: Any, *, max_depth: int, check_text: bool = True) -> None:
    """Raise the API's 400 for the first value that makes ``data`` unacceptable.

    Iterative, so a value nested deeper than the interpreter's recursion limit is measured too.
    ``check_text=False`` skips the strings, for a body known to hold no ``\\u`` escape (the only
    way a NUL or a lone surrogate can be written in valid JSON).
    """
    containers = (dict, list)
    stack: list[tuple[Any, int, Trail]] = [(data, 1, None)]
    while stack:
        value, depth, trail = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValidationError({_path(trail): [problem]})
            continue
        if not isinstance(value, containers):
            continue
        if depth > max_depth:
            raise _too_deep(max_depth, _path(trail))
        if isinstance(value, dict):
            for key, item in value.items():
                if check_text:
                    problem = text_problem(key)
                    if problem:
                        raise ValidationError({_path((trail, printable(key))): [f"Key: {problem}"]})
                if check_text or isinstance(item, containers):
                    stack.append((item, depth + 1, (trail, key)))
        else:
            for index, item in enumerate(value):
                if check_text or isinstance(item, containers):
                    stack.append((item, depth + 1, (trail, index)))


def _too_deep(max_depth: int, path: str | None = None) -> BadRequest:
    details: dict[str, Any] = {"maxDepth": max_depth}
    if path:
        details["path"] = path
    return BadRequest(
        f"JSON nested deeper than {max_depth} levels of objects and arrays.", details=details
    )


class JSONBodyParser(JSONParser):
    """DRF's JSON parser plus the checks of this module."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        max_depth = settings.API_MAX_JSON_DEPTH
        body = stream.read()
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            # The standard library's decoder recurses once per level: thousands of levels of
            # nesting end here, before any value could be walked.
            raise _too_deep(max_depth) from None
        # Raw NUL bytes and UTF-8 that encodes a surrogate fail to parse above; only an escape
        # can carry either. (Bodies are UTF-8: another charset gets every string checked.)
        charset = (parser_context or {}).get("encoding") or "utf-8"
        ascii_compatible = charset.lower().replace("-", "") in ("utf8", "ascii", "usascii")
        json_check(data, max_depth=max_depth, check_text=b"\\u" in body or not ascii_compatible)
        return data
