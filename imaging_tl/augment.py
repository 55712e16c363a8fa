"""Augmentation for radiographs and CT slices, built on albumentations 2.

Images enter and leave as float32 in [0, 1]: albumentations works on float32 directly, so
16-bit dynamic range survives (no trip through uint8). Transforms that albumentations only
implements on uint8 (CLAHE, Equalize, ImageCompression, ...) would quantise to 256 levels;
naming one raises unless ``allow_uint8=True``.

Grey images replicated to RGB (``ToRGB``) are augmented as one grey plane and replicated
again, so they stay grey.

Presets are safe for radiographs: small rotations, shifts and zooms, brightness /
contrast / gamma, mild noise; never a vertical flip; horizontal flip only when asked
(``hflip=True``), because laterality matters in chest imaging.

Seeding: ``Augmenter(seed=s)`` passes ``seed`` to ``albumentations.Compose``, which owns
its random generators (global ``random`` / ``numpy`` state is neither used nor touched).
The n-th call of an augmenter built with seed ``s`` gives the same result in every run;
calls must come in the same order (e.g. ``tf.data`` with ``num_parallel_calls=1`` or
``deterministic=True``), and each worker process needs its own seed (:meth:`reseed`).

Examples
--------
>>> import numpy as np
>>> from imaging_tl.augment import Augmenter
>>> aug = Augmenter("light", seed=0)
>>> x = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
>>> y = aug(x)
>>> y.dtype, y.shape
(dtype('float32'), (64, 64))
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.stages.base import close_match_hint

__all__ = ["PRESETS", "Augmenter", "build_transform", "list_transforms", "tta_predict",
           "tta_predictions", "tta_preset", "tta_uncertainty"]

# cv2.BORDER_CONSTANT == 0: the area rotated/shifted in is black (0 = air after windowing).
_AFFINE = {"name": "Affine", "border_mode": 0, "fill": 0.0}

#: Preset name -> list of transform configs (albumentations class name + parameters).
PRESETS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "light": [
        {
            **_AFFINE,
            "rotate": [-5.0, 5.0],
            "translate_percent": [-0.03, 0.03],
            "scale": [0.97, 1.03],
            "p": 0.5,
        },
        {
            "name": "RandomBrightnessContrast",
            "brightness_limit": 0.05,
            "contrast_limit": 0.05,
            "p": 0.5,
        },
    ],
    "medium": [
        {
            **_AFFINE,
            "rotate": [-10.0, 10.0],
            "translate_percent": [-0.06, 0.06],
            "scale": [0.93, 1.07],
            "p": 0.7,
        },
        {
            "name": "RandomBrightnessContrast",
            "brightness_limit": 0.1,
            "contrast_limit": 0.1,
            "p": 0.5,
        },
        {"name": "RandomGamma", "gamma_limit": [85, 115], "p": 0.3},
        {"name": "GaussNoise", "std_range": [0.005, 0.02], "p": 0.2},
    ],
    "heavy": [
        {
            **_AFFINE,
            "rotate": [-15.0, 15.0],
            "translate_percent": [-0.1, 0.1],
            "scale": [0.9, 1.1],
            "shear": [-5.0, 5.0],
            "p": 0.8,
        },
        {
            "name": "RandomBrightnessContrast",
            "brightness_limit": 0.2,
            "contrast_limit": 0.2,
            "p": 0.7,
        },
        {"name": "RandomGamma", "gamma_limit": [75, 130], "p": 0.5},
        {"name": "GaussNoise", "std_range": [0.005, 0.03], "p": 0.3},
        {"name": "GaussianBlur", "blur_limit": [3, 5], "p": 0.2},
    ],
}

_HFLIP = {"name": "HorizontalFlip", "p": 0.5}


def _is_replicated_grey(x: np.ndarray) -> bool:
    """True when the 3 channels are identical (a grey image after ToRGB)."""
    first = x[0]
    if not (np.array_equal(first[:, 0], first[:, 1]) and np.array_equal(first[:, 1], first[:, 2])):
        return False  # cheap early exit for real colour / MultiWindow images
    return bool(np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2]))


def list_transforms() -> list[str]:
    """Names of the albumentations image transforms that can be named in a config.

    Examples
    --------
    >>> "Affine" in list_transforms()
    True
    """
    import albumentations as A

    names = []
    for name in dir(A):
        obj = getattr(A, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, A.BasicTransform)
            and not issubclass(obj, A.BaseCompose if hasattr(A, "BaseCompose") else ())
            and not name.startswith("_")
            and name
            not in ("BasicTransform", "DualTransform", "ImageOnlyTransform", "NoOp", "Transform3D")
        ):
            names.append(name)
    return sorted(names)


def _probe_uint8(transform: Any) -> bool:
    """True when the transform returns only multiples of 1/255 for a float32 ramp."""
    import albumentations as A

    probe = copy.deepcopy(transform)
    probe.p = 1.0
    ramp = np.linspace(0.1, 0.9, 48 * 48, dtype=np.float32).reshape(48, 48)
    for image in (ramp, np.repeat(ramp[..., None], 3, axis=-1)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = A.Compose([probe], seed=0)(image=image)["image"]
        except Exception:  # e.g. needs 3 channels: try the next probe
            continue
        scaled = np.asarray(out, dtype=np.float64) * 255.0
        return bool(np.all(np.abs(scaled - np.round(scaled)) < 1e-3))
    return False


def build_transform(config: Mapping[str, Any], *, allow_uint8: bool = False) -> Any:
    """Build one albumentations transform from ``{"name": ClassName, **params}``.

    Parameters
    ----------
    config : mapping
        ``name`` is an albumentations class (e.g. ``"Affine"``, ``"CoarseDropout"``);
        the other keys are its parameters (lists are turned into tuples).
    allow_uint8 : bool
        Accept a transform that quantises float32 images to 256 levels.

    Raises
    ------
    ValueError
        Unknown name (with the known names and a close match), invalid parameters (with
        albumentations' reason), or a transform that would squeeze to uint8.

    Examples
    --------
    >>> t = build_transform({"name": "Rotate", "limit": 5, "p": 1.0})
    >>> type(t).__name__
    'Rotate'
    """
    import albumentations as A

    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"augmentation: a transform config needs a 'name', got {config!r}")
    params = dict(config)
    name = params.pop("name")
    known = list_transforms()
    if name not in known:
        raise ValueError(
            f"augmentation: unknown transform {name!r}{close_match_hint(name, known)}; "
            f"known albumentations transforms: {', '.join(known)}"
        )
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    cls = getattr(A, name)
    try:
        with warnings.catch_warnings():
            # albumentations only warns about unknown arguments: make that an error.
            warnings.filterwarnings("error", message=r"Argument\(s\) .* are not valid")
            transform = cls(**params)
    except (UserWarning, ValueError, TypeError) as exc:
        raise ValueError(f"augmentation: {name}: invalid parameters: {exc}") from None
    if not allow_uint8 and _probe_uint8(transform):
        raise ValueError(
            f"augmentation: {name} works on uint8 inside albumentations and would squeeze "
            "float32 images to 256 grey levels; choose another transform or pass "
            "allow_uint8=True"
        )
    return transform


class Augmenter:
    """Random augmentation of float32 [0, 1] images; ``__call__(image) -> image``.

    Parameters
    ----------
    preset : {"none", "light", "medium", "heavy"}
        Built-in, radiograph-safe transform lists (see :data:`PRESETS`).
    hflip : bool
        Add a horizontal flip with probability 0.5 (off by default: laterality).
    transforms : list of dict, optional
        Extra albumentations transforms by name, applied after the preset, e.g.
        ``[{"name": "CoarseDropout", "num_holes_range": [1, 4], "p": 0.3}]``.
    seed : int, optional
        Seed of the random sequence; ``None`` draws a fresh one.
    allow_uint8 : bool
        Accept named transforms that quantise to 256 levels.

    Examples
    --------
    >>> import numpy as np
    >>> a = Augmenter("medium", seed=3)
    >>> b = Augmenter.from_config(a.to_config())
    >>> x = np.full((32, 32), 0.5, np.float32)
    >>> bool(np.array_equal(a(x), b(x)))
    True
    """

    def __init__(
        self,
        preset: str = "light",
        *,
        hflip: bool = False,
        transforms: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        allow_uint8: bool = False,
    ) -> None:
        import albumentations as A

        if preset not in PRESETS:
            raise ValueError(
                f"Augmenter: preset={preset!r} is unknown{close_match_hint(str(preset), PRESETS)}"
                f"; allowed: {', '.join(PRESETS)}"
            )
        if not isinstance(hflip, bool):
            raise ValueError(f"Augmenter: hflip must be true or false, got {hflip!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise ValueError(f"Augmenter: seed must be an integer or None, got {seed!r}")
        if transforms is not None and (
            isinstance(transforms, Mapping | str) or not isinstance(transforms, Sequence)
        ):
            raise ValueError(f"Augmenter: transforms must be a list of dicts, got {transforms!r}")
        self.preset = preset
        self.hflip = hflip
        self.transforms = [dict(t) for t in (transforms or [])]
        self.seed = None if seed is None else int(seed)
        self.allow_uint8 = bool(allow_uint8)
        built = [build_transform(t, allow_uint8=True) for t in PRESETS[preset]]
        if hflip:
            built.append(build_transform(_HFLIP))
        for i, t in enumerate(self.transforms):
            try:
                built.append(build_transform(t, allow_uint8=self.allow_uint8))
            except ValueError as exc:
                raise ValueError(f"Augmenter: transforms[{i}]: {exc}") from None
        self._compose = A.Compose(built, seed=self.seed)

    @property
    def compose(self) -> Any:
        """The underlying ``albumentations.Compose``."""
        return self._compose

    def reseed(self, seed: int) -> None:
        """Restart the random sequence from ``seed`` (e.g. one seed per worker)."""
        self.seed = int(seed)
        self._compose.set_random_seed(self.seed)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Augment one ``H x W`` or ``H x W x C`` float image in [0, 1]."""
        x = image if isinstance(image, np.ndarray) else np.asarray(image)
        if x.dtype.kind != "f":
            raise ValueError(
                f"Augmenter: image must be float32 in [0, 1], got dtype {x.dtype} "
                "(apply the preprocessing stages first; integers are refused so that "
                "16-bit data are never squeezed)"
            )
        if x.ndim not in (2, 3) or x.size == 0:
            raise ValueError(f"Augmenter: image must be H x W or H x W x C, got {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise ValueError(
                f"Augmenter: image must be in [0, 1] (window it first), got [{lo:g}, {hi:g}]"
            )
        if not self._compose.transforms:
            return x
        if x.ndim == 3 and x.shape[-1] == 3 and _is_replicated_grey(x):
            # A radiograph after ToRGB: augment the grey plane once and replicate it, so it
            # stays grey (no per-channel noise or colour shifts the model never sees at
            # inference) and runs about 2x faster (albumentations is slow on float32 RGB).
            grey = self._augment(np.ascontiguousarray(x[..., 0]))
            return np.stack((grey, grey, grey), axis=-1)
        return self._augment(x)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        out = self._compose(image=x)["image"]
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 3 and x.ndim == 2:  # a transform may add a channel axis
            out = out[..., 0]
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def to_config(self) -> dict[str, Any]:
        """``{"preset", "hflip", "seed", "transforms"[, "allow_uint8"]}``."""
        cfg: dict[str, Any] = {
            "preset": self.preset,
            "hflip": self.hflip,
            "seed": self.seed,
            "transforms": copy.deepcopy(self.transforms),
        }
        if self.allow_uint8:
            cfg["allow_uint8"] = True
        return cfg

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | None) -> Augmenter:
        """Build from :meth:`to_config` output, or from a bare preset name."""
        if config is None:
            return cls("none")
        if isinstance(config, str):
            return cls(config)
        allowed = ("preset", "hflip", "transforms", "seed", "allow_uint8")
        for key in config:
            if key not in allowed:
                raise ValueError(
                    f"Augmenter: unknown key {key!r}{close_match_hint(key, allowed)}; "
                    f"allowed: {', '.join(allowed)}"
                )
        return cls(**dict(config))

    def __repr__(self) -> str:
        extra = f", transforms={self.transforms!r}" if self.transforms else ""
        return f"Augmenter({self.preset!r}, hflip={self.hflip}, seed={self.seed}{extra})"


