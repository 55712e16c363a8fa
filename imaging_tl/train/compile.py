"""Losses, metrics and optimisers of a task: what every training path compiles with."""

from __future__ import annotations

from typing import Any

import keras

from imaging_tl.models import MaskedBinaryCrossentropy
from imaging_tl.train.phases import Phase

__all__ = ["compile_for_task", "loss_and_metrics", "make_optimizer", "uses_float16"]


def compile_for_task(model: keras.Model, task: str, optimizer: keras.optimizers.Optimizer,
                     multiclass_sparse: bool = True) -> None:
    """Compile with the loss and metrics that fit the task.

    binary: binary cross-entropy, ``accuracy`` and ``auc``; multiclass: (sparse)
    categorical cross-entropy and ``accuracy``; multilabel: masked binary cross-entropy.

    Examples
    --------
    >>> from imaging_tl.models import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> compile_for_task(m, "binary", keras.optimizers.Adam())
    """
    loss, metrics = loss_and_metrics(task, multiclass_sparse)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=False)


def loss_and_metrics(task: str, sparse: bool = True,
                      per_sample: bool = False) -> tuple[Any, list[Any]]:
    """Fresh loss and metric objects of a task (``per_sample``: the loss is not reduced).

    Examples
    --------
    >>> loss, metrics = loss_and_metrics("binary")
    >>> type(loss).__name__, [m.name for m in metrics]
    ('BinaryCrossentropy', ['accuracy', 'auc'])
    """
    kw: dict[str, Any] = {"reduction": None} if per_sample else {}
    if task == "binary":
        loss: Any = keras.losses.BinaryCrossentropy(**kw)
        metrics: list[Any] = [keras.metrics.BinaryAccuracy(name="accuracy"),
                              keras.metrics.AUC(name="auc")]
    elif task == "multiclass":
        if sparse:
            loss = keras.losses.SparseCategoricalCrossentropy(**kw)
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        else:
            loss = keras.losses.CategoricalCrossentropy(**kw)
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    elif task == "multilabel":
        loss, metrics = MaskedBinaryCrossentropy(**kw), []
    else:
        raise ValueError(f"task={task!r}")
    return loss, metrics


def make_optimizer(phase: Phase, loss_scale: bool = False) -> keras.optimizers.Optimizer:
    """The phase's optimiser at its first learning rate (loss-scaled for float16)."""
    kw: dict[str, Any] = {"learning_rate": phase.lr_at(0)}
    if phase.weight_decay:
        kw["weight_decay"] = phase.weight_decay
    opt = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
           "rmsprop": keras.optimizers.RMSprop}[phase.optimizer](**kw)
    # float16 gradients underflow without dynamic loss scaling; explicit here because the
    # cached-feature head model is built under the float32 policy
    return keras.optimizers.LossScaleOptimizer(opt) if loss_scale else opt


def uses_float16(model: keras.Model) -> bool:
    """Whether any layer of ``model`` computes in float16 (it then needs loss scaling)."""
    return any(getattr(getattr(layer, "dtype_policy", None), "name", "") == "mixed_float16"
               for layer in model.layers)

