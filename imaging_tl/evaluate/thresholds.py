"""Operating points: the decision threshold of a binary task, chosen on validation data."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from imaging_tl.evaluate.inputs import as_arrays

__all__ = ["OPERATING_POINTS", "choose_threshold"]

OPERATING_POINTS = ("youden", "sensitivity", "fixed")


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
    y, s = as_arrays(y_true, y_score, "binary")
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
