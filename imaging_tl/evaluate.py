"""Metrics a radiologist can trust: AUCs with bootstrap CIs, operating points, calibration.

Plain functions over numpy arrays; the result of :func:`evaluate` is a plain dict that
``json.dumps`` writes as ``metrics.json`` (NaN becomes ``null``). Point estimates come from
scikit-learn's metric functions. The bootstrap computes the same quantities on weighted
copies of the data (a resample is a vector of counts per image), fully vectorised: 1000
resamples through ``roc_auc_score`` cost seconds per metric, the weighted form milliseconds
(``benchmarks/bootstrap.py``). Tests pin the weighted forms to scikit-learn at unit weights.

Conventions
-----------
- binary: ``y_true`` 0/1, ``y_score`` the positive-class probability, shape ``(n,)``.
- multiclass: ``y_true`` class index, ``y_score`` probabilities ``(n, C)``.
- multilabel: ``y_true`` ``(n, L)`` with 1, 0 and -1 or NaN for a missing label (ignored),
  ``y_score`` ``(n, L)`` sigmoid probabilities.
- ``groups``: one key per image (e.g. PatientID). When given, the bootstrap resamples
  groups, not images, because images of one patient are not independent.

This module does not import TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn import metrics as skm

Task = Literal["binary", "multiclass", "multilabel"]
TASKS = ("binary", "multiclass", "multilabel")
OPERATING_POINTS = ("youden", "sensitivity", "fixed")
_EPS = 1e-7
# Fixed grids for the pointwise CI bands of the ROC and PR curves (json-friendly size).
_GRID = np.linspace(0.0, 1.0, 101)


# --------------------------------------------------------------------------- helpers


def _finite(x: float) -> float | None:
    """A float for JSON: NaN/inf become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def _estimate(value: float, boot: np.ndarray | None, confidence: float) -> dict[str, Any]:
    """``{"value": v, "ci": [lo, hi]}`` from a point value and bootstrap replicates."""
    if boot is None:
        return {"value": _finite(value), "ci": [None, None]}
    lo, hi = percentile_ci(boot, confidence)
    return {"value": _finite(value), "ci": [_finite(lo), _finite(hi)]}


