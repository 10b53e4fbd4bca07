"""The operator console's building blocks, shared by every app's admin.

The JSON documents of runs, files and definitions (a job's stats and log, a file's samples, an
integration's config, a webhook message) are shown as definition lists and tables rather than as
JSON text; every value is escaped by ``format_html``. Also: compact timestamps, progress bars,
links to a changelist filtered by an object, and ``OperatorAdmin``, whose detail pages carry
buttons that call a service (reprocess, cancel, re-run, restore) instead of a Save button for
records the engine alone writes.

Nothing here knows a model of the apps: each admin passes the values it shows. The templates
and static files named here ship in ``syncengine`` (``admin/railyard/``, ``railyard/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Nested documents deeper than this are shown as compact JSON in a <code> element.
MAX_DEPTH = 4
# Columns of a stats table, in this order when present; other scalar counts follow by name.
STATS_COLUMNS = (
    "read",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "removed",
    "sold",
    "skipped",
    "errors",
    "warned",
    "rows",
    "files",
    "bytes",
)
CONSOLE_CSS = "railyard/console.css"
CONSOLE_JS = "railyard/console.js"


def empty(text: str = "—") -> SafeString:
    return format_html('<span class="railyard-empty">{}</span>', text)


def number(value: Any) -> str:
    """A count with thousands separators (anything else as it is)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def moment(value: datetime | str | None) -> SafeString:
    """A timestamp as ``YYYY-MM-DD HH:MM`` in the current time zone, the exact value in its
    title: list columns stay narrow."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is None:
        return empty()
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        local.strftime("%Y-%m-%d %H:%M"),
    )


def seconds(value: float | None) -> str:
    """A duration in seconds, as an operator reads one (``850 ms``, ``4.2 s``, ``3 min 5 s``)."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def value_html(value: Any, depth: int = 0) -> SafeString:
    """Any JSON value as HTML: objects as definition lists, lists of objects as tables, lists
    of scalars as comma-separated text."""
    if value is None:
        return empty()
    if isinstance(value, bool):
        return format_html("{}", "yes" if value else "no")
    if isinstance(value, int | float):
        return format_html("{}", number(value))
    if isinstance(value, str):
        return format_html("{}", value) if value else empty("(empty)")
    if depth >= MAX_DEPTH:
        return format_html("<code>{}</code>", json.dumps(value, default=str))
    if isinstance(value, Mapping):
        return definition_list(value, depth=depth + 1)
    if isinstance(value, Sequence):
        if not value:
            return empty("(none)")
        if all(_scalar(item) for item in value):
            return format_html_join(", ", "{}", ((value_html(item),) for item in value))
        if all(isinstance(item, Mapping) for item in value):
            return records_table(value, depth=depth + 1)
        return format_html(
            '<ol class="railyard-list">{}</ol>',
            format_html_join("", "<li>{}</li>", ((value_html(item, depth + 1),) for item in value)),
        )
    return format_html("{}", str(value))


def definition_list(mapping: Mapping[str, Any] | None, depth: int = 0) -> SafeString:
    """``{key: value}`` as ``<dl>``, nested values rendered by ``value_html``."""
    if not mapping:
        return empty("(none)")
    return format_html(
        '<dl class="railyard-dl">{}</dl>',
        format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            ((key, value_html(value, depth)) for key, value in mapping.items()),
        ),
    )


def records_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None, depth: int = 0
) -> SafeString:
    """Rows of objects as a table; the columns are ``columns``, else every key in the order it
    first appears."""
    rows = list(rows)
    if not rows:
        return empty("(none)")
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    head = format_html_join("", '<th scope="col">{}</th>', ((column,) for column in columns))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html_join(
                    "",
                    "<td>{}</td>",
                    ((value_html(row.get(column), depth),) for column in columns),
                ),
            )
            for row in rows
        ),
    )
    return format_html(
        '<table class="railyard-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        head,
        body,
    )


def stats_table(stats: Mapping[str, Any] | None) -> SafeString:
    """A run's per-entity counts as one table (an entity a row, a count a column), then each
    entity's error samples and warnings."""
    if not stats:
        return empty("(none yet)")
    entities = {name: counts for name, counts in stats.items() if isinstance(counts, Mapping)}
    others = {name: value for name, value in stats.items() if name not in entities}
    counted = {
        key
        for counts in entities.values()
        for key, value in counts.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    columns = [key for key in STATS_COLUMNS if key in counted]
    columns += sorted(counted - set(columns))
    rows = [
        format_html(
            '<tr><th scope="row">{}</th>{}</tr>',
            name,
            format_html_join(
                "",
                '<td class="railyard-number">{}</td>',
                ((value_html(counts.get(column)),) for column in columns),
            ),
        )
        for name, counts in entities.items()
    ]
    parts = [
        format_html(
            '<table class="railyard-table railyard-stats"><thead><tr><th scope="col">entity</th>'
            "{}</tr></thead><tbody>{}</tbody></table>",
            format_html_join("", '<th scope="col">{}</th>', ((column,) for column in columns)),
            mark_safe("".join(rows)),  # noqa: S308 -- each row was built by format_html
        )
    ]
    for name, counts in entities.items():
        samples = counts.get("errorSamples") or []
        if samples:
            parts.append(
                format_html(
                    '<p class="railyard-caption">Rejected records of {} (first {}):</p>{}',
                    name,
                    len(samples),
                    records_table(samples) if _all_mappings(samples) else value_html(samples),
                )
            )
        warnings = counts.get("warnings") or []
        if warnings:
            parts.append(
                format_html(
                    '<p class="railyard-caption">Warnings of {}:</p><ul class="railyard-list">'
                    "{}</ul>",
                    name,
                    format_html_join("", "<li>{}</li>", ((value_html(w),) for w in warnings)),
                )
            )
    if others:
        parts.append(definition_list(others))
    return mark_safe("".join(parts))  # noqa: S308 -- every part was built by format_html


def _all_mappings(items: Sequence[Any]) -> bool:
    return all(isinstance(item, Mapping) for item in items)


def log_table(lines: Sequence[Mapping[str, Any]] | None) -> SafeString:
    """A run's log (``{at, level, message}`` lines) as a table, oldest first."""
    if not lines:
        return empty("(empty)")
    return format_html(
        '<table class="railyard-table railyard-log"><thead><tr><th scope="col">at</th>'
        '<th scope="col">level</th><th scope="col">message</th></tr></thead><tbody>{}</tbody>'
        "</table>",
        format_html_join(
            "",
            '<tr class="railyard-level-{}"><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    str(line.get("level", "info")),
                    moment(line.get("at")),
                    line.get("level", ""),
                    line.get("message", ""),
                )
                for line in lines
            ),
        ),
    )


