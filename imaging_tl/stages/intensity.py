"""Intensity stages: :class:`CLAHE` (scikit-image's ``equalize_adapthist``), and the
colour-safe scaling :func:`colour_to_unit` (one range for all channels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.stages.base import Stage, check_number, register_stage

__all__ = ["CLAHE", "colour_to_unit"]


@register_stage
class CLAHE(Stage):
    """Contrast-limited adaptive histogram equalisation of a grey image in [0, 1].

    Thin wrapper around :func:`skimage.exposure.equalize_adapthist`; use it after
    :class:`~imaging_tl.stages.Window` and before :class:`~imaging_tl.stages.ToRGB`.

    Parameters
    ----------
    clip_limit : float
        Contrast limit in (0, 1]; higher gives more contrast.
    kernel_size : int or (int, int), optional
        Tile size in pixels; default 1/8 of the image height and width.
    nbins : int
        Histogram bins.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.linspace(0.4, 0.6, 64 * 64, dtype=np.float32).reshape(64, 64)
    >>> out = CLAHE(clip_limit=0.02)(img)
    >>> out.dtype, float(out.max() - out.min()) > 0.2
    (dtype('float32'), True)
    """

    name = "clahe"
    grey_only = True

    def __init__(
        self,
        clip_limit: float = 0.01,
        kernel_size: int | Sequence[int] | None = None,
        nbins: int = 256,
    ) -> None:
        self.clip_limit = check_number(
            "CLAHE", "clip_limit", clip_limit, low=0, low_inclusive=False, high=1
        )
        if kernel_size is None:
            self.kernel_size = None
        elif isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
            if len(kernel_size) != 2:
                raise ValueError(
                    f"CLAHE: kernel_size must be an int or [h, w], got {kernel_size!r}"
                )
            self.kernel_size = [
                check_number("CLAHE", "kernel_size", k, low=2, integer=True) for k in kernel_size
            ]
        else:
            self.kernel_size = check_number(
                "CLAHE", "kernel_size", kernel_size, low=2, integer=True
            )
        self.nbins = check_number("CLAHE", "nbins", nbins, low=2, integer=True)

    def get_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"clip_limit": self.clip_limit}
        if self.kernel_size is not None:
            p["kernel_size"] = self.kernel_size
        if self.nbins != 256:
            p["nbins"] = self.nbins
        return p

    def range_effect(self) -> str:
        return "unit"  # refuses input outside [0, 1], returns [0, 1]

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        from skimage.exposure import equalize_adapthist

        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"CLAHE: image must be in [0, 1] (apply Window first), got [{lo:g}, {hi:g}]"
            )
        out = equalize_adapthist(
            image, kernel_size=self.kernel_size, clip_limit=self.clip_limit, nbins=self.nbins
        )
        return out.astype(np.float32, copy=False), None


def colour_to_unit(image: np.ndarray, value_range: Sequence[float] | None = None) -> np.ndarray:
    """A colour image scaled to [0, 1] with ONE range for all channels (hue kept).

    Per-channel windowing would move every channel differently and shift the hue; here
    the stored range (``value_range``, e.g. ``[0, 255]`` of 8-bit files) maps to [0, 1]
    for every channel alike. Without a stored range the image's own joint minimum and
    maximum are used.

    Examples
    --------
    >>> import numpy as np
    >>> px = np.array([[[255.0, 128.0, 0.0]]], np.float32)
    >>> [round(float(v), 3) for v in colour_to_unit(px, [0, 255])[0, 0]]
    [1.0, 0.502, 0.0]
    """
    x = np.asarray(image, dtype=np.float32)
    if value_range is not None and len(value_range) == 2 and value_range[1] > value_range[0]:
        lo, hi = float(value_range[0]), float(value_range[1])
    else:
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    out = (x - lo) / (hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    return out
