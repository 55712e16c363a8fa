"""Evaluation plots as PNG files (matplotlib, Agg backend; no display needed).

Every function takes plain data (the dicts of :mod:`imaging_tl.evaluate`, pandas tables)
and a path, writes one PNG and returns the path. Figures are closed after saving, so
batch runs do not accumulate memory. Does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.evaluate.samplesize import format_ci

_DPI = 110
CATEGORIES = ("TP", "FP", "TN", "FN")
_CAT_TITLE = {"TP": "true positives", "FP": "false positives", "TN": "true negatives",
              "FN": "false negatives"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def _fmt_ci(est: Mapping[str, Any] | None) -> str:
    if not est or est.get("value") is None:
        return "n/a"
    ci = list(est.get("ci") or [None, None])[:2]
    if None in ci:  # no bootstrap asked for
        return f"{est['value']:.3f}"
    return f"{est['value']:.3f} ({format_ci(ci)})"  # coinciding ends: "too few cases ..."


def plot_roc(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """ROC curve with its bootstrap CI band and the operating point (binary metrics).

    Parameters
    ----------
    metrics : dict
        Output of :func:`imaging_tl.evaluate.evaluate` for a binary task (uses
        ``curves``, ``roc_auc``).
    path : path
        PNG to write.

    Examples
    --------
    >>> import tempfile, os
    >>> from imaging_tl.evaluate import binary_metrics
    >>> m = binary_metrics([0, 1, 0, 1, 1, 0], [.1, .8, .3, .6, .4, .5], 0.5, n_bootstraps=50)
    >>> plot_roc(m, os.path.join(tempfile.mkdtemp(), "roc.png")).suffix
    '.png'
    """
    curves = _curves(metrics)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    roc = curves["roc"]
    if "band_low" in roc:
        ax.fill_between(curves["grid"], roc["band_low"], roc["band_high"], color="C0",
                        alpha=0.2, lw=0, label="95% CI" if _conf(metrics) == 0.95 else "CI")
    ax.plot(roc["fpr"], roc["tpr"], color="C0", lw=2,
            label=f"AUC {_fmt_ci(metrics.get('roc_auc'))}")
    op = curves["operating_point"]
    if op.get("fpr") is not None and op.get("tpr") is not None:
        ax.plot([op["fpr"]], [op["tpr"]], "o", color="C3", ms=8,
                label=f"operating point (t={op['threshold']:.3g})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (FPR)",
           ylabel="sensitivity (TPR)", title="ROC curve (test)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_pr(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Precision-recall curve with CI band, operating point and the prevalence baseline.

    Examples
    --------
    >>> import tempfile, os
    >>> from imaging_tl.evaluate import binary_metrics
    >>> m = binary_metrics([0, 1, 0, 1, 1, 0], [.1, .8, .3, .6, .4, .5], 0.5, n_bootstraps=50)
    >>> plot_pr(m, os.path.join(tempfile.mkdtemp(), "pr.png")).name
    'pr.png'
    """
    curves = _curves(metrics)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    pr = curves["pr"]
    if "band_low" in pr:
        ax.fill_between(curves["grid"], pr["band_low"], pr["band_high"], color="C1",
                        alpha=0.2, lw=0, step="pre",
                        label="95% CI" if _conf(metrics) == 0.95 else "CI")
    # precision p_k holds for recall in (r_{k-1}, r_k]: a "pre" step
    ax.step(pr["recall"], pr["precision"], where="pre", color="C1", lw=2,
            label=f"AP {_fmt_ci(metrics.get('pr_auc'))}")
    op = curves["operating_point"]
    if op.get("tpr") is not None and op.get("precision") is not None:
        ax.plot([op["tpr"]], [op["precision"]], "o", color="C3", ms=8,
                label=f"operating point (t={op['threshold']:.3g})")
    if metrics.get("prevalence") is not None:
        ax.axhline(metrics["prevalence"], ls="--", color="grey", lw=1, label="prevalence")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)",
           ylabel="precision (PPV)", title="Precision-recall curve (test)")
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def _conf(metrics: Mapping[str, Any]) -> float:
    return float((metrics.get("bootstrap") or {}).get("confidence", 0.95))


