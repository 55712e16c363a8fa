""":class:`Metrics`: what :func:`imaging_tl.evaluate.evaluate` returns, a plain ``dict``
(``metrics.json``) that also shows itself in a notebook: the headline figures with their
CIs, the small-sample cautions and, for a binary task, the ROC curve."""

from __future__ import annotations

import html
from typing import Any

from imaging_tl.evaluate.samplesize import format_estimate
from imaging_tl.io.notebook import html_img, html_table, line_plot_png

__all__ = ["Metrics", "metrics_rows"]

_ROWS = {"binary": (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("sensitivity",
                    "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"),
                    ("npv", "NPV"), ("accuracy", "accuracy")),
         "multiclass": (("roc_auc_macro", "ROC AUC, macro"), ("roc_auc_micro",
                        "ROC AUC, micro"), ("balanced_accuracy", "balanced accuracy"),
                        ("accuracy", "accuracy")),
         "multilabel": (("roc_auc_macro", "ROC AUC, macro"),)}


def metrics_rows(m: dict[str, Any]) -> list[list[str]]:
    """``[label, "value (95% CI lo-hi)"]`` of the figures a task reports, per-class and
    per-label AUCs included.

    Examples
    --------
    >>> metrics_rows({"task": "binary", "roc_auc": {"value": 0.9, "ci": [0.8, 0.95]}})
    [['ROC AUC', '0.900 (95% CI 0.800-0.950)']]
    """
    boot = m.get("bootstrap") or {}

    def text(est: Any) -> str:
        return format_estimate(est, confidence=float(boot.get("confidence", 0.95)),
                               bootstrapped=bool(boot.get("n_bootstraps", 1)))

    rows = [[label, text(m[k])] for k, label in
            _ROWS.get(str(m.get("task", "binary")), ()) if isinstance(m.get(k), dict)]
    for group, what in (("roc_auc_per_class", "vs rest"), ("roc_auc_per_label", "")):
        for name, est in (m.get(group) or {}).items():
            rows.append([f"ROC AUC, {name} {what}".rstrip(), text(est)])
    return rows


class Metrics(dict):
    """The evaluation's figures (a ``dict``, written as ``metrics.json``) with a notebook
    view.

    Examples
    --------
    >>> m = Metrics({"task": "binary", "roc_auc": {"value": 0.9, "ci": [0.8, 0.95]},
    ...              "curves": {"roc": {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]}}})
    >>> isinstance(m, dict), "data:image/png;base64," in m._repr_html_()
    (True, True)
    """

    def _repr_html_(self) -> str:
        """Jupyter's view: the figures with CIs, the cautions, the ROC curve (binary)."""
        n = self.get("n", self.get("n_images", "?"))
        parts = [f"<p>Test metrics ({self.get('task', '?')}, {n} {self.get('level', 'image')}"
                 "s)</p>", html_table(metrics_rows(self), ["metric", "value"])]
        notes = self.get("small_sample") or []
        if notes:
            parts.append("<p><b>Small sample:</b> " + html.escape("; ".join(map(str, notes)))
                         + "</p>")
        roc = (self.get("curves") or {}).get("roc") or {}
        if roc.get("fpr") and roc.get("tpr"):
            parts.append(html_img(line_plot_png(roc["fpr"], roc["tpr"]), "ROC curve"))
        return "".join(parts)
