"""One labelled synthetic image: phantom + findings + detector, with ground-truth masks.

Randomness is split into independent streams (pose/anatomy, each finding, detector noise)
spawned from one :class:`numpy.random.SeedSequence`, so the same seed with and without a
finding gives the *same* image apart from the finding (a counterfactual pair): differences
between them measure exactly what the finding adds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from imaging_tl.synthetic.acquisition import burn_marker, expose_radiograph
from imaging_tl.synthetic.chest import chest_radiograph
from imaging_tl.synthetic.findings import (
    FINDINGS,
    Difficulty,
    add_findings,
    check_findings,
    get_difficulty,
)
from imaging_tl.synthetic.phantom import ct_slice
from imaging_tl.synthetic.sites import SiteProfile, get_site

__all__ = ["SeedLike", "SyntheticImage", "make_ct", "make_radiograph", "random_streams"]

SeedLike = int | list[int] | np.random.SeedSequence


@dataclass
class SyntheticImage:
    """A generated image with its labels and ground truth.

    Attributes
    ----------
    pixels : numpy.ndarray
        float32 H x W: radiographs as a display image in [0, 1] (dense = bright), CT in
        Hounsfield units.
    kind : str
        ``"radiograph"`` or ``"ct"``.
    masks : dict of str to numpy.ndarray
        One non-empty bool mask per finding drawn (keys from ``FINDINGS``).
    pixel_spacing : float
        Millimetres per pixel.
    params : dict
        Drawn parameters of the phantom and each finding.
    lung_side : numpy.ndarray or None
        int8 H x W lung fields: 0 outside, 1 the region on the image left, 2 on the right
        (estimated for composites). Useful to check where a model looks.
    marker : str or None
        The burned-in side marker (``"L"`` or ``"R"``) drawn into the pixels, if any: the
        DICOM writer then sets BurnedInAnnotation ``YES``.
    """

    pixels: np.ndarray
    kind: str
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    pixel_spacing: float = 1.0
    params: dict = field(default_factory=dict)
    lung_side: np.ndarray | None = None
    marker: str | None = None

    @property
    def visibility(self) -> dict[str, float]:
        """Contrast-to-noise ratio of each finding drawn (radiographs; see ``finding_cnr``)."""
        return {k: float(self.params[k]["cnr"]) for k in FINDINGS
                if k in self.params and "cnr" in self.params[k]}

    @property
    def labels(self) -> dict[str, int]:
        """0/1 per finding kind, from the masks (1 exactly when the mask is non-empty)."""
        return {k: int(k in self.masks and bool(self.masks[k].any())) for k in FINDINGS}


def random_streams(
    seed: SeedLike,
) -> tuple[np.random.Generator, list[np.random.Generator], np.random.Generator]:
    """Independent random streams of one image, spawned from its seed.

    Parameters
    ----------
    seed : int, list of int or numpy.random.SeedSequence
        Seed of the image.

    Returns
    -------
    base : numpy.random.Generator
        Pose and anatomy (or, for composites, crop and exposure).
    findings : list of numpy.random.Generator
        One stream per entry of :data:`~imaging_tl.synthetic.findings.FINDINGS`.
    noise : numpy.random.Generator
        Detector or image noise.

    Examples
    --------
    >>> base, findings, noise = random_streams(0)
    >>> len(findings), float(base.random()) == float(random_streams(0)[0].random())
    (3, True)
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    base, finds, noise = ss.spawn(3)
    return (
        np.random.default_rng(base),
        [np.random.default_rng(s) for s in finds.spawn(len(FINDINGS))],
        np.random.default_rng(noise),
    )


