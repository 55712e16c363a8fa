"""Per-epoch bookkeeping of a phase: learning rate, history, best weights, checkpoints.

Examples
--------
>>> default_monitor("binary", has_val=True), default_monitor("multilabel", has_val=False)
(('val_auc', 'max'), ('loss', 'min'))
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from imaging_tl._atomic import atomic_path, write_text
from imaging_tl.train.phases import Phase

__all__ = ["Checkpoint", "PhaseControl", "changeable_keys", "default_monitor", "load_arrays",
           "load_optimizer", "save_arrays", "tracked_variables"]


def default_monitor(task: str, has_val: bool) -> tuple[str, str]:
    """The metric early stopping watches by default, and whether higher is better."""
    if not has_val:
        return "loss", "min"
    if task == "binary":
        return "val_auc", "max"
    if task == "multiclass":
        return "val_accuracy", "max"
    return "val_loss", "min"


def tracked_variables(model: keras.Model) -> list[Any]:
    """Variables that can change in the current phase: those of trainable layers (frozen
    layers, frozen BatchNorm included, never update), so best-weight copies stay small."""
    return [v for layer in model.layers if layer.trainable for v in layer.weights]



class PhaseControl(keras.callbacks.Callback):
    """Per-epoch LR, history rows, best-weights tracking, early stopping, checkpoints."""

    def __init__(self, full_model: keras.Model, phase: Phase, phase_index: int,
                 monitor: str, mode: str, rows: list[dict], cached: bool,
                 checkpoint: Checkpoint | None, best: dict[str, Any]) -> None:
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
            self.best["weights"] = [v.numpy().copy() for v in tracked_variables(self.full)]
            if self.ckpt:
                self.ckpt.save_best(self.full)
        else:
            self.best["wait"] = self.best.get("wait", 0) + 1
            if self.phase.patience is not None and self.best["wait"] > self.phase.patience:
                self.best["stopped_early"] = True
                self.model.stop_training = True
        if self.ckpt:
            self.ckpt.save_epoch(self.full, self.phase_index, epoch + 1, self.rows, self.best,
                                 optimizer=self.model.optimizer)


def _key(i: int, v: Any) -> str:
    # a seed generator's path is numbered per process (seed_generator_3/...): not a name
    return f"{i:04d}:seed_generator" if "seed_generator" in v.path else f"{i:04d}:{v.path}"


def _state_variables(model: keras.Model) -> list[Any]:
    # model.variables: the weights and the random seed generators' states (dropout), so a
    # resumed epoch draws the same dropout masks as the uninterrupted run
    return list(model.variables)


def changeable_keys(model: keras.Model) -> set[str]:
    """The keys (as :func:`save_arrays` writes them) of the variables training can change
    now: those of trainable layers and the random seed generators' states. Frozen layers
    keep the values the model was built with, so a checkpoint need not hold them."""
    ids = {id(v) for layer in model.layers if layer.trainable for v in layer.variables}
    return {_key(i, v) for i, v in enumerate(_state_variables(model))
            if id(v) in ids or "seed_generator" in v.path}


def save_arrays(model: keras.Model, path: Path, optimizer: Any = None,
                keys: set[str] | None = None) -> None:
    """The variables of ``model`` (every one, or those named in ``keys``: see
    :func:`changeable_keys`) and of ``optimizer`` (its step count and moments) into an npz
    keyed by position and path."""
    # Keras' save_weights walks every saveable in Python (~2 s for Lite0 here); a flat
    # npz of the variables keyed by their paths takes a few milliseconds.
    arrays = {}
    for i, v in enumerate(_state_variables(model)):
        k = _key(i, v)
        if keys is None or k in keys:
            arrays[k] = v.numpy()
    if optimizer is not None and optimizer.built:
        arrays.update({f"opt:{i:04d}:{v.path}": v.numpy()
                       for i, v in enumerate(optimizer.variables)})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(model: keras.Model, path: Path) -> set[str]:
    """Variables saved by :func:`save_arrays` back into the same model (the one built the
    same way, for a checkpoint of some variables only); returns the keys loaded."""
    with np.load(path) as z:
        keys = [k for k in z.keys() if not k.startswith("opt:")]
        arrays = {k: z[k] for k in keys}
    for vars_ in (_state_variables(model), list(model.weights)):  # older: weights only
        by_key = {_key(i, v): v for i, v in enumerate(vars_)}
        if keys and all(k in by_key and tuple(by_key[k].shape) == arrays[k].shape
                        for k in keys):
            for k in keys:
                by_key[k].assign(arrays[k])
            return set(keys)
    raise ValueError(f"{path}: checkpoint does not match this model's variables")


def load_optimizer(optimizer: Any, variables: list[Any], path: Path) -> bool:
    """The optimizer state saved by :func:`save_arrays` back into ``optimizer`` (built for
    ``variables`` first). False when the file holds none or it does not fit."""
    with np.load(path) as z:
        keys = [k for k in z.keys() if k.startswith("opt:")]
        if not keys:
            return False
        if not optimizer.built:
            optimizer.build(variables)
        opt_vars = list(optimizer.variables)
        # optimiser names are numbered per process too: the order and shapes must agree
        if [z[k].shape for k in keys] != [tuple(v.shape) for v in opt_vars]:
            return False
        for v, k in zip(opt_vars, keys, strict=True):
            v.assign(z[k])
    return True


class Checkpoint:
    """``last.npz`` + ``state.json`` after every epoch, ``best.npz`` on improvement.

    The variables training can change (:func:`changeable_keys`, gathered over the phases
    this checkpoint has seen and the file it resumed from) with the random seed
    generators' states, and the optimiser's (step count and moments): a resumed phase,
    on the model built again the same way, continues as the uninterrupted one would. A
    frozen backbone is not written after every epoch.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keys: set[str] = set()

    def _keys(self, model: keras.Model) -> set[str]:
        self.keys |= changeable_keys(model)
        return self.keys

    def save_best(self, model: keras.Model) -> None:
        save_arrays(model, self.dir / "best.npz", keys=self._keys(model))

    def save_epoch(self, model, phase_index, epoch, rows, best, done: bool = False,
                   optimizer: Any = None) -> None:
        save_arrays(model, self.dir / "last.npz", optimizer, keys=self._keys(model))
        state = {"phase": phase_index, "epoch": epoch, "phase_done": done, "history": rows,
                 "best": {k: v for k, v in best.items() if k != "weights"}}
        write_text(self.dir / "state.json", json.dumps(state, indent=1, default=float))

    def restore(self, model: keras.Model) -> None:
        """The last epoch's variables back into ``model``; later saves keep holding them."""
        self.keys |= load_arrays(model, self.dir / "last.npz")

    def load_state(self) -> dict[str, Any] | None:
        p = self.dir / "state.json"
        return json.loads(p.read_text()) if p.is_file() else None

