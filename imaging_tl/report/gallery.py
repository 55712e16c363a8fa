"""The Grad-CAM gallery of a report: which test images to show, and their overlays.

The most telling images per category (the most confident true and false positives and
negatives of a binary task; right and wrong answers of a multiclass one) are picked by
:func:`select_gallery` from the scores alone (no TensorFlow); :func:`save_gallery` then
writes their Grad-CAM overlays with :mod:`imaging_tl.explain`. File names carry the
category and rank, never a patient identifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl._atomic import write_csv
from imaging_tl.report.plots import CATEGORIES

__all__ = ["gallery_from_dir", "gallery_items", "save_gallery", "select_gallery",
           "task_gallery"]


def select_gallery(
    y_true: Any, y_score: Any, threshold: float = 0.5, *, n_per_category: int = 4,
    label: int | None = None,
) -> dict[str, list[int]]:
    """Pick images for the Grad-CAM gallery: the most confident TP, FP, TN and FN.

    Parameters
    ----------
    y_true : array_like
        0/1 labels (binary), class indices (multiclass, with ``y_score`` 2-D), or an
        ``(n, L)`` label matrix with -1/NaN for missing (multilabel).
    y_score : array_like
        Positive-class probabilities ``(n,)`` or class/label probabilities ``(n, C)``.
    threshold : float
        Binary (and per-label) operating point (``score >= threshold`` is positive).
    n_per_category : int
        Images per category at most.
    label : int, optional
        Multilabel: the label to show TP/FP/TN/FN for (default: the one with most
        positives); images where it is missing are not picked.

    Returns
    -------
    dict
        Binary: ``{"TP": [...], "FP": [...], "TN": [...], "FN": [...]}`` row indices,
        most confident first (false positives with the highest scores, false negatives
        with the lowest: the errors a reader most needs to see). Multiclass:
        ``{"correct": [...], "wrong": [...]}``.

    Examples
    --------
    >>> select_gallery([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1], 0.5, n_per_category=1)
    {'TP': [0], 'FP': [1], 'TN': [3], 'FN': [2]}
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} rows but y_score has {len(s)}")
    if y.ndim == 2:  # multilabel: binary selection on one label's observed rows
        yl = np.nan_to_num(y.astype(float), nan=-1.0)
        k = int(np.argmax((yl == 1).sum(axis=0))) if label is None else int(label)
        if not 0 <= k < yl.shape[1]:
            raise ValueError(f"label={label}: the table has {yl.shape[1]} labels")
        rows = np.flatnonzero(yl[:, k] >= 0)
        sub = select_gallery(yl[rows, k], s[rows, k], threshold,
                             n_per_category=n_per_category)
        return {c: [int(rows[i]) for i in v] for c, v in sub.items()}
    if s.ndim == 2:
        pred = s.argmax(axis=1)
        conf = s.max(axis=1)
        right = pred == y
        order = np.argsort(-conf, kind="stable")
        return {
            "correct": [int(i) for i in order if right[i]][:n_per_category],
            "wrong": [int(i) for i in order if not right[i]][:n_per_category],
        }
    pos = s >= threshold
    y = y.astype(bool)
    high = np.argsort(-s, kind="stable")
    low = high[::-1]
    pick = {
        "TP": [i for i in high if y[i] and pos[i]],
        "FP": [i for i in high if not y[i] and pos[i]],
        "TN": [i for i in low if not y[i] and not pos[i]],
        "FN": [i for i in low if y[i] and not pos[i]],
    }
    return {k: [int(i) for i in v[:n_per_category]] for k, v in pick.items()}


def gallery_items(gradcam: Any) -> list[dict[str, Any]]:
    """Normalise the accepted gallery forms to ``[{"path", "category", "caption"}]``."""
    if gradcam is None:
        return []
    items: list[dict[str, Any]] = []
    if isinstance(gradcam, Mapping):
        for cat, paths in gradcam.items():
            for p in [paths] if isinstance(paths, (str, Path)) else paths:
                items.append({"path": p, "category": str(cat), "caption": ""})
        return items
    try:
        import pandas as pd

        if isinstance(gradcam, pd.DataFrame):
            gradcam = gradcam.to_dict("records")
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    for it in gradcam:
        if isinstance(it, (str, Path)):
            items.append({"path": it, "category": None, "caption": ""})
        elif isinstance(it, Mapping) and "path" in it:
            items.append({"path": it["path"], "category": it.get("category"),
                          "caption": str(it.get("caption") or "")})
        else:
            raise ValueError(f"gradcam: expected paths or dicts with a 'path' key, got {it!r}")
    return items


