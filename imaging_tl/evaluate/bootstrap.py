"""The bootstrap: resamples as per-image counts (patients kept together), percentile CIs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from imaging_tl.evaluate.inputs import finite

__all__ = [
    "bootstrap_replicates",
    "bootstrap_weights",
    "estimate",
    "percentile_ci",
    "weight_blocks",
]


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


def estimate(value: float, boot: np.ndarray | None, confidence: float) -> dict[str, Any]:
    """``{"value": v, "ci": [lo, hi]}`` from a point value and bootstrap replicates.

    Examples
    --------
    >>> estimate(0.5, None, 0.95)
    {'value': 0.5, 'ci': [None, None]}
    """
    if boot is None:
        return {"value": finite(value), "ci": [None, None]}
    lo, hi = percentile_ci(boot, confidence)
    return {"value": finite(value), "ci": [finite(lo), finite(hi)]}


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
    blocks = list(weight_blocks(n, n_bootstraps, groups=groups, seed=seed))
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, n))


def weight_blocks(
    n: int, n_bootstraps: int, *, groups: Any = None, seed: int = 0,
    max_cells: int = 2_000_000,
) -> Iterator[np.ndarray]:
    """:func:`bootstrap_weights` in row blocks of about 16 MB.

    Large test sets (100k images x 1000 resamples) then never hold the whole count
    matrix. Rows are drawn in order from one generator: the blocks concatenate to the
    same matrix for any block size.

    Examples
    --------
    >>> blocks = list(weight_blocks(4, 5, seed=0, max_cells=8))
    >>> [b.shape for b in blocks]
    [(2, 4), (2, 4), (1, 4)]
    """
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


def bootstrap_replicates(
    fn: Callable[[np.ndarray], np.ndarray],
    n: int,
    n_bootstraps: int,
    groups: Any,
    seed: int,
) -> np.ndarray:
    """Apply a weighted metric to all resamples, in memory-bounded blocks.

    The same seed gives the same resamples for every metric, so their CIs are paired.

    Examples
    --------
    >>> r = bootstrap_replicates(lambda w: w.sum(axis=1), 3, 4, None, 0)
    >>> r.tolist()
    [3.0, 3.0, 3.0, 3.0]
    """
    blocks = weight_blocks(n, n_bootstraps, groups=groups, seed=seed)
    return np.concatenate([fn(w) for w in blocks], axis=0)
