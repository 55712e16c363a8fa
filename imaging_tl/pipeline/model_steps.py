"""The model steps of a run: build the transfer model, train it phase by phase."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import write_csv
from imaging_tl.pipeline.progress import epoch_callback
from imaging_tl.pipeline.provenance import write_plain_json
from imaging_tl.pipeline.state import RunState
from imaging_tl.train import Phase

__all__ = ["build_step", "plain_copy", "train_step"]


def build_step(state: RunState) -> None:
    """The transfer model, built in the strategy's scope under the training precision."""
    import keras

    from imaging_tl.train.distribute import set_mixed_precision

    cfg, plan = state.cfg, state.plan
    size = state.prepared.shape[0]
    weights = None if cfg.model.weights in (None, "none") else cfg.model.weights
    state.log(f"model: {cfg.model.backbone} "
              f"({'ImageNet' if weights == 'imagenet' else weights}) at {size} px, "
              f"head {dataclasses.asdict(cfg.model.head)}")
    before = keras.mixed_precision.global_policy()
    try:
        # the policy only while the layers are built: they keep it, the process does not
        set_mixed_precision(plan.precision)
        with plan.strategy.scope():
            state.model = _build(state, cfg.train.phases[0].freeze, weights)
    finally:
        keras.mixed_precision.set_global_policy(before)
    _record_plan(state)


def _build(state: RunState, freeze: Any, weights: str | None) -> Any:
    from imaging_tl.models import build_transfer_model

    cfg = state.cfg
    return build_transfer_model(cfg.model.backbone, state.task, state.classes, freeze=freeze,
                                head=cfg.model.head, weights=weights,
                                input_size=state.prepared.shape[0], seed=cfg.seed,
                                weights_sha256=cfg.model.weights_sha256)


def _record_plan(state: RunState) -> None:
    """Record the plan beside the checkpoints; on resume, say if the devices changed."""
    plan, record = state.plan, state.checkpoints / "distribute.json"
    if state.resume is not None and record.is_file():
        was = json.loads(record.read_text())
        if was.get("global_batch") != plan.global_batch:
            state.log(f"note: the interrupted run trained with global batch "
                      f"{was.get('global_batch')} on {was.get('replicas')} replica(s); it "
                      f"continues with {plan.global_batch} on {plan.replicas} (learning rates "
                      f"x {plan.lr_factor:g})")
    state.checkpoints.mkdir(parents=True, exist_ok=True)
    write_plain_json(record, plan.to_dict())


def train_step(state: RunState) -> None:
    """Every phase of ``train.phases``, checkpointed after each epoch; ``history.csv``."""
    from imaging_tl.train import train

    cfg, plan = state.cfg, state.plan
    phases = cfg.train.phases
    augmenter = _augmenter(state)
    rows: list[dict[str, Any]] = []
    for i, pc in enumerate(phases):
        ckdir = state.checkpoints / f"phase{i}-{pc.name}"
        saved = ckdir / "state.json"
        ck_state = json.loads(saved.read_text()) if (state.resume and saved.is_file()) else None
        if ck_state is not None and not ck_state.get("phase_done"):
            state.resumed_from = {"phase": i, "epoch": int(ck_state["epoch"])}
            state.log(f"resuming phase {i + 1} ({pc.name}) after epoch {ck_state['epoch']}")
        cached = pc.freeze == "all" and cfg.train.feature_cache == "auto"
        train_data, class_weight = _training_data(state, i, cached, augmenter)
        cbs = [epoch_callback(state.log, i, len(phases), pc.name, pc.epochs), *state.callbacks]
        va = state.splits["val"]
        try:
            with warnings.catch_warnings():
                # Keras' note that a tf.data input is not reshuffled: ours is, with its seed
                warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed")
                res = train(state.model, train_data, (va.x, va.y),
                            phases=[phase_of(pc, plan.lr_factor)], batch_size=plan.global_batch,
                            class_weight=class_weight, monitor=cfg.train.monitor,
                            seed=cfg.seed + i, cache_features=cached, checkpoint_dir=ckdir,
                            resume=ck_state is not None, callbacks=cbs,
                            strategy=plan.strategy if plan.distributed else None)
        except KeyboardInterrupt:
            state.log(f"interrupted in phase {i + 1} ({pc.name}); continue from the last "
                      f"completed epoch with: imaging-tl run --resume {state.run_dir}")
            raise
        rows += [{**row, "phase": i, "phase_name": pc.name} for row in res.history]
        state.best += [{**b, "phase": i} for b in res.best]
    state.history = pd.DataFrame(rows)
    state.paths["history"] = write_csv(state.run_dir / "history.csv", state.history)


def phase_of(p: Any, lr_factor: float = 1.0) -> Phase:
    """The training :class:`~imaging_tl.train.Phase` of a phase of the configuration, its
    learning rate scaled for the number of replicas."""
    return Phase(name=p.name, epochs=p.epochs, learning_rate=p.learning_rate * lr_factor,
                 freeze=p.freeze, schedule=p.schedule, warmup_epochs=p.warmup_epochs,
                 patience=p.patience, optimizer=p.optimizer, weight_decay=p.weight_decay,
                 train_batchnorm=p.train_batchnorm)


def _augmenter(state: RunState) -> Any:
    a = state.cfg.augment
    if a.preset == "none" and not a.transforms and not a.hflip:
        return None
    from imaging_tl.augment import Augmenter

    return Augmenter(a.preset, hflip=a.hflip, transforms=a.transforms, seed=state.cfg.seed)


def _training_data(state: RunState, i: int, cached: bool, augmenter: Any) -> tuple[Any, Any]:
    """The training input of phase ``i`` and its class weights.

    A frozen backbone trains the head on cached features of the un-augmented images
    (augmentation only pays off where the backbone learns, and costs a forward pass);
    otherwise a seeded tf.data pipeline streams augmented batches from the cache.
    """
    cfg = state.cfg
    cw = "balanced" if cfg.train.class_weights == "balanced" and state.task != "multilabel" \
        else None
    if cached:
        tr = state.splits["train"]
        return (tr.x, tr.y), cw
    from imaging_tl.data.tfdata import make_dataset

    data = make_dataset(state.prepared, split="train", batch_size=state.plan.global_batch,
                        seed=cfg.seed + i, augment=augmenter, class_weight=cw,
                        classes=state.classes if state.task != "multilabel" else None)
    return data, None


def plain_copy(state: RunState) -> Any:
    """The trained model as a plain float32 one: no distributed variables, and a saved
    model that runs anywhere (mixed precision was for training speed)."""
    plain = _build(state, state.cfg.train.phases[-1].freeze, None)
    for dst, src in zip(plain.weights, state.model.weights, strict=True):
        dst.assign(np.asarray(src.numpy(), dtype=dst.dtype))
    return plain
