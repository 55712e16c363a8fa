"""Performance per subgroup (sex, age band, scanner, site, view, ...) of a binary task.

Per group: the images, patients, positives and negatives it holds, the ROC AUC and the
sensitivity and specificity at the run's operating point, each with a patient-bootstrap
interval, and the difference to the overall figure with its interval. The resamples are
those of :func:`imaging_tl.evaluate.bootstrap.weight_blocks` under the run's seed: the
group's figure and the overall figure are computed on the same resample, so the interval
of their difference is paired. A group with fewer than
:data:`~imaging_tl.evaluate.samplesize.MIN_POSITIVES` positives or
:data:`~imaging_tl.evaluate.samplesize.MIN_NEGATIVES` negatives is shown but marked
``too_small`` and left out of the worst-group AUC, the headline number.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.tile([0, 1], 60); site = np.repeat(["a", "b"], 60)
>>> s = np.where(site == "a", 0.35 * y + 0.65 * rng.random(120), rng.random(120))
>>> out = subgroup_metrics(y, s, {"site": site}, threshold=0.5, n_bootstraps=200)
>>> out["worst_group_auc"]["group"], out["worst_group_auc"]["value"] < 0.7
('b', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.evaluate.bootstrap import estimate, weight_blocks
from imaging_tl.evaluate.curves import threshold_rates, weighted_roc_auc
from imaging_tl.evaluate.samplesize import MIN_NEGATIVES, MIN_POSITIVES

__all__ = ["SUBGROUP_METRICS", "UNKNOWN", "group_values", "subgroup_metrics"]

#: the figures given per group
SUBGROUP_METRICS = ("roc_auc", "sensitivity", "specificity")
#: the group of a row whose attribute is not known
UNKNOWN = "unknown"


def group_values(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """An attribute's values as group names: text, with missing values as ``unknown``.

    Examples
    --------
    >>> group_values(["F", None, "", float("nan"), 3.0]).tolist()
    ['F', 'unknown', 'unknown', 'unknown', '3']
    """
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or str(v).strip() in (
                "", "nan", "None"):
            out.append(UNKNOWN)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return np.asarray(out, dtype=object)


def _figures(y: np.ndarray, s: np.ndarray, pred: np.ndarray, w: np.ndarray
             ) -> dict[str, np.ndarray]:
    """AUC, sensitivity and specificity for each weighting (row of ``w``)."""
    rates = threshold_rates(y, pred, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = weighted_roc_auc(y, s, w)
    return {"roc_auc": auc, "sensitivity": rates["sensitivity"],
            "specificity": rates["specificity"]}


def subgroup_metrics(
    y_true: Any, y_score: Any, attributes: Mapping[str, Sequence[Any] | np.ndarray], *,
    threshold: float, groups: Any = None, n_bootstraps: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> dict[str, Any]:
    """ROC AUC, sensitivity and specificity per subgroup, with paired bootstrap intervals.

    Parameters
    ----------
    y_true, y_score : array_like
        Binary labels (0/1) and positive-class probabilities of the test images.
    attributes : mapping of str to sequence
        Per attribute (``sex``, ``manufacturer``, a CSV column, ...) its value per image;
        missing values form the group ``unknown``.
    threshold : float
        The run's operating point (chosen on validation).
    groups : array_like, optional
        Patient key per image: the bootstrap resamples patients.
    n_bootstraps, confidence, seed : int, float, int
        As in :func:`imaging_tl.evaluate.evaluate` (same seed: the same resamples).

    Returns
    -------
    dict
        ``threshold``, ``overall`` (each figure as ``{"value", "ci"}``), ``attributes``:
        per attribute a list of groups (largest first), each with ``group``, ``images``,
        ``patients``, ``positives``, ``negatives``, ``too_small``, the figures and
        ``<figure>_diff`` (group minus overall, paired CI); ``worst_group_auc``: the
        lowest AUC among groups that are not too small (``attribute``, ``group``,
        ``value``, ``ci``), or None.

    Examples
    --------
    >>> out = subgroup_metrics([0, 1, 0, 1], [.2, .8, .3, .6], {"sex": ["F", "F", "M", None]},
    ...                        threshold=0.5, n_bootstraps=0)
    >>> [(g["group"], g["images"], g["too_small"]) for g in out["attributes"]["sex"]]
    [('F', 2, True), ('M', 1, True), ('unknown', 1, True)]
    """
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    s = np.asarray(y_score, dtype=float).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {len(y)} entries but y_score {len(s)}")
    pred = s >= threshold
    keys = None if groups is None else np.asarray(groups).astype(str)
    named = {}
    for name, values in attributes.items():
        v = group_values(values)
        if len(v) != len(y):
            raise ValueError(f"subgroup attribute {name!r} has {len(v)} values for "
                             f"{len(y)} images")
        named[name] = v
    masks = {(a, g): v == g for a, v in named.items() for g in dict.fromkeys(v)}
    point = {k: _figures(y[m], s[m], pred[m], np.ones((1, int(m.sum()))))
             for k, m in masks.items()}
    overall_point = _figures(y, s, pred, np.ones((1, len(y))))
    boot, overall_boot = _replicates(y, s, pred, masks, keys, n_bootstraps, seed)
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "overall": {k: estimate(overall_point[k][0], overall_boot.get(k), confidence)
                    for k in SUBGROUP_METRICS},
        "attributes": {},
    }
    for name, v in named.items():
        rows = [_group_entry(g, masks[(name, g)], y, keys, point[(name, g)],
                             boot.get((name, g)), overall_point, overall_boot, confidence)
                for g in dict.fromkeys(v)]
        rows.sort(key=lambda r: (r["group"] == UNKNOWN, -r["images"], r["group"]))
        out["attributes"][name] = rows
    out["worst_group_auc"] = _worst(out["attributes"])
    return out


def _replicates(
    y: np.ndarray, s: np.ndarray, pred: np.ndarray, masks: Mapping[tuple[str, str], np.ndarray],
    keys: np.ndarray | None, n_bootstraps: int, seed: int,
) -> tuple[dict[tuple[str, str], dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Bootstrap replicates of every group's figures and of the overall ones (paired)."""
    if n_bootstraps <= 0:
        return {}, {}
    parts: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {k: {} for k in masks}
    overall: dict[str, list[np.ndarray]] = {}
    for w in weight_blocks(len(y), n_bootstraps, groups=keys, seed=seed):
        for k, v in _figures(y, s, pred, w).items():
            overall.setdefault(k, []).append(v)
        for key, m in masks.items():
            for k, v in _figures(y[m], s[m], pred[m], w[:, m]).items():
                parts[key].setdefault(k, []).append(v)
    cat = {key: {k: np.concatenate(v) for k, v in d.items()} for key, d in parts.items()}
    return cat, {k: np.concatenate(v) for k, v in overall.items()}


