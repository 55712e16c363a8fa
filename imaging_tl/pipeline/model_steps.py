"""The model steps of a run: resolve ``model.source``, audit the target's data against the
source's, build the transfer model, train it phase by phase, and name the chain."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import write_csv
from imaging_tl.config import ConfigError, RunConfig
from imaging_tl.pipeline.inputs import InputError
from imaging_tl.pipeline.progress import epoch_callback
from imaging_tl.pipeline.provenance import write_plain_json
from imaging_tl.pipeline.state import RunState
from imaging_tl.train import Phase

__all__ = ["build_step", "chain_step", "make_augmenter", "plain_copy", "source_of",
           "source_record", "source_step", "train_step"]


def source_of(cfg: RunConfig) -> Any:
    """``model.source`` resolved and checked against the configuration, before any file of
    the run is written.

    Raises
    ------
    ConfigError
        A missing, unfinished, corrupt or other-backbone source, or a configuration that
        changes the source's preprocessing contract (each difference listed) without
        ``model.allow_preprocessing_change``.
    """
    from imaging_tl.models.source import (
        SourceError,
        preprocessing_differences,
        resolve_source,
    )

    m = cfg.model
    try:
        src = resolve_source(m.source, backbone=m.backbone)
    except SourceError as exc:
        raise ConfigError([str(exc)]) from None
    problems = []
    if m.keep_source_hidden and not src.is_model:
        problems.append(f"model.keep_source_hidden: needs model.source to be a run or model "
                        f"of imaging_tl (it is {m.source!r})")
    if src.is_model and not m.allow_preprocessing_change:
        diffs = preprocessing_differences(src.contract, cfg.preprocessing,
                                          int(m.input_size or 0), str(m.normalization))
        if diffs:
            problems.append(
                f"model.source: this configuration changes the preprocessing contract of "
                f"the source {src.path} ({len(diffs)} difference(s)); leave those keys out "
                "to inherit the source's, or set model.allow_preprocessing_change: true:\n"
                + "\n".join(f"      {d}" for d in diffs))
    if problems:
        raise ConfigError(problems)
    return src


def source_step(state: RunState) -> None:
    """``data_index.csv`` (pseudonymised patient keys, hashed SOPInstanceUIDs, pixel hashes:
    what a later target task checks against), then the cross-task audit: the target's
    validation and test data must not have been seen by any run of the chain."""
    from imaging_tl.data.audit import data_index, source_overlap

    cfg = state.cfg
    index = data_index(state.prepared.table)
    state.paths["data_index"] = write_csv(state.run_dir / "data_index.csv", index)
    folders = _chain_run_dirs(state.source)
    if not folders:
        return
    found = {f: source_overlap(_index_of_run(f), index) for f in folders}
    allowed = cfg.model.allow_source_overlap
    bad = {f: o for f, o in found.items() if not o.ok}
    state.source_audit = {
        "allow_source_overlap": allowed,
        "runs": {f.name: o.to_dict() for f, o in found.items()},
        "patients": max((o.patients for o in found.values()), default=0),
        "files": max((o.files for o in found.values()), default=0)}
    if not bad:
        state.log(next(iter(found.values())).format()
                  + f" (checked against {len(found)} run(s) of the chain)")
        return
    lines = "; ".join(f"{f.name}: {o.format()}" for f, o in bad.items())
    if allowed:
        state.log(f"warning: {lines}; allowed by model.allow_source_overlap (recorded in "
                  "run.json)")
        return
    raise InputError(
        f"{lines}. The source has seen them, so the target's validation and test figures "
        "would be optimistic. Use other patients for validation and test, or set "
        "model.allow_source_overlap: true (recorded in run.json)")


def _chain_run_dirs(src: Any) -> list[Any]:
    """The run directories of a model source's chain that can be audited (those still on
    disk with a data index or splits file), the source's own first."""
    from pathlib import Path

    if src is None or not src.is_model or src.path is None:
        return []
    own = src.path if src.path.is_dir() else src.path.parent
    dirs = [own, *(Path(link["run_dir"]) for link in reversed(src.chain)
                   if link.get("kind") == "run" and link.get("run_dir"))]
    out = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out] and (
                (d / "data_index.csv").is_file() or (d / "splits.csv").is_file()):
            out.append(d)
    return out