def _curves(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    curves = metrics.get("curves")
    if not curves:
        raise ValueError("metrics: no 'curves' (binary metrics computed with curves=True "
                         "on data holding both classes are needed for ROC/PR plots)")
    return curves


def plot_roc_per_class(
    y_true: Any, y_score: Any, names: Sequence[str], path: str | Path, *,
    task: str = "multiclass",
) -> Path:
    """One-vs-rest ROC curve per class (multiclass) or per label (multilabel, missing
    labels -1/NaN ignored).

    Examples
    --------
    >>> import tempfile, os
    >>> p = np.array([[.7, .2, .1], [.2, .5, .3], [.1, .2, .7], [.3, .4, .3]])
    >>> plot_roc_per_class([0, 1, 2, 0], p, ["a", "b", "c"],
    ...                    os.path.join(tempfile.mkdtemp(), "roc.png")).suffix
    '.png'
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    s = np.asarray(y_score, dtype=float)
    y = np.asarray(y_true, dtype=float)
    if task == "multiclass":
        y = (y.ravel()[:, None] == np.arange(s.shape[1])[None, :]).astype(float)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    for k, name in enumerate(names):
        keep = np.isfinite(y[:, k]) & (y[:, k] >= 0)
        yk, sk = y[keep, k], s[keep, k]
        if yk.min(initial=1) == yk.max(initial=0):
            continue
        fpr, tpr, _ = roc_curve(yk, sk)
        ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {roc_auc_score(yk, sk):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (FPR)",
           ylabel="sensitivity (TPR)", title="ROC per class, one-vs-rest (test)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, *,
    title: str = "Confusion matrix (test)",
) -> Path:
    """Counts with row percentages (rows: true class, columns: predicted class).

    Examples
    --------
    >>> import tempfile, os
    >>> plot_confusion_matrix([[5, 1], [2, 7]], ["normal", "nodule"],
    ...                       os.path.join(tempfile.mkdtemp(), "cm.png")).suffix
    '.png'
    """
    cm = np.asarray(matrix, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"matrix: shape {cm.shape} does not match {len(labels)} labels")
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    plt = _plt()
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.4, 1.1 * k + 1.8))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}\n{100 * frac[i, j]:.0f}%", ha="center",
                    va="center", fontsize=9, color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def plot_reliability(
    reliability: Mapping[str, Any], path: str | Path, *,
    calibrated: Mapping[str, Any] | None = None,
) -> Path:
    """Reliability diagram (observed rate against mean predicted probability per bin),
    with the bin counts below; optionally the temperature-scaled curve as well.

    Examples
    --------
    >>> import tempfile, os
    >>> from imaging_tl.evaluate import reliability_data
    >>> r = reliability_data([0, 1, 1, 0, 1], [.1, .8, .6, .4, .9], n_bins=5)
    >>> plot_reliability(r, os.path.join(tempfile.mkdtemp(), "rel.png")).suffix
    '.png'
    """
    plt = _plt()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.6, 5.4), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    series = [("model", reliability, "C0")]
    if calibrated is not None:
        series.append(("temperature-scaled", calibrated, "C2"))
    for name, rel, colour in series:
        conf = np.array([np.nan if v is None else v for v in rel["confidence"]], float)
        obs = np.array([np.nan if v is None else v for v in rel["observed"]], float)
        ok = np.isfinite(conf) & np.isfinite(obs)
        ax.plot(conf[ok], obs[ok], "o-", color=colour,
                label=f"{name} (ECE {rel['ece']:.3f})")
    edges = np.asarray(reliability["bin_edges"], float)
    axh.bar(edges[:-1], reliability["count"], width=np.diff(edges), align="edge",
            color="C0", alpha=0.6, edgecolor="white")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency",
           title="Reliability diagram (test)")
    ax.legend(loc="upper left", fontsize=8)
    axh.set(xlabel="predicted probability", ylabel="images")
    return _save(fig, path)


def plot_history(history: Any, path: str | Path) -> Path:
    """Training curves of every phase on one epoch axis, one panel per metric.

    Parameters
    ----------
    history : pandas.DataFrame or path
        Columns ``phase``, ``epoch`` and metric columns; ``val_<m>`` is drawn in the
        panel of ``<m>``. Phases are shaded and labelled (with ``phase_name`` when
        present; with a ``fold`` column, each fold's phases in turn); ``lr`` and
        ``seconds`` are not plotted.
    path : path
        PNG to write.

    Examples
    --------
    >>> import tempfile, os, pandas as pd
    >>> h = pd.DataFrame({"phase": ["head"] * 2 + ["finetune"] * 2, "epoch": [0, 1, 0, 1],
    ...                   "loss": [.7, .5, .45, .4], "val_loss": [.72, .6, .55, .5]})
    >>> plot_history(h, os.path.join(tempfile.mkdtemp(), "h.png")).suffix
    '.png'
    """
    import pandas as pd

    df = history if isinstance(history, pd.DataFrame) else pd.read_csv(history)
    for col in ("phase", "epoch"):
        if col not in df.columns:
            raise ValueError(f"history: missing column {col!r} (has {list(df.columns)})")
    # bookkeeping columns written by imaging_tl.train are not metrics
    skip = {"phase", "phase_name", "epoch", "lr", "learning_rate", "seconds", "time", "fold"}
    numeric = [c for c in df.columns if c not in skip
               and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]  # e.g. train's cached_features
    base = sorted({c[4:] if c.startswith("val_") else c for c in numeric},
                  key=lambda c: (c != "loss", c))
    if not base:
        raise ValueError("history: no metric columns to plot")
    # one running epoch index across phases, in the order the phases appear; phases are
    # labelled by "phase_name" where the table has it
    label = df["phase_name"] if "phase_name" in df.columns else df["phase"]
    df = df.assign(_phase=df["phase"].astype(str) + ": " + label.astype(str)
                   if "phase_name" in df.columns else label.astype(str))
    if "fold" in df.columns:  # cross-validation: each fold's phases in turn
        df["_phase"] = "fold " + (df["fold"].astype(int) + 1).astype(str) + ", " + df["_phase"]
    phases = list(dict.fromkeys(df["_phase"]))
    offsets, x = {}, []
    start = 0
    for ph in phases:
        part = df[df["_phase"] == ph]
        offsets[ph] = start
        start += int(part["epoch"].max() - part["epoch"].min() + 1)
    for ph, ep in zip(df["_phase"], df["epoch"], strict=True):
        first = df.loc[df["_phase"] == ph, "epoch"].min()
        x.append(offsets[ph] + ep - first + 1)
    df = df.assign(_x=x)
    plt = _plt()
    cols = min(3, len(base))
    rows = int(np.ceil(len(base) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.ravel(), base, strict=False):
        for i, ph in enumerate(phases):
            part = df[df["_phase"] == ph]
            lo, hi = part["_x"].min() - 0.5, part["_x"].max() + 0.5
            ax.axvspan(lo, hi, color=f"C{i}", alpha=0.07, lw=0)
            for col, style in ((metric, "-"), (f"val_{metric}", "--")):
                if col in part.columns and part[col].notna().any():
                    ax.plot(part["_x"], part[col], style, marker="o", ms=3, color=f"C{i}",
                            label=f"{ph}: {'validation' if col.startswith('val_') else 'train'}")
        ax.set(title=metric, xlabel="epoch (all phases)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(base):]:
        ax.axis("off")
    fig.suptitle("Training curves per phase", y=1.0)
    fig.tight_layout()
    return _save(fig, path)


def plot_class_balance(
    splits: Any, path: str | Path, *, split_col: str = "split", label_col: str = "label",
) -> Path:
    """Images per class in each split (grouped bars with counts).

    Examples
    --------
    >>> import tempfile, os, pandas as pd
    >>> s = pd.DataFrame({"split": ["train"] * 4 + ["test"] * 2,
    ...                   "label": ["a", "b", "a", "a", "b", "a"]})
    >>> plot_class_balance(s, os.path.join(tempfile.mkdtemp(), "b.png")).suffix
    '.png'
    """
    import pandas as pd

    df = splits if isinstance(splits, pd.DataFrame) else pd.read_csv(splits)
    for col in (split_col, label_col):
        if col not in df.columns:
            raise ValueError(f"splits: missing column {col!r} (has {list(df.columns)})")
    table = pd.crosstab(df[split_col].astype(str), df[label_col].astype(str))
    order = [s for s in ("train", "val", "validation", "test") if s in table.index]
    table = table.loc[order + [s for s in table.index if s not in order]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(table) * max(1, table.shape[1]) / 2), 3.6))
    n_cls = table.shape[1]
    width = 0.8 / n_cls
    xs = np.arange(len(table))
    for j, cls in enumerate(table.columns):
        bars = ax.bar(xs + j * width - 0.4 + width / 2, table[cls].to_numpy(), width,
                      label=cls, color=f"C{j}")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(xs, table.index)
    ax.set(ylabel="images", title="Class balance per split")
    ax.set_ylim(0, 1.12 * max(1, int(table.to_numpy().max())))  # room for the counts
    ax.legend(fontsize=8, title=label_col, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def plot_gallery(
    items: Sequence[Mapping[str, Any]], path: str | Path, *, per_row: int = 4,
) -> Path:
    """Grad-CAM overlays in rows by category (TP, FP, TN, FN, then others).

    Parameters
    ----------
    items : sequence of dict
        ``{"path": PNG, "category": "TP" | "FP" | "TN" | "FN" | other, "caption": str}``.
    path : path
        PNG to write.
    per_row : int
        Images per row.
    """
    from PIL import Image

    if not items:
        raise ValueError("gallery: no images")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for it in items:
        groups.setdefault(str(it.get("category") or "examples"), []).append(it)
    order = [c for c in CATEGORIES if c in groups] + [c for c in groups if c not in CATEGORIES]
    rows = []
    for cat in order:
        for i in range(0, len(groups[cat]), per_row):
            rows.append((cat, groups[cat][i:i + per_row]))
    plt = _plt()
    fig, axes = plt.subplots(len(rows), per_row, figsize=(2.3 * per_row, 2.6 * len(rows)),
                             squeeze=False)
    for r, (cat, its) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(its):
                continue
            with Image.open(its[c]["path"]) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            label = _CAT_TITLE.get(cat, cat)
            cap = its[c].get("caption") or ""
            ax.set_title(f"{label}\n{cap}" if c == 0 else cap, fontsize=8)
    fig.suptitle("Grad-CAM gallery", y=1.0)
    fig.tight_layout()
    return _save(fig, path)
