"""A synthetic patient's anatomy: proportions drawn once per patient, and the bones.

:func:`draw_patient` draws everything that stays the same across one patient's films
(habitus, lung and heart proportions, rib cage, vessel tree, breasts). :func:`bone_density`
draws the skeleton and the other overlapping structures on one film's body coordinates:
posterior and anterior ribs with cortical rims, clavicles, scapulae, the spine with its
vertebrae, the hila and breast shadows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Patient", "bone_density", "draw_patient", "tube"]


def tube(dist: np.ndarray, half_width: float) -> np.ndarray:
    """Projected thickness of a cylinder whose axis is ``dist`` = 0 (0 outside, 1 on axis).

    Examples
    --------
    >>> tube(np.array([0.0, 0.5, 2.0]), 1.0).round(3).tolist()
    [1.0, 0.866, 0.0]
    """
    return np.sqrt(np.clip(1.0 - (dist / half_width) ** 2, 0.0, None))


def _shell(dist: np.ndarray, half_width: float) -> np.ndarray:
    """Projected thickness of a hollow bone: bright cortical rims, fainter marrow."""
    return tube(dist, half_width) - 0.55 * tube(dist, 0.72 * half_width)


@dataclass(frozen=True)
class Patient:
    """One synthetic patient's anatomy in body coordinates (see ``chest.pose_grid``)."""

    body_half: float
    neck_half: float
    shoulder_v: float
    tissue_density: float
    arm_gap: float
    arm_half: float
    thorax_half: float
    apex_v: float
    lung_height: float
    lung_width: tuple[float, float]
    wall_t: float
    wall_wobble: tuple[float, float]
    wall_phase: tuple[float, float]
    mediastinum: float
    knob: float
    right_dome_higher: float
    dome_height: tuple[float, float]
    lung_density: float
    ctr: float
    heart_aspect: float
    heart_shift: float
    heart_tilt: float
    gastric_bubble: bool
    n_ribs: int
    rib_gap: float
    rib_jitter: tuple[float, ...]
    rib_curve: float
    rib_width: float
    rib_density: float
    clavicle_v: float
    scapula: float
    breast: float
    hilum_v: float
    vessel_density: float
    vessel_segments: np.ndarray  # rows: u0, v0, u1, v1, width, level

    def summary(self) -> dict:
        """The scalar proportions (for an image's params)."""
        return {
            "ctr": self.ctr, "lung_density": self.lung_density, "n_ribs": self.n_ribs,
            "lung_height": self.lung_height, "breast": self.breast,
            "tissue_density": self.tissue_density,
        }


def _vessel_tree(rng: np.random.Generator, hila: list[tuple[float, float]]) -> np.ndarray:
    """Branching vessel segments from each hilum: 5 trunks, dichotomous splits (vectorised)."""
    trunks = []
    for hu, hv in hila:
        a = np.deg2rad(np.linspace(-70, 80, 5) + rng.normal(0, 8, 5))
        d = np.stack([np.sign(hu) * np.cos(a), np.sin(a) * np.where(a > 0, 1.3, 1.0)], axis=1)
        d /= np.hypot(d[:, 0], d[:, 1])[:, None]
        trunks.append(np.column_stack([
            np.full(5, hu), np.full(5, hv), d, rng.uniform(0.12, 0.2, 5), np.full(5, 0.028),
        ]))
    cur = np.concatenate(trunks)  # rows: u0, v0, du, dv, length, width
    segs = []
    for level in range(6):
        end = cur[:, :2] + cur[:, 2:4] * cur[:, 4:5]
        segs.append(np.column_stack([cur[:, :2], end, cur[:, 5], np.full(len(cur), level)]))
        if level == 5:
            break
        n = len(cur)
        ang = np.deg2rad(rng.uniform(14, 38, (n, 2)) * np.array([-1.0, 1.0]))
        c, s = np.cos(ang), np.sin(ang)
        du, dv = cur[:, 2:3], cur[:, 3:4]
        cur = np.column_stack([
            np.repeat(end, 2, axis=0),
            (c * du - s * dv).ravel(), (s * du + c * dv).ravel(),
            (cur[:, 4:5] * rng.uniform(0.62, 0.82, (n, 2))).ravel(),
            (cur[:, 5:6] * rng.uniform(0.62, 0.75, (n, 2))).ravel(),
        ])
    return np.concatenate(segs).astype(np.float32)


