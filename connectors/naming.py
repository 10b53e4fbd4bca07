"""File names from templates: ``{{exportName}}/{{entity}}/{{date}}/...-{{timestamp}}.{{ext}}``.

One renderer for export files and for the files a file import writes (``ftp.fileName``, such as
``file-{{timestamp}}.csv``). Placeholders:

==================  ===========================================================================
``{{exportName}}``  the export's name
``{{importName}}``  the file import's name (its files' templates use this one)
``{{entity}}``      the entity written (``vehicles``, ``contracts``)
``{{timestamp}}``   the run's start, ``20250115T020000Z`` (in the time zone given, with its
                    offset: ``20250115T020000+0100``)
``{{date}}``        the run's start date, ``2025-01-15``, in that time zone
``{{runId}}``       the run's id
``{{part}}``        the part number, ``001``, ``002``, ... (a file split at ``maxFileSizeMb``)
``{{ext}}``         the format's extension: ``csv``, ``json``, ``jsonl``, ``parquet``, ``xml``,
                    with ``.gz`` when compressed
==================  ===========================================================================

Names are relative paths with ``/`` between directories. A value never adds a directory or
leaves one: ``/``, ``\\`` and control characters in it become ``_``, and a value that is ``.``
or ``..`` becomes ``_``. The template itself may not be absolute, hold a ``..`` or ``.``
segment, a backslash or a control character (``template_problems`` says so at create time).
A template without ``{{part}}`` names parts after the first ``name-part002.csv`` and so on.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable

PLACEHOLDERS = ("exportName", "entity", "timestamp", "date", "runId", "part", "ext")
# A file import's ``ftp.fileName``: the same, with the import's name under its own word.
IMPORT_PLACEHOLDERS = ("importName", "entity", "timestamp", "date", "runId", "part", "ext")
DEFAULT_TEMPLATE = (
    "{{exportName}}/{{entity}}/{{date}}/{{exportName}}-{{entity}}-{{timestamp}}.{{ext}}"
)
MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_IN_VALUE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


class NamingError(ValueError):
    """A template that cannot give a usable file name."""


def template_problems(template: str, *, placeholders: Iterable[str] = PLACEHOLDERS) -> list[str]:
    """What is wrong with a file-name template (empty when it is valid): unknown placeholders
    (naming the known ones), braces that open no placeholder, an absolute path, ``..`` or
    ``.`` segments, backslashes, control characters."""
    if not isinstance(template, str) or not template.strip():
        return ["Must be a non-empty string."]
    known = list(placeholders)
    problems = []
    unknown = [name for name in _PLACEHOLDER.findall(template) if name not in known]
    if unknown:
        names = ", ".join(f"{{{{{name}}}}}" for name in dict.fromkeys(unknown))
        problems.append(
            f"Unknown placeholder {names}; use: {', '.join(f'{{{{{n}}}}}' for n in known)}."
        )
    literal = _PLACEHOLDER.sub("x", template)
    if "{{" in literal or "}}" in literal:
        problems.append("Has '{{' or '}}' that is not part of a {{placeholder}}.")
    if literal.startswith("/"):
        problems.append("Must be a relative path (no leading /).")
    if "\\" in literal:
        problems.append("May not contain backslashes; separate directories with /.")
    if _CONTROL.search(literal):
        problems.append("May not contain control characters.")
    segments = _PLACEHOLDER.sub("x", template).split("/")
    if any(segment in (".", "..") for segment in segments):
        problems.append("May not contain '.' or '..' segments.")
    if len(template) > MAX_PATH_LENGTH:
        problems.append(f"At most {MAX_PATH_LENGTH} characters.")
    return problems


def safe_value(value: str) -> str:
    """A placeholder's value as part of one path segment."""
    cleaned = _UNSAFE_IN_VALUE.sub("_", value)
    return "_" if cleaned.strip(".") == "" and cleaned != "" else cleaned


def render_file_name(
    template: str | None,
    *,
    export_name: str,
    entity: str,
    started_at: dt.datetime,
    run_id: str = "",
    part: int = 1,
    ext: str,
    timezone: str = "UTC",
    placeholders: Iterable[str] = PLACEHOLDERS,
) -> str:
    """The relative path of one file (``DEFAULT_TEMPLATE`` when ``template`` is empty).
    ``export_name`` is also the value of ``{{importName}}`` where ``placeholders`` allow it.
    ``NamingError`` when the template is invalid or gives an empty or too long name."""
    template = template or DEFAULT_TEMPLATE
    if problems := template_problems(template, placeholders=placeholders):
        raise NamingError(" ".join(problems))
    local = started_at.astimezone(zoneinfo.ZoneInfo(timezone))
    suffix = "Z" if timezone == "UTC" else local.strftime("%z")
    values = {
        "exportName": safe_value(export_name),
        "importName": safe_value(export_name),
        "entity": safe_value(entity),
        "timestamp": local.strftime("%Y%m%dT%H%M%S") + suffix,
        "date": local.strftime("%Y-%m-%d"),
        "runId": safe_value(str(run_id)),
        "part": f"{part:03d}",
        "ext": safe_value(ext),
    }
    name = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if part > 1 and not any(match == "part" for match in _PLACEHOLDER.findall(template)):
        name = _part_suffixed(name, ext=values["ext"], part=values["part"])
    segments = [segment for segment in name.split("/") if segment]
    if not segments:
        raise NamingError("The template gives an empty file name.")
    if any(len(segment.encode()) > MAX_SEGMENT_BYTES for segment in segments):
        raise NamingError(f"A part of the file name is longer than {MAX_SEGMENT_BYTES} bytes.")
    path = "/".join(segments)
    if len(path) > MAX_PATH_LENGTH:
        raise NamingError(f"The file name is longer than {MAX_PATH_LENGTH} characters.")
    return path


def _part_suffixed(name: str, *, ext: str, part: str) -> str:
    """``name`` with ``-part<NNN>`` before its extension (or at its end)."""
    if ext and name.endswith("." + ext):
        return f"{name[: -len(ext) - 1]}-part{part}.{ext}"
    return f"{name}-part{part}"
