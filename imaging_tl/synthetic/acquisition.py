"""The detector and the site's processing: from density to a finished display image.

:func:`expose_radiograph` simulates transmission (``exp(-k * density)``), scatter (a wide
blur of the transmitted beam), anti-scatter grid lines, detector blur, quantum noise
(variance proportional to the signal), the log response, and the site's processing: a
sigmoid contrast curve, a gamma and unsharp masking. Every step is local or uses fixed
curves (no histogram equalisation), so a finding changes the image only near itself.
:func:`burn_marker` draws a burned-in side marker (``L`` or ``R``).
"""

from __future__ import annotations

import numpy as np

from imaging_tl.synthetic.noise import blur
from imaging_tl.synthetic.sites import SiteProfile, get_site

__all__ = ["DENSITY_SCALE", "burn_marker", "expose_radiograph", "processing_reach"]

#: Density that maps to full brightness (1.0) before the site's contrast curve: display
#: units times this are density units, so findings can be composited onto display images.
DENSITY_SCALE = 3.2
_K = 1.6  # attenuation per density unit
_MID = 0.42  # centre of the sigmoid contrast curve, in display units

_GLYPHS = {
    "L": ["100", "100", "100", "100", "111"],
    "R": ["110", "101", "110", "101", "101"],
}


def _sigmoid_curve(x: np.ndarray, steep: float) -> np.ndarray:
    """A sigmoid contrast curve mapping [0, 1] onto [0, 1] (steeper = more contrast)."""
    lo = 1.0 / (1.0 + np.exp(steep * _MID))
    hi = 1.0 / (1.0 + np.exp(-steep * (1.0 - _MID)))
    y = 1.0 / (1.0 + np.exp(-steep * (x - _MID)))
    return np.clip((y - lo) / (hi - lo), 0.0, 1.0)


def processing_reach(site: str | SiteProfile | None, pixel_spacing: float) -> int:
    """How far (pixels) the site's filters carry a local change (unsharp mask, blur).

    Examples
    --------
    >>> processing_reach("local", 1.0) > 0
    True
    """
    prof = get_site(site)
    sigma = prof.unsharp_mm / pixel_spacing
    reach = 4 * sigma + 2 * max(1, sigma // 2) + 4 * prof.blur_mm[1] / pixel_spacing
    return int(np.ceil(reach)) + 2


def expose_radiograph(
    density: np.ndarray,
    rng: np.random.Generator,
    *,
    collimation: np.ndarray | None = None,
    dose: float | None = None,
    contrast_gamma: float | None = None,
    site: str | SiteProfile | None = None,
    pixel_spacing: float = 0.4,
    scatter_from: np.ndarray | None = None,
) -> np.ndarray:
    """Simulate the detector and the site's processing, dense = bright.

    Parameters
    ----------
    density : numpy.ndarray
        Line integrals (e.g. :attr:`ChestPhantom.density` with findings added).
    rng : numpy.random.Generator
        Source of the drawn acquisition settings and the noise.
    collimation : numpy.ndarray of bool, optional
        Unexposed area (comes out bright).
    dose : float, optional
        Photons per 0.15 mm detector element; drawn from the site's range when omitted.
    contrast_gamma : float, optional
        Exponent after the contrast curve; drawn from the site's range when omitted.
    site : str or SiteProfile, optional
        The site (``"local"`` when omitted).
    pixel_spacing : float
        Millimetres per pixel (scales dose per pixel, blur and filter widths).
    scatter_from : numpy.ndarray, optional
        Density the scatter is computed from (the finding-free phantom, so that findings
        stay local); ``density`` when omitted.

    Returns
    -------
    numpy.ndarray
        float32 in [0, 1], dense = bright.

    Examples
    --------
    >>> from imaging_tl.synthetic.chest import chest_radiograph
    >>> rng = np.random.default_rng(0)
    >>> p = chest_radiograph(rng, (64, 64))
    >>> img = expose_radiograph(p.density, rng, collimation=p.collimation)
    >>> float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    True
    """
    prof = get_site(site)
    ps = float(pixel_spacing)
    d = float(dose) if dose else float(rng.uniform(*prof.dose))
    d *= (ps / 0.15) ** 2
    gamma = float(contrast_gamma) if contrast_gamma else float(rng.uniform(*prof.gamma))
    scatter = float(rng.uniform(*prof.scatter))
    blur_px = float(rng.uniform(*prof.blur_mm)) / ps
    steep = float(rng.uniform(*prof.contrast))
    amount = float(rng.uniform(*prof.unsharp_amount))
    grid = rng.random() < prof.grid_probability
    grid_pitch, grid_depth = float(rng.uniform(2.2, 3.6)), float(rng.uniform(0.01, 0.03))
    dens = density.astype(np.float32)
    primary = np.exp(-_K * dens)
    source = primary if scatter_from is None else np.exp(-_K * scatter_from.astype(np.float32))
    total = primary + scatter * blur(source, 30.0 / ps)
    if grid:
        cols = np.arange(dens.shape[1], dtype=np.float32)
        total *= 1.0 - grid_depth * np.cos(2 * np.pi * cols / grid_pitch)[None, :]
    if blur_px >= 0.3:
        total = blur(total, blur_px)
    counts = total * d
    counts += rng.standard_normal(dens.shape, dtype=np.float32) * np.sqrt(counts + 1.0)
    signal = -np.log(np.clip(counts, 1.0, None) / (d * (1 + scatter))) / _K
    out = _sigmoid_curve(np.clip(signal / DENSITY_SCALE, 0, 1), steep) ** gamma
    sigma = prof.unsharp_mm / ps
    out = out + amount * (out - blur(out, sigma))
    out = np.clip(out, 0, 1)
    if collimation is not None and collimation.any():
        out[collimation] = np.clip(
            0.96 + 0.004 * rng.standard_normal(int(collimation.sum())), 0, 1
        )
    return out.astype(np.float32)


def burn_marker(image: np.ndarray, rng: np.random.Generator, letter: str | None = None) -> str:
    """Burn a side marker (``L`` or ``R``, white) into a top corner of ``image`` in place.

    Parameters
    ----------
    image : numpy.ndarray
        Display image in [0, 1] (modified).
    rng : numpy.random.Generator
        Chooses the letter (unless given), the corner and the size.
    letter : {"L", "R"}, optional
        The letter to draw.

    Returns
    -------
    str
        The letter drawn.

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32)
    >>> burn_marker(img, np.random.default_rng(0), "R"), bool(img.max() == 1.0)
    ('R', True)
    """
    letter = letter or str(rng.choice(["L", "R"]))
    h, w = image.shape
    cell = max(1, int(round(min(h, w) * rng.uniform(0.008, 0.014))))
    glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[letter]])
    big = np.kron(glyph, np.ones((cell, cell), bool))
    gh, gw = big.shape
    y0 = int(rng.integers(2, max(3, h // 10)))
    x0 = int(rng.integers(2, max(3, w // 10)))
    if rng.random() < 0.5:
        x0 = w - gw - x0
    patch = image[y0:y0 + gh, x0:x0 + gw]
    patch[big[: patch.shape[0], : patch.shape[1]]] = 1.0
    return letter
