"""Findings drawn into phantoms: nodules, consolidations and pleural effusions.

Each function adds one finding to an image in its physical domain (radiograph density, or
CT Hounsfield units) and returns the new image, the finding's mask (the ground truth for
labels and tests) and the drawn parameters. Difficulty is a :class:`Difficulty` of ranges
(size, contrast); :func:`get_difficulty` gives the named presets.

The three findings differ in character on purpose: a nodule is small, round and focal; a
consolidation is a large, patchy, ill-defined opacity inside one lung; an effusion is a
homogeneous basal opacity with a meniscus that blunts the costophrenic angle. Binary,
multi-class and multi-label tasks can be built from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from imaging_tl.synthetic.lesions import contrast_for_cnr, finding_cnr, nodule_profile
from imaging_tl.synthetic.noise import smooth_noise

__all__ = [
    "DIFFICULTIES",
    "FINDINGS",
    "Difficulty",
    "Finding",
    "add_consolidation",
    "add_effusion",
    "add_findings",
    "add_nodule",
    "check_findings",
    "finding_cnr",
    "get_difficulty",
]

FINDINGS = ("nodule", "consolidation", "effusion")


@dataclass(frozen=True)
class Difficulty:
    """Ranges from which finding sizes and contrasts are drawn (uniformly).

    Contrasts are in the image's physical units: radiograph density (the lung fields are
    about 0.6-0.8 less dense than soft tissue) or, for CT, the fraction of the way from lung
    parenchyma to soft tissue.

    Attributes
    ----------
    nodule_radius_mm : tuple of float
        Nodule radius range in millimetres.
    nodule_contrast : tuple of float
        Peak added density of a nodule.
    consolidation_contrast : tuple of float
        Fraction of the lung air replaced in a consolidation.
    effusion_height : tuple of float
        Fluid height as a fraction of the lung height.
    cnr : tuple of float, optional
        Visibility range: when set, each finding's contrast is chosen so that its
        contrast-to-noise ratio (mean added density over the finding's mask divided by the
        standard deviation of the background in a ring around it, see :func:`finding_cnr`)
        is drawn uniformly from this range; the contrast ranges above are then unused.

    Examples
    --------
    >>> Difficulty(nodule_radius_mm=(4.0, 8.0), nodule_contrast=(0.1, 0.2)).nodule_radius_mm
    (4.0, 8.0)
    """

    nodule_radius_mm: tuple[float, float] = (5.0, 12.0)
    nodule_contrast: tuple[float, float] = (0.12, 0.3)
    consolidation_contrast: tuple[float, float] = (0.25, 0.6)
    effusion_height: tuple[float, float] = (0.12, 0.3)
    cnr: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name, rng in asdict(self).items():
            if rng is None:
                continue
            lo, hi = rng
            if not (0 <= lo <= hi):
                raise ValueError(f"Difficulty.{name}: need 0 <= low <= high, got ({lo}, {hi})")


#: The presets, defined by visibility (CNR ranges); sizes in mm through PixelSpacing.
#: Calibrated at 224 px with a from-scratch detector trained on 2,800 films (see
#: benchmarks/synthetic_calibration.py): a CNR below ~1.5 was not found at all, and the
#: AUC rises with CNR and nodule size to ~0.97 for 8-16 mm nodules at CNR 5-8.
DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty((8.0, 16.0), (0.3, 0.5), (0.45, 0.8), (0.2, 0.35), cnr=(5.0, 9.0)),
    "medium": Difficulty((5.0, 12.0), (0.12, 0.3), (0.25, 0.6), (0.12, 0.3), cnr=(2.5, 5.0)),
    "hard": Difficulty((3.0, 8.0), (0.05, 0.15), (0.12, 0.35), (0.06, 0.18), cnr=(2.5, 4.0)),
}


def get_difficulty(difficulty: str | Difficulty) -> Difficulty:
    """Return a :class:`Difficulty` from a preset name or pass one through.

    Parameters
    ----------
    difficulty : str or Difficulty
        ``"easy"``, ``"medium"`` or ``"hard"``, or a :class:`Difficulty`.

    Returns
    -------
    Difficulty

    Examples
    --------
    >>> get_difficulty("hard").nodule_radius_mm
    (3.0, 8.0)
    """
    if isinstance(difficulty, Difficulty):
        return difficulty
    try:
        return DIFFICULTIES[difficulty]
    except (KeyError, TypeError):
        raise ValueError(
            f"difficulty: unknown preset {difficulty!r}; use one of {sorted(DIFFICULTIES)} "
            "or a Difficulty(...)"
        ) from None


def check_findings(findings: Iterable[str]) -> set[str]:
    """Check finding names against :data:`FINDINGS` and return them as a set.

    Parameters
    ----------
    findings : iterable of str
        Any of ``"nodule"``, ``"consolidation"``, ``"effusion"``.

    Returns
    -------
    set of str

    Raises
    ------
    ValueError
        If a name is not in :data:`FINDINGS`.

    Examples
    --------
    >>> sorted(check_findings(["effusion", "nodule"]))
    ['effusion', 'nodule']
    """
    wanted = set(findings)
    unknown = wanted - set(FINDINGS)
    if unknown:
        raise ValueError(f"findings: unknown {sorted(unknown)}; choose from {list(FINDINGS)}")
    return wanted


@dataclass
class Finding:
    """One drawn finding.

    Attributes
    ----------
    kind : str
        ``"nodule"``, ``"consolidation"`` or ``"effusion"``.
    image : numpy.ndarray
        The image with the finding added (same dtype and units as the input).
    mask : numpy.ndarray
        bool mask of the finding (non-empty).
    params : dict
        The drawn parameters (centre, size, contrast, ...).
    """

    kind: str
    image: np.ndarray
    mask: np.ndarray
    params: dict


def _pick_point(rng: np.random.Generator, region: np.ndarray, what: str) -> tuple[int, int]:
    # Uniform over the region's pixels without listing them all: a row by its pixel count,
    # then a pixel of that row.
    per_row = np.count_nonzero(region, axis=1)
    total = int(per_row.sum())
    if total == 0:
        raise ValueError(f"{what}: the allowed region is empty; nowhere to place the finding")
    i = int(rng.integers(total))
    y = int(np.searchsorted(np.cumsum(per_row), i, side="right"))
    xs = np.flatnonzero(region[y])
    return y, int(xs[i - (int(per_row[:y].sum()))])


def _draw_nodule(
    image: np.ndarray, prof: np.ndarray, mask: np.ndarray, contrast: float, *, ct: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The image with the nodule of thickness ``prof`` added, and the nodule's mask."""
    if ct:
        # Flat cross-section with a partial-volume rim; 3x the radiograph contrast spans
        # ground-glass (faint) to solid nodules.
        frac = np.clip(prof * 4.0, 0, 1)
        return image + frac * min(1.0, 3.0 * contrast) * (45.0 - image), frac > 0.5
    return image + contrast * prof, mask


