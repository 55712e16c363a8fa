"""Chest radiograph phantoms whose anatomy varies from patient to patient.

Each patient (``anatomy_seed``) gets their own body habitus, lung outlines (smooth walls,
apices, costophrenic angles, diaphragm domes at different heights), heart size and
position (cardiothoracic ratio 0.38-0.56), mediastinum with trachea and aortic knob, hila
with vessel trees branching out of them, ribs (count, spacing, curvature, thickness),
clavicles, scapulae, breast shadows; each image (``rng``) its positioning: rotation, shift,
inspiration depth, PA or AP (magnified heart, scapulae over the lungs), collimation,
devices. Values are *density* (line integrals of attenuation, dense = bright once exposed
by :func:`imaging_tl.synthetic.acquisition.expose_radiograph`); the display is the
patient's right on the image left. Bones and soft tissue are drawn in :mod:`.bones`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imaging_tl.synthetic.bones import Patient, bone_density, draw_patient, tube
from imaging_tl.synthetic.noise import power_law_noise, resize, stamp_curves
from imaging_tl.synthetic.sites import SiteProfile, get_site

__all__ = ["ANATOMY_GRID", "ChestPhantom", "anatomy_shape", "chest_radiograph", "pose_grid"]

#: Longest side (px) of the grid the smooth anatomy is drawn on; larger images upsample it.
ANATOMY_GRID = 256


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
        The drawn anatomy and positioning (for provenance and tests): ``ctr``,
        ``thorax_width_mm``, ``heart_width_mm``, ``view``, ``angle_deg``, ...
    """

    density: np.ndarray
    lung_mask: np.ndarray
    lung_side: np.ndarray
    lung_air: np.ndarray
    body_mask: np.ndarray
    collimation: np.ndarray
    pixel_spacing: float
    params: dict = field(default_factory=dict)


