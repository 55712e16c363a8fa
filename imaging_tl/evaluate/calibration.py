"""Calibration: reliability diagrams, the expected calibration error, temperature scaling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from imaging_tl.evaluate.inputs import Task, as_arrays, check_task, finite

__all__ = [
    "apply_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_data",
]

_EPS = 1e-7


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
    y, s = as_arrays(y_true, y_score, task)
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
        "confidence": [finite(v) for v in mean_conf],
        "observed": [finite(v) for v in mean_obs],
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
    check_task(task)
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
        Validation labels and probabilities in the conventions of :mod:`imaging_tl.evaluate`.
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
    y, s = as_arrays(y_true, y_score, task)
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
