"""Phased training of a transfer model: the head first, then a partial unfreeze.

Each :class:`Phase` has its own epochs, learning rate, schedule, freeze setting and early
stopping. Phases whose shared block is completely frozen, on inputs that are not augmented,
are trained on cached features: the backbone's pooled features are computed once (with a
compiled ``tf.function``, the fastest correct engine measured on our CPUs) and the head is
trained on them. Because the head layers, their initial weights, the batch order and the
dropout seeds are the same, this gives the same weights as running the frozen backbone
inside every training step, within float tolerance, only much faster.

Numpy inputs are batched by a seeded, per-epoch permutation (one seed drives the order);
``tf.data.Dataset`` inputs (already batched ``(x, y)`` or ``(x, y, w)``) are used as given.

Examples
--------
>>> import numpy as np
>>> from imaging_tl.models import build_transfer_model
>>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None, input_size=32)
>>> x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
>>> y = np.array([0, 1] * 4)
>>> result = train(m, (x, y), (x, y), phases=[Phase(epochs=2)])
>>> [row["epoch"] for row in result.history]
[1, 2]
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imaging_tl._atomic import atomic_path, write_text
from imaging_tl.models.registry import get_spec
from imaging_tl.models.transfer import (
    MaskedBinaryCrossentropy,
    feature_extractor,
    head_model,
    set_freeze,
)

__all__ = ["Phase", "TrainResult", "compile_for_task", "default_phases", "extract_features",
           "train"]

SCHEDULES = ("constant", "cosine", "step", "exponential")


@dataclass
class Phase:
    """One training phase.

    Attributes
    ----------
    name : str
        Shown in the history (``"head"``, ``"finetune"``).
    epochs : int
    learning_rate : float
        Peak learning rate of the phase.
    freeze : "all", "none", layer name or fraction
        What stays frozen (see :func:`imaging_tl.models.transfer.set_freeze`).
    schedule : {"constant", "cosine", "step", "exponential"}
        Per-epoch schedule within the phase (cosine to 0, step halves every
        ``step_epochs``, exponential multiplies by ``decay`` each epoch).
    warmup_epochs : int
        Linear warm-up from ``learning_rate / 10``.
    patience : int or None
        Early stopping on the monitored validation metric; the best epoch's weights are
        restored at the end of the phase either way (when there is validation data).
    optimizer : {"adam", "sgd", "rmsprop"}
    weight_decay : float
    train_batchnorm : bool
        Let BatchNorm of the unfrozen part train (default: all stay in inference mode).

    Examples
    --------
    >>> Phase("finetune", epochs=5, learning_rate=1e-5, freeze="block5c_add").schedule
    'constant'
    """

    name: str = "head"
    epochs: int = 10
    learning_rate: float = 1e-3
    freeze: str | float = "all"
    schedule: str = "constant"
    warmup_epochs: int = 0
    patience: int | None = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    train_batchnorm: bool = False
    step_epochs: int = 5
    decay: float = 0.9

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"phase {self.name!r}: schedule={self.schedule!r}, "
                             f"expected one of {SCHEDULES}")
        if int(self.epochs) < 0:
            raise ValueError(f"phase {self.name!r}: epochs must be >= 0")
        if not self.learning_rate > 0:
            raise ValueError(f"phase {self.name!r}: learning_rate must be > 0")
        if self.optimizer not in ("adam", "sgd", "rmsprop"):
            raise ValueError(f"phase {self.name!r}: optimizer={self.optimizer!r}, "
                             "expected 'adam', 'sgd' or 'rmsprop'")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` within the phase.

        Examples
        --------
        >>> Phase(epochs=4, learning_rate=1.0, schedule="cosine").lr_at(2)
        0.5
        """
        if epoch < self.warmup_epochs:
            lo = self.learning_rate / 10
            return lo + (self.learning_rate - lo) * epoch / max(self.warmup_epochs, 1)
        e = epoch - self.warmup_epochs
        n = max(int(self.epochs) - self.warmup_epochs, 1)
        if self.schedule == "cosine":
            return float(self.learning_rate * 0.5 * (1 + math.cos(math.pi * e / n)))
        if self.schedule == "step":
            return float(self.learning_rate * 0.5 ** (e // max(self.step_epochs, 1)))
        if self.schedule == "exponential":
            return float(self.learning_rate * self.decay ** e)
        return float(self.learning_rate)


def default_phases(backbone: str = "efficientnet_lite0", head_epochs: int = 10,
                   finetune_epochs: int = 5, learning_rate: float = 1e-3,
                   finetune_learning_rate: float = 1e-4, unfreeze_stages: int = 2,
                   patience: int | None = 5) -> list[Phase]:
    """Head-only phase, then the top ``unfreeze_stages`` stages at a lower rate.

    Examples
    --------
    >>> [p.freeze for p in default_phases("efficientnet_lite0")]
    ['all', 'block5c_add']
    """
    points = get_spec(backbone).freeze_points
    # points[-1] is the end of the backbone; unfreezing N stages freezes up to points[-1-N]
    freeze_at = points[max(len(points) - 1 - unfreeze_stages - 1, 0)]
    phases = [Phase("head", head_epochs, learning_rate, "all", patience=patience)]
    if finetune_epochs:
        phases.append(Phase("finetune", finetune_epochs, finetune_learning_rate, freeze_at,
                            schedule="cosine", patience=patience))
    return phases


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    history : list of dict
        One row per epoch of every phase: ``phase``, ``phase_name``, ``epoch`` (1-based,
        within the phase), ``lr``, ``seconds``, ``cached_features`` and every metric
        (``loss``, ``val_loss``, ``val_auc``, ...).
    best : list of dict
        Per phase: monitored metric, best value and epoch, whether it stopped early.
    feature_seconds : float
        Time spent computing cached features.

    Examples
    --------
    >>> TrainResult([{"phase": 0, "epoch": 1, "loss": 0.5}]).to_rows()[0]["loss"]
    0.5
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    feature_seconds: float = 0.0

    def to_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.history]

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-epoch history as CSV (one column per key seen in any phase)."""
        path = Path(path)
        keys: list[str] = []
        for row in self.history:
            keys += [k for k in row if k not in keys]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        return path


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
    loss, metrics = _loss_and_metrics(task, multiclass_sparse)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=False)


def _loss_and_metrics(task: str, sparse: bool = True,
                      per_sample: bool = False) -> tuple[Any, list[Any]]:
    """Fresh loss and metric objects of a task (``per_sample``: the loss is not reduced)."""
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


def _optimizer(phase: Phase, loss_scale: bool = False) -> keras.optimizers.Optimizer:
    kw: dict[str, Any] = {"learning_rate": phase.lr_at(0)}
    if phase.weight_decay:
        kw["weight_decay"] = phase.weight_decay
    opt = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
           "rmsprop": keras.optimizers.RMSprop}[phase.optimizer](**kw)
    # float16 gradients underflow without dynamic loss scaling; explicit here because the
    # cached-feature head model is built under the float32 policy
    return keras.optimizers.LossScaleOptimizer(opt) if loss_scale else opt


def _uses_float16(model: keras.Model) -> bool:
    return any(getattr(getattr(layer, "dtype_policy", None), "name", "") == "mixed_float16"
               for layer in model.layers)


def _distributed_fit(fit_model: keras.Model, strategy: Any, data: Any, val: Any, *,
                     first: int, epochs: int, steps: int | None, task: str, sparse: bool,
                     callbacks: list[keras.callbacks.Callback]) -> None:
    """``fit`` for a ``tf.distribute`` strategy: one custom step for every strategy.

    Keras 3.15's ``fit`` fails under ``MultiWorkerMirroredStrategy`` (it reduces scalar
    logs along axis 0); this loop works under it and under ``MirroredStrategy`` alike.
    ``data`` yields GLOBAL batches; each replica's loss is its share of the global mean
    (the sum over its samples / the global count, so uneven last batches weigh right) and
    the optimiser sums the gradients over the replicas: the same updates as one device.
    Training metrics see the gathered global batch, validation runs on every worker on its
    own (no collectives), and the early-stopping decision is shared (any worker stops: all
    stop).
    """
    loss_obj, train_metrics = _loss_and_metrics(task, sparse, per_sample=True)
    opt = fit_model.optimizer
    variables = fit_model.trainable_variables
    with strategy.scope():
        opt.build(variables)
    if not isinstance(data, tf.data.Dataset):
        first_batch = next(iter(data))
        spec = tuple(tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype))
                     for a in first_batch)
        rest = data

        def again():
            yield first_batch
            yield from rest

        data = tf.data.Dataset.from_generator(again, output_signature=spec)
    opts = tf.data.Options()
    # every worker builds the same seeded batches; each keeps its replicas' share
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist = strategy.experimental_distribute_dataset(data.with_options(opts))
    n_replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        x, y = batch[0], batch[1]
        w = batch[2] if len(batch) > 2 else None
        n = tf.distribute.get_replica_context().all_reduce(
            "SUM", tf.cast(tf.shape(x)[0], tf.float32))
        with tf.GradientTape() as tape:
            pred = fit_model(x, training=True)
            loss = tf.reduce_sum(loss_obj(y, pred, sample_weight=w)) / tf.maximum(n, 1.0)
            if fit_model.losses:
                loss += tf.add_n(fit_model.losses) / n_replicas
            scaled = opt.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss, y, pred

    loss_mean = keras.metrics.Mean()

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        loss, y, pred = strategy.run(replica_step, args=(batch,))
        # metrics of the global batch, updated in the graph (no host round trip per step)
        y, pred = strategy.gather(y, axis=0), strategy.gather(pred, axis=0)
        loss_mean.update_state(strategy.reduce("SUM", loss, axis=None),
                               sample_weight=tf.cast(tf.shape(y)[0], tf.float32))
        for m in train_metrics:
            m.update_state(y, pred)

    def eval_fn(xb, yb):
        # the loss inside the same graph as the output, as Keras does: a sigmoid/softmax
        # output keeps its logits there, so the loss is not clipped at 1e-7
        pred = fit_model(xb, training=False)
        return pred, val_loss_obj(yb, pred)

    val_loss_obj = _loss_and_metrics(task, sparse, per_sample=True)[0]
    evaluate_step = tf.function(eval_fn, reduce_retracing=True)
    def stop_anywhere(flag: bool) -> bool:
        # early stopping must be one decision: workers on other machines may round their
        # validation metrics differently, and one worker leaving early would hang the rest
        votes = strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
            "SUM", tf.constant(float(flag))))
        return bool(strategy.experimental_local_results(votes)[0] > 0)

    cbs = keras.callbacks.CallbackList(callbacks, model=fit_model)
    fit_model.stop_training = False
    it = iter(dist) if steps is not None else None
    cbs.on_train_begin()
    for epoch in range(first, epochs):
        cbs.on_epoch_begin(epoch)
        for m in (loss_mean, *train_metrics):
            m.reset_state()
        for batch in ((next(it) for _ in range(steps)) if it is not None else dist):
            train_step(tuple(batch))
        logs = {"loss": float(loss_mean.result())}
        logs |= {m.name: float(m.result()) for m in train_metrics}
        if val is not None:
            logs |= _local_evaluate(evaluate_step, val, task, sparse)
        cbs.on_epoch_end(epoch, logs)
        if stop_anywhere(fit_model.stop_training):
            break
    cbs.on_train_end()


def _local_evaluate(evaluate_step: Any, val: Any, task: str,
                    sparse: bool) -> dict[str, float]:
    """``val_*`` logs of one process (Keras' names: loss as the mean per-sample loss)."""
    metrics = _loss_and_metrics(task, sparse)[1]
    if isinstance(val, tf.data.Dataset):
        batches: Any = ((b[0], b[1]) for b in val)
    else:
        x, y = val
        batches = ((x[i:i + 256], y[i:i + 256]) for i in range(0, len(y), 256))
    total, count = 0.0, 0
    for xb, yb in batches:
        pred, per = evaluate_step(tf.convert_to_tensor(xb, tf.float32),
                                  tf.convert_to_tensor(yb))
        total, count = total + float(tf.reduce_sum(per)), count + int(tf.shape(per)[0])
        for m in metrics:
            m.update_state(yb, pred)
    return {"val_loss": total / max(count, 1)} | {f"val_{m.name}": float(m.result())
                                                  for m in metrics}


def _feature_fn(model: keras.Model):
    """One compiled forward pass image -> pooled features, traced once for any batch size."""
    fx = feature_extractor(model)
    spec = tf.TensorSpec((None, *fx.input_shape[1:]), tf.float32)
    return tf.function(lambda a: fx(a, training=False), input_signature=[spec]), fx


def extract_features(model: keras.Model, x: np.ndarray | tf.data.Dataset,
                     batch_size: int = 32, *, _fn: Any = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled backbone features of a transfer model, computed with a compiled tf.function.

    Parameters
    ----------
    model : keras.Model
        A transfer model (its ``head_pool`` output is returned).
    x : numpy array or tf.data.Dataset
        Images (float32 [0, 1]); a dataset yields ``(x, y[, w])`` batches and its labels
        come back too.
    batch_size : int

    Returns
    -------
    features : numpy.ndarray
        ``(N, feature_dim)`` float32.
    labels : numpy.ndarray or None
        Labels gathered from a dataset (None for arrays).

    Notes
    -----
    A ``tf.function`` traced once with a fixed input signature ran the Lite0 forward pass
    about 2x faster than ``Model.predict`` here (no per-call data-adapter overhead); XLA
    was slower on CPU and ONNX Runtime was not faster under load (see
    benchmarks/head_training.py).

    Examples
    --------
    >>> from imaging_tl.models import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> extract_features(m, np.zeros((3, 32, 32, 3), "float32"))[0].shape
    (3, 1280)
    """
    fn, fx = _fn if _fn is not None else _feature_fn(model)
    if isinstance(x, tf.data.Dataset):
        feats, labels = [], []
        for batch in x:
            feats.append(fn(tf.cast(batch[0], tf.float32)).numpy())
            labels.append(np.asarray(batch[1]))
        return np.concatenate(feats), np.concatenate(labels)
    x = np.asarray(x)
    if len(x) == 0:
        return np.zeros((0, fx.output_shape[-1]), np.float32), None
    out = [fn(tf.convert_to_tensor(x[i:i + batch_size], tf.float32)).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False), None


def _epoch_order(n: int, seed: int, phase_index: int, epoch: int) -> np.ndarray:
    """The batch order of one epoch: a permutation seeded by (seed, phase, epoch)."""
    return np.random.default_rng([seed, phase_index, epoch]).permutation(n)


def _array_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int,
                   seed: int, phase_index: int, first: int, epochs: int,
                   augment: Callable[[np.ndarray], np.ndarray] | None = None):
    """Image batches for epochs ``first .. epochs-1`` in their seeded orders (a generator:
    unlike a PyDataset, nothing is prefetched across an epoch's reshuffle)."""
    for e in range(first, epochs):
        order = _epoch_order(len(y), seed, phase_index, e)
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            xb = x[idx]
            if augment is not None:
                xb = np.stack([augment(im) for im in xb]).astype(np.float32, copy=False)
            yield (xb, y[idx]) if w is None else (xb, y[idx], w[idx])


def _feature_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int,
                     seed: int, phase_index: int, first: int, epochs: int,
                     views: bool) -> tf.data.Dataset:
    """The cached-feature twin of :func:`_array_batches` as one tf.data pipeline.

    Same per-epoch permutations (so the same batches as end-to-end training), but no
    Python in the loop: for small head steps Keras' PyDataset overhead dominated.
    """
    n = len(y)
    feats = tf.constant(x)
    cols = [tf.constant(y)] + ([tf.constant(w)] if w is not None else [])
    parts = []
    for e in range(first, epochs):
        order = _epoch_order(n, seed, phase_index, e)
        view = np.full(n, e % len(x) if views else 0, np.int64)
        parts.append(tf.data.Dataset.from_tensor_slices((view, order)).batch(batch_size))
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)

    def gather(view, idx):
        xb = tf.gather_nd(feats, tf.stack([view, idx], 1)) if views else tf.gather(feats, idx)
        return (xb, *(tf.gather(c, idx) for c in cols))

    return ds.map(gather).prefetch(2)


def _class_weights(y: np.ndarray, task: str, class_weight: Any) -> dict[int, float] | None:
    if class_weight is None:
        return None
    if task == "multilabel":
        raise ValueError("class_weight is not supported for multilabel tasks "
                         "(weight the positives in the loss instead)")
    labels = y.argmax(-1) if (task == "multiclass" and y.ndim == 2) else y.reshape(-1)
    labels = labels.astype(int)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight={class_weight!r}: expected 'balanced' or a dict")
        from sklearn.utils.class_weight import compute_class_weight

        classes = np.unique(labels)
        w = compute_class_weight("balanced", classes=classes, y=labels)
        return {int(c): float(v) for c, v in zip(classes, w, strict=True)}
    return {int(k): float(v) for k, v in dict(class_weight).items()}


def _sample_weights(y: np.ndarray, task: str, cw: dict[int, float] | None) -> np.ndarray | None:
    if cw is None:
        return None
    labels = y.argmax(-1) if (task == "multiclass" and y.ndim == 2) else y.reshape(-1)
    return np.array([cw.get(int(c), 1.0) for c in labels], np.float32)


def _default_monitor(task: str, has_val: bool) -> tuple[str, str]:
    if not has_val:
        return "loss", "min"
    if task == "binary":
        return "val_auc", "max"
    if task == "multiclass":
        return "val_accuracy", "max"
    return "val_loss", "min"


def _tracked(model: keras.Model) -> list[Any]:
    """Variables that can change in the current phase: those of trainable layers (frozen
    layers, frozen BatchNorm included, never update), so best-weight copies stay small."""
    return [v for layer in model.layers if layer.trainable for v in layer.weights]


class _PhaseControl(keras.callbacks.Callback):
    """Per-epoch LR, history rows, best-weights tracking, early stopping, checkpoints."""

    def __init__(self, full_model: keras.Model, phase: Phase, phase_index: int,
                 monitor: str, mode: str, rows: list[dict], cached: bool,
                 checkpoint: _Checkpoint | None, best: dict[str, Any]) -> None:
        super().__init__()
        self.full = full_model
        self.phase, self.phase_index = phase, phase_index
        self.monitor, self.mode = monitor, mode
        self.rows, self.cached, self.ckpt = rows, cached, checkpoint
        self.best = best
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.phase.lr_at(epoch))
        self._t0 = time.perf_counter()

    def _better(self, value: float) -> bool:
        b = self.best.get("value")
        if b is None or not np.isfinite(b):
            return bool(np.isfinite(value))
        return value > b if self.mode == "max" else value < b

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"phase": self.phase_index, "phase_name": self.phase.name, "epoch": epoch + 1,
               "lr": self.phase.lr_at(epoch),
               "seconds": round(time.perf_counter() - self._t0, 4),
               "cached_features": self.cached}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.rows.append(row)
        value = row.get(self.monitor)
        if value is not None and self._better(float(value)):
            self.best.update(value=float(value), epoch=epoch + 1, wait=0)
            self.best["weights"] = [v.numpy().copy() for v in _tracked(self.full)]
            if self.ckpt:
                self.ckpt.save_best(self.full)
        else:
            self.best["wait"] = self.best.get("wait", 0) + 1
            if self.phase.patience is not None and self.best["wait"] > self.phase.patience:
                self.best["stopped_early"] = True
                self.model.stop_training = True
        if self.ckpt:
            self.ckpt.save_epoch(self.full, self.phase_index, epoch + 1, self.rows, self.best)