def _group_entry(
    group: str, m: np.ndarray, y: np.ndarray, keys: np.ndarray | None,
    point: Mapping[str, np.ndarray], boot: Mapping[str, np.ndarray] | None,
    overall_point: Mapping[str, np.ndarray], overall_boot: Mapping[str, np.ndarray],
    confidence: float,
) -> dict[str, Any]:
    """One group's counts, figures and differences to the overall figures."""
    pos, n = int(y[m].sum()), int(m.sum())
    entry: dict[str, Any] = {
        "group": group, "images": n,
        "patients": int(len(np.unique(keys[m]))) if keys is not None else None,
        "positives": pos, "negatives": n - pos,
        "too_small": pos < MIN_POSITIVES or n - pos < MIN_NEGATIVES,
    }
    for k in SUBGROUP_METRICS:
        entry[k] = estimate(point[k][0], boot[k] if boot else None, confidence)
        diff = boot[k] - overall_boot[k] if boot else None
        entry[f"{k}_diff"] = estimate(point[k][0] - overall_point[k][0], diff, confidence)
    return entry


def _worst(attributes: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The lowest AUC among the groups that are large enough (None when there is none)."""
    best: dict[str, Any] | None = None
    for name, rows in attributes.items():
        for r in rows:
            auc = r["roc_auc"]
            if r["too_small"] or r["group"] == UNKNOWN or auc["value"] is None:
                continue
            if best is None or auc["value"] < best["value"]:
                best = {"attribute": name, "group": r["group"], **auc}
    return best
