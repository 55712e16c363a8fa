"""The transfer model: input normalisation -> pretrained backbone (frozen block) -> new head.

The model is one flat Keras functional graph: ``image`` (float32 RGB in [0, 1] at the
model size) -> ``input_normalization`` (the backbone's scheme, constants from
:mod:`imaging_tl.stages.normalize`) -> the backbone's own layers under their own names ->
``head_pool`` -> ``head_dense_N`` ... -> ``head_dropout`` -> ``head_output``. Flat, so
that freeze points and Grad-CAM address backbone layers by name.

Frozen layers (including every BatchNorm of the backbone unless ``train_batchnorm``) have
``trainable=False``, which in Keras 3 also runs BatchNorm in inference mode: its moving
statistics never drift, whatever the phase.

The custom layer and loss are registered, so ``keras.models.load_model`` needs no
``custom_objects``; :func:`save_transfer_model` writes the preprocessing contract into the
``.keras`` file and beside it as ``contract.json``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from imaging_tl.models.backbones import build_backbone
from imaging_tl.models.registry import get_spec

__all__ = [
    "CONTRACT_ENTRY",
    "HeadConfig",
    "InputNormalization",
    "MaskedBinaryCrossentropy",
    "ModelContract",
    "TASKS",
    "backbone_layers",
    "build_transfer_model",
    "fast_predict",
    "feature_extractor",
    "head_model",
    "load_transfer_model",
    "read_contract",
    "save_transfer_model",
    "set_freeze",
]

TASKS = ("binary", "multiclass", "multilabel")
CONTRACT_ENTRY = "imaging_tl_contract.json"  # inside the .keras zip
_NON_BACKBONE = ("image", "input_normalization")


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


@dataclass(frozen=True)
class HeadConfig:
    """The new head: global pooling -> hidden dense layers -> dropout -> output.

    Attributes
    ----------
    pooling : {"avg", "max"}
    hidden : tuple of int
        Units of the optional hidden dense layers (``head_dense_1``, ...).
    dropout : float or None
        Dropout rate before the output; ``None`` takes the backbone's default.
    activation : str
        Activation of the hidden layers.

    Examples
    --------
    >>> HeadConfig(hidden=(128,)).pooling
    'avg'
    """

    pooling: str = "avg"
    hidden: tuple[int, ...] = ()
    dropout: float | None = None
    activation: str = "relu"

    @classmethod
    def from_value(cls, value: HeadConfig | dict | None) -> HeadConfig:
        if value is None:
            return cls()
        if isinstance(value, HeadConfig):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"pooling", "hidden", "dropout", "activation"}
            if unknown:
                raise ValueError(f"head: unknown keys {sorted(unknown)}")
            return cls(**{**value, "hidden": tuple(value.get("hidden", ()))})
        raise TypeError(f"head: expected HeadConfig or dict, got {type(value).__name__}")


@dataclass
class ModelContract:
    """What a trained model expects as input and what its outputs mean.

    Examples
    --------
    >>> c = ModelContract("efficientnet_lite0", "binary", ["normal", "abnormal"], [224, 224],
    ...                   "efficientnet_lite")
    >>> ModelContract.from_dict(c.to_dict()) == c
    True
    """

    backbone: str
    task: str
    label_names: list[str]
    input_size: list[int]
    normalization: str
    channels: int = 3
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    dtype: str = "float32"
    normalization_in_model: bool = True
    threshold: float = 0.5
    preprocessing: dict[str, Any] | None = None
    format_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelContract:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def check_batch(self, x: np.ndarray, tolerance: float = 1e-3) -> None:
        """Raise ValueError when a batch breaks the contract (shape, dtype, range).

        Examples
        --------
        >>> c = ModelContract("efficientnet_lite0", "binary", ["a", "b"], [4, 4], "x")
        >>> c.check_batch(np.zeros((1, 4, 4, 3), "float32"))
        >>> c.check_batch(np.full((1, 4, 4, 3), 255, "float32"))
        Traceback (most recent call last):
        ...
        ValueError: input values span [255, 255] but the model expects [0.0, 1.0] ...
        """
        x = np.asarray(x)
        want = (*self.input_size, self.channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"input batch has shape {x.shape}; the model expects "
                             f"(N, {want[0]}, {want[1]}, {want[2]})")
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < self.input_range[0] - tolerance or hi > self.input_range[1] + tolerance:
            raise ValueError(
                f"input values span [{lo:.4g}, {hi:.4g}] but the model expects "
                f"{self.input_range} (float RGB in [0, 1]; normalisation happens inside the "
                "model)")


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers of a transfer model, in graph order (input to top).

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> backbone_layers(m)[0].name
    'stem_conv'
    """
    out = []
    for layer in model.layers:
        if layer.name in _NON_BACKBONE or layer.name.startswith("head_"):
            continue
        if isinstance(layer, layers.InputLayer):
            continue
        out.append(layer)
    return out


