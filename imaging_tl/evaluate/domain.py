"""The domain gate: is a new image like the images the model was trained on?

Two parts, both plain numpy:

- **header facts** (:func:`domain_facts`, :func:`header_mismatch`): the modalities, body
  parts, photometric interpretations, grey/colour, image sizes, pixel spacings and bit
  depths of the training files; a new file of another modality or body part, of the other
  colour kind, or with an image size or pixel spacing far (2x) outside the training range
  is out of domain, with the field named (photometric interpretation and bit depth are
  recorded, not gated).
- **a feature reference** (:class:`FeatureReference`): a Gaussian model of the pooled
  backbone features of the training split, with Ledoit-Wolf shrinkage of its covariance
  (stored in low rank: the leading eigenvectors plus an isotropic floor), fitted on the
  training and validation splits, and a threshold on the Mahalanobis distance at a chosen
  false-flag rate (default 5 %), set on cross-fitted held-out distances. It is saved as
  a small ``.npz`` (no pickle) and read back with checks.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ref = fit_reference(rng.normal(size=(200, 16)), rng.normal(size=(100, 16)))
>>> far = rng.normal(size=(5, 16)) + 6.0
>>> bool((ref.distance(far) > ref.threshold).all())
True
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DOMAIN_FILE", "FeatureReference", "conformal_threshold", "domain_facts",
           "fit_reference", "gate_summary",
           "header_mismatch", "load_reference"]

#: the feature reference, beside ``model.keras``
DOMAIN_FILE = "domain.npz"
MAX_COMPONENTS = 128
MAX_FIT_ROWS = 2000
_SIZE_SLACK = 2.0  # sizes and spacings within [min / slack, max * slack] are in domain


@dataclass
class FeatureReference:
    """A shrunk Gaussian of training features: ``distance`` is the Mahalanobis distance.

    The covariance is ``U diag(lam) U^T + floor * I`` (``U`` the leading eigenvectors of
    the shrunk sample covariance); its inverse is applied in closed form.
    """

    mean: np.ndarray
    components: np.ndarray
    eigenvalues: np.ndarray
    floor: float
    threshold: float
    false_flag_rate: float
    n_train: int

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (n x d) to the reference."""
        z = np.asarray(features, dtype=np.float64) - self.mean
        proj = z @ self.components
        shrink = self.eigenvalues / (self.eigenvalues + self.floor)
        d2 = (np.einsum("ij,ij->i", z, z) - (proj ** 2) @ shrink) / self.floor
        return np.sqrt(np.maximum(d2, 0.0))

    def flags(self, features: np.ndarray) -> np.ndarray:
        """True for rows beyond the threshold."""
        return self.distance(features) > self.threshold

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference as an ``.npz`` of plain arrays (atomically)."""
        from imaging_tl._atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean=self.mean.astype(np.float32),
                     components=self.components.astype(np.float32),
                     eigenvalues=self.eigenvalues.astype(np.float64),
                     scalars=np.array([self.floor, self.threshold, self.false_flag_rate,
                                       self.n_train], dtype=np.float64))
        return path


def load_reference(path: str | os.PathLike) -> FeatureReference:
    """Read a reference written by :meth:`FeatureReference.save` (no pickle; shapes and
    values checked).

    Raises
    ------
    ValueError
        Naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("mean", "components", "eigenvalues",
                                                     "scalars")}
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a domain reference ({exc})") from None
    mean, comp, lam, s = (arrays[k] for k in ("mean", "components", "eigenvalues", "scalars"))
    ok = (mean.ndim == 1 and comp.ndim == 2 and comp.shape[0] == mean.shape[0]
          and lam.shape == (comp.shape[1],) and s.shape == (4,)
          and all(np.isfinite(a).all() for a in (mean, comp, lam, s)) and s[0] > 0
          and (lam >= 0).all())
    if not ok:
        raise ValueError(f"{path}: malformed domain reference (shapes {mean.shape}, "
                         f"{comp.shape}, {lam.shape}, {s.shape} or values not finite)")
    return FeatureReference(mean.astype(np.float64), comp.astype(np.float64),
                            lam.astype(np.float64), float(s[0]), float(s[1]), float(s[2]),
                            int(s[3]))