def _erode(region: np.ndarray, steps: int) -> np.ndarray:
    """``region`` eroded ``steps`` times by a 3 x 3 cross (the image border counts as outside)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = cv2.erode(region.astype(np.uint8), cross, iterations=steps,
                    borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index where ``mask`` has a True pixel, along the other axis's rows."""
    idx = np.flatnonzero(mask.any(axis=axis))
    return int(idx[0]), int(idx[-1])


def _pick_lung(
    lung_side: np.ndarray, side: int | None, rng: np.random.Generator, what: str
) -> tuple[int, np.ndarray]:
    """The lung a finding goes into (``side``, or drawn from the non-empty ones) and its mask."""
    lung_side = lung_side.astype(np.int8)
    sides = [s for s in (1, 2) if (lung_side == s).any()]
    if not sides:
        raise ValueError(f"{what}: the lung mask is empty")
    s = int(side) if side is not None else int(rng.choice(sides))
    return s, lung_side == s


def add_nodule(
    image: np.ndarray,
    region: np.ndarray,
    rng: np.random.Generator,
    *,
    pixel_spacing: float,
    difficulty: str | Difficulty = "medium",
    ct: bool = False,
    centre: tuple[float, float] | None = None,
    radius_mm: float | None = None,
    contrast: float | None = None,
) -> Finding:
    """Add a round or lobulated nodule.

    The nodule is the union of one to three overlapping spheres (lobulated when more than
    one). On a radiograph it adds ``contrast`` times its projected thickness to the density;
    on a CT slice it pulls the Hounsfield units ``min(1, 3 * contrast)`` of the way to soft
    tissue (45 HU) over its cross-section (ground-glass to solid), with a partial-volume rim.

    Parameters
    ----------
    image : numpy.ndarray
        Radiograph density or CT slice in HU (not modified).
    region : numpy.ndarray of bool
        Where the nodule centre may fall (e.g. the lung mask).
    rng : numpy.random.Generator
        Source of randomness.
    pixel_spacing : float
        Millimetres per pixel, to turn the radius range into pixels.
    difficulty : str or Difficulty
        Ranges of radius and contrast.
    ct : bool
        Draw into Hounsfield units instead of radiograph density.
    centre, radius_mm, contrast : optional
        Fix these instead of drawing them (e.g. the same nodule on a patient's follow-up).

    Returns
    -------
    Finding

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32)
    >>> f = add_nodule(img, np.ones((64, 64), bool), np.random.default_rng(0), pixel_spacing=1)
    >>> bool(f.mask.any()), bool(f.image.max() > 0)
    (True, True)
    """
    d = get_difficulty(difficulty)
    if pixel_spacing <= 0:
        raise ValueError(f"pixel_spacing must be > 0, got {pixel_spacing}")
    r_mm = float(radius_mm) if radius_mm is not None else float(rng.uniform(*d.nodule_radius_mm))
    c = float(contrast) if contrast is not None else float(rng.uniform(*d.nodule_contrast))
    target = float(rng.uniform(*d.cnr)) if d.cnr is not None else None
    r = max(r_mm / pixel_spacing, 1.0)
    if centre is None:
        # Keep the centre away from the region's edge so most of the nodule is inside.
        inner = _erode(region, max(1, int(r * 0.6)))
        cy, cx = _pick_point(rng, inner if inner.any() else region, "add_nodule")
    else:
        cy, cx = centre
    prof, mask, info = nodule_profile(rng, image.shape, cy, cx, r)
    if target is not None and contrast is None and not ct:
        c = contrast_for_cnr(image, prof, mask, target, region)
    out, mask = _draw_nodule(image, prof, mask, c, ct=ct)
    params = {"centre": (float(cy), float(cx)), "radius_mm": r_mm, "contrast": c, **info}
    if not ct:
        params["cnr"] = finding_cnr(out, image, mask, region)
    return Finding("nodule", out.astype(image.dtype), mask, params)