def tta_preset(preset: str) -> str:
    """The preset test-time augmentation uses: the run's own, ``light`` for ``none``.

    Examples
    --------
    >>> tta_preset("none"), tta_preset("medium")
    ('light', 'medium')
    """
    if preset not in PRESETS:
        raise ValueError(f"test-time augmentation: preset={preset!r} is unknown; allowed: "
                         f"{', '.join(PRESETS)}")
    return "light" if preset == "none" else preset


def tta_predictions(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, n: int, *,
    preset: str = "light", hflip: bool = False, seed: int = 0,
    index: Sequence[int] | None = None,
) -> np.ndarray:
    """Test-time augmentation: the predictions of an image and of its ``n`` augmented copies.

    Copy ``k`` (1..n) of image ``i`` comes from an :class:`Augmenter` of the preset (never
    a vertical flip; a horizontal flip only with ``hflip``, as in training) seeded with
    ``(seed, k, index[i])``: the result depends on the seed and the image's index alone,
    not on batching, chunking or what else is predicted. Only presets are used: a
    configuration's own transform list could hold anything.

    Parameters
    ----------
    predict : callable
        ``predict(batch) -> probabilities``, e.g. a model's batched prediction.
    x : numpy.ndarray
        ``(N, H, W[, C])`` float32 model inputs in [0, 1].
    n : int
        Augmented copies (0: the plain prediction alone).
    preset, hflip, seed :
        The augmentation (see :func:`tta_preset`) and its seed.
    index : sequence of int, optional
        Each image's position in the whole set (default ``0..N-1``).

    Returns
    -------
    numpy.ndarray
        float32 ``(n + 1, N, ...)``: the plain prediction first, then each copy's.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    >>> mean = lambda b: b.mean(axis=(1, 2, 3))[:, None]
    >>> tta_predictions(mean, x, 4, seed=1).shape
    (5, 3, 1)
    """
    if n < 0:
        raise ValueError(f"test-time augmentation: n must be >= 0, got {n}")
    idx = list(range(len(x))) if index is None else [int(i) for i in index]
    if len(idx) != len(x):
        raise ValueError(f"test-time augmentation: {len(idx)} indices for {len(x)} images")
    out = [np.asarray(predict(x), dtype=np.float32)]
    aug = Augmenter(tta_preset(preset), hflip=hflip, seed=0)
    for k in range(1, n + 1):
        views = []
        for i, img in zip(idx, x, strict=True):
            aug.reseed(int(np.random.SeedSequence([int(seed), k, i]).generate_state(1)[0]))
            views.append(aug(img))
        out.append(np.asarray(predict(np.stack(views) if views else x), dtype=np.float32))
    return np.stack(out)


