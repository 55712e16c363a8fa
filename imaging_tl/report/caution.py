"""The small-sample caution of the report, shown beside the metrics table."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from imaging_tl.evaluate.samplesize import MIN_NEGATIVES, MIN_PATIENTS, MIN_POSITIVES

__all__ = ["small_sample_html"]


def small_sample_html(metrics: Mapping[str, Any] | None) -> str:
    """A warning paragraph listing ``metrics["small_sample"]`` (empty string when none).

    Examples
    --------
    >>> page = small_sample_html({"small_sample": ["test split: 4 patients (fewer than 20)"]})
    >>> "Small sample" in page and "4 patients" in page
    True
    >>> small_sample_html({"small_sample": []})
    ''
    """
    notes = list((metrics or {}).get("small_sample") or [])
    if not notes:
        return ""
    items = "".join(f"<li>{escape(str(n))}</li>" for n in notes)
    return (f'<div class="warn small-sample"><p>Small sample: read these figures with care '
            f"(a split should hold at least {MIN_POSITIVES} positive and {MIN_NEGATIVES} "
            f"negative cases and {MIN_PATIENTS} patients).</p><ul>{items}</ul></div>")
