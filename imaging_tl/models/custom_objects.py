"""The custom Keras objects of the transfer model, registered for ``keras.models.load_model``.

:class:`InputNormalization` is the model's first layer (the backbone's scheme, constants
from :mod:`imaging_tl.stages.normalize`); :class:`MaskedBinaryCrossentropy` is the
multilabel loss. Both are registered under the ``imaging_tl`` package, so loading a saved
model needs no ``custom_objects`` once this module is imported.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

__all__ = ["InputNormalization", "MaskedBinaryCrossentropy"]


@keras.saving.register_keras_serializable(package="imaging_tl")
class InputNormalization(layers.Layer):
    """Map float RGB in [0, 1] to what the backbone expects: optional RGB->BGR, then
    ``(x - mean) / std`` per channel.

    Parameters
    ----------
    scheme : str
        Scheme name (for the contract; the constants are stored too so the file is
        self-contained).
    mean, std : sequence of 3 floats
        Per-channel constants for [0, 1] inputs, in the channel order after ``bgr``.
    bgr : bool
        Reverse the channel order first (Caffe-style backbones).

    Examples
    --------
    >>> layer = InputNormalization("efficientnet_lite", [127 / 255] * 3, [128 / 255] * 3)
    >>> round(float(layer(np.ones((1, 1, 1, 3), "float32"))[0, 0, 0, 0]), 5)  # (255-127)/128
    1.0
    """

    def __init__(self, scheme: str, mean, std, bgr: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scheme = str(scheme)
        self.mean = [float(v) for v in np.broadcast_to(np.asarray(mean, float), (3,))]
        self.std = [float(v) for v in np.broadcast_to(np.asarray(std, float), (3,))]
        self.bgr = bool(bgr)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=x.dtype)
        std = ops.convert_to_tensor(self.std, dtype=x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scheme": self.scheme, "mean": self.mean,
                "std": self.std, "bgr": self.bgr}


@keras.saving.register_keras_serializable(package="imaging_tl")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Per-label binary cross-entropy that ignores missing labels (``-1`` or NaN).

    The mean is over the labels that are present, so a batch where half the labels are
    missing has the same scale as a complete one.

    Examples
    --------
    >>> loss = MaskedBinaryCrossentropy()
    >>> y = np.array([[1.0, -1.0]], "float32"); p = np.array([[0.9, 0.1]], "float32")
    >>> round(float(loss(y, p)), 4), round(float(-np.log(0.9)), 4)
    (0.1054, 0.1054)
    """

    def __init__(self, from_logits: bool = False, name: str = "masked_binary_crossentropy",
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        present = ops.logical_and(ops.logical_not(ops.isnan(y_true)), y_true >= 0)
        mask = ops.cast(present, y_pred.dtype)
        safe = ops.where(present, y_true, ops.zeros_like(y_true))
        bce = keras.losses.binary_crossentropy(
            ops.expand_dims(safe, -1), ops.expand_dims(y_pred, -1), from_logits=self.from_logits)
        # per sample: mean over present labels; samples without labels contribute 0
        return ops.sum(bce * mask, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits}
