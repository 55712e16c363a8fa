"""The detector and the site's processing: from density to a finished display image.

:func:`expose_radiograph` simulates transmission (``exp(-k * density)``), scatter (a wide
blur of the transmitted beam), anti-scatter grid lines, detector blur, quantum noise
(variance proportional to the signal), the log response, and the site's processing: a
sigmoid contrast curve, a gamma and unsharp masking. Every step is local or uses fixed
curves (no histogram equalisation), so a finding changes the image only near itself.
:func:`burn_marker` draws a burned-in side marker (``L`` or ``R``).
"""

from __future__ import annotations

import cv2
import numpy as np

from imaging_tl.synthetic.noise import blur, gaussian, resize
from imaging_tl.synthetic.sites import SiteProfile, get_site

__all__ = [
    "DENSITY_SCALE", "HEEL_MAX", "burn_marker", "expose_radiograph", "gaussian_noise",
    "processing_reach",
]

#: Density that maps to full brightness (1.0) before the site's contrast curve: display
#: units times this are density units, so findings can be composited onto display images.
DENSITY_SCALE = 3.2
_K = 1.6  # attenuation per density unit
_MID = 0.42  # centre of the sigmoid contrast curve, in display units
#: Largest exposure difference across the film from the anode heel effect (fraction).
HEEL_MAX = 0.3

_GLYPHS = {
    "L": ["100", "100", "100", "100", "111"],
    "R": ["110", "101", "110", "101", "101"],
}


def _sigmoid_curve(x: np.ndarray, steep: float) -> np.ndarray:
    """A sigmoid contrast curve mapping [0, 1] onto [0, 1] (steeper = more contrast)."""
    lo = 1.0 / (1.0 + np.exp(steep * _MID))
    hi = 1.0 / (1.0 + np.exp(-steep * (1.0 - _MID)))
    x = np.asarray(x, np.float32)
    y = 1.0 / (1.0 + cv2.exp(x * np.float32(-steep) + np.float32(steep * _MID)))
    return np.clip((y - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)


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
    dens = np.ascontiguousarray(density, np.float32)
    primary = cv2.exp(dens * np.float32(-_K))
    total = primary + np.float32(scatter) * _scatter(
        dens if scatter_from is None else scatter_from, 30.0 / ps
    )
    total *= _heel(rng, dens.shape)
    if grid:
        cols = np.arange(dens.shape[1], dtype=np.float32)
        total *= (1.0 - grid_depth * np.cos(2 * np.pi * cols / grid_pitch)).astype(np.float32)
    if blur_px >= 0.3:
        total = blur(total, blur_px)
    counts = total * np.float32(d)
    counts += gaussian_noise(rng, dens.shape) * cv2.sqrt(counts + np.float32(1.0))
    signal = cv2.log(np.maximum(counts, np.float32(1.0)) * np.float32(1.0 / (d * (1 + scatter))))
    x = np.clip(signal * np.float32(-1.0 / (_K * DENSITY_SCALE)), 0, 1)
    out = cv2.pow(_sigmoid_curve(x, steep), gamma)
    sigma = prof.unsharp_mm / ps
    out = out + np.float32(amount) * (out - blur(out, sigma))
    out = np.clip(out, 0, 1)
    if collimation is not None and collimation.any():
        out[collimation] = np.clip(
            0.96 + 0.004 * rng.standard_normal(int(collimation.sum()), dtype=np.float32), 0, 1
        )
    return out.astype(np.float32)


def _heel(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Exposure falling off across the film (anode heel effect, tube angle): a gentle ramp."""
    h, w = shape
    strength, ang = float(rng.uniform(0.0, HEEL_MAX)), float(rng.uniform(0, 2 * np.pi))
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None] * np.float32(np.sin(ang))
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :] * np.float32(np.cos(ang))
    return np.float32(1.0) + np.float32(strength) * (xs + ys)


def _scatter(density: np.ndarray, sigma: float) -> np.ndarray:
    """The scatter field: the transmitted beam blurred by ``sigma`` pixels (computed small)."""
    h, w = density.shape
    f = max(1, int(sigma // 2))
    small = resize(np.ascontiguousarray(density, np.float32),
                   (max(1, -(-h // f)), max(1, -(-w // f))))
    return resize(gaussian(cv2.exp(small * np.float32(-_K)), sigma / f), (h, w))


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal float32 noise, seeded from ``rng`` (OpenCV's generator: ~4x numpy's speed).

    Examples
    --------
    >>> a = gaussian_noise(np.random.default_rng(0), (64, 64))
    >>> b = gaussian_noise(np.random.default_rng(0), (64, 64))
    >>> bool((a == b).all()), round(float(a.std()), 1)
    (True, 1.0)
    """
    out = np.empty(shape, np.float32)
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))
    cv2.randn(out, 0.0, 1.0)
    return out


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
