"""The metric sets of the three tasks, each value with its bootstrap CI.

Point estimates come from scikit-learn's metric functions; the CIs from the weighted
forms in :mod:`imaging_tl.evaluate.curves` over the resamples of
:mod:`imaging_tl.evaluate.bootstrap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from imaging_tl.evaluate.bootstrap import bootstrap_replicates, estimate, weight_blocks
from imaging_tl.evaluate.curves import (
    curve_bands,
    curves_with_bands,
    threshold_rates,
    weighted_average_precision,
    weighted_roc_auc,
)
from imaging_tl.evaluate.inputs import as_arrays, column_names

__all__ = ["binary_metrics", "multiclass_metrics", "multilabel_metrics"]


def binary_metrics(
    y_true: Any,
    y_score: Any,
    threshold: float,
    *,
    groups: Any = None,
    n_bootstraps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    curves: bool = True,
) -> dict[str, Any]:
    """ROC/PR AUC and threshold metrics with bootstrap CIs for a binary task.

    Parameters
    ----------
    y_true, y_score : array_like
        0/1 labels and positive-class probabilities.
    threshold : float
        Operating point (chosen on validation, see
        :func:`imaging_tl.evaluate.thresholds.choose_threshold`).
    groups : array_like, optional
        Patient key per image: the bootstrap then resamples patients.
    n_bootstraps : int
        Resamples; 0 disables the CIs.
    confidence : float
        CI coverage.
    seed : int
        Bootstrap seed.
    curves : bool
        Also return the ROC and PR curves with pointwise CI bands.

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc``, ``sensitivity``, ``specificity``, ``ppv``, ``npv``,
        ``f1``, ``accuracy`` (each ``{"value", "ci"}``), ``confusion_matrix``
        (``[[TN, FP], [FN, TP]]``), ``prevalence``, and ``curves``.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5, n_bootstraps=0)
    >>> m["roc_auc"]["value"], m["sensitivity"]["value"], m["confusion_matrix"]
    (0.75, 0.5, [[2, 0], [1, 1]])
    """
    y, s = as_arrays(y_true, y_score, "binary")
    n = len(y)
    both = y.min() != y.max()
    pred = s >= threshold
    point = _binary_point_values(y, s, pred, both)
    boot: dict[str, np.ndarray] = {}
    if n_bootstraps > 0:
        boot = _binary_replicates(y, s, pred, groups, n_bootstraps, seed,
                                  bands=curves and both)
    out: dict[str, Any] = {
        "n": n,
        "n_positive": int(y.sum()),
        "prevalence": float(y.mean()),
        "threshold": float(threshold),
    }
    for k, v in point.items():
        out[k] = estimate(v, boot.get(k), confidence)
    out["confusion_matrix"] = skm.confusion_matrix(y, pred.astype(int), labels=[0, 1]).tolist()
    out["n_undefined_resamples"] = (
        int(np.sum(~np.isfinite(boot["roc_auc"]))) if "roc_auc" in boot else 0
    )
    if curves and both:
        out["curves"] = curves_with_bands(y, s, threshold, boot, confidence)
    return out


def _binary_point_values(
    y: np.ndarray, s: np.ndarray, pred: np.ndarray, both: bool
) -> dict[str, float]:
    """The point values of the binary metrics (scikit-learn), AUCs first."""
    return {
        "roc_auc": skm.roc_auc_score(y, s) if both else math.nan,
        "pr_auc": skm.average_precision_score(y, s) if both else math.nan,
        "sensitivity": skm.recall_score(y, pred, zero_division=np.nan),
        "specificity": skm.recall_score(1 - y, ~pred, zero_division=np.nan),
        "ppv": skm.precision_score(y, pred, zero_division=np.nan),
        "npv": skm.precision_score(1 - y, ~pred, zero_division=np.nan),
        "f1": skm.f1_score(y, pred, zero_division=np.nan),
        "accuracy": skm.accuracy_score(y, pred),
    }


def _binary_replicates(
    y: np.ndarray, s: np.ndarray, pred: np.ndarray, groups: Any, n_bootstraps: int,
    seed: int, *, bands: bool,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of every binary metric (and the curve bands), block by block."""
    parts: dict[str, list[np.ndarray]] = {}
    for ws in weight_blocks(len(y), n_bootstraps, groups=groups, seed=seed):
        chunk = {
            "roc_auc": weighted_roc_auc(y, s, ws),
            "pr_auc": weighted_average_precision(y, s, ws),
            **threshold_rates(y, pred, ws),
        }
        if bands:
            chunk["roc_band"], chunk["pr_band"] = curve_bands(y, s, ws)
        for k, v in chunk.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def multiclass_metrics(
    y_true: Any,
    y_score: Any,
    *,
    class_names: Sequence[str] | None = None,
    groups: Any = None,
    n_bootstraps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """One-vs-rest AUC per class, macro/micro AUC, balanced accuracy, confusion matrix.

    Examples
    --------
    >>> p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .3, .6], [.5, .4, .1]])
    >>> m = multiclass_metrics([0, 1, 2, 1], p, n_bootstraps=0)
    >>> m["balanced_accuracy"]["value"], m["confusion_matrix"][1]
    (0.8333333333333334, [1, 1, 0])
    """
    y, s = as_arrays(y_true, y_score, "multiclass")
    n, c = s.shape
    names = column_names(class_names, c)
    onehot = (y[:, None] == np.arange(c)[None, :]).astype(np.int64)
    pred = s.argmax(axis=1)
    present = onehot.any(axis=0) & ~onehot.all(axis=0)
    per_class = [
        skm.roc_auc_score(onehot[:, k], s[:, k]) if present[k] else math.nan for k in range(c)
    ]
    macro = float(np.mean(per_class)) if present.all() else math.nan
    micro = skm.roc_auc_score(onehot.ravel(), s.ravel())
    bal = skm.balanced_accuracy_score(y, pred)
    acc = skm.accuracy_score(y, pred)
    boot: dict[str, np.ndarray] = {}
    if n_bootstraps > 0:
        r = bootstrap_replicates(_multiclass_weighted(y, s, onehot, pred), n, n_bootstraps,
                                 groups, seed)
        boot = {f"auc_{k}": r[:, k] for k in range(c)}
        boot.update(macro=r[:, c], micro=r[:, c + 1], bal=r[:, c + 2], acc=r[:, c + 3])
    return {
        "n": n,
        "class_names": names,
        "class_counts": onehot.sum(axis=0).tolist(),
        "roc_auc_per_class": {
            names[k]: estimate(per_class[k], boot.get(f"auc_{k}"), confidence) for k in range(c)
        },
        "roc_auc_macro": estimate(macro, boot.get("macro"), confidence),
        "roc_auc_micro": estimate(micro, boot.get("micro"), confidence),
        "balanced_accuracy": estimate(bal, boot.get("bal"), confidence),
        "accuracy": estimate(acc, boot.get("acc"), confidence),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=list(range(c))).tolist(),
    }