def tta_predict(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, n: int, *,
    preset: str = "light", hflip: bool = False, seed: int = 0,
    index: Sequence[int] | None = None,
) -> np.ndarray:
    """The mean of :func:`tta_predictions`: an image's and its ``n`` copies' prediction.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    >>> mean = lambda b: b.mean(axis=(1, 2, 3))[:, None]
    >>> a = tta_predict(mean, x, 4, seed=1)
    >>> bool(np.array_equal(a, tta_predict(mean, x, 4, seed=1))), a.shape
    (True, (3, 1))
    >>> bool(np.array_equal(a[1:], tta_predict(mean, x[1:], 4, seed=1, index=[1, 2])))
    True
    """
    preds = tta_predictions(predict, x, n, preset=preset, hflip=hflip, seed=seed, index=index)
    return preds.astype(np.float64).mean(axis=0).astype(np.float32)


def tta_uncertainty(predictions: np.ndarray) -> np.ndarray:
    """Per image, how much the copies disagree: the standard deviation over the copies of
    each probability, the largest over the classes (binary: of the one probability).

    Examples
    --------
    >>> p = np.array([[[0.9], [0.5]], [[0.9], [0.1]], [[0.9], [0.9]]])  # 3 copies, 2 images
    >>> [round(float(u), 3) for u in tta_uncertainty(p)]
    [0.0, 0.327]
    """
    p = np.asarray(predictions, dtype=np.float64)
    spread = p.std(axis=0)
    return spread.reshape(spread.shape[0], -1).max(axis=1).astype(np.float32)