def fit_reference(train: np.ndarray, val: np.ndarray, false_flag_rate: float = 0.05,
                  seed: int = 0, folds: int = 5) -> FeatureReference:
    """Fit the Gaussian on the ``train`` and ``val`` features; the threshold flags about
    ``false_flag_rate`` of new in-domain images.

    The threshold comes from held-out distances of every training and validation image
    (cross-fitting: ``folds`` references, each fitted without one fold, score that fold),
    so it rests on all of them rather than on the few validation images of a small run;
    the final reference, fitted on all, is a little tighter, so the rate is if anything
    lower. Ledoit-Wolf shrinkage towards ``mean(eigenvalues) * I`` keeps the covariance of
    a few hundred images in a 1000-dimensional feature space invertible.
    """
    x = np.asarray(train, dtype=np.float64)
    v = np.asarray(val, dtype=np.float64).reshape(-1, x.shape[-1]) if x.ndim == 2 else x
    if x.ndim != 2 or len(x) + len(v) < max(folds, 4):
        raise ValueError(f"the domain reference needs at least {max(folds, 4)} feature rows, "
                         f"got shapes {x.shape} and {np.shape(val)}")
    rng = np.random.default_rng(seed)
    allx = np.concatenate([x, v])
    if len(allx) > MAX_FIT_ROWS:
        allx = allx[rng.choice(len(allx), MAX_FIT_ROWS, replace=False)]
    fold = rng.permutation(len(allx)) % folds
    held = np.empty(len(allx))
    for f in range(folds):
        held[fold == f] = _fit_gaussian(allx[fold != f], false_flag_rate).distance(
            allx[fold == f])
    ref = _fit_gaussian(allx, false_flag_rate)
    ref.threshold = conformal_threshold(held, false_flag_rate)
    return ref


def _fit_gaussian(x: np.ndarray, rate: float) -> FeatureReference:
    """The shrunk Gaussian of the rows of ``x`` (threshold left infinite)."""
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    gram = xc @ xc.T  # n x n: cheap while n is below a few thousand
    sq = np.einsum("ij,ij->i", xc, xc)
    mu = float(sq.sum()) / (n * d)  # mean eigenvalue of S
    s_fro2 = float((gram ** 2).sum()) / n ** 2
    d2 = max(s_fro2 - mu * mu * d, 1e-30)  # ||S - mu I||_F^2
    b2bar = float((sq ** 2).sum() / n - s_fro2) / n
    shrink = min(max(b2bar, 0.0), d2) / d2
    evals, evecs = np.linalg.eigh(gram / n)
    order = np.argsort(evals)[::-1][:min(MAX_COMPONENTS, n - 1)]
    evals, evecs = np.maximum(evals[order], 0.0), evecs[:, order]
    keep = evals > 1e-12 * max(evals.max(initial=0.0), 1e-30)
    evals, evecs = evals[keep], evecs[:, keep]
    components = xc.T @ evecs / np.sqrt(evals * n)  # d x r, orthonormal columns
    floor = max(shrink * mu, 1e-12)
    return FeatureReference(mean, components, (1 - shrink) * evals, floor, np.inf,
                            float(rate), int(n))


def conformal_threshold(distances: np.ndarray, rate: float) -> float:
    """The split-conformal threshold: the ``ceil((n + 1)(1 - rate))``-th smallest of ``n``
    held-out distances, so that a new in-domain image is flagged with probability at most
    ``rate``. With fewer held-out images than that needs (``n < 1 / rate - 1``), the
    largest distance widened by ``1 / n``.

    Examples
    --------
    >>> conformal_threshold(np.arange(1.0, 101.0), 0.05)
    96.0
    >>> conformal_threshold(np.array([1.0, 2.0, 4.0]), 0.05)
    5.333333333333333
    """
    d = np.sort(np.asarray(distances, dtype=np.float64))
    n = len(d)
    k = int(np.ceil((n + 1) * (1.0 - rate)))
    return float(d[k - 1]) if k <= n else float(d[-1] * (1.0 + 1.0 / n))


# -- header facts ------------------------------------------------------------------------------
_SET_FIELDS = {"modalities": "Modality", "body_parts": "BodyPartExamined",
               "photometric": "PhotometricInterpretation", "bits_stored": "BitsStored"}
# compared by the gate; photometric interpretation and bit depth are recorded only (the
# windowing handles MONOCHROME1 and any bit depth, and an 8-bit export of the same kind of
# image is still in domain)
_GATED_FIELDS = ("modalities", "body_parts")


