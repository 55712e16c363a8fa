"""The report's test-time augmentation table: each figure plain and with TTA, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from imaging_tl.evaluate.samplesize import format_estimate

__all__ = ["plot_referral", "tta_section"]

_ROWS = {
    "binary": (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("sensitivity", "Sensitivity"),
               ("specificity", "Specificity")),
    "multiclass": (("roc_auc_macro", "ROC AUC, macro"), ("balanced_accuracy",
                                                         "Balanced accuracy"),
                   ("accuracy", "Accuracy")),
    "multilabel": (("roc_auc_macro", "ROC AUC, macro"),),
}


def plot_referral(referral: Mapping[str, Any], path: str | Path,
                  by: str = "TTA spread") -> Path:
    """The referral curve: AUC and sensitivity on the cases retained as the most uncertain
    0-50 % are referred to a reader (:func:`imaging_tl.evaluate.referral_curve`); ``by``
    names the uncertainty in the title.

    Examples
    --------
    >>> import tempfile
    >>> r = {"fraction_referred": [0.0, 0.5], "n_retained": [4, 2], "roc_auc": [0.75, 1.0],
    ...      "sensitivity": [0.5, 1.0], "specificity": [0.5, None]}
    >>> plot_referral(r, Path(tempfile.mkdtemp()) / "r.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    x = [100 * f for f in referral["fraction_referred"]]
    for i, key in enumerate(("roc_auc", "sensitivity", "specificity")):
        y = [float("nan") if v is None else v for v in referral[key]]
        ax.plot(x, y, "o-", color=f"C{i}", ms=3, label=key.replace("roc_auc", "ROC AUC"))
    ax.set(xlim=(0, 50), ylim=(0, 1.02), xlabel="most uncertain cases referred (%)",
           ylabel="on the cases retained", title=f"Referral curve ({by})")
    ax.legend(loc="lower right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def tta_section(metrics: Mapping[str, Any] | None, figure: str = "") -> str:
    """A table of the plain and the test-time-augmented figures (empty without TTA), and
    ``figure`` (the referral curve's ``<figure>``, if any).

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
            f"<th>plain</th><th>TTA</th></tr>{rows}</table>" + (
                "<p>Referral: the test cases whose augmented copies disagree most (the "
                "spread of their probabilities) are referred to a reader; the curve gives "
                f"the figures on the cases retained.</p>{figure}" if figure else ""))