def percentile_ci(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, ignoring undefined (NaN) ones.

    Parameters
    ----------
    replicates : array_like
        One value per resample; NaN marks a resample where the metric is undefined
        (e.g. an AUC on a resample without positives).
    confidence : float
        Coverage of the interval, e.g. 0.95.

    Returns
    -------
    (lo, hi) : tuple of float
        NaN when fewer than 10 replicates are defined.

    Examples
    --------
    >>> lo, hi = percentile_ci(np.arange(101.0), 0.9)
    >>> round(lo, 6), round(hi, 6)
    (5.0, 95.0)
    """
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 10:
        return (math.nan, math.nan)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(r, [a, 1.0 - a])
    return (float(lo), float(hi))


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {', '.join(TASKS)}")


def _as_arrays(
    y_true: Any, y_score: Any, task: str, name: str = "y_true"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and values; returns float/int arrays in the module's conventions."""
    _check_task(task)
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if len(y) != len(s):
        raise ValueError(f"{name} has {len(y)} rows but the scores have {len(s)}")
    if len(y) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    if task == "binary":
        if s.ndim == 2 and s.shape[1] == 2:  # two-column softmax output: keep the positive
            s = s[:, 1]
        elif s.ndim == 2 and s.shape[1] == 1:  # a Keras sigmoid output (n, 1)
            s = s[:, 0]
        if s.ndim != 1:
            raise ValueError(f"binary scores must have shape (n,), got {s.shape}")
        y = y.astype(float).ravel()
        if not np.all(np.isin(y, (0.0, 1.0))):
            raise ValueError(f"binary {name} must be 0 or 1")
        return y.astype(np.int64), s
    if task == "multiclass":
        if s.ndim != 2 or s.shape[1] < 2:
            raise ValueError(f"multiclass scores must have shape (n, C>=2), got {s.shape}")
        y = y.astype(float).ravel()
        if not np.all((y == np.round(y)) & (y >= 0) & (y < s.shape[1])):
            raise ValueError(f"multiclass {name} must be class indices 0..{s.shape[1] - 1}")
        return y.astype(np.int64), s
    # multilabel
    y = y.astype(float)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.shape != s.shape:
        raise ValueError(f"multilabel {name} has shape {y.shape} but the scores {s.shape}")
    y = np.where(np.isnan(y), -1.0, y)
    if not np.all(np.isin(y, (-1.0, 0.0, 1.0))):
        raise ValueError(f"multilabel {name} must be 1, 0, or -1/NaN for missing")
    return y.astype(np.int64), s


def bootstrap_weights(
    n: int,
    n_bootstraps: int,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap resamples as per-image counts, resampling groups when given.

    Parameters
    ----------
    n : int
        Number of images.
    n_bootstraps : int
        Number of resamples.
    groups : sequence, optional
        Group key per image (e.g. patient). A resample draws groups with replacement and
        keeps all images of every drawn group, so images of one patient stay together.
    seed : int
        Seed of the generator.

    Returns
    -------
    numpy.ndarray
        ``(n_bootstraps, n)`` float64 counts; row ``b`` is how often each image is in
        resample ``b``.

    Examples
    --------
    >>> w = bootstrap_weights(4, 3, groups=["a", "a", "b", "c"], seed=1)
    >>> w.shape, bool(np.all(w[:, 0] == w[:, 1]))
    ((3, 4), True)
    """
    blocks = list(_weight_blocks(n, n_bootstraps, groups=groups, seed=seed))
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, n))


def _weight_blocks(
    n: int, n_bootstraps: int, *, groups: Any = None, seed: int = 0,
    max_cells: int = 2_000_000,
):
    """:func:`bootstrap_weights` in row blocks of about 16 MB, so that large test sets
    (100k images x 1000 resamples) never hold the whole count matrix. Rows are drawn in
    order from one generator: the blocks concatenate to the same matrix for any size."""
    rng = np.random.default_rng(seed)
    if groups is None:
        codes, n_units = None, n
    else:
        g = np.asarray(groups)
        if len(g) != n:
            raise ValueError(f"groups has {len(g)} entries but there are {n} images")
        _, codes = np.unique(g.astype(str), return_inverse=True)
        n_units = int(codes.max()) + 1
    p = np.full(n_units, 1.0 / n_units)
    step = max(1, max_cells // max(n, 1))
    for start in range(0, n_bootstraps, step):
        counts = rng.multinomial(n_units, p, size=min(step, n_bootstraps - start))
        yield (counts if codes is None else counts[:, codes]).astype(np.float64)


# --------------------------------------------------------- weighted (bootstrap) metrics


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


def _desc_cumulative(y: np.ndarray, s: np.ndarray, w: np.ndarray):
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


def _curve_bands(
    y: np.ndarray, s: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TPR on the FPR grid and (step) precision on the recall grid, per weighting."""
    _, _, _, tp, fp = _desc_cumulative(y, s, w)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    roc = np.full((w.shape[0], _GRID.size), np.nan)
    pr = np.full((w.shape[0], _GRID.size), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / n_pos, fp / n_neg
        prec = tp / np.where(tp + fp > 0, tp + fp, 1.0)
    for b in range(w.shape[0]):
        if n_pos[b, 0] <= 0 or n_neg[b, 0] <= 0:
            continue
        roc[b] = np.interp(_GRID, np.r_[0.0, fpr[b]], np.r_[0.0, tpr[b]])
        # the step curve as plotted: precision at the first threshold reaching recall r
        k = np.minimum(np.searchsorted(tpr[b], _GRID, side="left"), tpr.shape[1] - 1)
        pr[b] = prec[b][k]
    return roc, pr


def _threshold_rates(
    y: np.ndarray, pred: np.ndarray, w: np.ndarray
) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy for many weightings."""
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


def _boot(
    fn: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_bootstraps: int,
    groups: Any,
    seed: int,
) -> np.ndarray:
    """Apply a weighted metric to all resamples, in memory-bounded chunks.

    The same seed gives the same resamples for every metric, so their CIs are paired.
    """
    blocks = _weight_blocks(n, n_bootstraps, groups=groups, seed=seed)
    return np.concatenate([fn(w) for w in blocks], axis=0)


# ------------------------------------------------------------------ operating points


def choose_threshold(
    y_true: Any,
    y_score: Any,
    method: str = "youden",
    *,
    target_sensitivity: float = 0.9,
    threshold: float = 0.5,
) -> float:
    """Choose a decision threshold on (validation) data.

    Parameters
    ----------
    y_true, y_score : array_like
        Binary labels and positive-class scores.
    method : {"youden", "sensitivity", "fixed"}
        ``youden`` maximises sensitivity + specificity - 1; ``sensitivity`` takes the
        highest threshold whose sensitivity reaches ``target_sensitivity`` (best
        specificity at that sensitivity); ``fixed`` returns ``threshold``.
    target_sensitivity : float
        Used by ``method="sensitivity"``.
    threshold : float
        Used by ``method="fixed"``.

    Returns
    -------
    float
        Predict positive where ``score >= threshold``.

    Examples
    --------
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "sensitivity",
    ...                  target_sensitivity=1.0)
    0.35
    """
    if method not in OPERATING_POINTS:
        raise ValueError(f"operating_point={method!r}: expected one of {OPERATING_POINTS}")
    if method == "fixed":
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold}: must be in [0, 1]")
        return float(threshold)
    y, s = _as_arrays(y_true, y_score, "binary")
    if y.min() == y.max():
        raise ValueError(
            f"operating_point={method!r} needs both classes in the data it is chosen on"
        )
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thr)  # the first threshold is +inf (predict nothing)
    fpr, tpr, thr = fpr[finite], tpr[finite], thr[finite]
    if method == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity={target_sensitivity}: must be in (0, 1]")
    reached = np.flatnonzero(tpr >= target_sensitivity - 1e-12)
    return float(thr[reached[0]])


# ---------------------------------------------------------------------- calibration


def reliability_data(
    y_true: Any, y_score: Any, *, task: Task = "binary", n_bins: int = 10
) -> dict[str, Any]:
    """Bins of a reliability diagram and the expected calibration error (ECE).

    Equal-width bins on the predicted probability. Binary: the positive-class
    probability against the observed positive rate. Multiclass: the top-label confidence
    against accuracy. Multilabel: every observed (image, label) pair pooled.

    Returns
    -------
    dict
        ``bin_edges``, per bin ``confidence`` (mean predicted), ``observed`` (observed rate),
        ``count`` (empty bins hold None), and ``ece`` = sum over bins of
        count/n * |observed - confidence|.

    Examples
    --------
    >>> r = reliability_data([0, 1, 1, 1], [0.2, 0.6, 0.7, 0.9], n_bins=2)
    >>> round(r["ece"], 3)
    0.25
    """
    y, s = _as_arrays(y_true, y_score, task)
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}: must be >= 1")
    if task == "binary":
        conf, obs = s, y.astype(float)
    elif task == "multiclass":
        conf, obs = s.max(axis=1), (s.argmax(axis=1) == y).astype(float)
    else:
        keep = y >= 0
        conf, obs = s[keep], y[keep].astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, n_bins) / count
        mean_obs = np.bincount(idx, obs, n_bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(mean_obs[filled] - mean_conf[filled])))
    ece /= max(int(count.sum()), 1)
    return {
        "bin_edges": edges.tolist(),
        "confidence": [_finite(v) for v in mean_conf],
        "observed": [_finite(v) for v in mean_obs],
        "count": count.tolist(),
        "ece": ece,
    }


def expected_calibration_error(
    y_true: Any, y_score: Any, *, task: Task = "binary", n_bins: int = 10
) -> float:
    """Expected calibration error (see :func:`reliability_data`).

    Examples
    --------
    >>> expected_calibration_error([0, 1], [0.0, 1.0])
    0.0
    """
    return float(reliability_data(y_true, y_score, task=task, n_bins=n_bins)["ece"])


def _logits(s: np.ndarray, task: str) -> np.ndarray:
    p = np.clip(s, _EPS, 1.0 - _EPS)
    return np.log(p) if task == "multiclass" else np.log(p) - np.log1p(-p)


def apply_temperature(y_score: Any, temperature: float, *, task: Task = "binary") -> np.ndarray:
    """Rescale probabilities as if their logits were divided by ``temperature``.

    Binary/multilabel: ``sigmoid(logit(p) / T)``; multiclass: ``softmax(log(p) / T)``.
    T > 1 softens over-confident predictions; the ranking (and the AUC) does not change.

    Examples
    --------
    >>> apply_temperature([0.5, 0.9], 2.0).round(3).tolist()
    [0.5, 0.75]
    """
    _check_task(task)
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}: must be > 0")
    s = np.asarray(y_score, dtype=np.float64)
    z = _logits(s, task) / temperature
    if task == "multiclass":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def fit_temperature(y_true: Any, y_score: Any, *, task: Task = "binary") -> float:
    """Fit the temperature that minimises the negative log-likelihood (on validation data).

    Parameters
    ----------
    y_true, y_score : array_like
        Validation labels and probabilities in the module's conventions.
    task : {"binary", "multiclass", "multilabel"}

    Returns
    -------
    float
        T in [0.05, 20]; apply it to test probabilities with :func:`apply_temperature`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0, 2, 2000); y = rng.random(2000) < 1 / (1 + np.exp(-z))
    >>> p_overconfident = 1 / (1 + np.exp(-3 * z))
    >>> 2.5 < fit_temperature(y, p_overconfident) < 3.5
    True
    """
    y, s = _as_arrays(y_true, y_score, task)
    z = _logits(s, task)

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        if task == "multiclass":
            zt = z / t
            zt = zt - zt.max(axis=1, keepdims=True)
            logp = zt - np.log(np.exp(zt).sum(axis=1, keepdims=True))
            return float(-logp[np.arange(len(y)), y].mean())
        keep = y >= 0
        zt = z[keep] / t
        yy = y[keep].astype(float)
        # log(1 + exp(-|z|)) form: stable for large logits
        return float(np.mean(np.logaddexp(0.0, zt) - yy * zt))

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


# ------------------------------------------------------------- patient aggregation


def aggregate_by_group(
    y_true: Any,
    y_score: Any,
    groups: Any,
    *,
    task: Task = "binary",
    how: Literal["max", "mean"] = "max",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per patient: scores aggregated over the patient's images.

    Binary/multilabel: a patient is positive for a label when any image is (missing
    labels ignored; all missing stays missing); scores are the max or mean per column.
    Multiclass: all images of a patient must carry the same class; probabilities are
    averaged (``mean``) or the per-class max is renormalised to sum to 1 (``max``).

    Returns
    -------
    (y_true, y_score, group_keys) : tuple of numpy.ndarray
        Rows in the sorted order of the group keys.

    Examples
    --------
    >>> y, s, g = aggregate_by_group([0, 1, 0], [0.2, 0.9, 0.1], ["p1", "p1", "p2"])
    >>> y.tolist(), s.tolist(), g.tolist()
    ([1, 0], [0.9, 0.1], ['p1', 'p2'])
    """
    if how not in ("max", "mean"):
        raise ValueError(f"aggregate={how!r}: expected 'max' or 'mean'")
    y, s = _as_arrays(y_true, y_score, task)
    g = np.asarray(groups).astype(str)
    if len(g) != len(y):
        raise ValueError(f"groups has {len(g)} entries but there are {len(y)} images")
    keys, codes = np.unique(g, return_inverse=True)
    k = len(keys)
    s2 = s if s.ndim == 2 else s[:, None]
    if how == "max":
        agg = np.full((k, s2.shape[1]), -np.inf)
        np.maximum.at(agg, codes, s2)
    else:
        agg = np.zeros((k, s2.shape[1]))
        np.add.at(agg, codes, s2)
        agg /= np.bincount(codes, minlength=k)[:, None]
    if task == "multiclass":
        lo = np.full(k, np.iinfo(np.int64).max)
        hi = np.full(k, -1)
        np.minimum.at(lo, codes, y)
        np.maximum.at(hi, codes, y)
        if np.any(lo != hi):
            # never name the patients: their keys are identifiers
            raise ValueError(
                f"{int(np.sum(lo != hi))} patient(s) have images with different classes; "
                "patient-level aggregation needs one class per patient"
            )
        if how == "max":
            agg /= agg.sum(axis=1, keepdims=True)
        return hi, agg, keys
    y2 = y if y.ndim == 2 else y[:, None]
    ya = np.full((k, y2.shape[1]), -1)
    np.maximum.at(ya, codes, y2)  # 1 beats 0 beats -1 (missing)
    if task == "binary":
        return ya[:, 0], agg[:, 0], keys
    return ya, agg, keys


# ------------------------------------------------------------------------ metrics


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
        Operating point (chosen on validation, see :func:`choose_threshold`).
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
    y, s = _as_arrays(y_true, y_score, "binary")
    n = len(y)
    both = y.min() != y.max()
    pred = s >= threshold
    point_auc = skm.roc_auc_score(y, s) if both else math.nan
    point_ap = skm.average_precision_score(y, s) if both else math.nan
    cm = skm.confusion_matrix(y, pred.astype(int), labels=[0, 1])
    # scikit-learn for the reported point values of the threshold metrics too
    point = {
        "sensitivity": skm.recall_score(y, pred, zero_division=np.nan),
        "specificity": skm.recall_score(1 - y, ~pred, zero_division=np.nan),
        "ppv": skm.precision_score(y, pred, zero_division=np.nan),
        "npv": skm.precision_score(1 - y, ~pred, zero_division=np.nan),
        "f1": skm.f1_score(y, pred, zero_division=np.nan),
        "accuracy": skm.accuracy_score(y, pred),
    }
    boot: dict[str, np.ndarray] = {}
    if n_bootstraps > 0:
        parts: dict[str, list[np.ndarray]] = {}
        for ws in _weight_blocks(n, n_bootstraps, groups=groups, seed=seed):
            chunk = {
                "roc_auc": weighted_roc_auc(y, s, ws),
                "pr_auc": weighted_average_precision(y, s, ws),
                **_threshold_rates(y, pred, ws),
            }
            if curves and both:
                chunk["roc_band"], chunk["pr_band"] = _curve_bands(y, s, ws)
            for k, v in chunk.items():
                parts.setdefault(k, []).append(v)
        boot = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    out: dict[str, Any] = {
        "n": n,
        "n_positive": int(y.sum()),
        "prevalence": float(y.mean()),
        "threshold": float(threshold),
        "roc_auc": _estimate(point_auc, boot.get("roc_auc"), confidence),
        "pr_auc": _estimate(point_ap, boot.get("pr_auc"), confidence),
    }
    for k, v in point.items():
        out[k] = _estimate(v, boot.get(k), confidence)
    out["confusion_matrix"] = cm.tolist()
    out["n_undefined_resamples"] = (
        int(np.sum(~np.isfinite(boot["roc_auc"]))) if "roc_auc" in boot else 0
    )
    if curves and both:
        out["curves"] = _curves(y, s, threshold, boot, confidence)
    return out


def _curves(
    y: np.ndarray, s: np.ndarray, threshold: float, boot: dict, confidence: float
) -> dict[str, Any]:
    """ROC/PR curves (scikit-learn) with pointwise percentile bands on fixed grids."""
    fpr, tpr, _ = skm.roc_curve(y, s)
    prec, rec, _ = skm.precision_recall_curve(y, s)
    pred = s >= threshold
    op = {
        "fpr": _finite(np.mean(pred[y == 0])),
        "tpr": _finite(np.mean(pred[y == 1])),
        "precision": _finite(np.mean(y[pred]) if pred.any() else math.nan),
        "threshold": float(threshold),
    }
    a = (1.0 - confidence) / 2.0
    out = {
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pr": {"recall": rec[::-1].tolist(), "precision": prec[::-1].tolist()},
        "operating_point": op,
        "grid": _GRID.tolist(),
    }
    for key, name in (("roc_band", "roc"), ("pr_band", "pr")):
        if key in boot and np.isfinite(boot[key]).any():
            band = boot[key]
            ok = np.isfinite(band).all(axis=1)
            lo, hi = np.quantile(band[ok], [a, 1 - a], axis=0)
            out[name]["band_low"] = lo.tolist()
            out[name]["band_high"] = hi.tolist()
    return out


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
    y, s = _as_arrays(y_true, y_score, "multiclass")
    n, c = s.shape
    names = _names(class_names, c)
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

        r = _boot(fn, n, n_bootstraps, groups, seed)
        boot = {f"auc_{k}": r[:, k] for k in range(c)}
        boot.update(macro=r[:, c], micro=r[:, c + 1], bal=r[:, c + 2], acc=r[:, c + 3])
    return {
        "n": n,
        "class_names": names,
        "class_counts": onehot.sum(axis=0).tolist(),
        "roc_auc_per_class": {
            names[k]: _estimate(per_class[k], boot.get(f"auc_{k}"), confidence) for k in range(c)
        },
        "roc_auc_macro": _estimate(macro, boot.get("macro"), confidence),
        "roc_auc_micro": _estimate(micro, boot.get("micro"), confidence),
        "balanced_accuracy": _estimate(bal, boot.get("bal"), confidence),
        "accuracy": _estimate(acc, boot.get("acc"), confidence),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=list(range(c))).tolist(),
    }


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

    Examples
    --------
    >>> y = np.array([[1, 0], [0, -1], [1, 1], [0, 0]])
    >>> p = np.array([[.9, .2], [.3, .9], [.6, .7], [.4, .1]])
    >>> m = multilabel_metrics(y, p, n_bootstraps=0)
    >>> m["roc_auc_per_label"]["label_1"]["value"], m["n_observed"]
    (1.0, [4, 3])
    """
    y, s = _as_arrays(y_true, y_score, "multilabel")
    n, c = s.shape
    names = _names(label_names, c, prefix="label")
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

        r = _boot(fn, n, n_bootstraps, groups, seed)
        boot = {f"auc_{k}": r[:, k] for k in range(c)}
        boot["macro"] = r[:, c]
    return {
        "n": n,
        "label_names": names,
        "n_observed": obs.sum(axis=0).tolist(),
        "n_positive": (y == 1).sum(axis=0).tolist(),
        "roc_auc_per_label": {
            names[k]: _estimate(per[k], boot.get(f"auc_{k}"), confidence) for k in range(c)
        },
        "roc_auc_macro": _estimate(macro, boot.get("macro"), confidence),
    }


def _names(names: Sequence[str] | None, c: int, prefix: str = "class") -> list[str]:
    if names is None:
        return [f"{prefix}_{k}" for k in range(c)]
    names = [str(x) for x in names]
    if len(names) != c:
        raise ValueError(f"class_names has {len(names)} names but the scores have {c} columns")
    return names


# ------------------------------------------------------------------------ evaluate


def evaluate(
    y_true: Any,
    y_score: Any,
    *,
    task: Task = "binary",
    groups: Any = None,
    val_true: Any = None,
    val_score: Any = None,
    val_groups: Any = None,
    class_names: Sequence[str] | None = None,
    operating_point: str = "youden",
    target_sensitivity: float = 0.9,
    threshold: float = 0.5,
    aggregate: Literal["max", "mean"] | None = None,
    temperature_scaling: bool = False,
    n_bootstraps: int = 1000,
    confidence: float = 0.95,
    n_bins: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate test predictions; choices (threshold, temperature) are fitted on validation.

    Parameters
    ----------
    y_true, y_score : array_like
        Test labels and probabilities (see the module conventions).
    task : {"binary", "multiclass", "multilabel"}
    groups : array_like, optional
        Patient key per test image: CIs resample patients; needed for ``aggregate``.
    val_true, val_score, val_groups : array_like, optional
        Validation split. The operating point and the temperature are chosen here and
        applied unchanged to test. Without it a data-driven operating point (or the
        temperature) would be fitted on test, which is optimistic: that raises.
    class_names : sequence of str, optional
        Class (multiclass) or label (multilabel) names; binary: ``[negative, positive]``.
    operating_point : {"youden", "sensitivity", "fixed"}
        How the binary threshold is chosen, see :func:`choose_threshold`.
    target_sensitivity, threshold : float
        Parameters of the ``sensitivity`` and ``fixed`` operating points.
    aggregate : {"max", "mean"}, optional
        Evaluate per patient: aggregate each patient's images first (needs groups).
    temperature_scaling : bool
        Fit a temperature on validation and report the test calibration after scaling
        (``calibration.temperature``, ``ece_calibrated``, ``reliability_calibrated``).
        Discrimination metrics and the threshold stay on the model's own probabilities.
    n_bootstraps : int
        Bootstrap resamples for the CIs (0: no CIs).
    confidence : float
        CI coverage.
    n_bins : int
        Bins of the reliability diagram.
    seed : int
        Bootstrap seed.

    Returns
    -------
    dict
        JSON-serialisable: ``task``, ``level`` ("image" or "patient"), ``bootstrap``
        (how the CIs were made), task metrics (see :func:`binary_metrics`,
        :func:`multiclass_metrics`, :func:`multilabel_metrics`), ``operating_point`` for
        binary tasks, ``calibration`` (ECE, reliability bins, temperature).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200); s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    >>> m = evaluate(y[100:], s[100:], val_true=y[:100], val_score=s[:100], n_bootstraps=200)
    >>> m["operating_point"]["chosen_on"], len(m["roc_auc"]["ci"])
    ('validation', 2)
    """
    _check_task(task)
    y, s = _as_arrays(y_true, y_score, task)
    has_val = val_true is not None and val_score is not None
    if has_val:
        vy, vs = _as_arrays(val_true, val_score, task, name="val_true")
    level = "image"
    n_images = len(y)
    if aggregate is not None:
        if groups is None or (has_val and val_groups is None):
            raise ValueError("aggregate= needs groups (and val_groups with validation data)")
        y, s, _ = aggregate_by_group(y, s, groups, task=task, how=aggregate)
        if has_val:
            vy, vs, _ = aggregate_by_group(vy, vs, val_groups, task=task, how=aggregate)
        groups = None  # one row per patient now: plain resampling is patient resampling
        level = "patient"
    n_groups = len(np.unique(np.asarray(groups).astype(str))) if groups is not None else None

    calibration: dict[str, Any] = {
        "n_bins": n_bins,
        "ece": reliability_data(y, s, task=task, n_bins=n_bins)["ece"],
        "reliability": reliability_data(y, s, task=task, n_bins=n_bins),
        "temperature": None,
    }
    if temperature_scaling:
        if not has_val:
            raise ValueError("temperature_scaling=True needs validation data (val_true/score)")
        # Only the calibration section sees the scaled probabilities: the AUCs and the
        # threshold stay on the model's own outputs, which is what a saved model's
        # contract threshold is applied to (and multiclass OvR AUCs would shift with T).
        t = fit_temperature(vy, vs, task=task)
        scaled = reliability_data(y, apply_temperature(s, t, task=task), task=task,
                                  n_bins=n_bins)
        calibration.update(temperature=t, ece_calibrated=scaled["ece"],
                           reliability_calibrated=scaled)
    boot_info = {
        "n_bootstraps": n_bootstraps,
        "confidence": confidence,
        "method": "percentile",
        "resampling": "patient" if (groups is not None or level == "patient") else "image",
        "seed": seed,
    }
    out: dict[str, Any] = {
        "task": task,
        "level": level,
        "n_images": n_images,
        "n_patients": n_groups if level == "image" else len(y),
        "bootstrap": boot_info,
        "calibration": calibration,
    }
    common = {"groups": groups, "n_bootstraps": n_bootstraps, "confidence": confidence,
              "seed": seed}
    if task == "binary":
        if operating_point != "fixed" and not has_val:
            raise ValueError(
                f"operating_point={operating_point!r} must be chosen on validation data: "
                "pass val_true/val_score, or use operating_point='fixed'"
            )
        thr = choose_threshold(
            vy if has_val else y, vs if has_val else s, operating_point,
            target_sensitivity=target_sensitivity, threshold=threshold,
        )
        out["operating_point"] = {
            "method": operating_point,
            "threshold": thr,
            "chosen_on": "validation" if operating_point != "fixed" else "fixed",
            "target_sensitivity": target_sensitivity if operating_point == "sensitivity"
            else None,
        }
        if has_val:
            vpred = vs >= thr
            out["operating_point"]["validation_sensitivity"] = _finite(
                np.mean(vpred[vy == 1]) if (vy == 1).any() else math.nan)
            out["operating_point"]["validation_specificity"] = _finite(
                np.mean(~vpred[vy == 0]) if (vy == 0).any() else math.nan)
        out["class_names"] = list(class_names) if class_names else ["negative", "positive"]
        out.update(binary_metrics(y, s, thr, **common))
    elif task == "multiclass":
        out.update(multiclass_metrics(y, s, class_names=class_names, **common))
    else:
        out.update(multilabel_metrics(y, s, label_names=class_names, **common))
        out["class_names"] = out["label_names"]
    return out