def _norm(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().upper()
    return text or None


def _spacing(meta: Mapping[str, Any]) -> float | None:
    sp = meta.get("PixelSpacing")
    try:
        items: list[Any] = list(sp) if isinstance(sp, list | tuple) else [sp]
        vals = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    return float(np.mean(vals)) if vals and all(np.isfinite(vals)) and min(vals) > 0 else None


def domain_facts(metas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What the training files' headers say (``meta`` dicts as :func:`imaging_tl.read_header`
    returns): sets of modalities, body parts, photometric interpretations, bit depths and
    colour, and the ranges of image side and pixel spacing.

    Examples
    --------
    >>> f = domain_facts([{"Modality": "CR", "Rows": 512, "Columns": 400,
    ...                    "SamplesPerPixel": 1, "PixelSpacing": [0.2, 0.2]}])
    >>> f["modalities"], f["colour"], f["size_range"], f["pixel_spacing_range"]
    (['CR'], ['grey'], [400, 512], [0.2, 0.2])
    """
    sets: dict[str, set[str]] = {k: set() for k in _SET_FIELDS}
    colour: set[str] = set()
    sides: list[int] = []
    spacings: list[float] = []
    for meta in metas:
        for key, field in _SET_FIELDS.items():
            v = _norm(meta.get(field))
            if v is not None:
                sets[key].add(v)
        colour.add("rgb" if str(meta.get("SamplesPerPixel") or 1) == "3" else "grey")
        sides += [int(meta[k]) for k in ("Rows", "Columns") if meta.get(k)]
        sp = _spacing(meta)
        if sp is not None:
            spacings.append(sp)
    return {**{k: sorted(v) for k, v in sets.items()}, "colour": sorted(colour),
            "size_range": [min(sides), max(sides)] if sides else None,
            "pixel_spacing_range": [min(spacings), max(spacings)] if spacings else None}


def header_mismatch(facts: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> str | None:
    """The first header field of ``meta`` outside the training domain, as a reason, or
    None. A field the new file or the training files do not state is not compared.

    Examples
    --------
    >>> facts = domain_facts([{"Modality": "CR", "Rows": 512, "Columns": 512}])
    >>> header_mismatch(facts, {"Modality": "MR", "Rows": 256, "Columns": 256})
    "Modality 'MR' not among the training files' ['CR']"
    >>> header_mismatch(facts, {"Modality": "CR", "Rows": 500, "Columns": 480}) is None
    True
    """
    if not facts:
        return None
    for key in _GATED_FIELDS:
        field = _SET_FIELDS[key]
        v, known = _norm(meta.get(field)), facts.get(key) or []
        if v is not None and known and v not in known:
            return f"{field} {v!r} not among the training files' {known}"
    c = "rgb" if str(meta.get("SamplesPerPixel") or 1) == "3" else "grey"
    if c == "rgb" and facts.get("colour") and c not in facts["colour"]:  # colour, grey model
        return f"{c} image; the training files were {'/'.join(facts['colour'])}"
    side_range = facts.get("size_range")
    sides = [int(meta[k]) for k in ("Rows", "Columns") if meta.get(k)]
    if side_range and sides and (min(sides) < side_range[0] / _SIZE_SLACK
                                 or max(sides) > side_range[1] * _SIZE_SLACK):
        return (f"image size {meta.get('Rows')} x {meta.get('Columns')} far outside the "
                f"training sizes {side_range[0]}-{side_range[1]}")
    sp, sp_range = _spacing(meta), facts.get("pixel_spacing_range")
    if sp is not None and sp_range and not (sp_range[0] / _SIZE_SLACK <= sp
                                            <= sp_range[1] * _SIZE_SLACK):
        return (f"pixel spacing {sp:.3g} mm far outside the training range "
                f"{sp_range[0]:.3g}-{sp_range[1]:.3g} mm")
    return None


def gate_summary(g: dict[str, Any]) -> str:
    """One line on what the gate flags among the test images.

    Examples
    --------
    >>> gate_summary({"test_flagged": 1, "test_images": 20, "false_flag_rate": 0.05})
    'would flag 1 of 20 test images (5.0%; threshold set for 5% on validation)'
    """
    n, k = int(g.get("test_images") or 0), int(g.get("test_flagged") or 0)
    share = f"{100 * k / n:.1f}%" if n else "-"
    return (f"would flag {k} of {n} test images ({share}; threshold set for "
            f"{100 * float(g.get('false_flag_rate', 0.05)):g}% on validation)")
