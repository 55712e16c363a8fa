"""The report's test-time augmentation table: each figure plain and with TTA, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from imaging_tl.evaluate.samplesize import format_estimate

__all__ = ["tta_section"]

_ROWS = {
    "binary": (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("sensitivity", "Sensitivity"),
               ("specificity", "Specificity")),
    "multiclass": (("roc_auc_macro", "ROC AUC, macro"), ("balanced_accuracy",
                                                         "Balanced accuracy"),
                   ("accuracy", "Accuracy")),
    "multilabel": (("roc_auc_macro", "ROC AUC, macro"),),
}


def tta_section(metrics: Mapping[str, Any] | None) -> str:
    """A table of the plain and the test-time-augmented figures (empty without TTA).

    Examples
    --------
    >>> m = {"task": "binary", "roc_auc": {"value": 0.8, "ci": [0.7, 0.9]},
    ...      "tta": {"copies": 8, "preset": "light", "seed": 0, "hflip": False,
    ...              "roc_auc": {"value": 0.82, "ci": [0.72, 0.91]}}}
    >>> "0.820 (95% CI 0.720-0.910)" in tta_section(m)
    True
    >>> tta_section({"task": "binary"})
    ''
    """
    m = metrics or {}
    tta = m.get("tta")
    if not isinstance(tta, Mapping):
        return ""
    rows = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(format_estimate(m.get(key)))}</td>"
        f"<td>{escape(format_estimate(tta.get(key)))}</td></tr>"
        for key, label in _ROWS.get(str(m.get("task")), ()) if key in m or key in tta)
    op = (tta.get("operating_point") or {}).get("threshold")
    how = (f"mean over each image and {tta['copies']} augmented copies (preset "
           f"{escape(str(tta['preset']))}{', horizontal flip' if tta.get('hflip') else ''}; "
           f"never a vertical flip; seed {tta['seed']})"
           + (f"; its threshold {op:.4f} chosen on the validation split's TTA scores"
              if op is not None else ""))
    return (f"<h3>Test-time augmentation</h3><p>Plain: the model's own prediction (its "
            f"figures above). TTA: {how}.</p><table class='grid'><tr><th>metric</th>"
            f"<th>plain</th><th>TTA</th></tr>{rows}</table>")
