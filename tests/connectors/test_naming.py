"""File names from templates, for export files and for files that file imports write."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.naming import DEFAULT_TEMPLATE, NamingError, render_file_name, template_problems

STARTED = dt.datetime(2025, 1, 15, 8, 0, 5, tzinfo=dt.UTC)


def render(template, **overrides):
    values: dict[str, Any] = {
        "export_name": "Monthly Contract Export",
        "entity": "contracts",
        "started_at": STARTED,
        "run_id": "7f1c",
        "ext": "csv",
    }
    values.update(overrides)
    return render_file_name(template, **values)


def test_the_default_template():
    assert render(None) == (
        "Monthly Contract Export/contracts/2025-01-15/"
        "Monthly Contract Export-contracts-20250115T080005Z.csv"
    )
    assert render("") == render(DEFAULT_TEMPLATE)


def test_every_placeholder():
    name = render("{{runId}}/{{ date }}/{{entity}}-{{part}}.{{ext}}", part=2, ext="json.gz")
    assert name == "7f1c/2025-01-15/contracts-002.json.gz"


def test_a_file_import_name():
    assert render("file-{{timestamp}}.csv") == "file-20250115T080005Z.csv"


def test_dates_follow_the_time_zone_given():
    # 01:30 UTC on the 15th is still the 14th in Chicago
    name = render(
        "{{date}}/{{timestamp}}",
        started_at=dt.datetime(2025, 1, 15, 1, 30, tzinfo=dt.UTC),
        timezone="America/Chicago",
    )
    assert name == "2025-01-14/20250114T193000-0600"


def test_parts_without_a_part_placeholder_get_a_suffix_after_the_first():
    assert render("out.{{ext}}", part=1) == "out.csv"
    assert render("out.{{ext}}", part=2) == "out-part002.csv"
    assert render("out", part=3) == "out-part003"


@pytest.mark.parametrize(
    ("export_name", "expected"),
    [
        ("../../etc/passwd", ".._.._etc_passwd/x"),
        ("..", "_/x"),
        ("a\\b", "a_b/x"),
        ("line\nbreak\x00", "line_break_/x"),
        ("/abs", "_abs/x"),
    ],
)
def test_values_never_add_or_leave_a_directory(export_name, expected):
    assert render("{{exportName}}/x", export_name=export_name) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            "file-{{timestamp}}-{{host}}.csv",
            "Unknown placeholder {{host}}; use: {{exportName}}, {{entity}}, {{timestamp}}, "
            "{{date}}, {{runId}}, {{part}}, {{ext}}.",
        ),
        ("file-{{timestamp.csv", "Has '{{' or '}}' that is not part of a {{placeholder}}."),
        ("/exports/{{entity}}.csv", "Must be a relative path (no leading /)."),
        ("a/../{{entity}}.csv", "May not contain '.' or '..' segments."),
        ("a/./b.csv", "May not contain '.' or '..' segments."),
        ("a\\b.csv", "May not contain backslashes; separate directories with /."),
        ("a\tb.csv", "May not contain control characters."),
        ("", "Must be a non-empty string."),
    ],
)
def test_invalid_templates_are_reported(template, problem):
    assert problem in template_problems(template)
    if template:  # an empty template renders the default one
        with pytest.raises(NamingError):
            render(template)


def test_valid_templates_have_no_problems():
    assert template_problems(DEFAULT_TEMPLATE) == []
    assert template_problems("file-{{timestamp}}.csv") == []
    assert template_problems("a..b/{{ext}}") == []  # dots inside a segment are fine


def test_a_caller_can_narrow_the_placeholders():
    assert template_problems("{{part}}.csv", placeholders=["timestamp"]) == [
        "Unknown placeholder {{part}}; use: {{timestamp}}."
    ]


def test_a_name_part_longer_than_a_file_system_allows_is_refused():
    with pytest.raises(NamingError, match="longer than 255 bytes"):
        render("{{exportName}}.csv", export_name="é" * 200)
