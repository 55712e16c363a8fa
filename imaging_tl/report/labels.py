"""How a run read its multi-label CSV, as an HTML table (policy, counts per label)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = ["label_reading_section"]

_KEYS = ("positive", "negative", "uncertain", "blank", "missing", "conflicting")


def label_reading_section(summary: Mapping[str, Any] | None) -> str:
    """Per label: the CSV columns read and the positive/negative/uncertain/blank counts.

    ``summary`` is the table's ``label_summary`` (``run.json``'s ``labels``); an empty
    string when the run read no multi-label CSV.

    Examples
    --------
    >>> page = label_reading_section({"uncertain_policy": "ignore", "labels": {
    ...     "effusion": {"columns": ["Effusion"], "positive": 3, "missing": 1}}})
    >>> "uncertain policy: ignore" in page and "<td>Effusion</td>" in page
    True
    >>> label_reading_section(None)
    ''
    """
    if not summary or not summary.get("labels"):
        return ""
    head = "<tr><th>label</th><th>columns</th>" + "".join(f"<th>{k}</th>" for k in _KEYS)
    rows = "".join(
        f"<tr><td>{escape(str(name))}</td><td>{escape(', '.join(e.get('columns', [])))}</td>"
        + "".join(f"<td>{e.get(k, '')}</td>" for k in _KEYS) + "</tr>"
        for name, e in summary["labels"].items())
    policy = summary.get("uncertain_policy") or "none (no uncertain cells)"
    return (f"<h4>Labels as read (uncertain policy: {escape(policy)}; missing = masked in "
            f'training and evaluation)</h4><table class="grid">{head}</tr>{rows}</table>')