def add_consolidation(
    image: np.ndarray,
    lung_side: np.ndarray,
    rng: np.random.Generator,
    *,
    difficulty: str | Difficulty = "medium",
    ct: bool = False,
    side: int | None = None,
    air: np.ndarray | None = None,
) -> Finding:
    """Add a patchy, ill-defined airspace opacity inside one lung.

    A lobe-sized ellipse is filled with thresholded band-limited noise (patchy, with soft
    edges) and spared tubes that mimic air bronchograms; on a radiograph the opacity adds
    density, on CT it raises the HU towards soft tissue.

    Parameters
    ----------
    image : numpy.ndarray
        Radiograph density or CT slice in HU.
    lung_side : numpy.ndarray
        int labels: 0 outside the lungs, 1 and 2 the two lungs (a bool lung mask works too).
    rng : numpy.random.Generator
        Source of randomness.
    difficulty : str or Difficulty
        Range of the replaced air fraction.
    ct : bool
        Draw into Hounsfield units.
    side : int, optional
        Which lung (1 or 2); drawn when omitted.
    air : numpy.ndarray, optional
        Radiographs: the density removed by lung air (:attr:`ChestPhantom.lung_air`); the
        opacity replaces that fraction of it. A flat 0.7 inside the lungs when omitted.

    Returns
    -------
    Finding

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32)
    >>> f = add_consolidation(img, np.ones((64, 64), np.int8), np.random.default_rng(0))
    >>> bool(f.mask.any())
    True
    """
    d = get_difficulty(difficulty)
    s, lung = _pick_lung(lung_side, side, rng, "add_consolidation")
    c = float(rng.uniform(*d.consolidation_contrast))
    (top, bottom), (left, right) = _extent(lung, 1), _extent(lung, 0)
    cy, cx = _pick_point(rng, lung, "add_consolidation")
    ry = max(3.0, (bottom - top) * rng.uniform(0.18, 0.32))
    rx = max(3.0, (right - left) * rng.uniform(0.3, 0.5))
    # Work in a box around the ellipse: beyond 1.8 radii the opacity is 0 for any patch.
    y0, y1 = max(0, int(cy - 1.8 * ry)), min(image.shape[0], int(cy + 1.8 * ry) + 2)
    x0, x1 = max(0, int(cx - 1.8 * rx)), min(image.shape[1], int(cx + 1.8 * rx) + 2)
    box = (slice(y0, y1), slice(x0, x1))
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    ell = 1.0 - (yy / ry) ** 2 - (xx / rx) ** 2
    patch = smooth_noise(rng, ell.shape, max(3.0, min(rx, ry) / 2.5))
    part = np.clip(ell * 2.5 + 0.6 * patch, 0, 1) * lung[box]
    # Air bronchograms: thin spared lines inside the densest part.
    bronch = np.abs(smooth_noise(rng, ell.shape, max(2.0, min(rx, ry) / 2))) < 0.04
    part = np.where(bronch & (part > 0.7), part * 0.75, part).astype(np.float32)
    # Lobar boundary: most consolidations stop sharply at a fissure through the lung.
    lobar = bool(rng.random() < 0.6)
    fissure = float(rng.uniform(-0.5, 0.5))
    if lobar:
        normal = (np.cos(fissure) * yy + np.sin(fissure) * xx) / max(1.0, ry * 0.3)
        part = (part * np.clip(1.5 - normal * 3.0, 0, 1)).astype(np.float32)
    amount = np.zeros(image.shape, np.float32)
    amount[box] = part
    target = float(rng.uniform(*d.cnr)) if d.cnr is not None else None
    mask = amount > 0.35
    if not mask.any():
        mask[cy, cx] = True
        amount[cy, cx] = max(float(amount[cy, cx]), 1.0)
    params = {"side": s, "centre": (cy, cx), "radii": (float(ry), float(rx)), "lobar": lobar}
    if ct:
        out = image + amount * c * (30.0 - image)
    else:
        air_map = air if air is not None else 0.7 * lung
        if target is not None:
            c = min(1.5, contrast_for_cnr(image, amount * air_map, mask, target, lung))
        out = image + amount * c * air_map
        params["cnr"] = finding_cnr(out, image, mask, lung)
    params["contrast"] = c
    return Finding("consolidation", out.astype(image.dtype), mask, params)


