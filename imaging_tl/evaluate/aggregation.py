"""Patient-level evaluation: one row per patient, aggregated over the patient's images."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from imaging_tl.evaluate.inputs import Task, as_arrays

__all__ = ["aggregate_by_group"]


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
    y, s = as_arrays(y_true, y_score, task)
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
        return _one_class_per_patient(y, codes, k), _renormalised(agg, how), keys
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


def _renormalised(agg: np.ndarray, how: str) -> np.ndarray:
    # per-class maxima no longer sum to 1; means of probabilities still do
    if how == "max":
        agg /= agg.sum(axis=1, keepdims=True)
    return agg
