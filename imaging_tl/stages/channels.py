"""Channel stages: :class:`ToRGB` (grey replicated to 3 channels) and :class:`ToGrey`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from imaging_tl.stages.base import Stage, register_stage

__all__ = ["ToGrey", "ToRGB"]


@register_stage
class ToRGB(Stage):
    """Replicate a grey image to 3 channels (``H x W`` -> ``H x W x 3``).

    ImageNet backbones take three channels. Images that already have 3 channels (colour,
    or :class:`~imaging_tl.stages.MultiWindow` output) pass through unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> ToRGB()(np.ones((2, 2), np.float32)).shape
    (2, 2, 3)
    """

    name = "to_rgb"

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, Any]:
        return {}

    def range_effect(self) -> str:
        return "keep"  # replication / luminance weights summing to 1

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        if image.ndim == 2:  # np.stack measured ~2x faster than repeat or broadcast+copy
            return np.stack((image, image, image), axis=-1), None
        channels = image.shape[-1]
        if channels == 3:
            return image, None
        if channels == 1:
            return np.concatenate((image, image, image), axis=-1), None
        raise ValueError(
            f"ToRGB: image must be grey (H x W or H x W x 1) or have 3 channels, got shape "
            f"{image.shape}; allowed channel counts: 1, 3"
        )

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"SamplesPerPixel": 3}


@register_stage
class ToGrey(Stage):
    """Colour (``H x W x 3``) to grey (``H x W``) by luminance (ITU-R BT.709 weights).

    For radiographs stored as RGB PNG/JPEG files: make them grey before the grey stages
    (Window, CLAHE). Grey images pass through unchanged. Uses
    :func:`skimage.color.rgb2gray`.

    Examples
    --------
    >>> import numpy as np
    >>> ToGrey()(np.ones((2, 2, 3), np.float32)).shape
    (2, 2)
    """

    name = "to_grey"

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, Any]:
        return {}

    def range_effect(self) -> str:
        return "keep"  # replication / luminance weights summing to 1

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        if image.ndim == 2:
            return image, None
        if image.shape[-1] == 1:
            return image[..., 0], None
        if image.shape[-1] != 3:
            raise ValueError(f"ToGrey: image must have 1 or 3 channels, got shape {image.shape}")
        from skimage.color import rgb2gray

        return rgb2gray(image).astype(np.float32, copy=False), None

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2"}
