"""Geometry stages: :class:`Resize`, :class:`PadToSquare`, :class:`CenterCrop`,
:class:`CropForeground`.

Resampling uses OpenCV (already required by albumentations): ``INTER_AREA`` when
shrinking is an exact box filter over the source area, so it is anti-aliased, and on a
512 x 512 float32 slice -> 224 it measured 0.6 ms against 5.2 ms for
``skimage.transform.resize(anti_aliasing=True)`` on these CPUs, with the same output
noise level. Float32 stays float32 (no trip through uint8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.io.decode_plan import DecodeTarget
from imaging_tl.stages.base import (
    Stage,
    check_choice,
    check_number,
    geometry_updates,
    register_stage,
)

__all__ = [
    "CenterCrop", "CropForeground", "PadToSquare", "Resize", "decode_target", "resize_image",
]

INTERPOLATIONS = ("auto", "area", "linear", "cubic", "nearest")


def _size_pair(stage: str, size: Any) -> tuple[int, int]:
    """``224`` -> (224, 224); ``[h, w]`` -> (h, w); ValueError otherwise."""
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) != 2:
            raise ValueError(f"{stage}: size must be an int or [height, width], got {size!r}")
        h = check_number(stage, "size[0]", size[0], low=1, integer=True)
        w = check_number(stage, "size[1]", size[1], low=1, integer=True)
        return h, w
    s = check_number(stage, "size", size, low=1, integer=True)
    return s, s


def resize_image(image: np.ndarray, height: int, width: int, interpolation: str = "auto"):
    """Resize a 2-D or channels-last float32 image to ``height x width`` (no padding).

    ``"auto"`` uses area averaging when shrinking (anti-aliased) and bilinear
    interpolation when enlarging; ``"cubic"`` output is clipped to the input's range
    (cubic kernels overshoot at edges).

    Examples
    --------
    >>> import numpy as np
    >>> resize_image(np.ones((10, 20, 3), np.float32), 5, 10).shape
    (5, 10, 3)
    """
    import cv2

    h0, w0 = image.shape[:2]
    if (h0, w0) == (height, width):
        return image
    if interpolation == "auto":
        interpolation = "area" if height <= h0 and width <= w0 else "linear"
    flag = {
        "area": cv2.INTER_AREA,
        "linear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "nearest": cv2.INTER_NEAREST,
    }[interpolation]
    src = image if image.flags.c_contiguous else np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] > 4:
        # OpenCV's area filter takes at most 4 channels; do wider stacks in groups.
        parts = [
            cv2.resize(
                np.ascontiguousarray(src[..., i : i + 4]), (width, height), interpolation=flag
            )
            for i in range(0, image.shape[2], 4)
        ]
        parts = [p[..., None] if p.ndim == 2 else p for p in parts]
        out = np.concatenate(parts, axis=-1)
        if interpolation == "cubic":
            np.clip(out, image.min(), image.max(), out=out)
        return out
    out = cv2.resize(src, (width, height), interpolation=flag)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[..., None]
    if interpolation == "cubic":
        # cubic kernels overshoot at edges: keep [0, 1] images in [0, 1]
        np.clip(out, image.min(), image.max(), out=out)
    return out


def _pad_to(image: np.ndarray, height: int, width: int, value: float) -> np.ndarray:
    h0, w0 = image.shape[:2]
    if (h0, w0) == (height, width):
        return image
    out = np.full((height, width, *image.shape[2:]), value, dtype=np.float32)
    top, left = (height - h0) // 2, (width - w0) // 2
    out[top : top + h0, left : left + w0] = image
    return out


@register_stage
class Resize(Stage):
    """Resize to a fixed size, keeping the aspect ratio (and padding) or stretching.

    Parameters
    ----------
    size : int or (int, int)
        Output size; a bare number means a square ``size x size``.
    mode : {"pad", "stretch"}
        ``"pad"`` scales the image to fit and pads the rest (centred) with ``pad_value``;
        ``"stretch"`` scales each axis on its own.
    pad_value : float
        Value of the padding (0 = black after windowing).
    interpolation : {"auto", "area", "linear", "cubic", "nearest"}
        ``"auto"``: area averaging when shrinking (anti-aliased), bilinear when enlarging.

    Examples
    --------
    >>> import numpy as np
    >>> Resize(224)(np.ones((512, 256), np.float32)).shape
    (224, 224)
    >>> Resize((100, 50), mode="stretch")(np.ones((30, 30, 3), np.float32)).shape
    (100, 50, 3)
    """

    name = "resize"

    def __init__(
        self,
        size: int | Sequence[int],
        *,
        mode: str = "pad",
        pad_value: float = 0.0,
        interpolation: str = "auto",
    ) -> None:
        self.size = _size_pair("Resize", size)
        self.mode = check_choice("Resize", "mode", mode, ("pad", "stretch"))
        self.pad_value = check_number("Resize", "pad_value", pad_value)
        self.interpolation = check_choice("Resize", "interpolation", interpolation, INTERPOLATIONS)

    def get_params(self) -> dict[str, Any]:
        h, w = self.size
        p: dict[str, Any] = {"size": h if h == w else [h, w]}
        if self.mode != "pad":
            p["mode"] = self.mode
        if self.pad_value != 0.0:
            p["pad_value"] = self.pad_value
        if self.interpolation != "auto":
            p["interpolation"] = self.interpolation
        return p

    def range_effect(self) -> str:
        # area/linear/nearest average or pick input values; cubic is clipped to the input
        return "keep" if 0.0 <= self.pad_value <= 1.0 else "other"

    def _target(self, h0: int, w0: int) -> tuple[int, int]:
        h, w = self.size
        if self.mode == "stretch":
            return h, w
        scale = min(h / h0, w / w0)
        return max(1, min(h, round(h0 * scale))), max(1, min(w, round(w0 * scale)))

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        th, tw = self._target(*image.shape[:2])
        out = resize_image(image, th, tw, self.interpolation)
        if self.mode == "pad":
            out = _pad_to(out, *self.size, self.pad_value)
        return out, None

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        h0, w0 = meta.get("Rows"), meta.get("Columns")
        if not h0 or not w0:
            return geometry_updates(out, meta)
        th, tw = self._target(int(h0), int(w0))
        return geometry_updates(out, meta, scale=(th / int(h0), tw / int(w0)))


@register_stage
class PadToSquare(Stage):
    """Pad the shorter side (centred) so that the image is square.

    Parameters
    ----------
    value : float
        Value of the padding.

    Examples
    --------
    >>> import numpy as np
    >>> PadToSquare()(np.ones((3, 5), np.float32)).tolist()[0]
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """

    name = "pad_to_square"

    def __init__(self, value: float = 0.0) -> None:
        self.value = check_number("PadToSquare", "value", value)

    def get_params(self) -> dict[str, Any]:
        return {"value": self.value} if self.value != 0.0 else {}

    def range_effect(self) -> str:
        return "keep" if 0.0 <= self.value <= 1.0 else "other"

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        side = max(image.shape[:2])
        return _pad_to(image, side, side, self.value), None

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return geometry_updates(out, meta)


@register_stage
class CenterCrop(Stage):
    """Cut the central ``size`` region out of the image.

    Parameters
    ----------
    size : int or (int, int)
        Output size; a bare number means a square. Must fit inside the image.

    Examples
    --------
    >>> import numpy as np
    >>> CenterCrop(2)(np.arange(16, dtype=np.float32).reshape(4, 4)).tolist()
    [[5.0, 6.0], [9.0, 10.0]]
    """

    name = "center_crop"

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_pair("CenterCrop", size)

    def get_params(self) -> dict[str, Any]:
        h, w = self.size
        return {"size": h if h == w else [h, w]}

    def range_effect(self) -> str:
        return "keep"

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        h, w = self.size
        h0, w0 = image.shape[:2]
        if h > h0 or w > w0:
            raise ValueError(
                f"CenterCrop: size {[h, w]} does not fit in an image of {h0} x {w0}; "
                "put Resize or PadToSquare before it"
            )
        top, left = (h0 - h) // 2, (w0 - w) // 2
        return image[top : top + h, left : left + w], None

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return geometry_updates(out, meta)


@register_stage
class CropForeground(Stage):
    """Remove black borders and uniform collimation bands around the anatomy.

    A row (column) counts as content when more than ``min_fraction`` of its pixels are
    brighter than ``threshold`` and, with ``remove_uniform``, its values vary by more
    than ``uniform_tol`` (standard deviation): collimated areas are flat whatever their
    grey level. The crop keeps everything between the first and last content row and
    column, re-tested inside the box until it is stable (a border inside a border), plus
    ``margin`` pixels. An image without content is returned unchanged.
    Use after windowing (values in [0, 1]).

    Parameters
    ----------
    threshold : float
        Pixels above this count as foreground.
    margin : int
        Pixels kept around the content box.
    min_fraction : float
        Fraction of a row/column that must be foreground (ignores stray bright pixels).
    remove_uniform : bool
        Also remove flat bands of any level (collimation, burnt-in white borders).
    uniform_tol : float
        Standard deviation below which a row/column counts as flat.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((10, 10), np.float32)
    >>> img[2:6, 3:8] = np.random.default_rng(0).uniform(0.2, 1.0, (4, 5))
    >>> CropForeground()(img).shape
    (4, 5)
    """

    name = "crop_foreground"

    def __init__(
        self,
        threshold: float = 0.05,
        margin: int = 0,
        min_fraction: float = 0.02,
        remove_uniform: bool = True,
        uniform_tol: float = 0.02,
    ) -> None:
        self.threshold = check_number("CropForeground", "threshold", threshold)
        self.margin = check_number("CropForeground", "margin", margin, low=0, integer=True)
        self.min_fraction = check_number(
            "CropForeground", "min_fraction", min_fraction, low=0, high=1
        )
        if not isinstance(remove_uniform, bool):
            raise ValueError(
                f"CropForeground: remove_uniform must be a bool, got {remove_uniform!r}"
            )
        self.remove_uniform = remove_uniform
        self.uniform_tol = check_number("CropForeground", "uniform_tol", uniform_tol, low=0)

    def get_params(self) -> dict[str, Any]:
        defaults = {
            "threshold": 0.05,
            "margin": 0,
            "min_fraction": 0.02,
            "remove_uniform": True,
            "uniform_tol": 0.02,
        }
        return {k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v}

    def range_effect(self) -> str:
        return "keep"

    def _content(self, grey: np.ndarray, axis: int) -> np.ndarray:
        keep = (grey > self.threshold).mean(axis=axis) > self.min_fraction
        if self.remove_uniform:
            keep &= grey.std(axis=axis) > self.uniform_tol
        return keep

    def box(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """``(top, bottom, left, right)`` of the content (exclusive ends), or None."""
        grey = image.mean(axis=-1) if image.ndim == 3 else image
        top, bottom, left, right = 0, grey.shape[0], 0, grey.shape[1]
        # Peel layer by layer: a black border makes the collimation band inside it look
        # non-uniform along full rows, so re-test within the box until nothing changes.
        for _ in range(8):
            sub = grey[top:bottom, left:right]
            rows = np.flatnonzero(self._content(sub, axis=1))
            cols = np.flatnonzero(self._content(sub, axis=0))
            if rows.size == 0 or cols.size == 0:
                return None
            new = (top + rows[0], top + rows[-1] + 1, left + cols[0], left + cols[-1] + 1)
            if new == (top, bottom, left, right):
                break
            top, bottom, left, right = new
        m = self.margin
        return (
            max(0, top - m),
            min(grey.shape[0], bottom + m),
            max(0, left - m),
            min(grey.shape[1], right + m),
        )

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        box = self.box(image)
        if box is None:
            return image, {"box": "none found, unchanged"}
        top, bottom, left, right = (int(v) for v in box)
        return image[top:bottom, left:right], {"box": [top, bottom, left, right]}

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return geometry_updates(out, meta)


#: Stages that map each pixel on its own (or see the whole image's histogram): they may
#: run on a reduced decode before the resize with the same result, up to resampling.
_PIXELWISE = frozenset({"window", "multi_window", "to_rgb", "to_grey", "color", "normalize"})


def decode_target(stages: Iterable[Any]) -> DecodeTarget | None:
    """What a pipeline needs of the decoder: the size of its first resize, or None.

    The stages before the first :class:`Resize` must be pixel-wise (windowing, channel
    and normalisation stages) or :class:`PadToSquare`; a crop, CLAHE or any other stage
    first sees the stored pixels, so the pipeline then gets None (decode in full).

    Parameters
    ----------
    stages : Pipeline or iterable of Stage
        The stages after reading.

    Returns
    -------
    imaging_tl.io.decode_plan.DecodeTarget or None

    Examples
    --------
    >>> from imaging_tl.stages import Pipeline, Window, ToRGB, CenterCrop
    >>> decode_target(Pipeline([Window.from_header(), Resize(224), ToRGB()]))
    DecodeTarget(size=(224, 224), mode='pad', square=False)
    >>> decode_target([CenterCrop(300), Resize(224)]) is None
    True
    """
    square = False
    for stage in stages:
        if isinstance(stage, Resize):
            return DecodeTarget(stage.size, "stretch" if stage.mode == "stretch" else "pad",
                                square)
        if isinstance(stage, PadToSquare):
            square = True
        elif getattr(stage, "name", None) not in _PIXELWISE:
            return None
    return None
