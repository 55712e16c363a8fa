"""The new head of a transfer model: global pooling -> hidden dense layers -> dropout -> output.

:class:`HeadConfig` is the single definition of the head's settings and their defaults
(plain Python, no TensorFlow, so configuration code can use it freely); :func:`add_head`
builds the layers, named ``head_pool``, ``head_dense_1`` ..., ``head_dropout``,
``head_output``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["HEAD_POOLINGS", "HeadConfig", "add_head", "head_model"]

HEAD_POOLINGS = ("avg", "max")


@dataclass(frozen=True)
class HeadConfig:
    """The new head: global pooling -> hidden dense layers -> dropout -> output.

    Attributes
    ----------
    pooling : {"avg", "max"}
        Global pooling of the backbone's last feature map.
    hidden : tuple of int
        Units of the optional hidden dense layers (``head_dense_1``, ...).
    dropout : float or None
        Dropout rate before the output, in [0, 1); ``None`` takes the backbone's default.
    activation : str
        Activation of the hidden layers.

    Raises
    ------
    ValueError
        A pooling other than ``"avg"``/``"max"``, a dropout outside [0, 1) or a hidden
        layer without units (the message names the setting, e.g. ``head.pooling``).

    Examples
    --------
    >>> HeadConfig(hidden=(128,)).pooling
    'avg'
    >>> HeadConfig.from_value({"hidden": [64, 32], "dropout": 0.1}).hidden
    (64, 32)
    """

    pooling: str = "avg"
    hidden: tuple[int, ...] = ()
    dropout: float | None = None
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))  # frozen: lists become tuples
        if self.pooling not in HEAD_POOLINGS:
            raise ValueError(f"head.pooling={self.pooling!r}: expected 'avg' or 'max'")
        if self.dropout is not None and not 0 <= float(self.dropout) < 1:
            raise ValueError(f"head.dropout={self.dropout}: expected a rate in [0, 1)")
        if any(int(units) < 1 for units in self.hidden):
            raise ValueError(f"head.hidden={list(self.hidden)}: units must be positive")

    @classmethod
    def from_value(cls, value: HeadConfig | dict | None) -> HeadConfig:
        """A HeadConfig from itself, a dict of its fields, or None (the defaults).

        Raises
        ------
        ValueError
            Unknown keys in the dict, or an invalid setting.
        TypeError
            Anything else.
        """
        if value is None:
            return cls()
        if isinstance(value, HeadConfig):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"head: unknown keys {sorted(unknown)}")
            return cls(**value)
        raise TypeError(f"head: expected HeadConfig or dict, got {type(value).__name__}")


def add_head(features: Any, config: HeadConfig, units: int, activation: str, *,
             dropout: float, seed: int = 0) -> Any:
    """Put the head's layers on a backbone's feature map; returns the output tensor.

    Parameters
    ----------
    features : KerasTensor
        The backbone's last feature map ``(N, H, W, C)``.
    config : HeadConfig
        Pooling, hidden layers and their activation.
    units, activation
        Of the ``head_output`` dense layer (computed in float32 under mixed precision).
    dropout : float
        Rate of ``head_dropout`` (``config.dropout`` already resolved against the backbone).
    seed : int
        Seeds the dropout and the Glorot initialisers (``seed + i`` for hidden layer i).

    Examples
    --------
    >>> import keras
    >>> x = keras.Input((4, 4, 8))
    >>> y = add_head(x, HeadConfig(hidden=(16,)), 3, "softmax", dropout=0.2)
    >>> keras.Model(x, y).output_shape
    (None, 3)
    """
    import keras
    from keras import layers

    pool = layers.GlobalAveragePooling2D if config.pooling == "avg" else layers.GlobalMaxPooling2D
    x = pool(name="head_pool")(features)
    for i, hidden_units in enumerate(config.hidden, start=1):
        x = layers.Dense(int(hidden_units), activation=config.activation,
                         name=f"head_dense_{i}",
                         kernel_initializer=keras.initializers.GlorotUniform(seed + i))(x)
    x = layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    return layers.Dense(units, activation=activation, dtype="float32", name="head_output",
                        kernel_initializer=keras.initializers.GlorotUniform(seed))(x)


def head_model(model: Any) -> Any:
    """Pooled features -> output, sharing the head layers (and weights) of ``model``.

    Training this model trains ``model``'s head: the layers are the same objects.

    Examples
    --------
    >>> from imaging_tl.models import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> h = head_model(m)
    >>> h.get_layer("head_output") is m.get_layer("head_output")
    True
    """
    import keras

    pool = model.get_layer("head_pool")
    feats = keras.Input(shape=pool.output.shape[1:], dtype="float32", name="features")
    x = feats
    i = model.layers.index(pool)
    for layer in model.layers[i + 1:]:
        x = layer(x)
    return keras.Model(feats, x, name=f"{model.name}_head")