def gallery_from_dir(folder: str | Path) -> list[dict[str, Any]]:
    """The Grad-CAM overlays of a run's ``gradcam/`` folder as gallery items.

    Uses ``gallery.csv`` (columns ``path`` relative to the folder, ``category``,
    ``caption``) when present; otherwise every PNG, the category taken from a ``TP_``,
    ``FP_``, ``TN_`` or ``FN_`` name prefix (``examples`` without one), no caption (file
    names may carry identifiers).

    Examples
    --------
    >>> import tempfile
    >>> gallery_from_dir(tempfile.mkdtemp())
    []
    """
    import pandas as pd

    folder = Path(folder)
    index = folder / "gallery.csv"
    if index.is_file():
        df = pd.read_csv(index).fillna("")
        return [{"path": folder / str(r["path"]), "category": r.get("category") or None,
                 "caption": str(r.get("caption", ""))} for r in df.to_dict("records")]
    items = []
    for p in sorted(folder.glob("*.png")):
        prefix = p.name.split("_", 1)[0].upper()
        items.append({"path": p, "category": prefix if prefix in CATEGORIES
                      else "examples", "caption": ""})
    return items


def save_gallery(
    model: Any,
    images: np.ndarray,
    y_true: Any,
    y_score: Any,
    out_dir: str | Path,
    *,
    threshold: float = 0.5,
    n_per_category: int = 4,
    label: int | None = None,
    layer: str | None = None,
    backgrounds: np.ndarray | Sequence[np.ndarray] | None = None,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Grad-CAM overlays of the most telling test images, ready for the report.

    Picks the most confident true/false positives/negatives (binary) or correct/wrong
    predictions (multiclass) with :func:`select_gallery`, writes
    ``<CATEGORY>_<k>.png`` (names carry no file or patient names) and ``gallery.csv``
    into ``out_dir``, and returns the items for
    :func:`imaging_tl.report.write_report`'s ``gradcam=``.

    Parameters
    ----------
    model, layer, batch_size :
        As in :class:`imaging_tl.explain.GradCAM`.
    images : numpy.ndarray
        Model inputs ``(N, H, W, 3)``, the rows of ``y_true``/``y_score``.
    y_true, y_score :
        Labels and probabilities as in :mod:`imaging_tl.evaluate`.
    label : int, optional
        Multilabel: the label explained (default: the one with most positives).
    out_dir : path
        Folder for the PNGs and ``gallery.csv``.
    threshold : float
        Binary operating point.
    n_per_category : int
        Images per category at most.
    backgrounds : optional
        Images to draw on instead of the model inputs, row-aligned with ``images``.

    Returns
    -------
    list of dict
        ``{"path", "category", "caption", "index"}`` per overlay; the caption holds the
        predicted probability and the true class.
    """

    from imaging_tl.explain import save_overlays

    s = np.asarray(y_score, dtype=float)
    y = np.asarray(y_true)
    picks = select_gallery(y, s, threshold, n_per_category=n_per_category, label=label)
    if y.ndim == 2:
        yl = np.nan_to_num(y.astype(float), nan=-1.0)
        shown = int(np.argmax((yl == 1).sum(axis=0))) if label is None else int(label)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, idx, cls = [], [], []
    for cat, members in picks.items():
        for k, i in enumerate(members):
            p = out_dir / f"{cat}_{k + 1}.png"
            if y.ndim == 2:
                cap = f"label {shown}: p={s[i, shown]:.2f} (true {int(yl[i, shown])})"
                cls.append(shown)
            elif s.ndim == 2:
                cap = f"p={s[i].max():.2f} (pred {int(s[i].argmax())}, true {int(y[i])})"
                cls.append(int(s[i].argmax()))
            else:
                cap = f"p={s[i]:.2f} (truth: {'positive' if y[i] else 'negative'})"
                cls.append(0)
            rows.append({"path": p, "category": cat, "caption": cap, "index": int(i)})
            idx.append(i)
    if not rows:
        return []
    bgs = None if backgrounds is None else [backgrounds[i] for i in idx]
    save_overlays(model, np.asarray(images)[idx], [r["path"] for r in rows], cls, layer=layer,
                  backgrounds=bgs, batch_size=batch_size)
    write_csv(out_dir / "gallery.csv", [{**r, "path": r["path"].name} for r in rows])
    return rows


def task_gallery(model: Any, x: np.ndarray, y: np.ndarray, p: np.ndarray, task: str,
                 threshold: float, n: int, out_dir: Path) -> list[dict[str, Any]]:
    """About ``n`` overlays of the most telling test images of a run, whatever its task.

    Binary: the most confident TP/FP/TN/FN; multiclass: right and wrong answers;
    multilabel: the most confident images, for their most probable label.
    """
    from imaging_tl.explain import save_overlays

    if task == "binary":
        return save_gallery(model, x, y, p.reshape(-1), out_dir, threshold=threshold,
                            n_per_category=max(1, n // 4))
    if task == "multiclass":
        return save_gallery(model, x, y, p, out_dir, n_per_category=max(1, n // 2))
    order = np.argsort(-p.max(1))[:n]
    paths = [out_dir / f"examples_{k + 1}.png" for k in range(len(order))]
    save_overlays(model, x[order], paths, p[order].argmax(1))
    return [{"path": q, "category": "examples", "caption": f"p={p[i].max():.2f}"}
            for q, i in zip(paths, order, strict=True)]
