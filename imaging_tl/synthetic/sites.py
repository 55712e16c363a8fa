"""Named acquisition sites: how a hospital's X-ray rooms make its radiographs look.

A :class:`SiteProfile` holds the ranges from which each image's acquisition is drawn:
exposure (dose), detector blur, scatter, anti-scatter grid lines, collimation, patient
positioning (rotation, inspiration, AP share), burned-in markers and devices, and the
site's image processing (contrast curve, unsharp masking, texture of the noise). Two sites
with different profiles give a real domain shift: the same patients look systematically
different, as images from two hospitals do.

:data:`SITES` holds the named profiles (``"local"``: a well-run PA department with gentle
processing; ``"public"``: the mix of a large public collection, more AP/portable films,
stronger processing, more devices, lower dose). ``make_radiograph``, ``generate_dataset``
and ``python -m imaging_tl.synthetic --site`` take a name or a profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

__all__ = ["SITES", "SiteProfile", "get_site"]


@dataclass(frozen=True)
class SiteProfile:
    """Ranges (low, high) from which each radiograph's acquisition is drawn uniformly.

    Attributes
    ----------
    name : str
        Short name, recorded in the images' parameters.
    dose : tuple of float
        Photons per 0.15 mm detector element in the open beam (scaled to the pixel size):
        higher means less quantum noise.
    blur_mm : tuple of float
        Detector blur (Gaussian sigma, mm).
    scatter : tuple of float
        Scatter-to-primary fraction reaching the detector (low-contrast haze).
    grid_probability : float
        Chance that the anti-scatter grid's lines show (fine vertical stripes).
    collimation : tuple of float
        Fraction of each image side the collimator may block (0 = open field).
    rotation_deg : float
        Standard deviation of the patient's in-plane rotation.
    inspiration : tuple of float
        Inspiration depth (1 = full inspiration; lower raises the diaphragm).
    ap_fraction : float
        Share of AP (supine/portable) films: heart magnified, scapulae over the lungs.
    marker_probability : float
        Chance of a burned-in side marker (``L``/``R``); flagged in the DICOM header.
    device_probability : float
        Chance of devices on a film (ECG electrodes and wires, a central line): confounders,
        never labels.
    contrast : tuple of float
        Steepness of the site's sigmoid contrast curve (higher = punchier film).
    gamma : tuple of float
        Exponent applied after the contrast curve (brightness of the mid-greys).
    unsharp_amount : tuple of float
        Strength of the edge enhancement (unsharp masking).
    unsharp_mm : float
        Width (Gaussian sigma, mm) of the unsharp mask.
    texture_beta : tuple of float
        Exponent of the 1/f^beta power spectrum of the anatomical texture.

    Examples
    --------
    >>> SITES["local"].name, SITES["public"].ap_fraction > SITES["local"].ap_fraction
    ('local', True)
    >>> get_site(SITES["local"]) is SITES["local"]
    True
    """

    name: str = "local"
    dose: tuple[float, float] = (4000.0, 9000.0)
    blur_mm: tuple[float, float] = (0.15, 0.3)
    scatter: tuple[float, float] = (0.08, 0.18)
    grid_probability: float = 0.2
    collimation: tuple[float, float] = (0.0, 0.06)
    rotation_deg: float = 3.5
    inspiration: tuple[float, float] = (0.9, 1.05)
    ap_fraction: float = 0.15
    marker_probability: float = 0.3
    device_probability: float = 0.15
    contrast: tuple[float, float] = (3.0, 4.0)
    gamma: tuple[float, float] = (0.9, 1.1)
    unsharp_amount: tuple[float, float] = (0.2, 0.5)
    unsharp_mm: float = 6.0
    texture_beta: tuple[float, float] = (2.6, 3.0)

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if isinstance(value, tuple) and not 0 <= value[0] <= value[1]:
                raise ValueError(f"SiteProfile.{key}: need 0 <= low <= high, got {value}")
        for key in ("grid_probability", "ap_fraction", "marker_probability",
                    "device_probability"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"SiteProfile.{key}: a probability in [0, 1]")


#: The named sites. ``local`` is the default of every generator function.
SITES: dict[str, SiteProfile] = {
    "local": SiteProfile(),
    "public": replace(
        SiteProfile(),
        name="public",
        dose=(1500.0, 5000.0),
        blur_mm=(0.25, 0.5),
        scatter=(0.15, 0.35),
        grid_probability=0.5,
        collimation=(0.02, 0.12),
        rotation_deg=5.0,
        inspiration=(0.75, 1.0),
        ap_fraction=0.45,
        marker_probability=0.7,
        device_probability=0.45,
        contrast=(4.5, 6.5),
        gamma=(0.75, 0.95),
        unsharp_amount=(0.6, 1.1),
        unsharp_mm=3.0,
        texture_beta=(2.3, 2.7),
    ),
}


def get_site(site: str | SiteProfile | None) -> SiteProfile:
    """Return a :class:`SiteProfile` from a name in :data:`SITES`, or pass one through.

    Parameters
    ----------
    site : str, SiteProfile or None
        A name (``"local"``, ``"public"``), a profile, or None for ``"local"``.

    Returns
    -------
    SiteProfile

    Examples
    --------
    >>> get_site("public").name
    'public'
    """
    if site is None:
        return SITES["local"]
    if isinstance(site, SiteProfile):
        return site
    try:
        return SITES[site]
    except (KeyError, TypeError):
        raise ValueError(
            f"site: unknown {site!r}; use one of {sorted(SITES)} or a SiteProfile(...)"
        ) from None
