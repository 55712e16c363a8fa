"""Two random views of each radiograph, for self-supervised pretraining.

The views are built from :class:`imaging_tl.augment.Augmenter` (albumentations, float32 in
[0, 1], grey kept grey): a random resized crop, a small rotation, brightness / contrast /
gamma jitter, Gaussian blur and noise. Never a vertical flip; a horizontal flip only when
``views.hflip`` allows it (laterality matters in chest imaging).

Every image of every batch gets its own two seeds, derived from the run's seed, the epoch
and the batch number (:func:`view_seeds`): the views are the same in every run with the
same seed, whichever thread makes them, and a resumed run draws the views the
uninterrupted one would.

Examples
--------
>>> import numpy as np
>>> maker = ViewMaker({"crop_scale": (0.5, 1.0)}, size=32)
>>> x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
>>> a, b = maker(x, view_seeds(0, 0, 0, 2))
>>> a.shape, bool(np.array_equal(a, b))
((2, 32, 32, 3), False)
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from imaging_tl.augment import Augmenter

__all__ = ["ViewMaker", "describe_views", "view_augmenter", "view_seeds", "view_transforms"]

_DEFAULTS: dict[str, Any] = {"crop_scale": (0.4, 1.0), "rotate": 10.0, "brightness": 0.2,
                             "contrast": 0.2, "gamma": (80, 125), "blur": 0.2, "noise": 0.2,
                             "hflip": False}


def _settings(views: Any) -> dict[str, Any]:
    """The view settings of a ``ViewsConfig``, a mapping or None (defaults filled)."""
    if views is None:
        return dict(_DEFAULTS)
    given = views.model_dump() if hasattr(views, "model_dump") else dict(views)
    unknown = sorted(set(given) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"views: unknown key(s) {unknown}; allowed: {', '.join(_DEFAULTS)}")
    return {**_DEFAULTS, **given}


def view_transforms(views: Any, size: int) -> list[dict[str, Any]]:
    """The albumentations transforms of one view, as :class:`Augmenter` configs.

    Examples
    --------
    >>> [t["name"] for t in view_transforms(None, 64)][:3]
    ['RandomResizedCrop', 'Affine', 'RandomBrightnessContrast']
    >>> [t["name"] for t in view_transforms(None, 64)][3:]
    ['RandomGamma', 'GaussianBlur', 'GaussNoise']
    """
    v = _settings(views)
    out: list[dict[str, Any]] = [
        {"name": "RandomResizedCrop", "size": [int(size), int(size)],
         "scale": [float(v["crop_scale"][0]), float(v["crop_scale"][1])],
         "ratio": [0.8, 1.25], "p": 1.0},
        {"name": "Affine", "rotate": [-float(v["rotate"]), float(v["rotate"])],
         "border_mode": 0, "fill": 0.0, "p": 0.8 if v["rotate"] else 0.0},
        {"name": "RandomBrightnessContrast", "brightness_limit": float(v["brightness"]),
         "contrast_limit": float(v["contrast"]), "p": 0.8},
        {"name": "RandomGamma", "gamma_limit": [int(v["gamma"][0]), int(v["gamma"][1])],
         "p": 0.5},
        {"name": "GaussianBlur", "blur_limit": [3, 5], "p": float(v["blur"])},
        {"name": "GaussNoise", "std_range": [0.005, 0.03], "p": float(v["noise"])},
    ]
    return out


def view_augmenter(views: Any, size: int, seed: int = 0) -> Augmenter:
    """The :class:`Augmenter` that draws one view (a horizontal flip only with ``hflip``).

    Examples
    --------
    >>> view_augmenter({"hflip": True}, 32).hflip
    True
    """
    v = _settings(views)
    return Augmenter("none", hflip=bool(v["hflip"]), transforms=view_transforms(v, size),
                     seed=int(seed))


def view_seeds(seed: int, epoch: int, batch: int, n: int) -> np.ndarray:
    """``n x 2`` seeds (one per view of each image) of one batch of one epoch.

    Examples
    --------
    >>> bool(np.array_equal(view_seeds(1, 2, 3, 4), view_seeds(1, 2, 3, 4)))
    True
    >>> view_seeds(1, 2, 3, 4).shape
    (4, 2)
    """
    ss = np.random.SeedSequence([int(seed), int(epoch), int(batch), 0x5175])
    return ss.generate_state(2 * int(n), np.uint32).reshape(int(n), 2).astype(np.int64)


class ViewMaker:
    """``maker(images, seeds) -> (view_1, view_2)`` for a batch of float32 images.

    Thread-safe: each thread augments with its own copy of the augmenter, reseeded per
    image, so the result depends on the seeds alone.

    Parameters
    ----------
    views : ViewsConfig, mapping or None
        The view settings (``imaging_tl.config.schema.ViewsConfig``).
    size : int
        The square output size (the model's input size).
    """

    def __init__(self, views: Any, size: int) -> None:
        self.augmenter = view_augmenter(views, size)
        self.size = int(size)
        self._local = threading.local()

    def _own(self) -> Augmenter:
        aug = getattr(self._local, "aug", None)
        if aug is None:
            aug = self._local.aug = copy.deepcopy(self.augmenter)
        return aug

    def __call__(self, images: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two views of every image of the batch (``seeds``: ``n x 2``)."""
        aug = self._own()
        out = np.empty((2, *images.shape[:1], self.size, self.size, images.shape[-1]),
                       np.float32)
        for i, image in enumerate(images):
            for k in range(2):
                aug.reseed(int(seeds[i, k]) % (2**31))
                out[k, i] = aug(np.asarray(image, np.float32))
        return out[0], out[1]

    def __repr__(self) -> str:
        return f"ViewMaker({self.augmenter!r}, size={self.size})"


def describe_views(views: Any) -> Mapping[str, Any]:
    """The view settings as plain data (recorded in ``run.json``).

    Examples
    --------
    >>> describe_views({"hflip": True})["crop_scale"]
    [0.4, 1.0]
    """
    return {k: list(v) if isinstance(v, tuple) else v for k, v in _settings(views).items()}
