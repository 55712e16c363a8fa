"""Weighted ROC AUC, average precision and threshold rates, for many weightings at once.

The bootstrap computes its metrics on weighted copies of the data (a resample is a vector
of counts per image), fully vectorised. At unit weights each equals scikit-learn's metric.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from imaging_tl.evaluate.inputs import finite

__all__ = [
    "GRID",
    "curve_bands",
    "curves_with_bands",
    "threshold_rates",
    "weighted_average_precision",
    "weighted_roc_auc",
]

# Fixed grids for the pointwise CI bands of the ROC and PR curves (json-friendly size).
GRID = np.linspace(0.0, 1.0, 101)


def _tie_groups(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted scores: index of the first and last element of each element's tie group."""
    n = sorted_scores.size
    new = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    last = np.r_[np.flatnonzero(new)[1:] - 1, n - 1]
    end = last[np.cumsum(new) - 1]
    return start, end


def weighted_roc_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC for many weightings of one data set (Mann-Whitney form, ties count 1/2).

    Parameters
    ----------
    y : numpy.ndarray
        ``(n,)`` 0/1 labels.
    s : numpy.ndarray
        ``(n,)`` scores.
    w : numpy.ndarray
        ``(B, n)`` non-negative weights (bootstrap counts); a 1-D ``(n,)`` array is one row.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` AUCs; NaN where one class has zero weight. Equal to
        ``sklearn.metrics.roc_auc_score(y, s, sample_weight=w[b])``.

    Examples
    --------
    >>> weighted_roc_auc(np.array([0, 0, 1, 1]), np.array([.1, .4, .35, .8]), np.ones(4))
    array([0.75])
    """
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    order = np.argsort(s, kind="mergesort")
    ys, ws = y[order].astype(bool), w[:, order]
    start, end = _tie_groups(s[order])
    wn = ws * ~ys
    cum_n = np.cumsum(wn, axis=1)
    below = np.where(start > 0, cum_n[:, np.maximum(start - 1, 0)], 0.0)
    ties = cum_n[:, end] - below
    num = np.sum(ws[:, ys] * (below[:, ys] + 0.5 * ties[:, ys]), axis=1)
    den = ws[:, ys].sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _desc_cumulative(
    y: np.ndarray, s: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP/FP weights at every threshold (scores sorted descending, ties merged)."""
    order = np.argsort(-s, kind="mergesort")
    ys, ws = y[order].astype(bool), w[:, order]
    _, end = _tie_groups(-s[order])
    tp = np.cumsum(ws * ys, axis=1)[:, end]
    fp = np.cumsum(ws * ~ys, axis=1)[:, end]
    return ys, ws, end, tp, fp


def weighted_average_precision(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (PR AUC, step form) for many weightings of one data set.

    Equal to ``sklearn.metrics.average_precision_score(y, s, sample_weight=w[b])``;
    NaN where the positives have zero weight.

    Examples
    --------
    >>> weighted_average_precision(np.array([0, 0, 1, 1]), np.array([.1, .4, .35, .8]),
    ...                            np.ones(4)).round(4)
    array([0.8333])
    """
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    ys, ws, _, tp, fp = _desc_cumulative(y, s, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        total = ws[:, ys].sum(axis=1)
        ap = np.sum(ws[:, ys] * prec[:, ys], axis=1) / total
    return np.where(total > 0, ap, np.nan)


def curve_bands(
    y: np.ndarray, s: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TPR on the FPR grid and (step) precision on the recall grid, per weighting.

    Examples
    --------
    >>> roc, pr = curve_bands(np.array([0, 1]), np.array([0.2, 0.9]), np.ones((1, 2)))
    >>> roc.shape, float(roc[0, 50]), float(pr[0, 50])
    ((1, 101), 1.0, 1.0)
    """
    _, _, _, tp, fp = _desc_cumulative(y, s, w)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    roc = np.full((w.shape[0], GRID.size), np.nan)
    pr = np.full((w.shape[0], GRID.size), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / n_pos, fp / n_neg
        prec = tp / np.where(tp + fp > 0, tp + fp, 1.0)
    for b in range(w.shape[0]):
        if n_pos[b, 0] <= 0 or n_neg[b, 0] <= 0:
            continue
        roc[b] = np.interp(GRID, np.r_[0.0, fpr[b]], np.r_[0.0, tpr[b]])
        # the step curve as plotted: precision at the first threshold reaching recall r
        k = np.minimum(np.searchsorted(tpr[b], GRID, side="left"), tpr.shape[1] - 1)
        pr[b] = prec[b][k]
    return roc, pr


def threshold_rates(
    y: np.ndarray, pred: np.ndarray, w: np.ndarray
) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy for many weightings.

    Examples
    --------
    >>> r = threshold_rates(np.array([0, 1, 1]), np.array([0, 1, 0]), np.ones((1, 3)))
    >>> r["sensitivity"].tolist(), r["specificity"].tolist()
    ([0.5], [1.0])
    """
    y, pred = y.astype(bool), pred.astype(bool)
    tp = w @ (y & pred).astype(float)
    fp = w @ (~y & pred).astype(float)
    fn = w @ (y & ~pred).astype(float)
    tn = w @ (~y & ~pred).astype(float)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
    }


def curves_with_bands(
    y: np.ndarray, s: np.ndarray, threshold: float, boot: dict[str, np.ndarray],
    confidence: float,
) -> dict[str, Any]:
    """ROC/PR curves (scikit-learn) with pointwise percentile bands on fixed grids.

    ``boot`` may hold ``roc_band`` and ``pr_band`` replicates from :func:`curve_bands`.

    Examples
    --------
    >>> c = curves_with_bands(np.array([0, 1]), np.array([0.2, 0.9]), 0.5, {}, 0.95)
    >>> c["roc"], c["operating_point"]["tpr"]
    ({'fpr': [0.0, 0.0, 1.0], 'tpr': [0.0, 1.0, 1.0]}, 1.0)
    """
    fpr, tpr, _ = skm.roc_curve(y, s)
    prec, rec, _ = skm.precision_recall_curve(y, s)
    pred = s >= threshold
    op = {
        "fpr": finite(np.mean(pred[y == 0])),
        "tpr": finite(np.mean(pred[y == 1])),
        "precision": finite(np.mean(y[pred]) if pred.any() else math.nan),
        "threshold": float(threshold),
    }
    a = (1.0 - confidence) / 2.0
    out: dict[str, Any] = {
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pr": {"recall": rec[::-1].tolist(), "precision": prec[::-1].tolist()},
        "operating_point": op,
        "grid": GRID.tolist(),
    }
    for key, name in (("roc_band", "roc"), ("pr_band", "pr")):
        if key in boot and np.isfinite(boot[key]).any():
            band = boot[key]
            ok = np.isfinite(band).all(axis=1)
            lo, hi = np.quantile(band[ok], [a, 1 - a], axis=0)
            out[name]["band_low"] = lo.tolist()
            out[name]["band_high"] = hi.tolist()
    return out
