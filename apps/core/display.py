"""Readable admin displays of JSON values (receipts, erasure checks, metrics): nested
tables instead of raw JSON (issue 17, item 1). Every value is escaped."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

#: Rows shown of a long list; the rest are counted.
MAX_ROWS = 50
MAX_DEPTH = 4


def _label(key: Any) -> str:
    return str(key).replace("_", " ")  # keys like "ndcg@10" keep their spelling


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def facts_table(value: Any, depth: int = 0) -> SafeString:
    """``value`` (JSON-like) as HTML: a dict is a two-column table, a list of dicts a
    table with a column per key, a list of plain values a comma-separated line."""
    if isinstance(value, dict):
        if not value:
            return mark_safe("—")  # noqa: S308 - a constant
        if depth >= MAX_DEPTH:
            return format_html("<code>{}</code>", str(value))
        rows = format_html_join(
            "", '<tr><th scope="row">{}</th><td>{}</td></tr>',
            ((_label(k), facts_table(v, depth + 1)) for k, v in value.items()))
        return format_html('<table class="console-facts"><tbody>{}</tbody></table>', rows)
    if isinstance(value, list | tuple):
        if not value:
            return mark_safe("—")  # noqa: S308 - a constant
        shown, rest = list(value[:MAX_ROWS]), len(value) - MAX_ROWS
        more = format_html("<p>… and {} more</p>", rest) if rest > 0 else ""
        if all(isinstance(v, dict) for v in shown) and depth < MAX_DEPTH:
            columns = list(dict.fromkeys(k for row in shown for k in row))
            head = format_html_join("", '<th scope="col">{}</th>',
                                    ((_label(c),) for c in columns))
            body = format_html_join(
                "", "<tr>{}</tr>",
                ((format_html_join("", "<td>{}</td>",
                                   ((facts_table(row.get(c), depth + 1),) for c in columns)),)
                 for row in shown))
            return format_html('<table class="console-facts"><thead><tr>{}</tr></thead>'
                               "<tbody>{}</tbody></table>{}", head, body, more)
        if any(isinstance(v, dict | list | tuple) for v in shown):
            items = format_html_join(", ", "{}", ((facts_table(v, depth + 1),) for v in shown))
            return format_html("{}{}", items, more)
        return format_html("{}{}", ", ".join(_scalar(v) for v in shown), more)
    return format_html("{}", _scalar(value))
