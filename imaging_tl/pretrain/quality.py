"""How good a representation is while it trains: collapse statistics and a linear probe.

Without labels, the embedding is watched for collapse (every image mapped to one point,
the failure mode of siamese methods): :func:`collapse_stats` gives the standard deviation
per dimension of the l2-normalised embedding, compared with ``1 / sqrt(d)`` (its value
when the embedding is spread over the sphere; SimSiam, Chen & He 2021, section 4.1), and
the effective rank (Roy & Vetterli 2007) of the features. The projection is measured as
it trains (BatchNorm on batch statistics, which rescales even a tiny spread back to one),
so the pooled backbone features are watched too, in inference mode as a target task sees
them: :func:`feature_spread` against its value before pretraining. With a small labelled set,
:func:`linear_probe` fits a logistic regression on frozen pooled features (scikit-learn)
and measures its ROC AUC on held-out patients (:func:`imaging_tl.evaluate.binary_metrics`).

Plain numpy and scikit-learn.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> round(collapse_stats(rng.normal(size=(500, 64)))["std_ratio"], 1)
1.0
>>> collapse_stats(np.ones((500, 64)))["std_ratio"]
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imaging_tl.evaluate.metrics import binary_metrics

__all__ = ["collapse_stats", "effective_rank", "feature_spread", "is_collapsed",
           "collapse_reason", "kept_epoch", "linear_probe"]


def effective_rank(features: np.ndarray) -> float:
    """``exp`` of the entropy of the normalised singular values of the centred features.

    Between 1 (everything on one line) and the dimension; 0 for constant features.

    Examples
    --------
    >>> effective_rank(np.eye(4)) > 2.9, effective_rank(np.ones((5, 3)))
    (True, 0.0)
    """
    f = np.asarray(features, np.float64)
    f = f - f.mean(axis=0, keepdims=True)
    s = np.linalg.svd(f, compute_uv=False)
    total = float(s.sum())
    if not np.isfinite(total) or total <= 1e-12 * max(1.0, float(np.abs(f).max(initial=0.0))):
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def collapse_stats(z: np.ndarray) -> dict[str, float]:
    """Collapse statistics of an embedding (one row per image).

    Returns
    -------
    dict
        ``std``: the mean over dimensions of the standard deviation of the l2-normalised
        rows; ``std_ratio``: ``std * sqrt(d)`` (about 1 when spread, 0 when collapsed);
        ``effective_rank`` of the rows (:func:`effective_rank`).

    Examples
    --------
    >>> collapse_stats(np.eye(3))["effective_rank"] > 1.9
    True
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"collapse_stats: need at least 2 rows of a 2-d embedding, got "
                         f"shape {z.shape}")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    zn = z / np.maximum(norms, 1e-12)
    std = float(zn.std(axis=0).mean())
    return {"std": std, "std_ratio": std * float(np.sqrt(z.shape[1])),
            "effective_rank": effective_rank(z)}


def feature_spread(features: np.ndarray) -> float:
    """The mean over dimensions of the standard deviation of features (one row per image).

    A backbone whose pooled features no longer vary between images (every channel dead or
    saturated) has a spread near 0, whatever its projector shows in training mode.

    Examples
    --------
    >>> feature_spread(np.array([[0.0, 1.0], [2.0, 1.0]]))
    0.5
    """
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"feature_spread: need at least 2 rows of 2-d features, got shape "
                         f"{f.shape}")
    return float(f.std(axis=0).mean())


def is_collapsed(stats: dict[str, float], ratio: float) -> bool:
    """True when the embedding's ``std_ratio`` is below ``ratio`` (or not finite).

    Examples
    --------
    >>> is_collapsed({"std_ratio": 0.01}, 0.05), is_collapsed({"std_ratio": 0.7}, 0.05)
    (True, False)
    """
    value = float(stats["std_ratio"])
    return not np.isfinite(value) or value < ratio


