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
Under a ``tf.distribute`` strategy each phase runs the custom distributed step of
:mod:`imaging_tl.train.distribute` instead of Keras' ``fit``.

Examples
--------
>>> import numpy as np
>>> from imaging_tl.models import build_transfer_model
>>> from imaging_tl.train import Phase
>>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None, input_size=32)
>>> x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
>>> y = np.array([0, 1] * 4)
>>> result = train(m, (x, y), (x, y), phases=[Phase(epochs=2)])
>>> [row["epoch"] for row in result.history]
[1, 2]
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imaging_tl._atomic import write_csv
from imaging_tl.data import class_weights, sample_weights
from imaging_tl.models import head_model, layers_after, set_freeze
from imaging_tl.train.checkpoint import (
    Checkpoint,
    PhaseControl,
    default_monitor,
    load_arrays,
    load_optimizer,
    tracked_variables,
)
from imaging_tl.train.compile import compile_for_task, make_optimizer, uses_float16
from imaging_tl.train.distribute import distributed_fit
from imaging_tl.train.features import (
    array_batches,
    extract_features,
    feature_batches,
    feature_fn,
)
from imaging_tl.train.phases import Phase, default_phases

__all__ = ["TrainResult", "train"]


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
    optimizer_restored : bool or None
        On resume mid-phase: whether the optimiser's state came back from the checkpoint
        (None: nothing was resumed mid-phase).

    Examples
    --------
    >>> TrainResult([{"phase": 0, "epoch": 1, "loss": 0.5}]).to_rows()[0]["loss"]
    0.5
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    feature_seconds: float = 0.0
    optimizer_restored: bool | None = None

    def to_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.history]

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-epoch history as CSV (one column per key seen in any phase)."""
        path = Path(path)
        keys: list[str] = []
        for row in self.history:
            keys += [k for k in row if k not in keys]
        return write_csv(path, self.history, keys)


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
    features: tuple[np.ndarray, np.ndarray | None] | None = None,
    boundary: tuple[str, np.ndarray, np.ndarray | None] | None = None,
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
        phase trains with a custom distributed step
        (:func:`~imaging_tl.train.distribute.distributed_fit`) instead of Keras' ``fit``,
        with the same history, checkpoints and callbacks. ``None`` or TensorFlow's default
        strategy: Keras' ``fit``.
    features : (train, val) feature arrays, optional
        Pooled backbone features of ``train_data`` and ``val_data`` (rows in the same
        order), computed before by :func:`~imaging_tl.train.features.extract_features`
        with this model's backbone as it is now; cached phases use them instead of
        computing their own until a phase changes the backbone. Cross-validation computes
        every image's features once for all folds this way.
    boundary : (layer, train views, val features), optional
        For array inputs: the output of ``layer`` for views of the training images
        ``(views, N, ...)`` (:func:`~imaging_tl.train.features.layer_views`, augmented)
        and for the validation images ``(N_val, ...)``, computed with this model as it is
        now. A phase whose ``freeze`` is ``layer`` then trains only the layers after it
        on these (epoch e on view e % views, the batches of the array path), until a
        phase trains anything before ``layer``. Cross-validation runs the frozen part of
        a fine-tuning phase once for all folds this way.

    Returns
    -------
    TrainResult

    Examples
    --------
    See the module docstring.
    """
    task, phases, arrays, val_arrays = _check_inputs(model, train_data, val_data, phases,
                                                     cache_features, augment, augment_views)
    has_val = val_data is not None
    mon, mode = (monitor, "max" if any(k in monitor for k in ("auc", "acc")) else "min") \
        if monitor else default_monitor(task, has_val)
    cw = None
    if class_weight is not None:
        if arrays is None:
            raise ValueError("class_weight with a tf.data.Dataset: add sample weights to the "
                             "dataset instead")
        cw = class_weights(arrays[1], task, class_weight)
    run = _PhaseRunner(
        model=model, task=task, train_data=train_data, val_data=val_data, arrays=arrays,
        val_arrays=val_arrays, batch_size=batch_size, class_weight=cw, seed=seed,
        cache_features=cache_features, augment=augment,
        views=int(augment_views) if augment is not None else 0,
        sparse=not (task == "multiclass" and arrays is not None and arrays[1].ndim == 2),
        strategy=strategy, callbacks=list(callbacks or []), verbose=verbose,
        ckpt=Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None,
        boundary=boundary if arrays is not None else None)
    if features is not None and arrays is not None:
        run.features["train"] = (np.asarray(features[0], np.float32), arrays[1])
        if features[1] is not None and val_arrays is not None:
            run.features["val"] = (np.asarray(features[1], np.float32), val_arrays[1])
    start_phase, start_epoch = run.restore(resume)
    for pi, phase in enumerate(phases):
        if pi >= start_phase:
            first = start_epoch if pi == start_phase else 0
            run.phase(pi, phase, first, mon, mode, resuming=resume and pi == start_phase)
    return run.result


