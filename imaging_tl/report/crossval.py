"""The report's cross-validation section: per-fold figures, their mean and SD, the pooled
out-of-fold figures with CIs, and the fold ensemble's test figures beside them."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from imaging_tl.evaluate.samplesize import format_estimate

__all__ = ["crossval_section"]

_LABELS = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "sensitivity": "Sensitivity",
           "specificity": "Specificity", "accuracy": "Accuracy",
           "roc_auc_macro": "ROC AUC, macro", "balanced_accuracy": "Balanced accuracy"}


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def crossval_section(metrics: Mapping[str, Any] | None, figure: str = "") -> str:
    """The cross-validation section (empty for a run without ``metrics["crossval"]``);
    ``figure`` is the referral curve's ``<figure>`` (the members' spread), if any.

    Examples
    --------
    >>> m = {"task": "binary", "roc_auc": {"value": 0.8, "ci": [0.7, 0.9]}, "crossval": {
    ...     "folds": 2, "headline": "roc_auc", "threshold": 0.4, "members": 2,
    ...     "per_fold": [{"fold": 0, "n_images": 5, "n_patients": 3, "roc_auc": 0.7},
    ...                  {"fold": 1, "n_images": 5, "n_patients": 3, "roc_auc": 0.9}],
    ...     "summary": {"roc_auc": {"mean": 0.8, "sd": 0.14, "n": 2}},
    ...     "oof": {"roc_auc": {"value": 0.78, "ci": [0.6, 0.9]}, "n_images": 10}}}
    >>> html = crossval_section(m)
    >>> "0.800 ± 0.140" in html, "0.780 (95% CI 0.600-0.900)" in html
    (True, True)
    >>> crossval_section({"task": "binary"})
    ''
    """
    m = metrics or {}
    cv = m.get("crossval")
    if not isinstance(cv, Mapping):
        return ""
    head = cv["headline"]
    keys = [k for k in _LABELS if k in cv.get("summary", {})]
    test_key = f"test_{head}"
    cols = "".join(f"<th>{escape(_LABELS[k])}</th>" for k in keys)
    rows = []
    for r in cv.get("per_fold", []):
        cells = "".join(f"<td>{_num(r.get(k))}</td>" for k in keys)
        rows.append(f"<tr><th>fold {r['fold'] + 1}</th><td>{r['n_images']}</td>"
                    f"<td>{r['n_patients']}</td>{cells}<td>{_num(r.get(test_key))}</td></tr>")
    summ = cv.get("summary", {})

    def mean_sd(k: str) -> str:
        s = summ.get(k) or {}
        if s.get("mean") is None:
            return "n/a"
        return f"{s['mean']:.3f}" + (f" ± {s['sd']:.3f}" if s.get("sd") is not None else "")

    oof = cv.get("oof", {})
    rows.append("<tr><th>mean ± SD over the folds</th><td></td><td></td>"
                + "".join(f"<td>{mean_sd(k)}</td>" for k in keys)
                + f"<td>{mean_sd(test_key)}</td></tr>")
    rows.append(f"<tr><th>pooled out of fold</th><td>{oof.get('n_images', '')}</td>"
                f"<td>{oof.get('n_patients', '') or ''}</td>"
                + "".join(f"<td>{escape(format_estimate(oof.get(k)))}</td>" for k in keys)
                + "<td></td></tr>")
    rows.append("<tr><th>fold ensemble, test split</th><td></td><td></td>"
                + "".join(f"<td>{escape(format_estimate(m.get(k)))}</td>" for k in keys)
                + "<td></td></tr>")
    notes = "".join(f"<p class='warn'>Caution, small sample: "
                    f"{escape(str(n))}</p>" for n in oof.get("small_sample") or [])
    return (
        f"<h3>Cross-validation ({cv['folds']} folds)</h3><p>Each fold's member trained on "
        "the other folds and is measured on its own fold (out of fold) at the run's "
        f"threshold ({cv.get('threshold', 0):.3f}, chosen on the pooled out-of-fold "
        "predictions, so the pooled sensitivity and specificity are measured where it was "
        "chosen); the last column is each member alone on the test split. The run's model "
        f"is the fold ensemble (the mean of the {cv.get('members', cv['folds'])} members' "
        "probabilities), and its test figures are the run's test metrics above; its "
        "Grad-CAM maps are the mean of the members' maps. Intervals: 95% patient "
        "bootstrap.</p>"
        f"<table class='grid'><tr><th></th><th>images</th><th>patients</th>{cols}"
        f"<th>test {escape(_LABELS.get(head, head))} of the member</th></tr>"
        f"{''.join(rows)}</table>{notes}"
        + ("<p>Referral: the test cases on which the members disagree most (the standard "
           "deviation of their probabilities) are referred to a reader; the curve gives "
           f"the ensemble's figures on the cases retained.</p>{figure}" if figure else ""))