def set_freeze(model: keras.Model, freeze: str | float = "all", *,
               train_batchnorm: bool = False) -> int:
    """Freeze the shared block of a transfer model; the head always stays trainable.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_transfer_model`.
    freeze : "all", "none", a layer name, or float in [0, 1]
        ``"all"``: the whole backbone is frozen. ``"none"``: nothing is. A layer name
        (normally one of ``get_spec(name).freeze_points``): that layer and everything before
        it. A fraction: that share of the backbone's layers, from the input side.
    train_batchnorm : bool
        Let BatchNorm layers of the unfrozen part train (batch statistics, moving averages
        updated). Default False: every backbone BatchNorm stays frozen in inference mode,
        the safe choice on small datasets.

    Returns
    -------
    int
        Number of backbone layers frozen by position (BatchNorm kept frozen not counted).

    Notes
    -----
    Recompile the model after changing what is trainable.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> set_freeze(m, "block5c_add") < len(backbone_layers(m))
    True
    """
    bb = backbone_layers(model)
    names = [layer.name for layer in bb]
    if isinstance(freeze, str) and freeze in ("all", "none"):
        n = len(bb) if freeze == "all" else 0
    elif isinstance(freeze, str):
        if freeze not in names:
            points = [p for p in get_spec_of(model).freeze_points if p in names] \
                if get_spec_of(model) else []
            raise ValueError(f"freeze={freeze!r} is not a layer of the backbone; "
                             f"freeze points: {points}")
        n = names.index(freeze) + 1
    elif isinstance(freeze, int | float) and not isinstance(freeze, bool) and 0 <= freeze <= 1:
        n = int(round(float(freeze) * len(bb)))
    else:
        raise ValueError(f"freeze must be 'all', 'none', a layer name or a fraction in [0, 1]; "
                         f"got {freeze!r}")
    for i, layer in enumerate(bb):
        trainable = i >= n
        if isinstance(layer, layers.BatchNormalization) and not train_batchnorm:
            trainable = False
        layer.trainable = trainable
    for layer in model.layers:
        if layer.name.startswith("head_"):
            layer.trainable = True
    return n


def get_spec_of(model: keras.Model):
    """The registry spec of a transfer model's backbone, or None (from its contract)."""
    contract = getattr(model, "imaging_tl_contract", None)
    return get_spec(contract.backbone) if contract is not None else None


def _label_names(task: str, classes: int | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(classes, int | np.integer) and not isinstance(classes, bool):
        n = int(classes)
        if task == "binary":
            if n not in (1, 2):
                raise ValueError(f"classes={n}: a binary task has 2 classes")
            return ["negative", "positive"]
        if n < 2 if task == "multiclass" else n < 1:
            raise ValueError(f"classes={n} is too few for task {task!r}")
        return [f"class_{i}" for i in range(n)]
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"classes: duplicate label names in {names}")
    if task == "binary" and len(names) != 2:
        raise ValueError(f"classes={names}: a binary task needs exactly 2 names "
                         "(negative first, positive second)")
    if task == "multiclass" and len(names) < 2:
        raise ValueError(f"classes={names}: a multiclass task needs at least 2")
    if not names:
        raise ValueError("classes: empty")
    return names