def pose_grid(
    shape: tuple[int, int], angle_deg: float, scale: float, shift: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Body coordinates (u right, v down, the shorter image side spans about [-1, 1]).

    Parameters
    ----------
    shape : tuple of int
        Image (H, W).
    angle_deg, scale, shift : float, float, (float, float)
        The patient's rotation, magnification and shift on the detector.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float32 u and v of every pixel.

    Examples
    --------
    >>> u, v = pose_grid((4, 4), 0.0, 1.0, (0.0, 0.0))
    >>> float(u[0, 0]), float(v[-1, 0])
    (-0.75, 0.75)
    """
    h, w = shape
    s = min(h, w) / 2.0
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (u - (w - 1) / 2.0) / s
    v = (v - (h - 1) / 2.0) / s
    t = np.deg2rad(angle_deg)
    c, si = np.float32(np.cos(t)), np.float32(np.sin(t))
    return (c * u + si * v) / scale - shift[0], (-si * u + c * v) / scale - shift[1]


def _to_pixels(pts: np.ndarray, shape: tuple[int, int], pose: dict) -> np.ndarray:
    """Body coordinates (N x 2, u and v) to (row, column) pixels: the inverse of pose_grid."""
    h, w = shape
    s = min(h, w) / 2.0
    ub = (pts[:, 0] + pose["shift"][0]) * pose["scale"]
    vb = (pts[:, 1] + pose["shift"][1]) * pose["scale"]
    t = np.deg2rad(pose["angle_deg"])
    u = np.cos(t) * ub - np.sin(t) * vb
    v = np.sin(t) * ub + np.cos(t) * vb
    return np.stack([v * s + (h - 1) / 2.0, u * s + (w - 1) / 2.0], axis=1)


def _draw_pose(
    rng: np.random.Generator, site: SiteProfile, view: str | None, habit: dict
) -> dict:
    """Rotation, magnification, shift, inspiration and view of one film.

    ``habit`` holds the patient's own framing (size on the detector, usual position): films
    of one patient vary around it, films of different patients differ by it.
    """
    if view is None:
        view = "AP" if rng.random() < site.ap_fraction else "PA"
    scale = habit["scale"] * float(rng.uniform(0.97, 1.03)) * (1.06 if view == "AP" else 1.0)
    return {
        "angle_deg": float(rng.normal(0, site.rotation_deg)),
        "scale": scale,
        "shift": (habit["shift"][0] + float(rng.normal(0, 0.04)),
                  habit["shift"][1] + float(rng.normal(0, 0.05))),
        "inspiration": float(rng.uniform(*site.inspiration)),
        "view": view,
    }


def _draw_habit(arng: np.random.Generator, thorax_half: float) -> dict:
    """The patient's framing on the detector: size (magnification) and usual position.

    The thorax spans 0.56-0.8 of the half-field, so that its width stays in adult range
    (about 210-375 mm on a 380-430 mm field).
    """
    scale = float(np.clip(arng.uniform(0.78, 1.0), 0.56 / thorax_half, 0.8 / thorax_half))
    return {
        "scale": scale,
        "shift": (float(arng.normal(0, 0.09)), float(arng.normal(0.03, 0.11))),
    }


@dataclass
class _Fields:
    """The organs of one film on its pixel grid."""

    side: np.ndarray
    profile: np.ndarray
    heart: np.ndarray
    base_v: dict


def _lung_fields(u: np.ndarray, v: np.ndarray, pt: Patient, pose: dict) -> _Fields:
    """Lung fields: rounded apices, smooth lateral walls, domes, heart and mediastinum cut out."""
    insp = pose["inspiration"]
    height = pt.lung_height * insp
    heart_scale = 1.1 if pose["view"] == "AP" else 1.0
    # Heart: a tilted ellipse sitting on the left dome, 1/3 right and 2/3 left of the midline.
    rx = pt.ctr * pt.thorax_half * heart_scale
    ry = rx * pt.heart_aspect
    hx = rx / 3.0 + pt.heart_shift
    hy = pt.apex_v + height * 0.98 - 0.45 * ry
    tilt = np.deg2rad(pt.heart_tilt)
    du, dv = u - hx, v - hy
    hu_ = du * np.cos(tilt) + dv * np.sin(tilt)
    hv_ = -du * np.sin(tilt) + dv * np.cos(tilt)
    r_heart = np.sqrt((hu_ / rx) ** 2 + (hv_ / ry) ** 2)
    side = np.zeros(u.shape, np.int8)
    profile = np.zeros(u.shape, np.float32)
    base_v = {}
    for s, sign in ((1, -1.0), (2, 1.0)):
        a = sign * u  # distance from the midline towards this lung's chest wall
        t = np.clip((v - pt.apex_v) / height, 0, 1.3)
        lat = pt.thorax_half * pt.lung_width[s - 1] * np.sin(
            np.pi / 2 * np.clip(t / pt.wall_t, 0, 1)
        ) ** 0.8 * (1 + pt.wall_wobble[s - 1] * np.sin(np.pi * t * 2.3 + pt.wall_phase[s - 1]))
        med = pt.mediastinum + (pt.knob * np.exp(-(((t - 0.22) / 0.08) ** 2)) if s == 2 else 0)
        base = pt.apex_v + height * (1.0 if s == 2 else 1.0 - pt.right_dome_higher)
        # Dome: highest a little medial of the lung's middle; the lateral recess is the
        # costophrenic angle, where the wall meets the steep outer slope of the dome.
        x = (a - pt.thorax_half * 0.42) / (pt.thorax_half * 0.62)
        dome = base - pt.dome_height[s - 1] * insp * np.clip(1.0 - x * x, 0, None)
        d = np.minimum.reduce([
            (a - med) / 0.05, (lat - a) / 0.09, (dome - v) / 0.07, (v - pt.apex_v) / 0.05,
        ])
        inside = (d > 0) & (r_heart > 1.0)
        d = np.minimum(d, (r_heart - 1.0) * 3.0)
        profile = np.maximum(profile, np.where(inside, np.clip(d, 0, 1) ** 0.6, 0))
        side[inside] = s
        base_v[s] = float(base)
    heart = np.clip((1.0 - r_heart) * 4.0, 0, 1) * (v < base_v[2] + 0.05)
    return _Fields(side, profile.astype(np.float32), heart.astype(np.float32), base_v)


def _vessels(
    shape: tuple[int, int], pt: Patient, pose: dict, profile: np.ndarray
) -> np.ndarray:
    """Vessel trees branching from both hila, projected (density), only inside the lungs."""
    s_px = min(shape) / 2.0 * pose["scale"]
    out = np.zeros(shape, np.float32)
    for level_lo, level_hi in ((0, 1), (2, 3), (4, 6)):
        segs = pt.vessel_segments[
            (pt.vessel_segments[:, 5] >= level_lo) & (pt.vessel_segments[:, 5] <= level_hi)
        ]
        if not len(segs):
            continue
        lengths = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]) * s_px
        n = np.maximum(2, np.ceil(lengths / 0.8).astype(int))
        idx = np.repeat(np.arange(len(segs)), n)
        first = np.repeat(np.cumsum(n) - n, n)
        t = ((np.arange(len(idx)) - first) / (n[idx] - 1)).astype(np.float32)
        pts = np.stack([
            segs[idx, 0] + t * (segs[idx, 2] - segs[idx, 0]),
            segs[idx, 1] + t * (segs[idx, 3] - segs[idx, 1]),
        ], axis=1)
        width_px = float(np.mean(segs[:, 4])) * s_px
        sigma = max(0.6, width_px / 2.0)
        # Weight per point = projected thickness of the vessel (proportional to its width).
        weights = segs[idx, 4] * s_px * 0.8 / np.maximum(n[idx] / np.maximum(lengths[idx], 1), 1)
        out += stamp_curves(shape, _to_pixels(pts, shape, pose), weights, sigma) * (
            np.sqrt(2 * np.pi) * sigma
        )
    scale = pt.vessel_density / max(min(shape) / 2.0 * 0.02, 1e-6)
    return out * profile * np.float32(scale)


def _collimation(rng: np.random.Generator, shape: tuple[int, int], site: SiteProfile) -> np.ndarray:
    """Unexposed borders (True where the collimator blocked the beam)."""
    h, w = shape
    cm = np.zeros(shape, bool)
    lo, hi = site.collimation
    top, bottom, left, right = (int(rng.uniform(lo, hi) * n) for n in (h, h, w, w))
    cm[:top] = True
    cm[h - bottom:] = True
    cm[:, :left] = True
    cm[:, w - right:] = True
    return cm


def _devices(
    rng: np.random.Generator, shape: tuple[int, int], pose: dict, pt: Patient
) -> tuple[np.ndarray, list[str]]:
    """ECG electrodes with wires and a central line: confounders, not labels."""
    out = np.zeros(shape, np.float32)
    s_px = min(shape) / 2.0 * pose["scale"]
    drawn = []
    if rng.random() < 0.7:  # ECG electrodes: metal snaps with leads running off the film
        for _ in range(int(rng.integers(2, 5))):
            cu = rng.uniform(-0.7, 0.7) * pt.thorax_half
            cv = rng.uniform(-0.8, 0.4)
            ang = np.linspace(0, 2 * np.pi, 40)
            ring = np.stack([cu + 0.022 * np.cos(ang), cv + 0.022 * np.sin(ang)], axis=1)
            end = np.array([np.sign(cu + 1e-3) * 1.3, cv + rng.uniform(-0.6, 0.2)])
            bend = np.array([cu, cv]) + rng.normal(0, 0.25, 2)
            tt = np.linspace(0, 1, int(3 * s_px))[:, None]
            wire = (1 - tt) ** 2 * np.array([cu, cv]) + 2 * (1 - tt) * tt * bend + tt**2 * end
            pts = np.concatenate([ring, wire])
            wts = np.concatenate([np.full(len(ring), 3.0), np.full(len(wire), 0.25)])
            out += stamp_curves(shape, _to_pixels(pts, shape, pose), wts, 0.8)
        drawn.append("ecg")
    if rng.random() < 0.5:  # a central venous line from the right neck into the SVC
        tt = np.linspace(0, 1, int(3 * s_px))[:, None]
        p0 = np.array([-0.35, -1.1])
        p1 = np.array([-0.1, pt.apex_v + 0.1])
        p2 = np.array([-pt.mediastinum * 0.6, pt.apex_v + pt.lung_height * rng.uniform(0.5, 0.7)])
        pts = (1 - tt) ** 2 * p0 + 2 * (1 - tt) * tt * p1 + tt**2 * p2
        out += stamp_curves(shape, _to_pixels(pts, shape, pose), np.full(len(pts), 0.6), 1.0)
        drawn.append("line")
    return out, drawn


def chest_radiograph(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    *,
    field_of_view_mm: float | None = None,
    anatomy_seed: int | list[int] | None = None,
    site: str | SiteProfile | None = None,
    view: str | None = None,
) -> ChestPhantom:
    """Draw one chest radiograph phantom (PA or AP), in density units.

    Parameters
    ----------
    rng : numpy.random.Generator
        Positioning, texture, collimation and devices of this film.
    shape : tuple of int
        (H, W) in pixels.
    field_of_view_mm : float, optional
        Detector width covered by the longer image side; drawn from 380-430 mm when omitted.
    anatomy_seed : int or list of int, optional
        The patient's anatomy (shared by all images of one patient); drawn from ``rng``
        when omitted.
    site : str or SiteProfile, optional
        Acquisition site (positioning ranges, collimation, devices); ``"local"`` when omitted.
    view : {"PA", "AP"}, optional
        Drawn from the site's AP share when omitted.

    Returns
    -------
    ChestPhantom

    Examples
    --------
    >>> p = chest_radiograph(np.random.default_rng(0), (128, 128))
    >>> bool(p.density[p.lung_mask].mean() < p.density[p.body_mask & ~p.lung_mask].mean())
    True
    """
    prof = get_site(site)
    h, w = shape
    arng = rng if anatomy_seed is None else np.random.default_rng(anatomy_seed)
    pt = draw_patient(arng)
    habit = _draw_habit(arng, pt.thorax_half)
    fov = float(field_of_view_mm) if field_of_view_mm else float(rng.uniform(380, 430))
    pose = _draw_pose(rng, prof, view, habit)
    # The anatomy is smooth: draw it on a grid of at most ANATOMY_GRID px and upsample once.
    work = anatomy_shape(shape)
    u, v = pose_grid(work, pose["angle_deg"], pose["scale"], pose["shift"])
    f = _lung_fields(u, v, pt, pose)
    body, soft = _soft_tissue(u, v, pt, f)
    # Overlapping soft tissue is mostly the patient's own (same on each of their films);
    # a smaller part changes from film to film.
    beta = float(rng.uniform(*prof.texture_beta))
    texture = 0.8 * power_law_noise(arng, work, beta) + 0.6 * power_law_noise(rng, work, beta)
    lung_air = (pt.lung_density * f.profile * (1 + 0.1 * texture)).astype(np.float32)
    density = soft + 0.12 * f.heart - lung_air + 0.15 * texture * body
    density += _vessels(work, pt, pose, f.profile)
    density += bone_density(u, v, pt, pose, body)
    devices: list[str] = []
    if rng.random() < prof.device_probability:
        dev, devices = _devices(rng, work, pose, pt)
        density += dev
    spacing = fov / max(h, w)
    unit_mm = spacing * min(h, w) / 2.0 * pose["scale"]  # mm per body-coordinate unit
    params = {
        **pt.summary(), **pose, "fov_mm": fov, "site": prof.name, "devices": devices,
        "thorax_width_mm": 2 * pt.thorax_half * unit_mm,
        "heart_width_mm": 2 * pt.ctr * pt.thorax_half * unit_mm * (1.1 if pose["view"] == "AP"
                                                                    else 1.0),
    }
    side = resize(f.side.view(np.uint8), shape, nearest=True).view(np.int8)
    return ChestPhantom(
        density=np.clip(resize(density.astype(np.float32), shape), 0, None),
        lung_mask=side > 0,
        lung_side=side,
        lung_air=resize(lung_air, shape),
        body_mask=resize((body > 0).view(np.uint8), shape, nearest=True) > 0,
        collimation=_collimation(rng, shape, prof),
        pixel_spacing=spacing,
        params=params,
    )


def anatomy_shape(shape: tuple[int, int], grid: int | None = None) -> tuple[int, int]:
    """The grid the anatomy is drawn on: ``shape`` scaled so its longer side is <= ``grid``.

    Parameters
    ----------
    shape : tuple of int
        Output (H, W).
    grid : int, optional
        Longest side of the anatomy grid; :data:`ANATOMY_GRID` when omitted.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> anatomy_shape((1024, 1024)), anatomy_shape((96, 96)), anatomy_shape((600, 300), 200)
    ((256, 256), (96, 96), (200, 100))
    """
    g = ANATOMY_GRID if grid is None else int(grid)
    h, w = shape
    if max(h, w) <= g:
        return (h, w)
    f = g / max(h, w)
    return (max(1, int(round(h * f))), max(1, int(round(w * f))))


def _soft_tissue(
    u: np.ndarray, v: np.ndarray, pt: Patient, f: _Fields
) -> tuple[np.ndarray, np.ndarray]:
    """Body thickness (0 outside) and its soft-tissue density: neck, shoulders, abdomen."""
    t = np.clip((v - (pt.shoulder_v - 0.2)) / 0.3, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    half = pt.neck_half + (pt.body_half * (0.93 + 0.07 * np.clip((v + 0.6) / 1.1, 0, 1))
                           - pt.neck_half) * t
    body = np.sqrt(np.clip(1.0 - (u / half) ** 2, 0.0, None)).astype(np.float32)
    # Arms beside the chest (apart by a patient-specific gap), from the shoulders down.
    arm_u = pt.body_half + pt.arm_gap + pt.arm_half
    arms = tube(np.abs(u) - arm_u, pt.arm_half) * np.clip((v - pt.shoulder_v - 0.1) / 0.2, 0, 1)
    body = np.maximum(body, 0.8 * arms).astype(np.float32)
    soft = pt.tissue_density * body
    # Below the domes: liver (patient's right) and abdomen, denser than the chest.
    below = np.clip((v - np.where(u < 0, f.base_v[1], f.base_v[2]) + 0.12) / 0.15, 0, 1)
    soft = soft + 0.35 * below * body
    if pt.gastric_bubble:
        soft -= 0.3 * tube(np.hypot(u - 0.3 * pt.thorax_half, v - f.base_v[2] - 0.06), 0.09)
    # Trachea: an air column in the midline down to the carina.
    trachea = tube(u - 0.01, 0.045) * (v < pt.apex_v + pt.lung_height * 0.35)
    soft -= 0.22 * trachea * (v > pt.shoulder_v - 0.3)
    return body, soft.astype(np.float32)
