"""The referral curve: how a binary model does on the cases it is sure about.

The most uncertain share of the cases (0 to 50 %) is referred to a reader; the ROC AUC,
sensitivity and specificity at the operating point are measured on the cases retained.
A useful uncertainty makes the retained figures rise as more is referred. Ties in the
uncertainty are broken by the cases' order (a stable sort), so the curve is reproducible.

Examples
--------
>>> y = np.array([0, 1, 0, 1]); s = np.array([0.2, 0.8, 0.6, 0.4])
>>> c = referral_curve(y, s, np.array([0.0, 0.0, 0.3, 0.2]), threshold=0.5,
...                    fractions=[0.0, 0.5])
>>> c["roc_auc"], c["n_retained"]
([0.75, 1.0], [4, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imaging_tl.evaluate.curves import threshold_rates, weighted_roc_auc
from imaging_tl.evaluate.inputs import finite

__all__ = ["REFERRAL_FRACTIONS", "referral_curve"]

#: the shares of cases referred, from none to half
REFERRAL_FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))


def referral_curve(
    y_true: Any, y_score: Any, uncertainty: Any, *, threshold: float,
    fractions: Sequence[float] = REFERRAL_FRACTIONS,
) -> dict[str, Any]:
    """ROC AUC, sensitivity and specificity on the cases retained after referring the most
    uncertain ``fraction`` of them, for each fraction.

    Parameters
    ----------
    y_true, y_score : array_like
        Binary labels and positive-class probabilities.
    uncertainty : array_like
        One value per case; higher is less sure (e.g. the spread of test-time
        augmentation, :func:`imaging_tl.augment.tta_uncertainty`).
    threshold : float
        The operating point.
    fractions : sequence of float
        Shares referred, each in [0, 1).

    Returns
    -------
    dict
        ``fraction_referred``, ``n_retained``, ``roc_auc``, ``sensitivity``,
        ``specificity`` (lists; None where a figure is undefined on the retained cases).
    """
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    s = np.asarray(y_score, dtype=float).reshape(-1)
    u = np.asarray(uncertainty, dtype=float).reshape(-1)
    if not len(y) == len(s) == len(u):
        raise ValueError(f"referral_curve: {len(y)} labels, {len(s)} scores, {len(u)} "
                         "uncertainties")
    order = np.argsort(-u, kind="stable")  # most uncertain first
    out: dict[str, Any] = {"fraction_referred": [], "n_retained": [], "roc_auc": [],
                           "sensitivity": [], "specificity": []}
    for f in fractions:
        if not 0 <= f < 1:
            raise ValueError(f"referral_curve: fractions must be in [0, 1), got {f}")
        keep = np.ones(len(y), dtype=bool)
        keep[order[:int(round(f * len(y)))]] = False
        w = np.ones((1, int(keep.sum())))
        rates = threshold_rates(y[keep], s[keep] >= threshold, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = weighted_roc_auc(y[keep], s[keep], w)[0] if keep.any() else np.nan
        out["fraction_referred"].append(float(f))
        out["n_retained"].append(int(keep.sum()))
        out["roc_auc"].append(finite(auc))
        out["sensitivity"].append(finite(rates["sensitivity"][0]))
        out["specificity"].append(finite(rates["specificity"][0]))
    return out