def build_transfer_model(
    backbone: str = "efficientnet_lite0",
    task: str = "binary",
    classes: int | list[str] | tuple[str, ...] = 2,
    freeze: str | float = "all",
    head: HeadConfig | dict | None = None,
    *,
    weights: str | None = "imagenet",
    input_size: int | None = None,
    seed: int | None = 0,
    train_batchnorm: bool = False,
) -> keras.Model:
    """Pretrained backbone with a frozen shared block and a new head for the target task.

    Parameters
    ----------
    backbone : str
        Registry name, see :func:`imaging_tl.models.list_backbones`.
    task : {"binary", "multiclass", "multilabel"}
        binary: one sigmoid unit (positive = second label name); multiclass: softmax;
        multilabel: one sigmoid per label (train with :class:`MaskedBinaryCrossentropy`,
        missing labels -1 or NaN).
    classes : int or list of str
        Number of classes or the label names.
    freeze : "all", "none", layer name or fraction
        See :func:`set_freeze`.
    head : HeadConfig or dict, optional
        Pooling, hidden layers, dropout (default: the backbone's).
    weights : {"imagenet", None} or path
        Backbone weights, as in :func:`imaging_tl.models.build_backbone`.
    input_size : int, optional
        Square input size; default the backbone's native size.
    seed : int or None
        Seeds Keras' global RNGs before building, the head initialisers and the dropout,
        so the same seed gives the same model.
    train_batchnorm : bool
        See :func:`set_freeze`.

    Returns
    -------
    keras.Model
        Input float32 RGB in [0, 1]; output probabilities. The contract is attached as
        ``model.imaging_tl_contract`` (a :class:`ModelContract`).

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "multiclass", ["a", "b", "c"],
    ...                          weights=None, input_size=64, head={"hidden": (32,)})
    >>> [l.name for l in m.layers if l.name.startswith("head_")]
    ['head_pool', 'head_dense_1', 'head_dropout', 'head_output']
    >>> m.output_shape
    (None, 3)
    """
    from imaging_tl.stages.normalize import get_scheme

    spec = get_spec(backbone)
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")
    names = _label_names(task, classes)
    cfg = HeadConfig.from_value(head)
    if cfg.pooling not in ("avg", "max"):
        raise ValueError(f"head.pooling={cfg.pooling!r}: expected 'avg' or 'max'")
    rate = spec.dropout if cfg.dropout is None else float(cfg.dropout)
    if not 0 <= rate < 1:
        raise ValueError(f"head.dropout={rate}: expected a rate in [0, 1)")
    size = int(input_size or spec.input_size)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    base_seed = 0 if seed is None else int(seed)

    scheme = get_scheme(spec.normalization)
    inputs = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
    x = InputNormalization(spec.normalization, scheme.mean, scheme.std, bool(scheme.bgr),
                           name="input_normalization")(inputs)
    base = build_backbone(spec.name, weights=weights, include_top=False,
                          input_shape=(size, size, 3), input_tensor=x)
    x = base.output
    pool = layers.GlobalAveragePooling2D if cfg.pooling == "avg" else layers.GlobalMaxPooling2D
    x = pool(name="head_pool")(x)
    for i, units in enumerate(cfg.hidden, start=1):
        x = layers.Dense(int(units), activation=cfg.activation, name=f"head_dense_{i}",
                         kernel_initializer=keras.initializers.GlorotUniform(base_seed + i))(x)
    x = layers.Dropout(rate, seed=base_seed, name="head_dropout")(x)
    units = 1 if task == "binary" else len(names)
    activation = "softmax" if task == "multiclass" else "sigmoid"
    outputs = layers.Dense(units, activation=activation, dtype="float32", name="head_output",
                           kernel_initializer=keras.initializers.GlorotUniform(base_seed))(x)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_{task}")
    _attach(model, ModelContract(spec.name, task, names, [size, size], spec.normalization))
    set_freeze(model, freeze, train_batchnorm=train_batchnorm)
    return model


