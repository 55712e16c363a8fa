"""Anatomical phantoms: chest-radiograph-like projections and CT-like slices.

Everything is built from closed-form shapes on a coordinate grid (vectorised numpy, no
per-pixel loops), so one 256 x 256 radiograph takes a few milliseconds. A phantom is returned
*before* detector noise and quantisation, together with the masks that findings need (lung
fields, body), so that lesions can be added in the physically meaningful domain first
(attenuation for radiographs, Hounsfield units for CT) and the detector applied last
(:func:`expose_radiograph`).

Conventions: radiographs are PA views in display orientation (the patient's right on the
image left), values are *density* (line integral of attenuation, arbitrary units; dense =
bright once displayed); CT slices are in Hounsfield units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

__all__ = [
    "DENSITY_SCALE",
    "ChestPhantom",
    "CTPhantom",
    "chest_radiograph",
    "ct_slice",
    "expose_radiograph",
    "smooth_noise",
]


#: Density that maps to full brightness (1.0) in :func:`expose_radiograph`: display units
#: times this are density units, so findings can be composited onto display images.
DENSITY_SCALE = 3.2


@dataclass
class ChestPhantom:
    """A chest radiograph phantom before the detector.

    Attributes
    ----------
    density : numpy.ndarray
        float32 H x W line integrals of attenuation (arbitrary units, about 0-3).
    lung_mask : numpy.ndarray
        bool H x W, both lung fields (where nodules and consolidations may appear).
    lung_side : numpy.ndarray
        int8 H x W: 0 outside the lungs, 1 the patient's right lung (image left), 2 the left.
    lung_air : numpy.ndarray
        float32 H x W, the density the lung air removes (what fluid filling the lung adds
        back); findings on radiographs scale with it.
    body_mask : numpy.ndarray
        bool H x W, inside the body outline.
    collimation : numpy.ndarray
        bool H x W, True where the collimator blocked the beam (no exposure).
    pixel_spacing : float
        Millimetres per pixel at the detector.
    params : dict
        The drawn anatomy parameters (for provenance and tests).
    """

    density: np.ndarray
    lung_mask: np.ndarray
    lung_side: np.ndarray
    lung_air: np.ndarray
    body_mask: np.ndarray
    collimation: np.ndarray
    pixel_spacing: float
    params: dict = field(default_factory=dict)


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


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Band-limited Gaussian noise with features about ``scale`` pixels wide.

    Drawn on a coarse grid and upsampled with cubic splines, which is much cheaper than
    filtering full-resolution noise. Output has zero mean and unit standard deviation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        Output (H, W).
    scale : float
        Feature size in pixels (>= 1).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.

    Examples
    --------
    >>> n = smooth_noise(np.random.default_rng(0), (64, 64), 8)
    >>> n.shape, round(float(n.std()), 1)
    ((64, 64), 1.0)
    """
    h, w = shape
    ch, cw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    coarse = rng.standard_normal((ch, cw)).astype(np.float32)
    # Cubic-spline upsampling is linear and separable: two small matrix products are ~20x
    # faster than ndimage.zoom on the 2-D array.
    fine = _upsampler(h, ch) @ coarse @ _upsampler(w, cw).T
    fine -= fine.mean()
    sd = fine.std()
    return (fine / sd if sd > 0 else fine).astype(np.float32)


