"""The report's subgroup section: a forest plot of the AUC per group and a table per attribute.

Input is the ``subgroups`` entry of ``metrics.json``
(:func:`imaging_tl.evaluate.subgroup_metrics`). Groups too small for their figures
(fewer than 10 positives or negatives) are shown, marked, and drawn hollow in the plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from imaging_tl.evaluate.samplesize import MIN_NEGATIVES, MIN_POSITIVES, format_ci, format_estimate

__all__ = ["plot_forest", "subgroup_section"]

_FIGURES = (("roc_auc", "AUC"), ("sensitivity", "sensitivity"), ("specificity", "specificity"))


def plot_forest(subgroups: Mapping[str, Any], path: str | Path) -> Path:
    """Forest plot: each group's ROC AUC with its interval, the overall AUC as a line.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from imaging_tl.evaluate import subgroup_metrics
    >>> sg = subgroup_metrics(np.tile([0, 1], 20), np.linspace(0, 1, 40),
    ...                       {"sex": np.repeat(["F", "M"], 20)}, threshold=0.5,
    ...                       n_bootstraps=50)
    >>> plot_forest(sg, Path(tempfile.mkdtemp()) / "f.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [(f"{attr}: {g['group']}", g) for attr, groups in subgroups["attributes"].items()
            for g in groups]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.32 * max(len(rows), 1)))
    for i, (_, g) in enumerate(rows):
        est = g["roc_auc"]
        if est["value"] is None:
            continue
        lo, hi = est["ci"]
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [i, i], color="#445", lw=1.5)
        ax.plot(est["value"], i, "o", color="#1f5fa8",
                mfc="white" if g["too_small"] else "#1f5fa8")
    overall = subgroups["overall"]["roc_auc"]["value"]
    if overall is not None:
        ax.axvline(overall, color="#a1260d", ls="--", lw=1, label=f"overall {overall:.3f}")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("ROC AUC (hollow: too few positives or negatives)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def subgroup_section(subgroups: Mapping[str, Any] | None, figure: str = "") -> str:
    """The HTML of the section (``figure``: the forest plot's ``<figure>``, if any).

    Examples
    --------
    >>> import numpy as np
    >>> from imaging_tl.evaluate import subgroup_metrics
    >>> sg = subgroup_metrics(np.tile([0, 1], 20), np.linspace(0, 1, 40),
    ...                       {"sex": np.repeat(["F", "M"], 20)}, threshold=0.5,
    ...                       n_bootstraps=50)
    >>> page = subgroup_section(sg)
    >>> "Worst-group AUC" in page and "<td>F</td>" in page
    True
    """
    if not subgroups:
        return ""
    if subgroups.get("skipped"):
        return f"<p>{escape(str(subgroups['skipped']))}.</p>"
    worst = subgroups.get("worst_group_auc")
    head = ("<p><b>Worst-group AUC</b>: " + (
        f"{escape(worst['attribute'])} {escape(worst['group'])}, "
        f"{escape(format_estimate(worst))}" if worst else
        "none (every group has too few positives or negatives)") + ". Overall: "
        + escape(format_estimate(subgroups["overall"]["roc_auc"]))
        + f". Operating point {subgroups['threshold']:.4f}; intervals: patient bootstrap; "
        "differences are group minus overall on the same resamples.</p>")
    cols = "".join(f"<th>{escape(n)}</th><th>{escape(n)} &minus; overall</th>"
                   for _, n in _FIGURES)
    tables = []
    for attr, groups in subgroups["attributes"].items():
        body = "".join(_row(g) for g in groups)
        tables.append(f"<h4>{escape(attr)}</h4><table class='grid'><tr><th>group</th>"
                      f"<th>images</th><th>patients</th><th>positives</th><th>negatives</th>"
                      f"{cols}</tr>{body}</table>")
    note = (f"<p>Groups marked <span class='warn'>too small</span> have fewer than "
            f"{MIN_POSITIVES} positives or {MIN_NEGATIVES} negatives: shown, not "
            "counted for the worst group.</p>")
    return head + figure + "".join(tables) + note


def _cell(est: Mapping[str, Any] | None) -> str:
    if not est or est.get("value") is None:
        return "<td>n/a</td>"
    ci = est.get("ci") or [None, None]
    text = f"{est['value']:.3f}" + ("" if None in ci else f" ({format_ci(ci)})")
    return f"<td>{escape(text)}</td>"


def _row(g: Mapping[str, Any]) -> str:
    name = escape(str(g["group"])) + (" <span class='warn'>too small</span>"
                                      if g["too_small"] else "")
    cells = "".join(_cell(g.get(k)) + _cell(g.get(f"{k}_diff")) for k, _ in _FIGURES)
    return (f"<tr><td>{name}</td><td>{g['images']}</td><td>{g.get('patients') or ''}</td>"
            f"<td>{g['positives']}</td><td>{g['negatives']}</td>{cells}</tr>")