def _check_inputs(model: keras.Model, train_data: Any, val_data: Any,
                  phases: list[Phase] | None, cache_features: bool | str, augment: Any,
                  augment_views: int) -> tuple[str, list[Phase], Any, Any]:
    """The task, the phases and the array inputs of :func:`train`, every argument checked."""
    contract = getattr(model, "imaging_tl_contract", None)
    if contract is None:
        raise ValueError("train: model has no imaging_tl_contract; build it with "
                         "build_transfer_model")
    phases = list(phases) if phases is not None else default_phases(contract.backbone)
    arrays = _as_arrays(train_data, "train_data")
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
    return contract.task, phases, arrays, _as_arrays(val_data, "val_data")


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



@dataclass
class _PhaseRunner:
    """The state :func:`train` carries from phase to phase (features, history, checkpoint)."""

    model: keras.Model
    task: str
    train_data: Any
    val_data: Any
    arrays: tuple[np.ndarray, np.ndarray] | None
    val_arrays: tuple[np.ndarray, np.ndarray] | None
    batch_size: int
    class_weight: dict[int, float] | None
    seed: int
    cache_features: bool | str
    augment: Callable[[np.ndarray], np.ndarray] | None
    views: int
    sparse: bool
    strategy: Any
    callbacks: list[Any]
    verbose: int
    ckpt: Checkpoint | None
    boundary: tuple[str, np.ndarray, np.ndarray | None] | None = None
    result: TrainResult = field(default_factory=TrainResult)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        # TensorFlow's default strategy (one device) keeps Keras' fit
        return self.strategy is not None and \
            type(self.strategy).__name__ != "_DefaultDistributionStrategy"

    def restore(self, resume: bool) -> tuple[int, int]:
        """Load the checkpoint's last state: ``(phase, epoch)`` to continue from."""
        if not resume:
            return 0, 0
        if self.ckpt is None:
            raise ValueError("resume=True needs checkpoint_dir")
        state = self.ckpt.load_state()
        if state is None:
            return 0, 0
        self.ckpt.restore(self.model)
        self.result.history = list(state["history"])
        if state.get("phase_done"):
            # the finished phase's best epoch stays in the result (run.json best_epochs)
            self.result.best.append({**state.get("best", {}), "phase": int(state["phase"])})
            return int(state["phase"]) + 1, 0
        return int(state["phase"]), int(state["epoch"])

    def phase(self, pi: int, phase: Phase, first: int, monitor: str, mode: str,
              resuming: bool) -> None:
        """Train one phase from epoch ``first``, then keep its best weights."""
        model = self.model
        set_freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
        frozen = phase.freeze == "all"
        use_cache = frozen and (self.cache_features is True or (
            self.cache_features == "auto" and self.arrays is not None
            and (self.augment is None or self.views > 0)))
        best: dict[str, Any] = {"monitor": monitor, "phase_name": phase.name}
        if resuming and first > 0 and self.ckpt:
            self._restore_best(best)
        b = self.boundary
        if not frozen and (b is None or phase.freeze != b[0]):
            self.boundary = b = None  # this phase trains layers before the boundary
        if use_cache:
            fit_model, (x_tr, y_tr), val = head_model(model), *self._cached_features()
        else:
            if not frozen:
                self.features.clear()  # the backbone will change: cached features go stale
            fit_model = model
            x_tr, y_tr = self.arrays if self.arrays is not None else (None, None)
            val = self.val_arrays if self.val_arrays is not None else self.val_data
        if b is not None and not frozen and not self.distributed:
            # the layers after the boundary, on its output (the same layer objects)
            fit_model = layers_after(model, b[0])
            x_tr = b[1]
            val = (b[2], self.val_arrays[1]) if b[2] is not None and \
                self.val_arrays is not None else None
        with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
            compile_for_task(fit_model, self.task,
                             make_optimizer(phase, loss_scale=uses_float16(model)),
                             multiclass_sparse=self.sparse)
        if resuming and first > 0 and self.ckpt:
            # Adam's step count and moments as they were after the last completed epoch
            self.result.optimizer_restored = load_optimizer(
                fit_model.optimizer, fit_model.trainable_variables, self.ckpt.dir / "last.npz")
        control = PhaseControl(model, phase, pi, monitor, mode, self.result.history,
                               fit_model is not model, self.ckpt, best)
        if phase.epochs > first:
            data, steps, val = self._batches(pi, phase, first, fit_model is not model, x_tr,
                                             y_tr, val, views=not use_cache or self.views > 0)
            self._fit(fit_model, data, val, first, int(phase.epochs), steps,
                      [control, *self.callbacks])
        if best.get("weights") is not None and self.val_data is not None:
            for var, val_w in zip(tracked_variables(model), best["weights"], strict=True):
                var.assign(val_w)
        self.result.best.append({k: v for k, v in best.items() if k != "weights"}
                                | {"phase": pi, "phase_name": phase.name})
        if self.ckpt:
            self.ckpt.save_epoch(model, pi, int(phase.epochs), self.result.history, best,
                                 done=True)

    def _restore_best(self, best: dict[str, Any]) -> None:
        """The interrupted phase's best-so-far value and weights, from its checkpoint."""
        best.update(self.ckpt.load_state()["best"])
        best.pop("weights", None)
        if (self.ckpt.dir / "best.npz").is_file():
            cur = [w.numpy() for w in self.model.variables]  # seed states too
            load_arrays(self.model, self.ckpt.dir / "best.npz")
            best["weights"] = [v.numpy().copy() for v in tracked_variables(self.model)]
            for var, val in zip(self.model.variables, cur, strict=True):
                var.assign(val)

    def _cached_features(self) -> tuple[tuple[np.ndarray, Any], Any]:
        """Pooled features of the training (and validation) images, computed once."""
        if "train" not in self.features:
            t0 = time.perf_counter()
            fn = feature_fn(self.model)
            src = self.arrays[0] if self.arrays is not None else self.train_data
            if self.views:
                f_tr = np.stack([
                    extract_features(self.model, np.stack([self.augment(im) for im in src]),
                                     self.batch_size, fn=fn)[0]
                    for _ in range(self.views)])
                y_ds = None
            else:
                f_tr, y_ds = extract_features(self.model, src, self.batch_size, fn=fn)
            self.features["train"] = (f_tr, self.arrays[1] if self.arrays is not None else y_ds)
            if self.val_data is not None:
                vsrc = self.val_arrays[0] if self.val_arrays is not None else self.val_data
                f_va, yv_ds = extract_features(self.model, vsrc, self.batch_size, fn=fn)
                self.features["val"] = (
                    f_va, self.val_arrays[1] if self.val_arrays is not None else yv_ds)
            self.result.feature_seconds += time.perf_counter() - t0
        return self.features["train"], self.features.get("val")

    def _batches(self, pi: int, phase: Phase, first: int, use_cache: bool, x_tr: Any,
                 y_tr: Any, val: Any, views: bool) -> tuple[Any, int | None, Any]:
        """The phase's training batches, steps per epoch and validation data."""
        steps = None
        if use_cache:
            w = sample_weights(y_tr, self.task, self.class_weight)
            data: Any = feature_batches(x_tr, y_tr, w, self.batch_size, self.seed, pi, first,
                                        int(phase.epochs), views)
            steps = math.ceil(len(y_tr) / self.batch_size)
            if isinstance(val, tuple):
                val = tf.data.Dataset.from_tensor_slices(
                    (np.asarray(val[0], np.float32), np.asarray(val[1]))).batch(256).cache()
        elif x_tr is not None:
            w = sample_weights(y_tr, self.task, self.class_weight)
            data = array_batches(x_tr, y_tr, w, self.batch_size, self.seed, pi, first,
                                 int(phase.epochs), self.augment)
            steps = math.ceil(len(y_tr) / self.batch_size)
        else:
            data = self.train_data
        if isinstance(val, tuple):
            val = (np.asarray(val[0], np.float32), np.asarray(val[1]))
        return data, steps, val

    def _fit(self, fit_model: keras.Model, data: Any, val: Any, first: int, epochs: int,
             steps: int | None, callbacks: list[Any]) -> None:
        if self.distributed:
            distributed_fit(fit_model, self.strategy, data, val, first=first, epochs=epochs,
                            steps=steps, task=self.task, sparse=self.sparse,
                            callbacks=callbacks)
        else:
            fit_model.fit(data, validation_data=val, epochs=epochs, initial_epoch=first,
                          steps_per_epoch=steps, shuffle=False, callbacks=callbacks,
                          verbose=self.verbose)
