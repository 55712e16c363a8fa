"""The internal-vs-external validation page: the run's test figures beside those on another
site's data, the ROC curves overlaid, and the recalibration on the new site before/after.

One self-contained HTML file (images embedded), written by ``imaging-tl evaluate RUN --data
EXT`` as ``RUN/external-<name>.html``. Counts and figures only: no path or identifier.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imaging_tl._version import __version__
from imaging_tl.evaluate.samplesize import format_estimate
from imaging_tl.report.caution import small_sample_html
from imaging_tl.report.embed import PAGE_CSS, figure
from imaging_tl.report.subgroups import subgroup_section

__all__ = ["plot_roc_overlay", "write_external_report"]

_ROWS = {
    "binary": (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("sensitivity", "Sensitivity"),
               ("specificity", "Specificity"), ("ppv", "PPV"), ("npv", "NPV")),
    "multiclass": (("roc_auc_macro", "ROC AUC, macro"), ("balanced_accuracy",
                                                         "Balanced accuracy"),
                   ("accuracy", "Accuracy")),
    "multilabel": (("roc_auc_macro", "ROC AUC, macro"),),
}


def plot_roc_overlay(curves: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """ROC curves of several evaluations on one axis (``{label: metrics}``, binary).

    Examples
    --------
    >>> from imaging_tl.evaluate import binary_metrics
    >>> m = binary_metrics([0, 1, 0, 1], [.1, .8, .3, .6], 0.5, n_bootstraps=20)
    >>> plot_roc_overlay({"internal": m, "external": m},
    ...                  Path(tempfile.mkdtemp()) / "r.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for i, (label, m) in enumerate(curves.items()):
        roc = (m.get("curves") or {}).get("roc")
        if not roc:
            continue
        ax.plot(roc["fpr"], roc["tpr"], color=f"C{i}", lw=2,
                label=f"{label}: AUC {format_estimate(m.get('roc_auc'))}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (FPR)",
           ylabel="sensitivity (TPR)", title="ROC: internal test vs external")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _side_by_side(internal: Mapping[str, Any], external: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        f"<td>{html.escape(format_estimate(internal.get(k)))}</td>"
        f"<td>{html.escape(format_estimate(external.get(k)))}</td></tr>"
        for k, label in _ROWS.get(str(external.get("task")), ()))

    def size(m: Mapping[str, Any]) -> str:
        return f"{m.get('n_images', '?')} images, {m.get('n_patients') or '?'} patients"

    return (f"<table class='grid'><tr><th>metric</th><th>internal test ({size(internal)})"
            f"</th><th>external ({size(external)})</th></tr>{rows}</table>")


def _recalibration(r: Mapping[str, Any] | None) -> str:
    if not r:
        return "<p>Not asked for (<code>--recalibrate FRACTION</code>).</p>"
    before, after = r["before"], r["after"]

    def row(label: str, a: str, b: str) -> str:
        return f"<tr><th>{label}</th><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>"

    body = row("threshold (model probability)", f"{r['threshold_before']:.4f}",
               f"{r['threshold_after']:.4f}")
    for k in ("sensitivity", "specificity", "ppv", "npv"):
        body += row(k, format_estimate(before.get(k)), format_estimate(after.get(k)))
    body += row("expected calibration error", f"{r['ece_before']:.4f}", f"{r['ece_after']:.4f}")
    return (f"<p>Temperature and threshold fitted on {r['fit']['patients']} of the external "
            f"patients ({r['fit']['images']} images; fraction {r['fraction']:g}, grouped by "
            f"patient, stratified by label); both columns evaluated on the other "
            f"{r['evaluated']['patients']} patients ({r['evaluated']['images']} images). "
            f"Temperature {r['temperature']:.3f}.</p><table class='grid'><tr><th></th>"
            f"<th>before (the run's threshold)</th><th>after (recalibrated here)</th></tr>"
            f"{body}</table>" + small_sample_html(after))


def write_external_report(path: str | Path, internal: Mapping[str, Any],
                          external: Mapping[str, Any], *, title: str) -> Path:
    """Write the internal-vs-external page.

    Parameters
    ----------
    path : path
        The HTML file to write.
    internal : dict
        The run's ``metrics.json``.
    external : dict
        :func:`imaging_tl.pipeline.reevaluate`'s metrics on the external data (with
        ``recalibration`` and ``subgroups`` when asked for).
    title : str

    Examples
    --------
    >>> from imaging_tl.evaluate import evaluate
    >>> m = evaluate([0, 1, 0, 1], [.1, .8, .3, .6], operating_point="fixed", n_bootstraps=20)
    >>> p = write_external_report(Path(tempfile.mkdtemp()) / "e.html", m, m, title="x")
    >>> "Internal vs external" in p.read_text()
    True
    """
    path = Path(path)
    parts = [f"<h1>{html.escape(title)}</h1><p class='sub'>imaging_tl {__version__}: "
             "internal vs external validation</p>",
             "<h2>Internal vs external</h2>" + _side_by_side(internal, external)
             + "<h4>Internal test split</h4>" + (small_sample_html(internal) or "<p>-</p>")
             + "<h4>External data</h4>" + (small_sample_html(external) or "<p>-</p>")]
    if external.get("task") == "binary":
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_roc_overlay({"internal test": internal, "external": external},
                                   Path(tmp) / "roc.png")
            parts.append("<h2>ROC curves</h2>" + figure(png, "ROC curves overlaid"))
    parts.append("<h2>Recalibration on the external site</h2>"
                 + _recalibration(external.get("recalibration")))
    for name, m in (("internal test", internal), ("external", external)):
        if m.get("subgroups"):
            parts.append(f"<h2>Subgroups, {name}</h2>" + subgroup_section(m["subgroups"]))
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head><body>"
            + "\n".join(f"<section>{p}</section>" for p in parts) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