def _index_of_run(folder: Any) -> pd.DataFrame:
    """A run's data index: ``data_index.csv``, or built from the ``splits.csv`` of a run
    written before data indexes were kept."""
    from imaging_tl.data.audit import data_index
    from imaging_tl.data.splitfile import read_splits

    if (folder / "data_index.csv").is_file():
        return pd.read_csv(folder / "data_index.csv", dtype=str, keep_default_na=False)
    return data_index(read_splits(folder / "splits.csv"))


def build_step(state: RunState) -> None:
    """The transfer model, built in the strategy's scope under the training precision;
    from a source model, its shared layers are copied in (the head is new)."""
    import keras

    from imaging_tl.train.distribute import set_mixed_precision

    cfg, plan = state.cfg, state.plan
    size = state.prepared.shape[0]
    state.log(f"model: {cfg.model.backbone} from {state.source.describe()} at {size} px, "
              f"head {dataclasses.asdict(cfg.model.head)}")
    source_model = _source_model(state)
    before = keras.mixed_precision.global_policy()
    try:
        # the policy only while the layers are built: they keep it, the process does not
        set_mixed_precision(plan.precision)
        with plan.strategy.scope():
            state.model = _build(state, cfg.train.phases[0].freeze, source_model)
    finally:
        keras.mixed_precision.set_global_policy(before)
    _record_plan(state)


def _source_model(state: RunState) -> Any:
    if not state.source.is_model:
        return None
    from imaging_tl.models import load_transfer_model

    return load_transfer_model(state.source.model_path, compile=False)


def _lineage(state: RunState) -> list[dict[str, Any]]:
    """The chain up to this run's source (origin first)."""
    from imaging_tl.models.source import origin_link

    src, m = state.source, state.cfg.model
    return list(src.chain) if src.is_model else [origin_link(src.kind if src.kind != "weights"
                                                             else m.source, m.backbone)]


def _build(state: RunState, freeze: Any, source_model: Any, pretrained: bool = True) -> Any:
    from imaging_tl.models import build_transfer_model
    from imaging_tl.models.transfer import build_from_source

    cfg, size = state.cfg, state.prepared.shape[0]
    if source_model is not None:
        return build_from_source(source_model, state.task, state.classes, freeze,
                                 cfg.model.head, keep_source_hidden=cfg.model.keep_source_hidden,
                                 seed=cfg.seed, input_size=size, lineage=_lineage(state))
    model = build_transfer_model(cfg.model.backbone, state.task, state.classes, freeze=freeze,
                                 head=cfg.model.head,
                                 weights=state.source.weights if pretrained else None,
                                 input_size=size, seed=cfg.seed,
                                 weights_sha256=cfg.model.weights_sha256 if pretrained else None)
    model.imaging_tl_contract.lineage = _lineage(state)
    return model


def chain_step(state: RunState, record: dict[str, Any]) -> None:
    """The whole chain (origin, each source run, this run), once ``model.keras`` is saved;
    ``record`` is this run's ``run.json`` content (name, finish time, manifest hash)."""
    from imaging_tl.models.source import run_link

    state.chain = [*_lineage(state), run_link(state.run_dir, record)]
    names = [link.get("run_id") or link["kind"] for link in state.chain]
    state.log("chain: " + " -> ".join(map(str, names)))


