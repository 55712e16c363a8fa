"""Lesion shapes and visibility: nodule variants and the contrast-to-noise ratio (CNR).

A nodule is round, lobulated, spiculated or calcified, always with a soft (blurred)
edge. :func:`finding_cnr` measures how visible a finding is: the mean density it adds
over its mask divided by the standard deviation of the background (anatomy: ribs, vessels,
texture) in a ring around it. The difficulty presets are defined by this ratio, and
:func:`contrast_for_cnr` turns a target ratio into the contrast to draw.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["NODULE_VARIANTS", "background_sd", "contrast_for_cnr", "finding_cnr",
           "nodule_profile"]

#: Nodule variants and how often each is drawn.
NODULE_VARIANTS = {"round": 0.35, "lobulated": 0.3, "spiculated": 0.2, "calcified": 0.15}


def _bbox(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first, last) row and (first, last) column of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def _ring(mask: np.ndarray, region: np.ndarray | None) -> tuple[tuple[slice, slice], np.ndarray]:
    """A crop around ``mask`` and the ring of background around the mask inside it."""
    (ya, yb), (xa, xb) = _bbox(mask)
    pad = int(max(3, np.sqrt(np.count_nonzero(mask)) / 2))
    y0, y1 = max(0, ya - pad - 1), min(mask.shape[0], yb + pad + 2)
    x0, x1 = max(0, xa - pad - 1), min(mask.shape[1], xb + pad + 2)
    crop = (slice(y0, y1), slice(x0, x1))
    m = mask[crop]
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    ring = cv2.dilate(np.ascontiguousarray(m, np.uint8), cross, iterations=pad).astype(bool) & ~m
    if region is not None and (ring & region[crop]).sum() >= 8:
        ring &= region[crop]
    return crop, ring


def background_sd(background: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None
                  ) -> float:
    """Standard deviation of ``background`` in a ring around ``mask`` (inside ``region``).

    Examples
    --------
    >>> bg = np.random.default_rng(0).normal(0, 0.1, (64, 64))
    >>> m = np.zeros((64, 64), bool); m[30:34, 30:34] = True
    >>> round(background_sd(bg, m), 1)
    0.1
    """
    if not mask.any():
        raise ValueError("background_sd: the mask is empty")
    crop, ring = _ring(mask, region)
    vals = np.asarray(background, np.float64)[crop][ring]
    return max(float(vals.std()) if vals.size > 1 else 0.0, 1e-3)


def finding_cnr(
    with_finding: np.ndarray,
    without: np.ndarray,
    mask: np.ndarray,
    region: np.ndarray | None = None,
) -> float:
    """Contrast-to-noise ratio of a finding: mean added signal over the mask / background sd.

    Parameters
    ----------
    with_finding, without : numpy.ndarray
        The image with and without the finding (density, or display pixels of a
        counterfactual pair).
    mask : numpy.ndarray of bool
        The finding's mask.
    region : numpy.ndarray of bool, optional
        Where the background ring may lie (e.g. the lung fields).

    Returns
    -------
    float

    Examples
    --------
    >>> bg = np.random.default_rng(0).normal(0, 0.1, (64, 64))
    >>> m = np.zeros((64, 64), bool); m[30:34, 30:34] = True
    >>> round(finding_cnr(bg + 0.3 * m, bg, m), 0)
    3.0
    """
    if not mask.any():
        raise ValueError("finding_cnr: the mask is empty")
    (y0, y1), (x0, x1) = _bbox(mask)
    box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    delta = np.asarray(with_finding[box], np.float64) - np.asarray(without[box], np.float64)
    return float(delta[mask[box]].mean()) / background_sd(without, mask, region)


def contrast_for_cnr(
    background: np.ndarray, shape: np.ndarray, mask: np.ndarray, target: float,
    region: np.ndarray | None = None,
) -> float:
    """The factor ``c`` for which adding ``c * shape`` gives ``finding_cnr == target``.

    Examples
    --------
    >>> bg = np.random.default_rng(0).normal(0, 0.1, (64, 64))
    >>> m = np.zeros((64, 64), bool); m[30:34, 30:34] = True
    >>> c = contrast_for_cnr(bg, m.astype(float), m, 2.0)
    >>> round(finding_cnr(bg + c * m, bg, m), 6)
    2.0
    """
    mean_shape = float(np.asarray(shape)[mask].astype(np.float64).mean())
    if mean_shape <= 0:
        raise ValueError("contrast_for_cnr: the shape adds nothing over its mask")
    return target * background_sd(background, mask, region) / mean_shape


def nodule_profile(
    rng: np.random.Generator, shape: tuple[int, ...], cy: float, cx: float, r: float
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Projected thickness of a nodule (soft-edged), its mask, and the drawn variant.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the variant and its details.
    shape : tuple of int
        Image (H, W).
    cy, cx, r : float
        Centre and radius in pixels.

    Returns
    -------
    profile : numpy.ndarray
        float32 H x W, about 1 at the centre (calcified: a denser core on top).
    mask : numpy.ndarray
        bool H x W, where the nodule's soft tissue is (profile > 0.3).
    info : dict
        ``variant`` and its parameters.

    Examples
    --------
    >>> prof, mask, info = nodule_profile(np.random.default_rng(0), (64, 64), 32, 32, 6)
    >>> bool(mask[32, 32]), info["variant"] in NODULE_VARIANTS
    (True, True)
    """
    names = list(NODULE_VARIANTS)
    p = np.asarray([NODULE_VARIANTS[k] for k in names])
    variant = names[int(rng.choice(len(names), p=p / p.sum()))]
    h, w = shape[:2]
    pad = int(np.ceil(2.4 * r)) + 3
    y0, y1 = max(0, int(cy) - pad), min(h, int(cy) + pad + 1)
    x0, x1 = max(0, int(cx) - pad), min(w, int(cx) + pad + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    dist, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    info: dict = {"variant": variant}
    rad = np.full_like(dist, r)
    if variant in ("lobulated", "spiculated"):
        k = int(rng.integers(3, 6)) if variant == "lobulated" else int(rng.integers(5, 9))
        amp = rng.uniform(0.12, 0.25) if variant == "lobulated" else 0.08
        rad = r * (1 + amp * np.sin(k * theta + rng.uniform(0, 2 * np.pi)))
        info.update(lobes=k, amplitude=float(amp))
    prof = np.sqrt(np.clip(1.0 - (dist / rad) ** 2, 0.0, None))
    if variant == "spiculated":
        n = int(rng.integers(6, 13))
        angles = rng.uniform(-np.pi, np.pi, n)[:, None, None]
        length = r * rng.uniform(1.6, 2.3, n)[:, None, None]
        diff = np.angle(np.exp(1j * (theta[None] - angles)))
        across = np.abs(diff) * dist[None]
        spikes = np.clip(1 - across / max(0.8, 0.12 * r), 0, 1) * np.clip(1 - dist[None] / length,
                                                                           0, 1)
        prof = np.maximum(prof, 0.6 * spikes.max(axis=0))
        info["spicules"] = n
    prof = ndimage.gaussian_filter(prof, max(0.5, 0.12 * r))
    local_mask = prof > 0.3
    if variant == "calcified":
        core = rng.uniform(0.25, 0.5)
        prof = prof + 1.2 * np.sqrt(np.clip(1.0 - (dist / (core * r)) ** 2, 0.0, None))
        info["core_fraction"] = float(core)
    out = np.zeros(shape[:2], np.float32)
    out[y0:y1, x0:x1] = prof
    mask = np.zeros(shape[:2], bool)
    mask[y0:y1, x0:x1] = local_mask
    if not mask.any():  # sub-pixel nodule: the centre pixel still carries it
        mask[min(h - 1, int(round(cy))), min(w - 1, int(round(cx)))] = True
    return out, mask, info