def add_effusion(
    image: np.ndarray,
    lung_side: np.ndarray,
    rng: np.random.Generator,
    *,
    difficulty: str | Difficulty = "medium",
    ct: bool = False,
    side: int | None = None,
    air: np.ndarray | None = None,
) -> Finding:
    """Add a pleural-effusion-like opacity at the base of one lung.

    On a radiograph: homogeneous fluid density filling the lung base up to a meniscus that
    rises laterally, blunting the costophrenic angle. On CT: a dependent (posterior)
    crescent of fluid (about 10 HU) compressing the lung.

    Parameters
    ----------
    image : numpy.ndarray
        Radiograph density or CT slice in HU.
    lung_side : numpy.ndarray
        int labels of the two lungs (1, 2; 0 outside) or a bool lung mask.
    rng : numpy.random.Generator
        Source of randomness.
    difficulty : str or Difficulty
        Range of the fluid height (fraction of the lung height).
    ct : bool
        Draw into Hounsfield units.
    side : int, optional
        Which lung (1 or 2); drawn when omitted.
    air : numpy.ndarray, optional
        Radiographs: the density removed by lung air (:attr:`ChestPhantom.lung_air`), which
        the fluid adds back. A flat 0.7 inside the lungs when omitted.

    Returns
    -------
    Finding

    Examples
    --------
    >>> side = np.zeros((64, 64), np.int8); side[10:50, 5:30] = 1
    >>> f = add_effusion(np.zeros((64, 64), np.float32), side, np.random.default_rng(0))
    >>> bool(f.mask[45:50].any()), bool(f.mask[10:15].any())
    (True, False)
    """
    d = get_difficulty(difficulty)
    s, lung = _pick_lung(lung_side, side, rng, "add_effusion")
    (top, bottom), (left, right) = _extent(lung, 1), _extent(lung, 0)
    frac = float(rng.uniform(*d.effusion_height))
    height = max(2.0, (bottom - top) * frac)
    yy = np.arange(image.shape[0], dtype=np.float32)[:, None]
    xx = np.arange(image.shape[1], dtype=np.float32)[None, :]
    if ct:
        # Dependent fluid lies posteriorly (image bottom for a supine patient).
        level = bottom - height
        amount = np.clip((yy - level) / 2.0, 0, 1) * lung
        out = image + amount * (10.0 - image)
    else:
        # The meniscus climbs towards the lateral chest wall.
        # 0 at the medial edge, 1 at the lateral chest wall (side 1 is on the image left).
        lateral = (xx - left) / max(1, right - left)
        if s == 1:
            lateral = 1.0 - lateral
        level = bottom - height * (0.6 + 0.8 * np.clip(lateral, 0, 1) ** 3)
        amount = np.clip((yy - level) / 3.0, 0, 1) * lung
        air_map = air if air is not None else 0.7 * lung
    mask = amount > 0.5
    if not mask.any():
        mask[bottom, (left + right) // 2] = True
    params: dict = {"side": s, "height_fraction": frac}
    if not ct:
        fill = 1.0  # fluid replaces the air of the lung base
        if d.cnr is not None:
            target = float(rng.uniform(*d.cnr))
            fill = min(1.5, contrast_for_cnr(image, amount * air_map, mask, target, lung))
        out = image + fill * amount * air_map
        params.update(fill=fill, cnr=finding_cnr(out, image, mask, lung))
    return Finding("effusion", out.astype(image.dtype), mask, params)


def add_findings(
    image: np.ndarray,
    findings: Iterable[str],
    rngs: Sequence[np.random.Generator],
    *,
    lung_side: np.ndarray,
    pixel_spacing: float,
    difficulty: str | Difficulty = "medium",
    ct: bool = False,
    air: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Draw several findings into one image, in :data:`FINDINGS` order.

    Each finding kind has its own random stream (``rngs[i]`` for ``FINDINGS[i]``), so adding
    or leaving out one finding does not change how the others are drawn: the same seeds with
    and without a finding give a counterfactual pair.

    Parameters
    ----------
    image : numpy.ndarray
        Radiograph density or CT slice in HU (not modified).
    findings : iterable of str
        The findings to draw (see :func:`check_findings`).
    rngs : sequence of numpy.random.Generator
        One generator per entry of :data:`FINDINGS`.
    lung_side : numpy.ndarray
        int labels of the two lungs (1, 2; 0 outside); nodules fall inside ``lung_side > 0``.
    pixel_spacing : float
        Millimetres per pixel.
    difficulty : str or Difficulty
        Size and contrast ranges.
    ct : bool
        Draw into Hounsfield units instead of radiograph density.
    air : numpy.ndarray, optional
        Radiographs: the density removed by lung air, which consolidations and effusions
        replace (see :func:`add_consolidation`).

    Returns
    -------
    image : numpy.ndarray
        The image with the findings.
    masks : dict of str to numpy.ndarray
        The mask of each finding drawn.
    params : dict
        The drawn parameters of each finding.

    Examples
    --------
    >>> side = np.zeros((64, 64), np.int8); side[8:56, 4:30] = 1; side[8:56, 34:60] = 2
    >>> rngs = [np.random.default_rng(i) for i in range(len(FINDINGS))]
    >>> img, masks, params = add_findings(
    ...     np.zeros((64, 64), np.float32), ["effusion", "nodule"], rngs,
    ...     lung_side=side, pixel_spacing=1.0)
    >>> list(masks), bool(img.max() > 0)
    (['nodule', 'effusion'], True)
    """
    wanted = check_findings(findings)
    diff = get_difficulty(difficulty)
    medium = {"ct": True} if ct else {"air": air}
    masks: dict[str, np.ndarray] = {}
    params: dict = {}
    for kind, rng in zip(FINDINGS, rngs, strict=True):
        if kind not in wanted:
            continue
        if kind == "nodule":
            f = add_nodule(
                image, lung_side > 0, rng, pixel_spacing=pixel_spacing, difficulty=diff, ct=ct
            )
        elif kind == "consolidation":
            f = add_consolidation(image, lung_side, rng, difficulty=diff, **medium)
        else:
            f = add_effusion(image, lung_side, rng, difficulty=diff, **medium)
        image, masks[kind], params[kind] = f.image, f.mask, f.params
    return image, masks, params
