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
    FINDINGS,
    Difficulty,
    add_consolidation,
    add_effusion,
    add_nodule,
    get_difficulty,
)
from imaging_tl.synthetic.images import SeedLike, SyntheticImage, _check_findings, _streams
from imaging_tl.synthetic.phantom import DENSITY_SCALE

__all__ = ["composite_radiograph", "estimate_lung_fields"]


def estimate_lung_fields(image: np.ndarray) -> np.ndarray:
    """Rough lung-field estimate on a PA chest radiograph, for placing findings.

    The lungs are taken as the two largest dark regions (below the 35th percentile of the
    smoothed image) inside a central box; without a plausible result, two ellipses at the
    usual lung positions are returned. Good enough to keep findings inside the chest, not a
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
    sm = ndimage.gaussian_filter(img, sigma=max(1.0, min(h, w) / 64))
    box = np.zeros((h, w), bool)
    box[int(0.08 * h) : int(0.85 * h), int(0.08 * w) : int(0.92 * w)] = True
    dark = (sm < np.percentile(sm[box], 35)) & box
    dark = ndimage.binary_opening(dark, iterations=2)
    lab, n = ndimage.label(dark)
    sides = np.zeros((h, w), np.int8)
    if n:
        sizes = ndimage.sum(dark, lab, index=np.arange(1, n + 1))
        big = [int(i) + 1 for i in np.argsort(sizes)[::-1][:2] if sizes[i] > 0.01 * h * w]
        centres = {i: ndimage.center_of_mass(lab == i)[1] for i in big}
        ordered = sorted(big, key=centres.get)
        if len(ordered) == 2:
            sides[lab == ordered[0]], sides[lab == ordered[1]] = 1, 2
        for i in ordered[:1] if len(ordered) == 1 else []:
            sides[lab == i] = 1 if centres[i] < w / 2 else 2
    if (sides == 1).sum() < 0.01 * h * w or (sides == 2).sum() < 0.01 * h * w:
        yy, xx = np.mgrid[0:h, 0:w]
        for side, cx in ((1, 0.3 * w), (2, 0.7 * w)):
            ell = ((yy - 0.45 * h) / (0.28 * h)) ** 2 + ((xx - cx) / (0.14 * w)) ** 2 < 1
            sides[ell] = side
    return sides


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
    wanted = _check_findings(findings)
    diff = get_difficulty(difficulty)
    bg = np.asarray(background, np.float32)
    if bg.ndim != 2:
        raise ValueError(f"background must be 2-D (H x W), got shape {bg.shape}")
    if not np.isfinite(bg).all() or bg.min() < -1e-3 or bg.max() > 1 + 1e-3:
        raise ValueError("background must be a display image with values in [0, 1]")
    shape = (size, size) if isinstance(size, int) else tuple(size)
    base, frngs, _ = _streams(seed)
    h, w = bg.shape
    # Random crop (90-100% of the image, aspect of the output) and a mild exposure change.
    frac = base.uniform(0.9, 1.0)
    ch = min(h, int(round(frac * min(h, w * shape[0] / shape[1]))))
    cw = min(w, int(round(ch * shape[1] / shape[0])))
    y0 = int(base.integers(0, h - ch + 1))
    x0 = int(base.integers(0, w - cw + 1))
    crop = bg[y0 : y0 + ch, x0 : x0 + cw]
    img = resize(crop, shape, order=1, anti_aliasing=True, preserve_range=True)
    img = np.clip(img, 0, 1) ** base.uniform(0.9, 1.1)
    if lung_side is None:
        sides = estimate_lung_fields(img)
    else:
        ls = np.asarray(lung_side)[y0 : y0 + ch, x0 : x0 + cw]
        sides = resize(ls, shape, order=0, preserve_range=True, anti_aliasing=False)
        sides = sides.astype(np.int8)
    spacing = pixel_spacing * ch / shape[0]
    density = (img * DENSITY_SCALE).astype(np.float32)
    lungs = sides > 0
    air = (0.7 * lungs).astype(np.float32)
    masks: dict[str, np.ndarray] = {}
    params: dict = {"crop": (y0, x0, ch, cw)}
    for kind, frng in zip(FINDINGS, frngs, strict=True):
        if kind not in wanted:
            continue
        if kind == "nodule":
            f = add_nodule(density, lungs, frng, pixel_spacing=spacing, difficulty=diff)
        elif kind == "consolidation":
            f = add_consolidation(density, sides, frng, difficulty=diff, air=air)
        else:
            f = add_effusion(density, sides, frng, difficulty=diff, air=air)
        density, masks[kind], params[kind] = f.image, f.mask, f.params
    pixels = np.clip(density / DENSITY_SCALE, 0, 1).astype(np.float32)
    return SyntheticImage(pixels, "composite", masks, spacing, params, sides)