def source_record(state: RunState) -> dict[str, Any]:
    """What ``run.json`` says about the source: the chain and the cross-task audit."""
    m = state.cfg.model
    return {"chain": state.chain, "source": {
        "value": m.source, "kind": state.source.kind,
        "keep_source_hidden": m.keep_source_hidden,
        "allow_preprocessing_change": m.allow_preprocessing_change,
        "allow_source_overlap": m.allow_source_overlap, "overlap": state.source_audit}}


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
    augmenter = make_augmenter(state)
    rows: list[dict[str, Any]] = []
    for i, pc in enumerate(phases):
        ckdir = state.checkpoints / f"phase{i}-{pc.name}"
        saved = ckdir / "state.json"
        ck_state = json.loads(saved.read_text()) if (state.resume and saved.is_file()) else None
        if ck_state is not None and not ck_state.get("phase_done"):
            state.resumed_from = {"phase": i, "epoch": int(ck_state["epoch"])}
            state.log(f"resuming phase {i + 1} ({pc.name}) after epoch {ck_state['epoch']}")
        cached = pc.freeze == "all" and cfg.train.feature_cache == "auto"
        # cross-validation: features computed once for every fold, while the backbone is
        # the one they came from (no earlier phase trained it)
        first_trained = all(p.freeze == "all" for p in phases[:i])
        shared = state.fold_features if cached and first_trained else None
        fb = state.fold_boundary
        boundary = fb if fb is not None and fb[0] == pc.freeze and first_trained else None
        train_data, class_weight = _training_data(state, i, cached or boundary is not None,
                                                  augmenter)
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
                            strategy=plan.strategy if plan.distributed else None,
                            features=shared, boundary=boundary)
        except KeyboardInterrupt:
            state.log(f"interrupted in phase {i + 1} ({pc.name}); continue from the last "
                      f"completed epoch with: imaging-tl run --resume {state.run_dir}")
            raise
        rows += [{**row, "phase": i, "phase_name": pc.name} for row in res.history]
        state.best += [{**b, "phase": i} for b in res.best]
    state.history = pd.DataFrame(rows)
    state.paths["history"] = write_csv(state.fold_dir / "history.csv", state.history)


def phase_of(p: Any, lr_factor: float = 1.0) -> Phase:
    """The training :class:`~imaging_tl.train.Phase` of a phase of the configuration, its
    learning rate scaled for the number of replicas."""
    return Phase(name=p.name, epochs=p.epochs, learning_rate=p.learning_rate * lr_factor,
                 freeze=p.freeze, schedule=p.schedule, warmup_epochs=p.warmup_epochs,
                 patience=p.patience, optimizer=p.optimizer, weight_decay=p.weight_decay,
                 train_batchnorm=p.train_batchnorm)


def make_augmenter(state: RunState) -> Any:
    """The training augmentation of the run's ``augment`` settings (None: none)."""
    a = state.cfg.augment
    if a.preset == "none" and not a.transforms and not a.hflip:
        return None
    from imaging_tl.augment import Augmenter

    return Augmenter(a.preset, hflip=a.hflip, transforms=a.transforms, seed=state.cfg.seed)


def _training_data(state: RunState, i: int, on_arrays: bool, augmenter: Any
                   ) -> tuple[Any, Any]:
    """The training input of phase ``i`` and its class weights.

    A frozen backbone trains the head on cached features of the un-augmented images
    (augmentation only pays off where the backbone learns, and costs a forward pass), and
    a cross-validation fold's fine-tuning phase on its shared boundary views
    (``on_arrays``); otherwise a seeded tf.data pipeline streams augmented batches from
    the cache.
    """
    cfg = state.cfg
    cw = "balanced" if cfg.train.class_weights == "balanced" and state.task != "multilabel" \
        else None
    if on_arrays:
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
    plain = _build(state, state.cfg.train.phases[-1].freeze, _source_model(state),
                   pretrained=False)
    for dst, src in zip(plain.weights, state.model.weights, strict=True):
        dst.assign(np.asarray(src.numpy(), dtype=dst.dtype))
    return plain