def _attach(model: keras.Model, contract: ModelContract) -> None:
    # object.__setattr__: keep Keras' attribute tracking away from a plain dataclass
    object.__setattr__(model, "imaging_tl_contract", contract)


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image -> pooled backbone features (the ``head_pool`` output) of a transfer model.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> feature_extractor(m).output_shape
    (None, 1280)
    """
    return keras.Model(model.input, model.get_layer("head_pool").output,
                       name=f"{model.name}_features")


def head_model(model: keras.Model) -> keras.Model:
    """Pooled features -> output, sharing the head layers (and weights) of ``model``.

    Training this model trains ``model``'s head: the layers are the same objects.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> h = head_model(m)
    >>> h.get_layer("head_output") is m.get_layer("head_output")
    True
    """
    pool = model.get_layer("head_pool")
    feats = keras.Input(shape=pool.output.shape[1:], dtype="float32", name="features")
    x = feats
    i = model.layers.index(pool)
    for layer in model.layers[i + 1:]:
        x = layer(x)
    return keras.Model(feats, x, name=f"{model.name}_head")


def fast_predict(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Predict with a ``tf.function`` traced once for any batch size.

    Same numbers as ``model.predict`` (float tolerance), without its per-call data-adapter
    overhead: about 2x the images/s of ``predict`` for Lite0 on our CPUs (see
    benchmarks/inference.py).

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> fast_predict(m, np.zeros((5, 32, 32, 3), "float32")).shape
    (5, 1)
    """
    import tensorflow as tf

    fn = getattr(model, "_imaging_tl_predict_fn", None)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda a: model(a, training=False), input_signature=[spec])
        object.__setattr__(model, "_imaging_tl_predict_fn", fn)
    x = np.asarray(x, np.float32)
    out = [fn(tf.convert_to_tensor(x[i:i + batch_size])).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *model.output_shape[1:]), np.float32)


def save_transfer_model(model: keras.Model, path: str | Path,
                        contract: ModelContract | dict | None = None) -> Path:
    """Save a ``.keras`` file carrying its preprocessing contract, and ``contract.json`` beside.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        Target ``.keras`` file.
    contract : ModelContract or dict, optional
        Defaults to ``model.imaging_tl_contract`` (update label names, threshold and the
        preprocessing pipeline there, or pass one here).

    Returns
    -------
    Path
        The contract.json written beside the model.

    Examples
    --------
    >>> import tempfile
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> p = save_transfer_model(m, Path(tempfile.mkdtemp()) / "model.keras")
    >>> p.name
    'contract.json'
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: the model file must end in .keras")
    if contract is None:
        contract = getattr(model, "imaging_tl_contract", None)
        if contract is None:
            raise ValueError("no contract: pass contract= (model was not built by "
                             "build_transfer_model)")
    if isinstance(contract, dict):
        contract = ModelContract.from_dict(contract)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    text = json.dumps(contract.to_dict(), indent=2, sort_keys=True)
    # Keras ignores unknown zip entries, so the contract travels inside the file too.
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(CONTRACT_ENTRY, text)
    beside = path.with_name("contract.json")
    beside.write_text(text + "\n")
    _attach(model, contract)
    return beside


def load_transfer_model(path: str | Path, *, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` transfer model with its contract (``model.imaging_tl_contract``).

    No ``custom_objects`` are needed. The contract is read from inside the file, else from
    ``contract.json`` beside it.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or no contract found.

    Examples
    --------
    >>> import tempfile
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> _ = save_transfer_model(m, Path(tempfile.mkdtemp()) / "m.keras")
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    contract = read_contract(path)
    model = keras.models.load_model(path, compile=compile)
    _attach(model, contract)
    return model


def read_contract(path: str | Path) -> ModelContract:
    """The preprocessing contract of a saved model, without loading the model.

    Read from inside the ``.keras`` file, else from ``contract.json`` beside it.

    Examples
    --------
    >>> import tempfile
    >>> m = build_transfer_model("efficientnet_lite0", "binary", ["no", "yes"],
    ...                          weights=None, input_size=32)
    >>> p = Path(tempfile.mkdtemp()) / "m.keras"
    >>> _ = save_transfer_model(m, p)
    >>> read_contract(p).label_names
    ['no', 'yes']
    """
    path = Path(path)
    data = None
    try:
        with zipfile.ZipFile(path) as zf:
            if CONTRACT_ENTRY in zf.namelist():
                data = json.loads(zf.read(CONTRACT_ENTRY))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a .keras model file ({exc})") from exc
    if data is None and path.with_name("contract.json").is_file():
        data = json.loads(path.with_name("contract.json").read_text())
    if data is None:
        raise ValueError(f"{path}: no preprocessing contract inside the file or beside it")
    return ModelContract.from_dict(data)
