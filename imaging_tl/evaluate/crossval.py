"""Cross-validation figures: per fold (mean and SD over the folds) and pooled out of fold.

Each fold's member is measured on its own validation fold (the images it never trained
on) at the run's operating point; the folds' figures are summarised as mean and standard
deviation, and the pooled out-of-fold predictions are evaluated once more as a whole,
with patient-bootstrap CIs (:func:`imaging_tl.evaluate.evaluate`, the same options as the
run's test figures). The operating point is the run's (chosen on the pooled out-of-fold
predictions), so the pooled sensitivity and specificity are measured where the threshold
was chosen; the test split is what measures the ensemble honestly.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ys = [rng.integers(0, 2, 30) for _ in range(3)]
>>> ss = [np.clip(y * 0.4 + rng.random(30) * 0.6, 0, 1) for y in ys]
>>> m = crossval_metrics(ys, ss, [np.arange(30)] * 3, n_bootstraps=50)
>>> m["folds"], sorted(m["summary"]["roc_auc"])
(3, ['mean', 'n', 'sd'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imaging_tl.evaluate.evaluation import evaluate

__all__ = ["CROSSVAL_KEYS", "crossval_metrics"]

#: the figures reported per fold and pooled, per task
CROSSVAL_KEYS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "sensitivity", "specificity", "accuracy"),
    "multiclass": ("roc_auc_macro", "balanced_accuracy", "accuracy"),
    "multilabel": ("roc_auc_macro",),
}


def _value(m: dict[str, Any], key: str) -> float | None:
    v = m.get(key)
    v = v.get("value") if isinstance(v, dict) else v
    return float(v) if v is not None and np.isfinite(v) else None


def crossval_metrics(
    fold_true: Sequence[Any], fold_score: Sequence[Any], fold_groups: Sequence[Any], *,
    task: str = "binary", class_names: Sequence[str] | None = None, threshold: float = 0.5,
    n_bootstraps: int = 1000, seed: int = 0, aggregate: str | None = None,
    test_true: Any = None, member_test_score: Sequence[Any] | None = None,
    test_groups: Any = None,
) -> dict[str, Any]:
    """The cross-validation section of ``metrics.json``.

    Parameters
    ----------
    fold_true, fold_score, fold_groups : sequences, one entry per fold
        Labels, out-of-fold probabilities and patient keys of each fold's validation images.
    task, class_names, aggregate :
        As for :func:`imaging_tl.evaluate.evaluate`.
    threshold : float
        The operating point (binary; multilabel: per label decisions).
    n_bootstraps, seed : int
        Patient-bootstrap resamples of the pooled figures, and their seed.
    test_true, member_test_score, test_groups : optional
        The test labels and each member's test probabilities: each member's test figure
        is listed beside its fold's.

    Returns
    -------
    dict
        ``folds`` (count), ``headline`` (the key of the headline figure), ``per_fold``
        (per fold: ``fold``, ``n_images``, ``n_patients``, each figure, ``test_<headline>``),
        ``summary`` (per figure: ``mean``, ``sd`` over the folds where it is defined,
        ``n`` such folds) and ``oof`` (the pooled figures with ``value`` and ``ci``, and
        ``n_images``, ``n_patients``, ``small_sample``).
    """
    keys = CROSSVAL_KEYS[task]
    head = keys[0]  # the headline figure: roc_auc (binary), else roc_auc_macro
    kw: dict[str, Any] = {"task": task, "class_names": class_names, "aggregate": aggregate,
                          "operating_point": "fixed", "threshold": float(threshold),
                          "seed": seed}
    per_fold = []
    for f, (y, s, g) in enumerate(zip(fold_true, fold_score, fold_groups, strict=True)):
        row: dict[str, Any] = {"fold": f, "n_images": len(y),
                               "n_patients": int(len(set(map(str, g))))}
        try:
            m = evaluate(y, s, groups=g, n_bootstraps=0, **kw)
            row |= {k: _value(m, k) for k in keys}
        except ValueError as exc:  # e.g. a fold without a class: its figures are undefined
            row |= {k: None for k in keys} | {"note": str(exc)}
        if member_test_score is not None and test_true is not None:
            try:
                row[f"test_{head}"] = _value(evaluate(
                    test_true, member_test_score[f], groups=test_groups, n_bootstraps=0,
                    **kw), head)
            except ValueError:
                row[f"test_{head}"] = None
        per_fold.append(row)
    summary = {}
    for k in [*keys, f"test_{head}"]:
        vals = [r[k] for r in per_fold if r.get(k) is not None]
        summary[k] = {"mean": float(np.mean(vals)) if vals else None,
                      "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                      "n": len(vals)}
    pooled = evaluate(np.concatenate([np.asarray(y) for y in fold_true]),
                      np.concatenate([np.asarray(s) for s in fold_score]),
                      groups=np.concatenate([np.asarray(g) for g in fold_groups]),
                      n_bootstraps=n_bootstraps, **kw)
    oof = {k: pooled[k] for k in keys if k in pooled}
    oof |= {k: pooled.get(k) for k in ("n_images", "n_patients", "level")}
    oof["small_sample"] = [str(n).replace("test split", "out-of-fold predictions")
                           for n in pooled.get("small_sample") or []]
    return {"folds": len(per_fold), "headline": head, "threshold": float(threshold),
            "per_fold": per_fold, "summary": summary, "oof": oof}