def evaluate_predictions(
    table: Any,
    *,
    task: Task,
    class_names: Sequence[str],
    test_split: str = "test",
    val_split: str = "val",
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` on a predictions table (``predictions.csv`` of a run).

    Expected columns: ``split`` (``val``/``test``), ``prob_<name>`` per class (binary:
    ``prob_<positive>``, the second name), the truth as ``label`` (a class name or
    index; binary/multiclass) or ``label_<name>`` per label (multilabel: 1, 0, -1 or
    empty for missing), and optionally ``group`` (the patient key; CIs then resample
    patients).

    Parameters
    ----------
    table : pandas.DataFrame or str or path
        The table, or a CSV file.
    task, class_names :
        As in :func:`evaluate`; class_names also names the columns.
    test_split, val_split : str
        Values of ``split`` that mark the two splits.
    **kwargs :
        Passed to :func:`evaluate`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"split": ["val"] * 4 + ["test"] * 4,
    ...                   "label": ["no", "yes"] * 4,
    ...                   "prob_yes": [.2, .7, .4, .9, .1, .8, .75, .7]})
    >>> evaluate_predictions(t, task="binary", class_names=["no", "yes"],
    ...                      n_bootstraps=0)["roc_auc"]["value"]
    0.75
    """
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.read_csv(table)
    names = [str(c) for c in class_names]
    if "split" not in df.columns:
        raise ValueError("predictions table has no 'split' column")

    def arrays(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, Any]:
        if task == "multilabel":
            need = [f"label_{n}" for n in names] + [f"prob_{n}" for n in names]
        elif task == "binary":
            need = ["label", f"prob_{names[-1]}"]
        else:
            need = ["label"] + [f"prob_{n}" for n in names]
        missing = [c for c in need if c not in part.columns]
        if missing:
            raise ValueError(f"predictions table lacks column(s) {missing}")
        if task == "multilabel":
            yt = part[[f"label_{n}" for n in names]].to_numpy(dtype=float)
            sc = part[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
        else:
            lab = part["label"]
            index = {n: i for i, n in enumerate(names)}
            mapped = lab.astype(str).map(index)
            if mapped.isna().any():
                try:
                    mapped = lab.astype(int)
                except (TypeError, ValueError):
                    bad = sorted(set(lab.astype(str)) - set(names))[:5]
                    raise ValueError(
                        f"labels {bad} are not among class_names {names}"
                    ) from None
            yt = mapped.to_numpy(dtype=np.int64)
            cols = [f"prob_{names[-1]}"] if task == "binary" else [f"prob_{n}" for n in names]
            sc = part[cols].to_numpy(dtype=float)
            if task == "binary":
                sc = sc[:, 0]
        grp = part["group"].to_numpy() if "group" in part.columns else None
        return yt, sc, grp

    test = df[df["split"].astype(str) == test_split]
    val = df[df["split"].astype(str) == val_split]
    if test.empty:
        raise ValueError(f"predictions table has no rows with split == {test_split!r}")
    yt, st, gt = arrays(test)
    if not val.empty:
        yv, sv, gv = arrays(val)
        kwargs.setdefault("val_true", yv)
        kwargs.setdefault("val_score", sv)
        kwargs.setdefault("val_groups", gv)
    return evaluate(yt, st, task=task, groups=gt, class_names=names, **kwargs)