def make_radiograph(
    seed: SeedLike,
    findings: Iterable[str] = (),
    *,
    size: int | tuple[int, int] = 256,
    difficulty: str | Difficulty = "medium",
    anatomy_seed: int | list[int] | None = None,
    site: str | SiteProfile | None = None,
    view: str | None = None,
) -> SyntheticImage:
    """Generate one chest radiograph with the requested findings.

    Parameters
    ----------
    seed : int, list of int or numpy.random.SeedSequence
        Seed of this image (pose, findings, noise).
    findings : iterable of str
        Any of ``"nodule"``, ``"consolidation"``, ``"effusion"``.
    size : int or (int, int)
        Output size in pixels.
    difficulty : str or Difficulty
        Size/contrast ranges of the findings.
    anatomy_seed : int or list of int, optional
        The patient's anatomy (shared by all images of one patient).
    site : str or SiteProfile, optional
        Acquisition site (a name in :data:`~imaging_tl.synthetic.sites.SITES` or a
        profile): exposure, noise, positioning, collimation, markers, devices, processing.
        ``"local"`` when omitted.
    view : {"PA", "AP"}, optional
        Drawn from the site's AP share when omitted.

    Returns
    -------
    SyntheticImage

    Examples
    --------
    >>> img = make_radiograph(3, ["nodule"], size=128)
    >>> img.pixels.shape, img.labels
    ((128, 128), {'nodule': 1, 'consolidation': 0, 'effusion': 0})
    >>> make_radiograph(3, size=64, site="public").params["phantom"]["site"]
    'public'
    """
    wanted = check_findings(findings)
    diff = get_difficulty(difficulty)
    prof = get_site(site)
    shape = (size, size) if isinstance(size, int) else tuple(size)
    base, frngs, noise = random_streams(seed)
    ph = chest_radiograph(base, shape, anatomy_seed=anatomy_seed, site=prof, view=view)
    density, masks, params = add_findings(
        ph.density, wanted, frngs, lung_side=ph.lung_side, pixel_spacing=ph.pixel_spacing,
        difficulty=diff, air=ph.lung_air,
    )
    params = {"phantom": ph.params, **params}
    pixels = expose_radiograph(
        density, noise, collimation=ph.collimation, site=prof, pixel_spacing=ph.pixel_spacing,
        scatter_from=ph.density,
    )
    marker = burn_marker(pixels, base) if base.random() < prof.marker_probability else None
    return SyntheticImage(
        pixels, "radiograph", masks, ph.pixel_spacing, params, ph.lung_side, marker
    )


def make_ct(
    seed: SeedLike,
    findings: Iterable[str] = (),
    *,
    size: int | tuple[int, int] = 256,
    difficulty: str | Difficulty = "medium",
    anatomy_seed: int | list[int] | None = None,
    noise_hu: float | None = None,
) -> SyntheticImage:
    """Generate one axial chest CT slice in Hounsfield units with the requested findings.

    Parameters
    ----------
    seed : int, list of int or numpy.random.SeedSequence
        Seed of this slice.
    findings : iterable of str
        Any of ``"nodule"``, ``"consolidation"``, ``"effusion"``.
    size : int or (int, int)
        Output size in pixels.
    difficulty : str or Difficulty
        Size/contrast ranges of the findings.
    anatomy_seed : int or list of int, optional
        The patient's body and organ sizes.
    noise_hu : float, optional
        Standard deviation of the image noise in HU; drawn from 8-25 when omitted.

    Returns
    -------
    SyntheticImage

    Examples
    --------
    >>> ct = make_ct(0, ["nodule"], size=128)
    >>> ct.kind, bool(ct.pixels.min() < -900), ct.labels["nodule"]
    ('ct', True, 1)
    """
    wanted = check_findings(findings)
    diff = get_difficulty(difficulty)
    shape = (size, size) if isinstance(size, int) else tuple(size)
    base, frngs, noise = random_streams(seed)
    ph = ct_slice(base, shape, anatomy_seed=anatomy_seed)
    hu, masks, params = add_findings(
        ph.hu, wanted, frngs, lung_side=ph.lung_side, pixel_spacing=ph.pixel_spacing,
        difficulty=diff, ct=True,
    )
    params = {"phantom": ph.params, **params}
    sigma = float(noise_hu) if noise_hu is not None else float(noise.uniform(8, 25))
    hu = hu + noise.standard_normal(shape).astype(np.float32) * sigma
    params["noise_hu"] = sigma
    return SyntheticImage(
        hu.astype(np.float32), "ct", masks, ph.pixel_spacing, params, ph.lung_side
    )
