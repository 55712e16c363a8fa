"""Axial chest CT slice phantoms, and the names of the radiograph phantom's parts.

CT slices are built from closed-form shapes on a coordinate grid (vectorised numpy), in
Hounsfield units, before noise (added by :func:`imaging_tl.synthetic.make_ct`). The chest
radiograph phantom lives in :mod:`imaging_tl.synthetic.chest` (anatomy),
:mod:`imaging_tl.synthetic.bones` and :mod:`imaging_tl.synthetic.acquisition` (detector and
site processing); its public names are re-exported here, where they always were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imaging_tl.synthetic.acquisition import DENSITY_SCALE, expose_radiograph
from imaging_tl.synthetic.chest import ChestPhantom, chest_radiograph
from imaging_tl.synthetic.noise import smooth_noise

__all__ = [
    "DENSITY_SCALE",
    "ChestPhantom",
    "CTPhantom",
    "chest_radiograph",
    "ct_slice",
    "expose_radiograph",
    "smooth_noise",
]


@dataclass
class CTPhantom:
    """An axial CT slice phantom in Hounsfield units.

    Attributes
    ----------
    hu : numpy.ndarray
        float32 H x W Hounsfield units (air -1000, lung about -850, fat about -100, soft
        tissue about 40, bone 300-1200).
    lung_mask : numpy.ndarray
        bool H x W, lung parenchyma.
    lung_side : numpy.ndarray
        int8 H x W: 0 outside the lungs, 1 the patient's right lung (image left), 2 the left.
    body_mask : numpy.ndarray
        bool H x W, inside the body outline.
    pixel_spacing : float
        Millimetres per pixel.
    params : dict
        The drawn anatomy parameters.
    """

    hu: np.ndarray
    lung_mask: np.ndarray
    lung_side: np.ndarray
    body_mask: np.ndarray
    pixel_spacing: float
    params: dict = field(default_factory=dict)



def _grid(shape: tuple[int, int], angle_deg: float, scale: float, shift: tuple[float, float]):
    """Normalised coordinates (u right, v down, about [-1, 1]) rotated and scaled."""
    h, w = shape
    # Square pixels: the shorter side spans [-1, 1].
    s = min(h, w) / 2.0
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (u - (w - 1) / 2.0) / s
    v = (v - (h - 1) / 2.0) / s
    t = np.deg2rad(angle_deg)
    c, si = np.float32(np.cos(t)), np.float32(np.sin(t))
    ur = (c * u + si * v) / scale - shift[0]
    vr = (-si * u + c * v) / scale - shift[1]
    return ur, vr



def ct_slice(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    *,
    field_of_view_mm: float | None = None,
    anatomy_seed: int | list[int] | None = None,
) -> CTPhantom:
    """Draw one axial chest CT slice at lung level, in Hounsfield units.

    Elliptical body with a subcutaneous fat layer, muscle, two lungs with parenchymal
    texture and vessels, heart and aorta, a vertebral body with cortical bone, ribs around
    the chest wall and the scanner table under the patient. No noise is added (see
    ``noise_hu``-style additions by the caller, e.g. :func:`imaging_tl.synthetic.make_ct`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        (H, W) in pixels.
    field_of_view_mm : float, optional
        Reconstruction diameter in mm; drawn from 340-420 mm when omitted.
    anatomy_seed : int or list of int, optional
        Seed of the patient's body and organ sizes, shared by the slices of one patient;
        ``rng`` then draws only pose and texture.

    Returns
    -------
    CTPhantom

    Examples
    --------
    >>> p = ct_slice(np.random.default_rng(0), (128, 128))
    >>> bool(p.hu.min() <= -990), bool(p.hu[p.lung_mask].mean() < -700)
    (True, True)
    """
    h, w = shape
    arng = rng if anatomy_seed is None else np.random.default_rng(anatomy_seed)
    fov = float(field_of_view_mm) if field_of_view_mm else float(rng.uniform(340, 420))
    angle = float(rng.normal(0, 2.0))
    u, v = _grid(shape, angle, 1.0, (float(rng.normal(0, 0.02)), float(rng.normal(0, 0.02))))
    ax, ay = arng.uniform(0.78, 0.9), arng.uniform(0.52, 0.64)
    r_body = np.hypot(u / ax, v / ay)
    hu = np.full(shape, -1000.0, np.float32)
    body = r_body < 1.0
    fat = arng.uniform(0.04, 0.09)
    hu[body] = -100.0  # subcutaneous fat
    hu[r_body < 1.0 - fat] = 45.0  # muscle and mediastinal soft tissue
    lung_mask, lung_side, heart = _ct_lungs(u, v, arng, rng)
    _paint_lungs_and_heart(hu, u, v, lung_mask, heart, rng)
    _paint_spine(hu, u, v, ay)
    _paint_ribs(hu, u, v, (1.0 - fat - 0.06) * ax, (1.0 - fat - 0.06) * ay)
    # Scanner table.
    hu[(v > ay + 0.08) & (v < ay + 0.12) & (np.abs(u) < 0.95)] = 200.0
    return CTPhantom(
        hu=hu.astype(np.float32),
        lung_mask=lung_mask,
        lung_side=lung_side,
        body_mask=body,
        pixel_spacing=fov / max(h, w),
        params={"angle_deg": angle, "fov_mm": fov},
    )


def _ct_lungs(
    u: np.ndarray, v: np.ndarray, arng: np.random.Generator, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lung mask, lung sides (1 image left, 2 right) and the heart that displaces them."""
    lung_mask = np.zeros(u.shape, bool)
    lung_side = np.zeros(u.shape, np.int8)
    for side, sign in ((1, -1.0), (2, 1.0)):
        lx, ly = sign * arng.uniform(0.36, 0.42), arng.uniform(-0.04, 0.02)
        # ry comes from rng (it varies per slice), the rest from the patient's anatomy.
        rx, ry = arng.uniform(0.26, 0.31), rng.uniform(0.36, 0.44)
        lung = np.hypot((u - lx) / rx, (v - ly) / ry) < 1.0
        lung_mask |= lung
        lung_side[lung] = side
    # Heart and aorta displace the medial lung.
    heart = np.hypot((u - 0.12) / 0.26, (v + 0.02) / 0.26) < 1.0
    lung_mask &= ~heart
    lung_side[~lung_mask] = 0
    return lung_mask, lung_side, heart


def _paint_lungs_and_heart(
    hu: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    lung_mask: np.ndarray,
    heart: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Lung parenchyma with texture and vessels, the heart and the aorta, in place."""
    shape = hu.shape
    texture = smooth_noise(rng, shape, 3) * 25 + smooth_noise(rng, shape, 10) * 20
    hu[lung_mask] = (-850.0 + texture)[lung_mask]
    vessel_noise = smooth_noise(rng, shape, 2.0)
    vessels = lung_mask & (vessel_noise > 2.1)
    hu[vessels] = 30.0
    hu[heart] = 40.0
    aorta = np.hypot(u + 0.02, v + 0.3) < 0.08
    hu[aorta] = 45.0


def _paint_spine(hu: np.ndarray, u: np.ndarray, v: np.ndarray, ay: float) -> None:
    """Cortical ring around a cancellous vertebral body, and the spinal canal, in place."""
    vert_r = np.hypot(u / 0.12, (v - ay + 0.24) / 0.11)
    hu[vert_r < 1.0] = 700.0
    hu[vert_r < 0.8] = 250.0
    hu[np.hypot(u, v - ay + 0.06) < 0.045] = 15.0


def _paint_ribs(hu: np.ndarray, u: np.ndarray, v: np.ndarray, rx: float, ry: float) -> None:
    """Fourteen ribs as small cortical ellipses on the ellipse (rx, ry), in place."""
    for k in range(14):
        phi = np.pi * (0.08 + 0.84 * (k % 7) / 6) * (1 if k < 7 else -1) + np.pi / 2
        cx = rx * np.cos(phi)
        cy = ry * np.sin(phi)
        r = np.hypot((u - cx) / 0.045, (v - cy) / 0.03)
        hu[r < 1.0] = 900.0
        hu[r < 0.55] = 300.0