def draw_patient(arng: np.random.Generator) -> Patient:
    """Draw one patient's anatomy from plausible ranges.

    Examples
    --------
    >>> a = draw_patient(np.random.default_rng(0)); b = draw_patient(np.random.default_rng(1))
    >>> 0.38 <= a.ctr <= 0.56, a.ctr != b.ctr
    (True, True)
    """
    body_half = arng.uniform(0.66, 1.0)
    thorax_half = body_half * arng.uniform(0.8, 0.88)
    apex_v = arng.uniform(-0.8, -0.66)
    hilum_v = apex_v + arng.uniform(0.42, 0.52)
    female = arng.random() < 0.5
    n_ribs = int(arng.integers(9, 12))
    lung_height = arng.uniform(1.12, 1.4)
    return Patient(
        body_half=body_half,
        neck_half=arng.uniform(0.15, 0.22),
        shoulder_v=apex_v - arng.uniform(0.1, 0.22),
        tissue_density=arng.uniform(1.6, 2.2),
        arm_gap=arng.uniform(0.0, 0.25),
        arm_half=arng.uniform(0.1, 0.17),
        thorax_half=thorax_half,
        apex_v=apex_v,
        lung_height=lung_height,
        lung_width=(arng.uniform(0.9, 1.0), arng.uniform(0.88, 0.98)),
        wall_t=arng.uniform(0.45, 0.7),
        wall_wobble=(arng.uniform(0, 0.03), arng.uniform(0, 0.03)),
        wall_phase=(arng.uniform(0, 6.3), arng.uniform(0, 6.3)),
        mediastinum=arng.uniform(0.08, 0.13),
        knob=arng.uniform(0.02, 0.07),
        right_dome_higher=arng.uniform(0.0, 0.06),
        dome_height=(arng.uniform(0.1, 0.22), arng.uniform(0.1, 0.22)),
        lung_density=arng.uniform(0.95, 1.25),
        ctr=arng.uniform(0.38, 0.56),
        heart_aspect=arng.uniform(0.62, 0.8),
        heart_shift=arng.uniform(-0.03, 0.05),
        heart_tilt=arng.uniform(15, 35),
        gastric_bubble=bool(arng.random() < 0.6),
        n_ribs=n_ribs,
        rib_gap=lung_height * arng.uniform(0.88, 1.0) / (n_ribs - 1.5),
        rib_jitter=tuple(arng.normal(0, 0.012, 14).tolist()),
        rib_curve=arng.uniform(0.25, 0.45),
        rib_width=arng.uniform(0.02, 0.03),
        rib_density=arng.uniform(0.3, 0.45),
        clavicle_v=apex_v + arng.uniform(-0.02, 0.08),
        scapula=arng.uniform(0.72, 0.9),
        breast=arng.uniform(0.15, 0.35) if female and arng.random() < 0.8 else 0.0,
        hilum_v=hilum_v,
        vessel_density=arng.uniform(0.1, 0.18),
        vessel_segments=_vessel_tree(arng, [(-0.17, hilum_v), (0.19, hilum_v - 0.03)]),
    )


