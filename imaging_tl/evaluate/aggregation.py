"""Aggregation of many predictions to one row per unit: a patient's images (patient-level
evaluation) or a series' slices (series-level evaluation and prediction), with one set of
rules: ``max``, ``mean``, ``top_k_mean`` (mean of the ``top_k`` highest) or ``noisy_or``
(``1 - prod(1 - p)``: the probability that at least one slice is positive, were the
slices independent)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from imaging_tl.evaluate.inputs import Task, as_arrays

__all__ = ["AGGREGATIONS", "aggregate_by_group", "aggregate_scores"]

#: How scores are aggregated per group.
AGGREGATIONS = ("max", "mean", "top_k_mean", "noisy_or")
Aggregation = Literal["max", "mean", "top_k_mean", "noisy_or"]


def aggregate_scores(scores: Any, codes: Any, n_groups: int, how: Aggregation = "max",
                     top_k: int = 3, *, renormalise: bool = False) -> np.ndarray:
    """Column-wise aggregate of ``scores`` (rows) per group code ``0 .. n_groups - 1``.

    ``renormalise`` (multiclass probabilities): rows of the result sum to 1 again (a mean
    of probabilities already does).

    Examples
    --------
    >>> s, codes = [0.1, 0.5, 0.9, 0.2, 0.4], [0, 0, 0, 1, 1]
    >>> aggregate_scores(s, codes, 2, "top_k_mean", top_k=2).ravel().round(3).tolist()
    [0.7, 0.3]
    >>> aggregate_scores(s, codes, 2, "noisy_or").ravel().round(3).tolist()
    [0.955, 0.52]
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate={how!r}: expected one of {list(AGGREGATIONS)}")
    if int(top_k) < 1:
        raise ValueError(f"top_k={top_k!r}: must be at least 1")
    if how == "noisy_or" and renormalise:  # patients and series alike
        raise ValueError("aggregate='noisy_or' is for binary and multilabel tasks; use max, "
                         "mean or top_k_mean for multiclass")
    s = np.asarray(scores, dtype=np.float64)
    s2 = s if s.ndim == 2 else s[:, None]
    c = np.asarray(codes, dtype=np.int64)
    if how == "max":
        agg = np.full((n_groups, s2.shape[1]), -np.inf)
        np.maximum.at(agg, c, s2)
    elif how == "mean":
        agg = np.zeros((n_groups, s2.shape[1]))
        np.add.at(agg, c, s2)
        agg /= np.bincount(c, minlength=n_groups)[:, None]
    elif how == "noisy_or":
        # sum of log(1 - p): exact for p = 1 (log 0 = -inf, exp -> 0)
        logs = np.zeros((n_groups, s2.shape[1]))
        with np.errstate(divide="ignore"):
            np.add.at(logs, c, np.log1p(-np.clip(s2, 0.0, 1.0)))
        agg = 1.0 - np.exp(logs)
    else:
        agg = np.zeros((n_groups, s2.shape[1]))
        for g in range(n_groups):
            rows = -np.sort(-s2[c == g], axis=0)[: int(top_k)]
            agg[g] = rows.mean(axis=0)
    if renormalise and how != "mean":
        # per-class maxima (or top-k means) no longer sum to 1; means of probabilities still do
        agg /= agg.sum(axis=1, keepdims=True)
    return agg


def aggregate_by_group(
    y_true: Any,
    y_score: Any,
    groups: Any,
    *,
    task: Task = "binary",
    how: Aggregation = "max",
    top_k: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per group (patient, or series): scores aggregated over the group's rows.

    Binary/multilabel: a group is positive for a label when any row is (missing labels
    ignored; all missing stays missing); scores are aggregated per column as ``how`` says
    (:func:`aggregate_scores`). Multiclass: all rows of a group must carry the same class;
    probabilities are averaged (``mean``), or the per-class ``max`` / ``top_k_mean`` is
    renormalised to sum to 1 (``noisy_or`` is for binary and multilabel tasks).

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
    y, s = as_arrays(y_true, y_score, task)
    g = np.asarray(groups).astype(str)
    if len(g) != len(y):
        raise ValueError(f"groups has {len(g)} entries but there are {len(y)} images")
    keys, codes = np.unique(g, return_inverse=True)
    k = len(keys)
    agg = aggregate_scores(s, codes, k, how, top_k, renormalise=task == "multiclass")
    if task == "multiclass":
        return _one_class_per_patient(y, codes, k), agg, keys
    y2 = y if y.ndim == 2 else y[:, None]
    ya = np.full((k, y2.shape[1]), -1)
    np.maximum.at(ya, codes, y2)  # 1 beats 0 beats -1 (missing)
    if task == "binary":
        return ya[:, 0], agg[:, 0], keys
    return ya, agg, keys


def _one_class_per_patient(y: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The class of each patient; raises when a patient's images disagree."""
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
    return hi