def progress_bar(
    percent: int | None, label: str, *, status: str = "", poll_url: str = ""
) -> SafeString:
    """A progress bar (``role=progressbar``); without a percentage it is indeterminate. With
    ``poll_url`` the page's script (``railyard/console.js``) refreshes it while the run is
    queued or running."""
    value = "" if percent is None else format_html(' aria-valuenow="{}"', percent)
    width = 100 if percent is None else percent
    return format_html(
        '<span class="railyard-progress-wrap" data-status="{}"{}>'
        '<span class="railyard-progress{}" role="progressbar" aria-valuemin="0" '
        'aria-valuemax="100"{} aria-label="{}"><span class="railyard-progress-bar" '
        'style="width: {}%"></span></span> <span class="railyard-progress-label">{}</span></span>',
        status,
        format_html(' data-poll-url="{}"', poll_url) if poll_url else "",
        " railyard-progress-indeterminate" if percent is None else "",
        value,
        label,
        width,
        label,
    )


def change_url(obj: Model) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def change_link(obj: Model | None, label: str | None = None) -> SafeString:
    """A link to an object's detail page in the admin."""
    if obj is None:
        return empty()
    return format_html('<a href="{}">{}</a>', change_url(obj), label or str(obj))


def changelist_url(model: str, **query: Any) -> str:
    """The changelist of ``app_label.model_name`` filtered by ``query`` (list filter
    parameters such as ``integration__id__exact``)."""
    app_label, model_name = model.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    return f"{url}?{urlencode(query)}" if query else url


def changelist_link(model: str, label: str, **query: Any) -> SafeString:
    return format_html('<a href="{}">{}</a>', changelist_url(model, **query), label)


def links(items: Iterable[SafeString], separator: str = " · ") -> SafeString:
    return format_html_join(separator, "{}", ((item,) for item in items))


@dataclass(frozen=True)
class ObjectAction:
    """A button on a record's detail page: ``run`` calls the service the API calls and tells
    the operator what happened (``messages``)."""

    name: str
    label: str
    run: Callable[[HttpRequest, Any], None]
    danger: bool = False


class OperatorAdmin(admin.ModelAdmin):
    """An admin whose detail page can carry ``object_actions`` and whose changelist actions can
    ask for the ``operate`` permission.

    Operating a record (reprocessing a file, cancelling a job) needs the model's Django change
    permission even where the record itself cannot be edited: a user who may only view sees
    neither the buttons nor the actions.
    """

    change_form_template = "admin/railyard/change_form.html"

    class Media:
        css = {"all": [CONSOLE_CSS]}
        js = [CONSOLE_JS]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def object_actions(self, request: HttpRequest, obj: Any) -> list[ObjectAction]:
        """The buttons of ``obj``'s detail page (those its state allows)."""
        return []

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            actions = (
                self.object_actions(request, obj) if self.has_operate_permission(request) else []
            )
            chosen = request.POST.get("_operator_action") if request.method == "POST" else None
            if chosen:
                action = next((action for action in actions if action.name == chosen), None)
                if action is None:
                    raise PermissionDenied
                action.run(request, obj)
                return HttpResponseRedirect(request.get_full_path())
            extra_context = {**(extra_context or {}), "operator_actions": actions}
        return super().change_view(request, object_id, form_url, extra_context)


class RecordAdmin(OperatorAdmin):
    """Records only the engine writes (runs, received files, deliveries): operators look and
    act through the object's buttons and the list actions; nothing is added, edited or deleted
    here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def json_field(
    name: str, description: str | None = None, render: Callable[[Any], SafeString] = value_html
) -> Callable[[Any, Any], SafeString]:
    """A read-only field of an admin showing the JSON field ``name`` of the object as HTML:
    ``config_shown = json_field("config")`` in the admin's body, ``"config_shown"`` in its
    fields."""

    @admin.display(description=description or name.replace("_", " "))
    def shown(model_admin: Any, obj: Any) -> SafeString:
        return render(getattr(obj, name))

    return shown