def collapse_reason(row: dict[str, Any], ratio: float) -> str | None:
    """Why an epoch's statistics count as collapsed (a sentence), or None.

    Collapsed: ``embedding_std_ratio`` (the projection as trained) or ``feature_std_ratio``
    (the pooled backbone features in inference mode, as a share of their spread before
    pretraining) below ``ratio``, or not finite. A missing statistic is not judged.

    Examples
    --------
    >>> collapse_reason({"embedding_std_ratio": 0.9, "feature_std_ratio": 0.8}, 0.05) is None
    True
    >>> collapse_reason({"embedding_std_ratio": 0.9, "feature_std_ratio": 0.0004}, 0.05)
    'the pooled backbone features (inference mode) vary 0.0004 times as much as before pretraining'
    """
    if is_collapsed({"std_ratio": row.get("embedding_std_ratio", 1.0)}, ratio):
        return (f"the l2-normalised embedding's std per dimension x sqrt(d) is "
                f"{row['embedding_std_ratio']:.4f}")
    if is_collapsed({"std_ratio": row.get("feature_std_ratio", 1.0)}, ratio):
        return (f"the pooled backbone features (inference mode) vary "
                f"{row['feature_std_ratio']:.4f} times as much as before pretraining")
    return None


def kept_epoch(history: list[dict[str, Any]], keep: str = "best_probe",
               collapse_ratio: float = 0.0) -> int | None:
    """The epoch whose backbone a pretraining run keeps (``pretrain.keep``).

    ``best_probe``: of the epochs not collapsed (:func:`collapse_reason`), the one with the
    highest finite ``probe_auc`` (the earliest of ties); with no probe measured, or with
    ``keep="last"``, the last epoch. None when that epoch is collapsed (nothing to keep).

    Examples
    --------
    >>> h = [{"epoch": 1, "probe_auc": 0.74}, {"epoch": 2, "probe_auc": float("nan")},
    ...      {"epoch": 3, "probe_auc": 0.79}, {"epoch": 4, "probe_auc": 0.79},
    ...      {"epoch": 5, "probe_auc": 0.80, "feature_std_ratio": 0.001}]
    >>> kept_epoch(h, collapse_ratio=0.05), kept_epoch(h, "last"), kept_epoch(h[1:2])
    (3, 5, 2)
    >>> kept_epoch(h, "last", collapse_ratio=0.05) is None
    True
    """
    healthy = [r for r in history if collapse_reason(r, collapse_ratio) is None]
    probed = [(float(r["probe_auc"]), -int(r["epoch"])) for r in healthy
              if np.isfinite(float(r.get("probe_auc", float("nan"))))]
    if keep == "best_probe" and probed:
        return -max(probed)[1]
    last = history[-1]
    return int(last["epoch"]) if collapse_reason(last, collapse_ratio) is None else None


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """A logistic regression on frozen features: its test ROC AUC.

    Features are standardised on the training part; the regression is L2-regularised
    (``C=1``), so a probe on a few hundred images stays stable.

    Parameters
    ----------
    train_x, test_x : numpy.ndarray
        Pooled backbone features, one row per image.
    train_y, test_y : numpy.ndarray
        0/1 labels.
    seed : int
        The solver's seed.

    Returns
    -------
    dict
        ``auc`` (NaN when the test part has one class), ``n_train``, ``n_test``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(80) % 2
    >>> x = rng.normal(size=(80, 5)) + y[:, None]
    >>> linear_probe(x[:40], y[:40], x[40:], y[40:])["auc"] > 0.8
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_y, test_y = np.asarray(train_y, int), np.asarray(test_y, int)
    if len(np.unique(train_y)) < 2:
        raise ValueError("linear_probe: the training part holds one class only")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0,
                                                             random_state=seed))
    clf.fit(np.asarray(train_x, np.float64), train_y)
    p = clf.predict_proba(np.asarray(test_x, np.float64))[:, 1]
    auc = float("nan")
    if len(np.unique(test_y)) == 2:
        auc = float(binary_metrics(test_y, p, 0.5, n_bootstraps=0, curves=False)
                    ["roc_auc"]["value"])
    return {"auc": auc, "n_train": int(len(train_y)), "n_test": int(len(test_y))}