def _save_arrays(model: keras.Model, path: Path) -> None:
    # Keras' save_weights walks every saveable in Python (~2 s for Lite0 here); a flat
    # npz of the variables keyed by their paths takes a few milliseconds.
    arrays = {f"{i:04d}:{v.path}": v.numpy() for i, v in enumerate(model.weights)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_arrays(model: keras.Model, path: Path) -> None:
    with np.load(path) as z:
        keys = list(z.keys())
        want = [f"{i:04d}:{v.path}" for i, v in enumerate(model.weights)]
        if keys != want:
            raise ValueError(f"{path}: checkpoint does not match this model's variables")
        for v, k in zip(model.weights, keys, strict=True):
            v.assign(z[k])


class _Checkpoint:
    """``last.npz`` + ``state.json`` after every epoch, ``best.npz`` on improvement.

    Variables only: on resume the optimiser's moments start again (a documented
    trade-off for small, fast checkpoints).
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def save_best(self, model: keras.Model) -> None:
        _save_arrays(model, self.dir / "best.npz")

    def save_epoch(self, model, phase_index, epoch, rows, best, done: bool = False) -> None:
        _save_arrays(model, self.dir / "last.npz")
        state = {"phase": phase_index, "epoch": epoch, "phase_done": done, "history": rows,
                 "best": {k: v for k, v in best.items() if k != "weights"}}
        write_text(self.dir / "state.json", json.dumps(state, indent=1, default=float))

    def load_state(self) -> dict[str, Any] | None:
        p = self.dir / "state.json"
        return json.loads(p.read_text()) if p.is_file() else None


def _as_arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    if data is None or isinstance(data, tf.data.Dataset):
        return None
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{what}: expected (x, y) numpy arrays or a tf.data.Dataset")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} images but {len(y)} labels")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{what}: images must be (N, H, W, 3) float RGB in [0, 1]; "
                         f"got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    return x, y


def train(
    model: keras.Model,
    train_data: tuple[np.ndarray, np.ndarray] | tf.data.Dataset,
    val_data: tuple[np.ndarray, np.ndarray] | tf.data.Dataset | None = None,
    *,
    phases: list[Phase] | None = None,
    batch_size: int = 32,
    class_weight: dict[int, float] | str | None = None,
    monitor: str | None = None,
    seed: int = 0,
    cache_features: bool | str = "auto",
    augment: Callable[[np.ndarray], np.ndarray] | None = None,
    augment_views: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    strategy: Any = None,
) -> TrainResult:
    """Train a transfer model phase by phase and return the per-epoch history.

    Parameters
    ----------
    model : keras.Model
        From :func:`imaging_tl.models.build_transfer_model` (its contract gives the task).
    train_data, val_data : (x, y) arrays or tf.data.Dataset
        x float32 RGB in [0, 1] at the model size. y: 0/1 (binary), class indices or
        one-hot (multiclass), 0/1 with -1 or NaN for missing (multilabel). A dataset must
        yield batches; it is used as given (put augmentation there).
    phases : list of Phase, optional
        Default :func:`default_phases` for the model's backbone.
    batch_size : int
        For array inputs: the GLOBAL batch (over all replicas of ``strategy``).
    class_weight : dict, "balanced" or None
        Per-class loss weights for binary / multiclass tasks.
    monitor : str, optional
        Validation metric for early stopping and best-weights restore; default ``val_auc``
        (binary), ``val_accuracy`` (multiclass), ``val_loss`` (multilabel).
    seed : int
        Drives the batch order of array inputs.
    cache_features : True, False or "auto"
        Train fully frozen phases on cached pooled features. "auto": for array inputs
        without on-the-fly augmentation (or with ``augment_views``); a dataset is cached
        only with True (it must then be deterministic, i.e. without augmentation).
    augment : callable, optional
        For array inputs: ``image (H, W, 3) float32 [0, 1] -> image``, e.g.
        :class:`imaging_tl.augment.Augmenter`; applied to training images only.
    augment_views : int
        With ``augment`` and a frozen phase: compute features of this many augmented
        views of every training image once; epoch e trains on view e % K. 0: augment on
        the fly, so frozen phases are not cached.
    checkpoint_dir : path, optional
        Weights and state after every epoch.
    resume : bool
        Continue from ``checkpoint_dir``'s state: finished phases are skipped, the current
        one continues at the next epoch.
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks for every phase (run after the checkpoint of each epoch is written).
    verbose : int
        Passed to ``model.fit``.
    strategy : tf.distribute.Strategy, optional
        The strategy whose scope built ``model``; the optimiser is created in it and each
        phase trains with a custom distributed step (see ``_distributed_fit``) instead of
        Keras' ``fit``, with the same history, checkpoints and callbacks. ``None`` or
        TensorFlow's default strategy: Keras' ``fit``.

    Returns
    -------
    TrainResult

    Examples
    --------
    See the module docstring.
    """
    contract = getattr(model, "imaging_tl_contract", None)
    if contract is None:
        raise ValueError("train: model has no imaging_tl_contract; build it with "
                         "build_transfer_model")
    task = contract.task
    phases = list(phases) if phases is not None else default_phases(contract.backbone)
    arrays = _as_arrays(train_data, "train_data")
    val_arrays = _as_arrays(val_data, "val_data")
    has_val = val_data is not None
    mon, mode = (monitor, "max" if any(k in monitor for k in ("auc", "acc")) else "min") \
        if monitor else _default_monitor(task, has_val)
    if augment is not None and arrays is None:
        raise ValueError("augment= works on array inputs; put augmentation in the "
                         "tf.data.Dataset instead")
    if int(augment_views) < 0 or (augment_views and augment is None):
        raise ValueError(f"augment_views={augment_views}: needs augment= and must be >= 0")
    if cache_features is True and augment is not None and not augment_views:
        raise ValueError("cache_features=True with augment= needs augment_views > 0 "
                         "(on-the-fly augmentation must run through the backbone)")
    if cache_features not in (True, False, "auto"):
        raise ValueError(f"cache_features={cache_features!r}: expected True, False or 'auto'")

    cw = None
    if class_weight is not None:
        if arrays is None:
            raise ValueError("class_weight with a tf.data.Dataset: add sample weights to the "
                             "dataset instead")
        cw = _class_weights(arrays[1], task, class_weight)
    sparse = not (task == "multiclass" and arrays is not None and arrays[1].ndim == 2)

    # TensorFlow's default strategy (one device) keeps Keras' fit
    distributed = strategy is not None and type(strategy).__name__ != "_DefaultDistributionStrategy"
    f16 = _uses_float16(model)
    ckpt = _Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    result = TrainResult()
    start_phase, start_epoch = 0, 0
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs checkpoint_dir")
        state = ckpt.load_state()
        if state is not None:
            _load_arrays(model, ckpt.dir / "last.npz")
            result.history = list(state["history"])
            start_phase = int(state["phase"]) + (1 if state.get("phase_done") else 0)
            start_epoch = 0 if state.get("phase_done") else int(state["epoch"])

    features: dict[str, Any] = {}
    for pi, phase in enumerate(phases):
        if pi < start_phase:
            continue
        first = start_epoch if pi == start_phase else 0
        set_freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
        frozen = phase.freeze == "all"
        views = int(augment_views) if augment is not None else 0
        use_cache = frozen and (cache_features is True or (
            cache_features == "auto" and arrays is not None and (augment is None or views > 0)))
        best: dict[str, Any] = {"monitor": mon}
        if pi == start_phase and first > 0 and ckpt and resume:
            best.update(ckpt.load_state()["best"])
            best.pop("weights", None)
            if (ckpt.dir / "best.npz").is_file():
                cur = [w.numpy() for w in model.weights]
                _load_arrays(model, ckpt.dir / "best.npz")
                best["weights"] = [v.numpy().copy() for v in _tracked(model)]
                for var, val in zip(model.weights, cur, strict=True):
                    var.assign(val)
        rows: list[dict[str, Any]] = result.history

        if use_cache:
            if "train" not in features:
                t0 = time.perf_counter()
                fn = _feature_fn(model)
                src = arrays[0] if arrays is not None else train_data
                if views:
                    f_tr = np.stack([
                        extract_features(model, np.stack([augment(im) for im in src]),
                                         batch_size, _fn=fn)[0]
                        for _ in range(views)])
                    y_ds = None
                else:
                    f_tr, y_ds = extract_features(model, src, batch_size, _fn=fn)
                features["train"] = (f_tr, arrays[1] if arrays is not None else y_ds)
                if has_val:
                    vsrc = val_arrays[0] if val_arrays is not None else val_data
                    f_va, yv_ds = extract_features(model, vsrc, batch_size, _fn=fn)
                    features["val"] = (f_va, val_arrays[1] if val_arrays is not None else yv_ds)
                result.feature_seconds += time.perf_counter() - t0
            fit_model = head_model(model)
            x_tr, y_tr = features["train"]
            val = features.get("val")
        else:
            if not frozen:
                features.clear()  # the backbone will change: cached features go stale
            fit_model = model
            x_tr, y_tr = arrays if arrays is not None else (None, None)
            val = val_arrays if val_arrays is not None else val_data

        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            compile_for_task(fit_model, task, _optimizer(phase, loss_scale=f16),
                             multiclass_sparse=sparse)
        control = _PhaseControl(model, phase, pi, mon, mode, rows, use_cache, ckpt, best)
        steps = None
        if use_cache and phase.epochs > first:
            data = _feature_batches(x_tr, y_tr, _sample_weights(y_tr, task, cw), batch_size,
                                    seed, pi, first, int(phase.epochs), views > 0)
            steps = math.ceil(len(y_tr) / batch_size)
            if isinstance(val, tuple):
                val = tf.data.Dataset.from_tensor_slices(
                    (np.asarray(val[0], np.float32), np.asarray(val[1]))).batch(256).cache()
        elif x_tr is not None and phase.epochs > first:
            data = _array_batches(x_tr, y_tr, _sample_weights(y_tr, task, cw), batch_size,
                                  seed, pi, first, int(phase.epochs), augment)
            steps = math.ceil(len(y_tr) / batch_size)
        else:
            data = train_data
        if isinstance(val, tuple):
            val = (np.asarray(val[0], np.float32), np.asarray(val[1]))
        if phase.epochs > first and distributed:
            _distributed_fit(fit_model, strategy, data, val, first=first,
                             epochs=int(phase.epochs), steps=steps, task=task, sparse=sparse,
                             callbacks=[control, *(callbacks or [])])
        elif phase.epochs > first:
            fit_model.fit(data, validation_data=val, epochs=int(phase.epochs),
                          initial_epoch=first, steps_per_epoch=steps, shuffle=False,
                          callbacks=[control, *(callbacks or [])], verbose=verbose)
        if best.get("weights") is not None and has_val:
            for var, val_w in zip(_tracked(model), best["weights"], strict=True):
                var.assign(val_w)
        result.best.append({k: v for k, v in best.items() if k != "weights"}
                           | {"phase": pi, "phase_name": phase.name})
        if ckpt:
            ckpt.save_epoch(model, pi, int(phase.epochs), rows, best, done=True)
    return result