@lru_cache(maxsize=64)
def _upsampler(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of cubic-spline upsampling of n_in - 3 intervals to n_out samples."""
    eye = np.eye(n_in, dtype=np.float32)
    m = ndimage.zoom(eye, (n_out / (n_in - 3), 1), order=3, mode="nearest")[:n_out]
    # The spline weights decay geometrically; tiny ones are float32 denormals, which make
    # the matrix products ~10x slower. They change nothing visible.
    m[np.abs(m) < 1e-6] = 0.0
    m.setflags(write=False)
    return m


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


def _tube(dist: np.ndarray, half_width: float) -> np.ndarray:
    """Projected thickness of a cylinder whose axis is ``dist`` = 0 (0 outside, 1 on axis)."""
    return np.sqrt(np.clip(1.0 - (dist / half_width) ** 2, 0.0, None))


def chest_radiograph(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    *,
    field_of_view_mm: float | None = None,
    anatomy_seed: int | list[int] | None = None,
) -> ChestPhantom:
    """Draw one PA chest radiograph phantom with varied anatomy, pose and collimation.

    The phantom has a body outline with a soft-tissue thickness gradient, neck and shoulders,
    two lung fields with sharp costophrenic angles and domed diaphragms, mediastinum and a
    heart shadow off to the patient's left, the spine, ten posterior and a few anterior ribs
    per side, clavicles and lung vessel texture. Body size, lung and heart proportions,
    rotation, shift, magnification and collimation vary between calls.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same phantom.
    shape : tuple of int
        (H, W) in pixels.
    field_of_view_mm : float, optional
        Width of the detector area imaged, in mm; drawn from 350-430 mm when omitted.
    anatomy_seed : int or list of int, optional
        Seed of the patient's anatomy (body and organ sizes, rib layout, lung texture). Images
        of one patient share it and differ only in pose, magnification, collimation and
        exposure, drawn from ``rng``. When omitted, ``rng`` draws the anatomy too.

    Returns
    -------
    ChestPhantom

    Examples
    --------
    >>> p = chest_radiograph(np.random.default_rng(1), (128, 128))
    >>> p.density.shape, p.density.dtype, bool(p.lung_mask.any())
    ((128, 128), dtype('float32'), True)
    """
    h, w = shape
    arng = rng if anatomy_seed is None else np.random.default_rng(anatomy_seed)
    fov = float(field_of_view_mm) if field_of_view_mm else float(rng.uniform(350, 430))
    angle, scale, shift = _draw_pose(rng)
    u, v = _grid(shape, angle, scale, shift)
    au = np.abs(u)
    params: dict = {"angle_deg": angle, "scale": scale, "fov_mm": fov}
    body, body_w, shoulder_v = _body_outline(u, v, arng)
    density = 1.0 * body
    lungs = _lung_fields(u, v, arng, body_w)
    params.update(lungs.params)
    # Heart shadow and mediastinum overlap the lungs.
    heart, heart_cx, heart_cy = _heart(u, v, arng, lungs)
    med = _tube(u / (lungs.inner + 0.05), 1.0) * np.clip((v - lungs.apex_v + 0.3) / 0.2, 0, 1)
    density += 0.5 * heart + 0.5 * med
    lung_profile = lungs.profile
    lung_profile *= 1.0 - 0.8 * np.clip(heart * 1.5, 0, 1)
    # Lung air lowers density; vessel markings are brighter towards the hila.
    hilum, vessels = _vessel_markings(au, v, arng, heart_cy)
    lung_density = arng.uniform(0.62, 0.78)
    density -= lung_density * lung_profile
    density += lung_profile * (0.05 + 0.07 * hilum) * np.clip(vessels + 0.5, 0, None)
    # Abdomen below the diaphragm: denser soft tissue.
    density += 0.35 * body * np.clip((v - (lungs.apex_v + 2 * lungs.height)) / 0.3, 0, 1)
    density += _spine_density(u, v, arng, lungs.apex_v)
    density += _rib_density(au, v, arng, lungs, body > 0)
    density += 0.45 * _clavicles(au, v, arng, shoulder_v, body_w)
    params.update(heart_cx=float(heart_cx), lung_density=float(lung_density))
    return ChestPhantom(
        density=np.clip(density, 0, None).astype(np.float32),
        lung_mask=lungs.side > 0,
        lung_side=lungs.side,
        lung_air=(lung_density * lung_profile).astype(np.float32),
        body_mask=body > 0,
        collimation=_collimation(rng, shape),
        pixel_spacing=fov / max(h, w),
        params=params,
    )


@dataclass
class _Lungs:
    """The lung fields of a radiograph phantom and the proportions the other organs follow."""

    side: np.ndarray  # int8: 0 outside, 1 the patient's right lung (image left), 2 the left
    profile: np.ndarray  # float32 relative air thickness, 0 outside the lungs
    apex_v: float
    height: float
    inner: float  # medial edge distance from the midline
    outer: float
    params: dict


def _draw_pose(rng: np.random.Generator) -> tuple[float, float, tuple[float, float]]:
    """Rotation (degrees), magnification and shift of the patient on the detector."""
    angle = float(rng.normal(0, 3.0))
    scale = float(rng.uniform(0.86, 1.0))
    shift = (float(rng.normal(0, 0.03)), float(rng.normal(0.02, 0.03)))
    return angle, scale, shift


def _body_outline(
    u: np.ndarray, v: np.ndarray, arng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """Soft-tissue thickness of the body, its half-width and the shoulders' height."""
    # Half-width grows from the neck to the shoulders, then stays (slight taper).
    body_w = arng.uniform(0.84, 0.97)
    neck_w = arng.uniform(0.16, 0.22)
    shoulder_v = arng.uniform(-0.95, -0.82)
    t = np.clip((v - (shoulder_v - 0.2)) / 0.3, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    # Rounded shoulders, chest widest at the lower ribs.
    half = neck_w + (body_w * (0.9 + 0.1 * np.clip((v + 0.6) / 1.1, 0, 1)) - neck_w) * t
    return np.sqrt(np.clip(1.0 - (u / half) ** 2, 0.0, None)), body_w, shoulder_v


def _lung_fields(
    u: np.ndarray, v: np.ndarray, arng: np.random.Generator, body_w: float
) -> _Lungs:
    """Two lungs: superellipse tops (apices), straight lateral walls, domed diaphragms."""
    lung_h = arng.uniform(0.62, 0.78)
    apex_v = arng.uniform(-0.78, -0.66)
    lung_in = arng.uniform(0.10, 0.15)
    lung_out = body_w * arng.uniform(0.83, 0.9)
    side_mask = np.zeros(u.shape, np.int8)
    lung_profile = np.zeros(u.shape, np.float32)
    params: dict = {}
    for side, sign in ((1, -1.0), (2, 1.0)):
        # side 1 is the patient's right lung, on the image left.
        cx = sign * (lung_in + lung_out) / 2
        ax = (lung_out - lung_in) / 2
        # The left lung base is higher-medially hidden by the heart; the right dome is higher.
        base = apex_v + lung_h * (2 if side == 2 else 1.95)
        dome_h = arng.uniform(0.16, 0.26)
        x = (u - cx) / ax
        top_cy = apex_v + ax * 1.1
        top = np.where(v < top_cy, np.abs(x) ** 2.2 + np.abs((v - top_cy) / (ax * 1.1)) ** 2.2, 0)
        top = np.where(v < top_cy, top, np.abs(x) ** 6)
        dome = base - dome_h * np.clip(1.0 - (x + 0.25 * sign) ** 2, 0, None)
        inside = (top < 1.0) & (v < dome)
        depth = np.clip((1.0 - top) * 4, 0, 1) * np.clip((dome - v) / 0.06, 0, 1)
        lung_profile = np.maximum(lung_profile, np.where(inside, np.sqrt(depth), 0))
        side_mask[inside] = side
        params[f"lung{side}"] = {"cx": float(cx), "ax": float(ax), "base": float(base)}
    return _Lungs(side_mask, lung_profile, apex_v, lung_h, lung_in, lung_out, params)


def _heart(
    u: np.ndarray, v: np.ndarray, arng: np.random.Generator, lungs: _Lungs
) -> tuple[np.ndarray, float, float]:
    """Heart shadow (patient's left = image right), its centre's u and v."""
    heart_cx = arng.uniform(0.08, 0.16)
    heart_cy = lungs.apex_v + lungs.height * arng.uniform(1.55, 1.7)
    heart_rx, heart_ry = arng.uniform(0.3, 0.4), arng.uniform(0.24, 0.3)
    # The cardiac long axis points down and to the patient's left: a tilted ellipse whose
    # lower half is cut by the diaphragm, plus a smaller right-atrial bulge beside the spine.
    tilt = np.deg2rad(arng.uniform(25, 40))
    hu_ = (u - heart_cx) * np.cos(tilt) + (v - heart_cy) * np.sin(tilt)
    hv_ = -(u - heart_cx) * np.sin(tilt) + (v - heart_cy) * np.cos(tilt)
    heart = _tube(np.hypot(hu_ / heart_rx, hv_ / heart_ry), 1.0)
    atrium = _tube(np.hypot((u + lungs.inner + 0.02) / 0.12, (v - heart_cy + 0.02) / 0.17), 1.0)
    heart = np.clip(np.maximum(heart, 0.8 * atrium) * 1.6, 0, 1) ** 0.7
    # Below the left dome the heart merges into the abdomen's soft tissue.
    heart *= np.clip((lungs.params["lung2"]["base"] - v) / 0.08, 0, 1)
    return heart, heart_cx, heart_cy


def _vessel_markings(
    au: np.ndarray, v: np.ndarray, arng: np.random.Generator, heart_cy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weight of the hila (where vessels are densest) and the vessel texture."""
    hilum = np.exp(-((au - 0.2) ** 2 + (v - heart_cy + 0.35) ** 2) / 0.12)
    vessels = smooth_noise(arng, au.shape, 7) * 0.7 + smooth_noise(arng, au.shape, 3) * 0.3
    return hilum, vessels


def _spine_density(
    u: np.ndarray, v: np.ndarray, arng: np.random.Generator, apex_v: float
) -> np.ndarray:
    """The spine's added density, modulated by the vertebrae."""
    spine = _tube(u, 0.07) * (v > apex_v - 0.4)
    vert = 0.8 + 0.2 * np.cos(2 * np.pi * (v - arng.uniform(0, 1)) / 0.085)
    return 0.6 * spine * vert


def _rib_density(
    au: np.ndarray, v: np.ndarray, arng: np.random.Generator, lungs: _Lungs, body_mask: np.ndarray
) -> np.ndarray:
    """Ten posterior and five fainter anterior ribs per side, inside the thorax."""
    n_ribs = 10
    rib_gap = lungs.height * 2 / (n_ribs + 0.5)
    rib_w = arng.uniform(0.022, 0.03)
    rib_v0 = lungs.apex_v + arng.uniform(-0.02, 0.04)
    tt = np.clip((au - 0.05) / (lungs.outer + 0.05), 0, 1.2)
    # Ribs never overlap their neighbours, so each pixel only needs its nearest rib: one
    # vectorised pass instead of a loop over ribs.
    # Posterior ribs leave the spine upwards and then sweep down laterally.
    off = v - (rib_v0 - 0.12 * tt + 0.6 * tt**2)
    gap = rib_gap + 0.02 * tt**2
    idx = np.clip(np.rint(off / gap), 0, n_ribs - 1)
    ribs = _tube(off - idx * gap, rib_w * (1 + 0.3 * tt)) * (tt < 1.08) * (au > 0.05)
    # Anterior ribs (3rd-7th): fainter, running down towards the sternum.
    off = v - (rib_v0 + 0.1 + 0.3 * np.clip(1 - tt, 0, 1) ** 1.5)
    idx = np.clip(np.rint(off / rib_gap), 2, 6)
    ant = 0.35 * _tube(off - idx * rib_gap, rib_w * 1.4) * (tt < 1.0) * (tt > 0.3)
    ribs = np.maximum(ribs, ant)
    thorax = np.clip((lungs.apex_v + 2.1 * lungs.height - v) / 0.15, 0, 1)
    return arng.uniform(0.28, 0.38) * ribs * body_mask * thorax


def _clavicles(
    au: np.ndarray, v: np.ndarray, arng: np.random.Generator, shoulder_v: float, body_w: float
) -> np.ndarray:
    """Projected thickness of both clavicles (``au`` is the distance from the midline)."""
    clav_v = shoulder_v + arng.uniform(0.1, 0.16)
    clav_centre = clav_v - 0.22 * np.clip(au - 0.08, 0, None) + 0.2 * (au - 0.3) ** 2
    return _tube(v - clav_centre, 0.035) * (au > 0.07) * (au < body_w * 0.8)


def _collimation(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unexposed rectangle borders, varied per image (True where the beam was blocked)."""
    h, w = shape
    cm = np.zeros(shape, bool)
    top_px = int(rng.integers(0, max(1, h // 16)))
    bot_px = int(rng.integers(0, max(1, h // 20)))
    left_px = int(rng.integers(0, max(1, w // 14)))
    right_px = int(rng.integers(0, max(1, w // 14)))
    cm[:top_px] = True
    cm[h - bot_px :] = True
    cm[:, :left_px] = True
    cm[:, w - right_px :] = True
    return cm


def expose_radiograph(
    density: np.ndarray,
    rng: np.random.Generator,
    *,
    collimation: np.ndarray | None = None,
    dose: float | None = None,
    contrast_gamma: float | None = None,
) -> np.ndarray:
    """Simulate the detector: exposure, quantum noise and a log response, dense = bright.

    The transmitted intensity is ``exp(-k * density)``; quantum noise is Gaussian with a
    variance proportional to the intensity (Poisson-like, so dense regions are noisier
    after the log), and the detector records ``-log`` of it. The result is scaled into
    [0, 1] (dense = bright); collimated areas received no beam and come out bright.

    Parameters
    ----------
    density : numpy.ndarray
        Line integrals from :func:`chest_radiograph` (with any findings added).
    rng : numpy.random.Generator
        Source of randomness for the noise and the drawn exposure.
    collimation : numpy.ndarray of bool, optional
        Unexposed area.
    dose : float, optional
        Photons per pixel in the open beam (higher = less noise); drawn when omitted.
    contrast_gamma : float, optional
        Display-response exponent; drawn from 0.85-1.15 when omitted.

    Returns
    -------
    numpy.ndarray
        float32 in [0, 1], dense = bright.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = chest_radiograph(rng, (64, 64))
    >>> img = expose_radiograph(p.density, rng, collimation=p.collimation)
    >>> float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    True
    """
    dose = float(dose) if dose else float(rng.uniform(20000, 80000))
    gamma = float(contrast_gamma) if contrast_gamma else float(rng.uniform(0.85, 1.15))
    k = 1.6
    intensity = np.exp(-k * density.astype(np.float32)) * dose
    intensity += rng.standard_normal(density.shape).astype(np.float32) * np.sqrt(intensity + 1)
    signal = -np.log(np.clip(intensity, 1.0, None) / dose) / k
    out = np.clip(signal / DENSITY_SCALE, 0, 1) ** gamma
    if collimation is not None and collimation.any():
        out[collimation] = np.clip(0.97 + 0.003 * rng.standard_normal(int(collimation.sum())), 0, 1)
    return out.astype(np.float32)


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