def _multiclass_weighted(
    y: np.ndarray, s: np.ndarray, onehot: np.ndarray, pred: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """The weighted multiclass metrics as one function of the weights: per-class AUCs,
    macro and micro AUC, balanced accuracy, accuracy (columns in that order)."""
    c = s.shape[1]

    def fn(w: np.ndarray) -> np.ndarray:
        cols = [weighted_roc_auc(onehot[:, k], s[:, k], w) for k in range(c)]
        wm = np.repeat(w, c, axis=1)  # micro: every (image, class) cell, image weight
        hit = (pred == y).astype(float)
        recall = np.stack(
            [(w @ (hit * onehot[:, k])) / np.maximum(w @ onehot[:, k], 1e-300)
             for k in range(c)],
            axis=1,
        )
        recall[(w @ onehot) == 0] = np.nan
        with np.errstate(invalid="ignore"):
            return np.column_stack([
                *cols,
                np.mean(np.stack(cols, axis=1), axis=1),
                weighted_roc_auc(onehot.ravel(), s.ravel(), wm),
                np.nanmean(recall, axis=1),
                (w @ hit) / w.sum(axis=1),
            ])

    return fn


def multilabel_metrics(
    y_true: Any,
    y_score: Any,
    *,
    label_names: Sequence[str] | None = None,
    groups: Any = None,
    n_bootstraps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC per label ignoring missing labels (-1/NaN), and their macro average.

    Each label's AUC is computed on the rows where that label is known (equal to
    scikit-learn's on those rows); its bootstrap CI resamples all rows (patients kept
    together) and weighs the rows where the label is missing by zero, so every label's
    replicates come from the same resamples. ``n_observed`` and ``n_missing`` count the
    known and missing rows per label.

    Examples
    --------
    >>> y = np.array([[1, 0], [0, -1], [1, 1], [0, 0]])
    >>> p = np.array([[.9, .2], [.3, .9], [.6, .7], [.4, .1]])
    >>> m = multilabel_metrics(y, p, n_bootstraps=0)
    >>> m["roc_auc_per_label"]["label_1"]["value"], m["n_observed"]
    (1.0, [4, 3])
    """
    y, s = as_arrays(y_true, y_score, "multilabel")
    n, c = s.shape
    names = column_names(label_names, c, prefix="label")
    obs = y >= 0
    per = []
    for k in range(c):
        yk, sk = y[obs[:, k], k], s[obs[:, k], k]
        per.append(skm.roc_auc_score(yk, sk) if 0 < yk.sum() < len(yk) else math.nan)
    defined = [v for v in per if math.isfinite(v)]
    macro = float(np.mean(defined)) if defined else math.nan
    boot: dict[str, np.ndarray] = {}
    if n_bootstraps > 0:
        def fn(w: np.ndarray) -> np.ndarray:
            cols = [
                weighted_roc_auc(np.maximum(y[:, k], 0), s[:, k], w * obs[:, k])
                for k in range(c)
            ]
            m = np.stack(cols, axis=1)
            # macro over the labels defined on the full data, as the point estimate
            keep = [k for k in range(c) if math.isfinite(per[k])]
            return np.column_stack([m, m[:, keep].mean(axis=1) if keep else m[:, 0] * np.nan])

        r = bootstrap_replicates(fn, n, n_bootstraps, groups, seed)
        boot = {f"auc_{k}": r[:, k] for k in range(c)}
        boot["macro"] = r[:, c]
    return {
        "n": n,
        "label_names": names,
        "n_observed": obs.sum(axis=0).tolist(),
        "n_missing": (~obs).sum(axis=0).tolist(),
        "n_positive": (y == 1).sum(axis=0).tolist(),
        "roc_auc_per_label": {
            names[k]: estimate(per[k], boot.get(f"auc_{k}"), confidence) for k in range(c)
        },
        "roc_auc_macro": estimate(macro, boot.get("macro"), confidence),
    }