def _ribs(au: np.ndarray, v: np.ndarray, pt: Patient, body: np.ndarray) -> np.ndarray:
    """Posterior ribs (cortical shells, sweeping down laterally) and fainter anterior ribs."""
    tt = np.clip((au - 0.06) / (pt.thorax_half + 0.04), 0, 1.25)
    v0 = pt.apex_v - 0.06
    off = v - (v0 - 0.12 * tt + pt.rib_curve * tt**2.5)
    gap = pt.rib_gap * (1 + 0.15 * tt)
    idx = np.clip(np.rint(off / gap), 0, pt.n_ribs - 1).astype(np.int64)
    jitter = np.asarray(pt.rib_jitter, np.float32)[idx]
    width = pt.rib_width * (1 + 0.35 * tt)
    post = _shell((off - idx * gap - jitter) / width, 1.0)
    post = post * np.clip((1.08 - tt) / 0.05, 0, 1) * (au > 0.05)
    off_a = v - (v0 + 0.12 + 0.35 * np.clip(1 - tt, 0, 1) ** 1.6)
    idx_a = np.clip(np.rint(off_a / pt.rib_gap), 1, 6)
    ant = 0.35 * tube(off_a - idx_a * pt.rib_gap, pt.rib_width * 1.3) * (tt < 1.0) * (tt > 0.3)
    return pt.rib_density * np.maximum(post, ant) * (body > 0)


def bone_density(
    u: np.ndarray, v: np.ndarray, pt: Patient, pose: dict, body: np.ndarray
) -> np.ndarray:
    """Density of the ribs, clavicles, scapulae, spine, hila and breasts on one film.

    Examples
    --------
    >>> from imaging_tl.synthetic.chest import pose_grid
    >>> pt = draw_patient(np.random.default_rng(0))
    >>> u, v = pose_grid((64, 64), 0.0, 0.9, (0.0, 0.0))
    >>> pose = {"view": "PA", "inspiration": 1.0}
    >>> bool(bone_density(u, v, pt, pose, np.ones((64, 64))).max() > 0)
    True
    """
    au = np.abs(u)
    ap = pose["view"] == "AP"
    thorax = np.clip((pt.apex_v + 1.12 * pt.lung_height * pose["inspiration"] - v) / 0.12, 0, 1)
    out = _ribs(au, v, pt, body) * thorax
    # Clavicles: S-shaped, rising laterally (more horizontal on AP films).
    cv = pt.clavicle_v - (0.0 if ap else 0.05)
    centre = cv - (0.2 if ap else 0.38) * np.clip(au - 0.1, 0, None) + 0.3 * (au - 0.35) ** 2
    out += 0.5 * _shell((v - centre) / 0.034, 1.0) * (au > 0.06) * (au < pt.body_half * 0.8)
    # Scapulae: a plate lateral of its medial border; on AP films it overlaps the lungs.
    border = pt.thorax_half * (pt.scapula - (0.18 if ap else 0.0)) - 0.12 * (v - pt.apex_v)
    span = (v > pt.apex_v - 0.05) & (v < pt.apex_v + 0.75)
    out += 0.22 * np.clip((au - border) / 0.04, 0, 1) * span * np.clip(
        (pt.apex_v + 0.75 - v) / 0.15, 0, 1) * (body > 0)
    # Spine: vertebral bodies with endplates and pedicles, denser below the heart.
    vert = 0.75 + 0.25 * np.cos(2 * np.pi * (v - pt.apex_v) / (pt.rib_gap * 0.95))
    spine = tube(u, 0.075) * vert + 0.25 * tube(np.hypot(au - 0.05, (
        (v - pt.apex_v) % (pt.rib_gap * 0.95)) - 0.02) / 0.02, 1.0)
    out += 0.3 * spine * (v > pt.shoulder_v - 0.3)
    # Hila: pulmonary arteries and bronchi, denser lumps beside the heart.
    for hu, sign in ((-0.17, 1.0), (0.19, 1.0)):
        out += 0.22 * sign * np.exp(-((u - hu) ** 2 / 0.004 + (v - pt.hilum_v) ** 2 / 0.012))
    if pt.breast > 0:
        by = pt.apex_v + pt.lung_height * 0.92
        r = np.hypot((au - pt.thorax_half * 0.6) / (pt.thorax_half * 0.45), (v - by) / 0.28)
        out += pt.breast * tube(r, 1.0) * np.clip((by + 0.2 - v) / 0.05 + 1, 0, 1)
    return out.astype(np.float32)
