"""The transfer model: input normalisation -> pretrained backbone (frozen block) -> new head.

The model is one flat Keras functional graph: ``image`` (float32 RGB in [0, 1] at the
model size) -> ``input_normalization`` (the backbone's scheme, constants from
:mod:`imaging_tl.stages.normalize`) -> the backbone's own layers under their own names ->
``head_pool`` -> ``head_dense_N`` ... -> ``head_dropout`` -> ``head_output``. Flat, so
that freeze points and Grad-CAM address backbone layers by name.

Frozen layers (including every BatchNorm of the backbone unless ``train_batchnorm``) have
``trainable=False``, which in Keras 3 also runs BatchNorm in inference mode: its moving
statistics never drift, whatever the phase.

The custom layer and loss are registered (:mod:`imaging_tl.models.custom_objects`), so
``keras.models.load_model`` needs no ``custom_objects``; :func:`save_transfer_model` writes
the preprocessing contract (:mod:`imaging_tl.models.contract`) into the ``.keras`` file and
beside it as ``contract.json``. The head is described by
:class:`~imaging_tl.models.head.HeadConfig`; prediction is
:func:`~imaging_tl.models.predict.fast_predict`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from imaging_tl.models.backbones import build_backbone
from imaging_tl.models.contract import (
    ModelContract,
    attach_contract,
    read_contract,
    write_contract,
)
from imaging_tl.models.custom_objects import InputNormalization
from imaging_tl.models.ensemble import ensemble_members
from imaging_tl.models.head import HeadConfig, add_head, head_model
from imaging_tl.models.registry import get_spec
from imaging_tl.models.spec import BackboneSpec
from imaging_tl.stages.normalize import get_scheme

__all__ = [
    "TASKS",
    "backbone_layers",
    "build_from_source",
    "build_transfer_model",
    "copy_shared_layers",
    "feature_extractor",
    "get_spec_of",
    "head_model",
    "layers_after",
    "load_transfer_model",
    "new_head_on",
    "save_transfer_model",
    "set_freeze",
    "source_head",
]

TASKS = ("binary", "multiclass", "multilabel")
_NON_BACKBONE = ("image", "input_normalization")


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
    n = _frozen_count(model, [layer.name for layer in bb], freeze)
    for i, layer in enumerate(bb):
        trainable = i >= n
        if isinstance(layer, layers.BatchNormalization) and not train_batchnorm:
            trainable = False
        layer.trainable = trainable
    for layer in model.layers:
        if layer.name.startswith("head_"):
            layer.trainable = True
    return n


def _frozen_count(model: keras.Model, names: list[str], freeze: str | float) -> int:
    """How many backbone layers (``names``, input side first) a freeze setting freezes."""
    if isinstance(freeze, str) and freeze in ("all", "none"):
        return len(names) if freeze == "all" else 0
    if isinstance(freeze, str):
        if freeze not in names:
            spec = get_spec_of(model)
            points = [p for p in spec.freeze_points if p in names] if spec else []
            raise ValueError(f"freeze={freeze!r} is not a layer of the backbone; "
                             f"freeze points: {points}")
        return names.index(freeze) + 1
    if isinstance(freeze, int | float) and not isinstance(freeze, bool) and 0 <= freeze <= 1:
        return int(round(float(freeze) * len(names)))
    raise ValueError(f"freeze must be 'all', 'none', a layer name or a fraction in [0, 1]; "
                     f"got {freeze!r}")


def get_spec_of(model: keras.Model) -> BackboneSpec | None:
    """The registry spec of a transfer model's backbone (from its contract), or None.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> get_spec_of(m).name
    'efficientnet_lite0'
    """
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
    weights_sha256: str | None = None,
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
    weights_sha256 : str, optional
        Full sha256 the weights file must have, as in :func:`build_backbone`.

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
    spec = get_spec(backbone)
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")
    names = _label_names(task, classes)
    cfg = HeadConfig.from_value(head)
    size = int(input_size or spec.input_size)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    inputs = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
    base = build_backbone(spec.name, weights=weights, include_top=False,
                          input_shape=(size, size, 3), input_tensor=_normalize(inputs, spec),
                          weights_sha256=weights_sha256)
    outputs = add_head(base.output, cfg,
                       units=1 if task == "binary" else len(names),
                       activation="softmax" if task == "multiclass" else "sigmoid",
                       dropout=spec.dropout if cfg.dropout is None else float(cfg.dropout),
                       seed=0 if seed is None else int(seed))
    model = keras.Model(inputs, outputs, name=f"{spec.name}_{task}")
    attach_contract(model, ModelContract(spec.name, task, names, [size, size],
                                         spec.normalization))
    set_freeze(model, freeze, train_batchnorm=train_batchnorm)
    return model


def _normalize(image, spec: BackboneSpec):
    """The ``input_normalization`` layer: the backbone's scheme, inside the model."""
    scheme = get_scheme(spec.normalization)
    return InputNormalization(spec.normalization, scheme.mean, scheme.std, bool(scheme.bgr),
                              name="input_normalization")(image)


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image -> pooled backbone features (the ``head_pool`` output) of a transfer model.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> feature_extractor(m).output_shape
    (None, 1280)

    Of a fold ensemble (:mod:`imaging_tl.models.ensemble`): the first member's features.
    """
    model = ensemble_members(model)[0]
    return keras.Model(model.input, model.get_layer("head_pool").output,
                       name=f"{model.name}_features")


def layers_after(model: keras.Model, layer: str) -> keras.Model:
    """The part of ``model`` after ``layer``: that layer's output -> the model's output, on
    the same layer objects (training it trains ``model``).

    Raises ``ValueError`` when the part after ``layer`` needs other tensors than its output
    (a cut inside a block).

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> layers_after(m, "block6d_add").input_shape
    (None, 1, 1, 192)
    """
    return keras.Model(model.get_layer(layer).output, model.output, name=f"{model.name}_after")


def new_head_on(model: keras.Model, name: str | None = None,
                head_of: keras.Model | None = None) -> keras.Model:
    """A transfer model on ``model``'s backbone (the same layer objects: one set of weights,
    computed once by a fold ensemble) with its own copy of the head after ``head_pool``,
    starting from ``model``'s head weights (or those of ``head_of``, a model of the same
    architecture).

    For members that differ only in their heads: the folds of a cross-validation whose
    every phase keeps the backbone frozen.

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> n = new_head_on(m)
    >>> n.get_layer("head_pool") is m.get_layer("head_pool")
    True
    >>> n.get_layer("head_output") is m.get_layer("head_output")
    False
    >>> bool(np.array_equal(n.get_layer("head_output").kernel, m.get_layer("head_output").kernel))
    True
    """
    pool = model.get_layer("head_pool")
    x = pool.output
    for layer in model.layers[model.layers.index(pool) + 1:]:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights((head_of or model).get_layer(layer.name).get_weights())
        copy.trainable = layer.trainable
    new = keras.Model(model.input, x, name=name or model.name)
    contract = getattr(model, "imaging_tl_contract", None)
    if contract is not None:
        attach_contract(new, ModelContract.from_dict(contract.to_dict()))
    return new


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
    beside = write_contract(path, contract)
    attach_contract(model, contract)
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
    >>> p = Path(tempfile.mkdtemp()) / "m.keras"
    >>> _ = save_transfer_model(m, p)
    >>> load_transfer_model(p).imaging_tl_contract.task
    'binary'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    contract = read_contract(path)
    model = keras.models.load_model(path, compile=compile)
    attach_contract(model, contract)
    return model


def source_head(source: keras.Model) -> HeadConfig:
    """The head settings of a transfer model (pooling, hidden units, dropout, activation).

    Examples
    --------
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32, head={"hidden": (16,)})
    >>> source_head(m).hidden
    (16,)
    """
    pool = source.get_layer("head_pool")
    dense = sorted((la for la in source.layers if la.name.startswith("head_dense_")),
                   key=lambda la: int(la.name.rsplit("_", 1)[1]))
    drop = source.get_layer("head_dropout")
    return HeadConfig(pooling="max" if isinstance(pool, layers.GlobalMaxPooling2D) else "avg",
                      hidden=tuple(int(la.units) for la in dense), dropout=float(drop.rate),
                      activation=keras.activations.serialize(dense[0].activation)
                      if dense else "relu")


def copy_shared_layers(source: keras.Model, target: keras.Model, *,
                       head_hidden: bool = False) -> list[str]:
    """Copy every shared layer's weights from ``source`` into ``target``, by layer name.

    The shared layers are the input normalisation and every backbone layer (and, with
    ``head_hidden``, the hidden ``head_dense_N`` layers); the copies are bit-identical.

    Returns
    -------
    list of str
        The names of the layers copied (those holding weights).

    Raises
    ------
    ValueError
        A shared layer of the target is missing from the source or has other shapes.

    Examples
    --------
    >>> a = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32, seed=1)
    >>> b = build_transfer_model("efficientnet_lite0", "multilabel", ["x", "y", "z"],
    ...                          weights=None, input_size=32, seed=2)
    >>> len(copy_shared_layers(a, b)) > 90
    True
    """
    shared = [target.get_layer("input_normalization"), *backbone_layers(target)]
    if head_hidden:
        shared += [la for la in target.layers if la.name.startswith("head_dense_")]
    have = {la.name: la for la in source.layers}
    copied = []
    for layer in shared:
        if not layer.weights:
            continue
        src = have.get(layer.name)
        if src is None:
            raise ValueError(f"layer {layer.name!r} of the target is not in the source model "
                             f"{source.name!r}")
        values = src.get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [tuple(v.shape) for v in values] != shapes:
            raise ValueError(f"layer {layer.name!r}: the source's weights have shapes "
                             f"{[v.shape for v in values]}, the target's {shapes}")
        layer.set_weights(values)
        copied.append(layer.name)
    return copied


def build_from_source(
    source: keras.Model | str | Path,
    task: str = "binary",
    classes: int | list[str] | tuple[str, ...] = 2,
    freeze: str | float = "all",
    head: HeadConfig | dict | None = None,
    *,
    keep_source_hidden: bool = False,
    seed: int | None = 0,
    train_batchnorm: bool = False,
    input_size: int | None = None,
    lineage: list[dict] | None = None,
) -> keras.Model:
    """A transfer model for a new task whose shared layers are those of a trained model.

    The source's backbone and input normalisation are copied layer by layer (by name,
    bit-identical); its head is dropped and a new head is built for ``task`` and
    ``classes``. With ``keep_source_hidden`` the source head's hidden dense layers are kept
    with their weights (the target's ``head.hidden`` must then be empty or the same).

    Parameters
    ----------
    source : keras.Model or path
        A model of :func:`build_transfer_model` (trained), or its ``.keras`` file or run
        directory.
    task, classes, freeze, head, seed, train_batchnorm
        As in :func:`build_transfer_model`; backbone and input size are the source's.
    keep_source_hidden : bool
        Keep the hidden head layers of the source (``model.keep_source_hidden``).
    input_size : int, optional
        Default the source's (another size keeps the weights, which do not depend on it,
        but changes the preprocessing contract).
    lineage : list of dict, optional
        The chain up to the source (``imaging_tl.models.source``), stored in the contract.

    Returns
    -------
    keras.Model
        With its contract (``lineage`` set) attached.

    Examples
    --------
    >>> src = build_transfer_model("efficientnet_lite0", "multilabel", ["a", "b"],
    ...                            weights=None, input_size=32, head={"hidden": (8,)})
    >>> tgt = build_from_source(src, "binary", ["no", "yes"], keep_source_hidden=True)
    >>> tgt.get_layer("head_dense_1").units, tgt.output_shape
    (8, (None, 1))
    """
    if not isinstance(source, keras.Model):
        from imaging_tl.models.contract import model_file

        source = load_transfer_model(model_file(source), compile=False)
    contract = getattr(source, "imaging_tl_contract", None)
    if contract is None:
        raise ValueError("build_from_source: the source model has no contract (it was not "
                         "built by build_transfer_model)")
    cfg = HeadConfig.from_value(head)
    if keep_source_hidden:
        kept = source_head(source)
        if cfg.hidden and tuple(cfg.hidden) != kept.hidden:
            raise ValueError(f"model.keep_source_hidden: the source's hidden layers are "
                             f"{list(kept.hidden)}, but model.head.hidden is "
                             f"{list(cfg.hidden)}; leave model.head.hidden out")
        cfg = HeadConfig(pooling=kept.pooling, hidden=kept.hidden, dropout=cfg.dropout,
                         activation=kept.activation)
    model = build_transfer_model(contract.backbone, task, classes, freeze, cfg, weights=None,
                                 input_size=int(input_size or contract.input_size[0]),
                                 seed=seed,
                                 train_batchnorm=train_batchnorm)
    copy_shared_layers(source, model, head_hidden=keep_source_hidden)
    own = model.imaging_tl_contract
    own.lineage = list(lineage) if lineage is not None else list(contract.lineage or [])
    attach_contract(model, own)
    return model
