"""Semi-synthetic images: findings composited onto real radiographs supplied by the caller.

Real anatomy and real detector noise, synthetic lesions with exact masks. The background is
a display image (float in [0, 1], dense = bright), e.g. one of pydicom-data's chest CR files
read with :func:`imaging_tl.read_scan` and windowed. Findings are added in density units
(display x :data:`~imaging_tl.synthetic.phantom.DENSITY_SCALE`), the same units as on the
phantoms, so one :class:`~imaging_tl.synthetic.findings.Difficulty` means the same on both.

Labels describe the *inserted* findings only: a real background may already show disease
(pydicom-data's ``RG1_*`` chest has several round opacities), so use one background per
split, or several backgrounds, when a clean negative class matters.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from imaging_tl.synthetic.findings import (
    Difficulty,
    add_findings,
    check_findings,
    get_difficulty,
)
from imaging_tl.synthetic.images import SeedLike, SyntheticImage, random_streams
from imaging_tl.synthetic.phantom import DENSITY_SCALE

__all__ = ["composite_radiograph", "estimate_lung_fields"]


def estimate_lung_fields(image: np.ndarray) -> np.ndarray:
    """Rough lung-field estimate on a PA chest radiograph, for placing findings.

    On a heavily smoothed copy, each lung is the largest dark region (the darkest 40%, air
    outside the body excluded) inside an ellipse where lungs sit on a PA film; where that
    finds too little, the
    ellipse itself is returned. Good enough to keep findings inside the chest, not a
    segmentation.

    Parameters
    ----------
    image : numpy.ndarray
        H x W display image in [0, 1], dense = bright.

    Returns
    -------
    numpy.ndarray
        int8 H x W: 0 outside, 1 the region on the image left, 2 the one on the right.

    Examples
    --------
    >>> from imaging_tl.synthetic import make_radiograph
    >>> sides = estimate_lung_fields(make_radiograph(0, size=128).pixels)
    >>> sorted(np.unique(sides).tolist())
    [0, 1, 2]
    """
    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H x W), got shape {img.shape}")
    h, w = img.shape
    # Work at about 128 px: the lungs are large, and heavy smoothing merges ribs into them.
    f = max(1, min(h, w) // 128)
    small = _block_mean(img, f)
    sh, sw = small.shape
    sm = ndimage.gaussian_filter(small, sigma=max(1.0, min(sh, sw) / 30))
    # Prior: where lungs sit on a PA chest film; inside it, the darker half is lung.
    yy, xx = np.mgrid[0:sh, 0:sw]
    sides_small = np.zeros((sh, sw), np.int8)
    air = _air_outside_body(small, sm)
    for side, cx in ((1, 0.3 * sw), (2, 0.7 * sw)):
        prior = ((yy - 0.42 * sh) / (0.32 * sh)) ** 2 + ((xx - cx) / (0.17 * sw)) ** 2 < 1
        cand = prior & ~air if (prior & ~air).sum() > 0.25 * prior.sum() else prior
        dark = cand & (sm < np.percentile(sm[cand], 40))
        dark = ndimage.binary_fill_holes(ndimage.binary_opening(dark, iterations=1))
        lab, n = ndimage.label(dark)
        if n:
            sizes = ndimage.sum(dark, lab, index=np.arange(1, n + 1))
            dark = lab == int(np.argmax(sizes)) + 1
        # Too little found (unusual image): fall back to the prior itself.
        sides_small[dark if dark.sum() > 0.25 * prior.sum() else prior] = side
    rows = np.minimum(np.arange(h) * sh // h, sh - 1)
    cols = np.minimum(np.arange(w) * sw // w, sw - 1)
    return sides_small[np.ix_(rows, cols)]


def _air_outside_body(small: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """The air beside the body and above the shoulders: far darker than the lungs."""
    lightly = ndimage.gaussian_filter(small, 1.0)
    lo = np.percentile(lightly, 2)
    air = lightly < lo + 0.1 * (np.median(smooth) - lo)
    return ndimage.binary_dilation(air, iterations=3)


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    """Downsample by an integer factor with box averaging (fast, alias-free enough)."""
    if f <= 1:
        return img
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def composite_radiograph(
    seed: SeedLike,
    background: np.ndarray,
    findings: Iterable[str] = (),
    *,
    size: int | tuple[int, int] = 256,
    difficulty: str | Difficulty = "medium",
    pixel_spacing: float = 0.175,
    lung_side: np.ndarray | None = None,
) -> SyntheticImage:
    """Composite findings onto a real radiograph (random crop, exposure and resize).

    Parameters
    ----------
    seed : int, list of int or numpy.random.SeedSequence
        Seed of the crop, exposure variation and findings.
    background : numpy.ndarray
        H x W display image in [0, 1], dense = bright (a PA chest radiograph).
    findings : iterable of str
        Any of ``"nodule"``, ``"consolidation"``, ``"effusion"``.
    size : int or (int, int)
        Output size in pixels.
    difficulty : str or Difficulty
        Size/contrast ranges, in the same units as for the phantoms.
    pixel_spacing : float
        Millimetres per pixel of ``background`` (real chest CR: about 0.15-0.2).
    lung_side : numpy.ndarray, optional
        Lung labels (0/1/2) of ``background``; estimated with
        :func:`estimate_lung_fields` when omitted.

    Returns
    -------
    SyntheticImage
        ``kind`` is ``"composite"``.

    Examples
    --------
    >>> from imaging_tl.synthetic import make_radiograph
    >>> bg = make_radiograph(0, size=200).pixels  # a real radiograph in practice
    >>> img = composite_radiograph(1, bg, ["nodule"], size=128)
    >>> img.pixels.shape, img.labels["nodule"]
    ((128, 128), 1)
    """
    wanted = check_findings(findings)
    diff = get_difficulty(difficulty)
    bg = _checked_background(background)
    shape = (size, size) if isinstance(size, int) else tuple(size)
    base, frngs, _ = random_streams(seed)
    bg, pixel_spacing, lung_side = _shrink(bg, shape, pixel_spacing, lung_side)
    crop = _draw_crop(base, bg.shape, shape)
    img = _crop_and_expose(bg, crop, shape, base)
    sides = _crop_lung_fields(img, lung_side, crop, shape)
    spacing = pixel_spacing * crop[2] / shape[0]
    density = (img * DENSITY_SCALE).astype(np.float32)
    air = (0.7 * (sides > 0)).astype(np.float32)
    density, masks, params = add_findings(
        density, wanted, frngs, lung_side=sides, pixel_spacing=spacing, difficulty=diff, air=air
    )
    pixels = np.clip(density / DENSITY_SCALE, 0, 1).astype(np.float32)
    return SyntheticImage(pixels, "composite", masks, spacing, {"crop": crop, **params}, sides)


def _checked_background(background: np.ndarray) -> np.ndarray:
    """The background as float32, or a clear error if it is not a 2-D display image."""
    bg = np.asarray(background, np.float32)
    if bg.ndim != 2:
        raise ValueError(f"background must be 2-D (H x W), got shape {bg.shape}")
    if not np.isfinite(bg).all() or bg.min() < -1e-3 or bg.max() > 1 + 1e-3:
        raise ValueError("background must be a display image with values in [0, 1]")
    return bg


def _shrink(
    bg: np.ndarray,
    shape: tuple[int, int],
    pixel_spacing: float,
    lung_side: np.ndarray | None,
) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Box-average a background much larger than the output (with its spacing and lungs)."""
    # Resizing 2000 px images with anti-aliasing would dominate the time.
    f = max(1, min(bg.shape) // (2 * max(shape)))
    if f > 1:
        bg = _block_mean(bg, f)
        pixel_spacing *= f
        if lung_side is not None:
            lung_side = np.asarray(lung_side)[: bg.shape[0] * f : f, : bg.shape[1] * f : f]
    return bg, pixel_spacing, lung_side


def _draw_crop(
    rng: np.random.Generator, bg_shape: tuple[int, ...], shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A random crop ``(y0, x0, height, width)``: 90-100% of the image, aspect of the output."""
    h, w = bg_shape
    frac = rng.uniform(0.9, 1.0)
    ch = min(h, int(round(frac * min(h, w * shape[0] / shape[1]))))
    cw = min(w, int(round(ch * shape[1] / shape[0])))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


def _crop_and_expose(
    bg: np.ndarray,
    crop: tuple[int, int, int, int],
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """The crop resized to ``shape``, with a mild random exposure change (a gamma)."""
    y0, x0, ch, cw = crop
    img = resize(
        bg[y0 : y0 + ch, x0 : x0 + cw], shape, order=1, anti_aliasing=True, preserve_range=True
    )
    return np.clip(img, 0, 1) ** rng.uniform(0.9, 1.1)


def _crop_lung_fields(
    img: np.ndarray,
    lung_side: np.ndarray | None,
    crop: tuple[int, int, int, int],
    shape: tuple[int, int],
) -> np.ndarray:
    """Lung labels of the output: the given ones cropped and resized, or estimated."""
    if lung_side is None:
        return estimate_lung_fields(img)
    y0, x0, ch, cw = crop
    ls = np.asarray(lung_side)[y0 : y0 + ch, x0 : x0 + cw]
    sides = resize(ls, shape, order=0, preserve_range=True, anti_aliasing=False)
    return sides.astype(np.int8)
