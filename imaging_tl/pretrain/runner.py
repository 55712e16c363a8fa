"""``imaging-tl pretrain``: self-supervised pretraining into a run directory.

Steps: configuration -> unlabelled table -> preprocessing into the array cache (the one
``run`` uses; bad files quarantined and counted) -> SimSiam on a registered backbone, an
epoch at a time (two views per image, streamed from the cache) -> after each epoch the
collapse statistics (and, every ``monitor.every`` epochs, the linear probe), a row of
``history.csv`` and a checkpoint -> ``model.keras`` (image -> pooled backbone features,
with its preprocessing contract) -> ``run.json``. The run directory::

    config.yaml  data_index.csv  history.csv  model.keras  contract.json  run.json
    plots/history.png  checkpoints/epoch-0001.npz ...  checkpoints/last.npz  state.json

is a valid ``model.source`` for ``imaging-tl run``: the target copies the backbone's
layers, inherits the preprocessing, and audits its validation/test data against
``data_index.csv`` (every pretraining image counts as seen).

Several devices or machines (``pretrain.distribute``) use ``run``'s plumbing
(:mod:`imaging_tl.train.distribute`): under ``multi_worker`` every worker runs the same
command, builds the same global batches and keeps its replicas' share, and only the chief
writes the run directory; the others train in a scratch folder that is deleted (resuming,
from a copy of the chief's checkpoints).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl._atomic import write_csv, write_text
from imaging_tl.config import ConfigError, PretrainConfig, load_pretrain_config
from imaging_tl.pipeline.inputs import InputError, data_manifest_hash
from imaging_tl.pipeline.progress import ProgressLog
from imaging_tl.pipeline.provenance import machine, versions, write_plain_json
from imaging_tl.pipeline.runner import run_location
from imaging_tl.pretrain.data import (
    load_arrays,
    prepare_images,
    probe_data,
    release_memory,
    unlabelled_table,
    view_dataset,
)
from imaging_tl.pretrain.result import (
    CollapseError,
    PretrainResult,
    save_backbone,
    write_history,
)
from imaging_tl.pretrain.views import ViewMaker, describe_views

__all__ = ["pretrain"]

EpochHook = Callable[[int, dict[str, Any]], None]


def pretrain(config: str | os.PathLike | dict[str, Any] | PretrainConfig | None = None, *,
             out: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
             overrides: Sequence[str] | None = None, verbose: bool = True,
             on_epoch: Sequence[EpochHook] = ()) -> PretrainResult:
    """Pretrain a backbone without labels (SimSiam) and write its run directory.

    Parameters
    ----------
    config : path, dict or PretrainConfig
        The YAML file (``pipelines/pretrain.yaml``), its content, or a loaded config. May
        be None with ``resume``.
    out : path, optional
        The run directory (new or empty); default ``<output>/<name>-<timestamp>``.
    resume : path, optional
        An interrupted run directory: training continues after its last finished epoch
        (weights, optimiser state, the epoch's data order and views as the uninterrupted
        run would have them). Multi-worker: the chief's run directory, on every worker.
    overrides : list of str, optional
        ``key.path=value`` items.
    verbose : bool
        Log each step to stderr.
    on_epoch : sequence of callables
        Called as ``hook(epoch, row)`` after each epoch's checkpoint is written.

    Returns
    -------
    PretrainResult

    Raises
    ------
    ConfigError
        An invalid configuration (every problem listed).
    InputError
        Unusable data: no images, fewer readable images than one batch, a bad monitor CSV.
    CollapseError
        The embedding collapsed (``run.json`` records the failure; the checkpoints stay).

    Examples
    --------
    >>> r = pretrain("pipelines/pretrain.yaml", out="runs/ssl")  # doctest: +SKIP
    >>> print(r.summary())  # doctest: +SKIP
    """
    log = ProgressLog(verbose)
    cfg, resume_dir = _configuration(config, resume, overrides, log)
    from imaging_tl.train.distribute import n_gpus, plan_distribution

    p = cfg.pretrain
    if p.distribute == "multi_worker" and not os.environ.get("TF_CONFIG", "").strip():
        raise ConfigError(["pretrain.distribute: 'multi_worker' needs the TF_CONFIG "
                           "environment variable naming the cluster's workers on every "
                           "worker (or use auto, none or mirrored)"])
    if p.mixed_precision == "mixed_float16" and n_gpus() == 0:
        raise ConfigError(["pretrain.mixed_precision: 'mixed_float16' needs a GPU and none is "
                           "visible; use none or mixed_bfloat16 on a CPU"])
    try:
        plan = plan_distribution(p.distribute, per_replica_batch=p.batch_size, lr_rule="none",
                                 precision=p.mixed_precision)
    except ValueError as exc:
        raise InputError(f"pretrain: {exc}") from None
    # multi_worker: only the chief writes the run directory; a worker trains in a scratch
    # folder (resuming: from a copy of the chief's checkpoints), deleted at the end
    run_dir, scratch = run_location(cfg, out, resume_dir,  # type: ignore[arg-type]
                                    plan.is_chief, plan.task_index)
    if scratch and resume_dir is not None and (resume_dir / "checkpoints").is_dir():
        shutil.copytree(resume_dir / "checkpoints", run_dir / "checkpoints")
    try:
        return _run(cfg, run_dir, plan, log, resume_dir is not None, list(on_epoch))
    except Exception as exc:
        if not scratch:
            _failed_record(cfg, run_dir, exc)
        raise
    finally:
        import keras

        keras.backend.clear_session(free_memory=False)
        if scratch:
            shutil.rmtree(run_dir, ignore_errors=True)


def _configuration(config: Any, resume: Any, overrides: Sequence[str] | None,
                   log: ProgressLog) -> tuple[PretrainConfig, Path | None]:
    if resume is None:
        if config is None:
            raise InputError("pretrain: give a configuration (or resume=RUN_DIR)")
        raw = config.to_dict() if isinstance(config, PretrainConfig) else config
        return load_pretrain_config(raw, list(overrides or [])), None
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").is_file():
        hint = ("; resuming a multi-worker run needs the chief's run directory at the same "
                "path on every worker (a shared filesystem)"
                if os.environ.get("TF_CONFIG") else "")
        raise InputError(f"--resume {run_dir}: no config.yaml there (not a run "
                         f"directory){hint}")
    record = run_dir / "run.json"
    if record.is_file() and json.loads(record.read_text()).get("status") == "finished":
        raise InputError(f"--resume {run_dir}: this run has finished (run.json is written); "
                         "start a new run to train again")
    if config is not None:
        log("note: resuming with the run directory's config.yaml, not the one given")
    return load_pretrain_config(run_dir / "config.yaml"), run_dir


def _failed_record(cfg: PretrainConfig, run_dir: Path, exc: BaseException) -> None:
    """``run.json`` with ``status: failed`` (a Ctrl-C writes none: it can be resumed)."""
    if not run_dir.is_dir():
        return
    write_plain_json(run_dir / "run.json", {
        "name": cfg.name, "status": "failed", "method": cfg.pretrain.method,
        "failed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "error": f"{type(exc).__name__}: {exc}"})


def _data(cfg: PretrainConfig, run_dir: Path, plan: Any, log: ProgressLog
          ) -> tuple[Any, Any, str]:
    """The prepared images in their streaming form, the pipeline and the data manifest
    hash; ``data_index.csv`` written. The per-image bookkeeping of the archive (table,
    cache look-up) is freed before training: memory stays flat in the number of images."""
    from imaging_tl.data.audit import data_index
    from imaging_tl.data.tfdata import check_input_range
    from imaging_tl.stages import Pipeline

    table = unlabelled_table(cfg)
    log(f"data: {len(table)} image(s) from {table['path'].nunique()} file(s), no labels")
    pipe = Pipeline.from_config(cfg.preprocessing)
    prepared = prepare_images(table, pipe, cfg, min_images=plan.global_batch, log=log)
    del table
    prepared.table["split"] = "train"  # every image is seen by the pretraining
    write_csv(run_dir / "data_index.csv", data_index(prepared.table))
    manifest = data_manifest_hash(prepared.table)
    try:
        check_input_range(prepared.table)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    stream = prepared.streaming()
    del prepared
    release_memory()
    return stream, pipe, manifest


def _build(cfg: PretrainConfig, plan: Any, steps: int) -> tuple[Any, Any, Any]:
    """The SimSiam model, its optimiser and compiled step, in the strategy's scope."""
    import keras

    from imaging_tl.pretrain.simsiam import (
        build_simsiam,
        make_optimizer,
        make_train_step,
        simsiam_learning_rate,
    )
    from imaging_tl.train.distribute import set_mixed_precision

    p, m = cfg.pretrain, cfg.model
    before = keras.mixed_precision.global_policy()
    try:
        set_mixed_precision(plan.precision)
        with plan.strategy.scope():
            model = build_simsiam(m.backbone, source=m.source, input_size=m.input_size,
                                  projection_dim=p.projection_dim,
                                  predictor_dim=p.predictor_dim, seed=cfg.seed,
                                  train_batchnorm=p.train_batchnorm)
            lr = p.learning_rate or simsiam_learning_rate(plan.global_batch)
            opt = make_optimizer(lr, momentum=p.momentum,
                                 weight_decay=p.weight_decay, schedule=p.schedule,
                                 total_steps=p.epochs * steps,
                                 loss_scale=plan.precision == "mixed_float16")
    finally:
        keras.mixed_precision.set_global_policy(before)
    steps_of = {part: make_train_step(model, opt, plan.strategy, plan.global_batch,
                                      backbone=part == "all") for part in ("all", "heads")}
    return model, opt, steps_of


def _restore(model: Any, opt: Any, ckpt: Path, manifest: str, log: ProgressLog
             ) -> tuple[int, list[dict], dict[str, float] | None]:
    """The epoch to start at, the history so far and the measurements before pretraining
    (from ``checkpoints/``); the images must be those the run started with."""
    from imaging_tl.train.checkpoint import load_arrays as load_weights
    from imaging_tl.train.checkpoint import load_optimizer

    state_file = ckpt / "state.json"
    if not state_file.is_file() or not (ckpt / "last.npz").is_file():
        log("resume: no finished epoch yet; starting at epoch 1")
        return 0, [], None
    state = json.loads(state_file.read_text())
    if state.get("data_manifest_sha256") not in (None, manifest):
        raise InputError(f"--resume {ckpt.parent}: the images changed since the run started "
                         "(another data manifest); start a new run")
    load_weights(model.joint, ckpt / "last.npz")
    if not load_optimizer(opt, model.joint.trainable_variables, ckpt / "last.npz"):
        raise InputError(f"--resume: {ckpt / 'last.npz'} holds no optimiser state that fits "
                         "this model")
    log(f"resume: continuing after epoch {state['epoch']}")
    return int(state["epoch"]), list(state["history"]), state.get("start")


def _collapse_sample(prepared: Any, n: int, seed: int) -> np.ndarray:
    """The rows (a fixed random sample) on which collapse is measured every epoch."""
    rows = np.random.default_rng(seed).permutation(len(prepared.table))[:n]
    return np.sort(rows)


def _sample_features(model: Any, fn: Any, prepared: Any, rows: np.ndarray) -> np.ndarray:
    """Pooled backbone features (inference mode) of the fixed sample."""
    from imaging_tl.train.features import extract_features

    return np.concatenate([extract_features(model.transfer,
                                            load_arrays(prepared, rows[i:i + 64]), fn=fn)[0]
                           for i in range(0, len(rows), 64)])


def _quality(model: Any, fn: Any, z: np.ndarray, prepared: Any, rows: np.ndarray,
             start: dict[str, float]) -> dict[str, float]:
    """Collapse statistics of the epoch's last projections (as trained: BatchNorm on batch
    statistics), and the effective rank and spread of the backbone features of a fixed
    sample in inference mode (the spread as a share of its value before pretraining)."""
    from imaging_tl.pretrain.quality import collapse_stats, effective_rank, feature_spread

    stats = collapse_stats(z)
    feats = _sample_features(model, fn, prepared, rows)
    spread = feature_spread(feats)
    return {"embedding_std": stats["std"], "embedding_std_ratio": stats["std_ratio"],
            "projection_rank": stats["effective_rank"],
            "feature_rank": effective_rank(feats), "feature_std": spread,
            "feature_std_ratio": spread / start["feature_std"] if start["feature_std"] > 0
            else 1.0}


def _start(model: Any, fn: Any, prepared: Any, rows: np.ndarray, probe: Any, seed: int
           ) -> dict[str, float]:
    """What pretraining is measured against: the feature spread (and probe AUC) of the
    starting weights."""
    from imaging_tl.pretrain.quality import feature_spread

    spread = feature_spread(_sample_features(model, fn, prepared, rows))
    auc = _probe(model, fn, probe, seed) if probe is not None else float("nan")
    return {"feature_std": spread, "probe_auc": auc}


def _probe(model: Any, fn: Any, probe: Any, seed: int) -> float:
    from imaging_tl.pretrain.quality import linear_probe
    from imaging_tl.train.features import extract_features

    a = extract_features(model.transfer, probe.train_x, fn=fn)[0]
    b = extract_features(model.transfer, probe.test_x, fn=fn)[0]
    return float(linear_probe(a, probe.train_y, b, probe.test_y, seed=seed)["auc"])


def _epoch(step: Any, plan: Any, ds: Any, keep: int) -> tuple[float, np.ndarray]:
    """One pass over the views: the mean loss, and the last ``keep`` projections.

    Distributed, every worker builds the same global batches (and views) and keeps its
    replicas' share of each, as ``run`` does (:func:`imaging_tl.train.distribute.shard_by_data`).
    """
    from imaging_tl.train.distribute import shard_by_data

    data = ds
    if plan.distributed:
        data = plan.strategy.experimental_distribute_dataset(shard_by_data(ds))
    total, n, last = 0.0, 0, []
    for v1, v2 in data:
        loss, z = step(v1, v2)
        total += float(loss)
        n += 1
        last.append(np.asarray(z, np.float32))
        while sum(len(a) for a in last[1:]) >= keep:
            last.pop(0)
    return total / max(n, 1), np.concatenate(last)[-keep:]


def _run(cfg: PretrainConfig, run_dir: Path, plan: Any, log: ProgressLog, resuming: bool,
         hooks: list[EpochHook]) -> PretrainResult:
    from imaging_tl.pretrain.quality import collapse_reason
    from imaging_tl.train.checkpoint import save_arrays
    from imaging_tl.train.features import feature_fn

    t0, p = time.perf_counter(), cfg.pretrain
    log(f"pretrain: run directory {run_dir}; {plan.describe()}")
    if not resuming:
        write_text(run_dir / "config.yaml", cfg.to_yaml())
    prepared, pipe, manifest = _data(cfg, run_dir, plan, log)
    probe = None
    if cfg.monitor.csv:
        probe = probe_data(cfg.monitor, pipe, cfg, cfg.seed, log)
        release_memory()  # its look-up read the cache's whole index again
    steps = len(prepared.table) // plan.global_batch
    steps = min(steps, p.steps_per_epoch or steps)
    model, opt, steps_of = _build(cfg, plan, steps)
    warmup = p.warmup_epochs if p.warmup_epochs is not None else int(
        cfg.model.source == "imagenet")
    ckpt = run_dir / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    first, history, start = _restore(model, opt, ckpt, manifest, log) if resuming else (
        0, [], None)
    maker = ViewMaker(cfg.views, int(cfg.model.input_size or prepared.shape[0]))
    sample = _collapse_sample(prepared, p.collapse_sample, cfg.seed)
    fn = feature_fn(model.transfer)  # traced once: features of the sample and the probe
    start = start or _start(model, fn, prepared, sample, probe, cfg.seed)
    log(f"SimSiam on {cfg.model.backbone} from {cfg.model.source}: {len(prepared.table)} "
        f"images, {steps} steps of {plan.global_batch} per epoch, {p.epochs} epochs"
        + (f"; probe AUC before pretraining {start['probe_auc']:.3f}" if probe else ""))
    stopped = None
    for epoch in range(first, p.epochs):
        t_epoch = time.perf_counter()
        ds = view_dataset(prepared, maker, batch_size=plan.global_batch, seed=cfg.seed,
                          epoch=epoch, steps=steps, check_range=False)
        step = steps_of["heads" if epoch < warmup else "all"]
        loss, z = _epoch(step, plan, ds, p.collapse_sample)
        row: dict[str, Any] = {"phase": "pretrain", "epoch": epoch + 1, "loss": loss,
                               **_quality(model, fn, z, prepared, sample, start)}
        due = probe is not None and ((epoch + 1) % cfg.monitor.every == 0
                                     or epoch + 1 == p.epochs)
        row["probe_auc"] = _probe(model, fn, probe, cfg.seed) if due else float("nan")
        row["seconds"] = round(time.perf_counter() - t_epoch, 3)
        history.append(row)
        save_arrays(model.joint, ckpt / f"epoch-{epoch + 1:04d}.npz")  # weights only
        save_arrays(model.joint, ckpt / "last.npz", opt)  # with the optimiser: resume
        write_text(ckpt / "state.json", json.dumps(
            {"epoch": epoch + 1, "history": history, "data_manifest_sha256": manifest,
             "start": start}, default=float))
        write_history(run_dir, history)
        log(f"epoch {epoch + 1}/{p.epochs}: loss {loss:.4f}, embedding std x sqrt(d) "
            f"{row['embedding_std_ratio']:.3f}, feature spread x{row['feature_std_ratio']:.3f}"
            + (f", probe AUC {row['probe_auc']:.3f}" if due else ""))
        for hook in hooks:
            hook(epoch, row)
        stopped = collapse_reason(row, p.collapse_ratio)
        if stopped is not None:
            _collapsed(stopped, epoch + 1, p, history, ckpt, log)
            break
    if not plan.is_chief:
        return _worker_result(run_dir, plan, history, prepared, log)
    kept = _keep(model, history, p, ckpt, start, log)
    save_backbone(model, cfg, pipe, run_dir)
    record = _record(cfg, prepared, pipe, plan, history, probe, manifest,
                     time.perf_counter() - t0)
    record["kept"] = {**kept, "stopped": None if stopped is None else f"collapse: {stopped}"}
    return PretrainResult.finish(run_dir, cfg, record, prepared.quarantined, log)


def _worker_result(run_dir: Path, plan: Any, history: list[dict], prepared: Any,
                   log: ProgressLog) -> PretrainResult:
    """What a worker other than the chief returns: its history and role; the chief saves
    the backbone and writes the run directory."""
    import pandas as pd

    log(f"worker {plan.task_index}: pretraining done; the chief writes the run directory")
    record = {"status": "finished", "role": f"worker {plan.task_index}",
              "distribute": plan.to_dict()}
    return PretrainResult(run_dir, pd.DataFrame(history), record, prepared.quarantined)


def _collapsed(reason: str, epoch: int, p: Any, history: list[dict], ckpt: Path,
               log: ProgressLog) -> None:
    """Stop at a collapse: keep the best probed epoch before it when there is one (the
    run finishes), or raise :class:`CollapseError`."""
    from imaging_tl.pretrain.quality import kept_epoch

    if p.keep == "best_probe" and kept_epoch(history, p.keep, p.collapse_ratio) is not None:
        log(f"warning: pretraining collapsed at epoch {epoch}: {reason}, below "
            f"pretrain.collapse_ratio {p.collapse_ratio}; stopping and keeping the epoch with "
            "the best probe AUC")
        return
    raise CollapseError(
        f"pretraining collapsed at epoch {epoch}: {reason}, below pretrain.collapse_ratio "
        f"{p.collapse_ratio} (every image maps to nearly one point). Lower "
        "pretrain.learning_rate, raise pretrain.batch_size or weight decay, or start from "
        f"model.source: imagenet; checkpoints of earlier epochs are in {ckpt}")


def _keep(model: Any, history: list[dict], p: Any, ckpt: Path, start: dict[str, float],
          log: ProgressLog) -> dict[str, Any]:
    """Load the kept epoch's weights (``pretrain.keep``) and say which it is."""
    from imaging_tl.pretrain.quality import kept_epoch
    from imaging_tl.train.checkpoint import load_arrays as load_weights

    epoch = kept_epoch(history, p.keep, p.collapse_ratio) or int(history[-1]["epoch"])
    row = next(r for r in history if int(r["epoch"]) == epoch)
    if epoch != int(history[-1]["epoch"]):
        load_weights(model.joint, ckpt / f"epoch-{epoch:04d}.npz")
    auc = float(row["probe_auc"])
    rule = "best_probe" if p.keep == "best_probe" and np.isfinite(auc) else "last"
    log(f"keeping epoch {epoch} ({'best probe AUC' if rule == 'best_probe' else 'the last'})"
        + (f": probe AUC {auc:.3f}" if np.isfinite(auc) else ""))
    before = float(start.get("probe_auc", float("nan")))
    if np.isfinite(auc) and np.isfinite(before) and auc <= before:
        log(f"warning: the kept backbone probes no better than the starting weights "
            f"(AUC {auc:.3f} vs {before:.3f}): as model.source it is not expected to help")
    return {"epoch": epoch, "rule": rule, "probe_auc": auc if np.isfinite(auc) else None,
            "probe_auc_before": before if np.isfinite(before) else None}


def _record(cfg: PretrainConfig, prepared: Any, pipe: Any, plan: Any, history: list[dict],
            probe: Any, manifest: str, seconds: float) -> dict[str, Any]:
    """What ``run.json`` holds (the chain is added once ``model.keras`` exists)."""
    from imaging_tl.pretrain.simsiam import simsiam_learning_rate

    q = prepared.quarantined
    return {
        "name": cfg.name, "status": "finished", "task": "self_supervised",
        "method": cfg.pretrain.method,
        "learning_rate": cfg.pretrain.learning_rate or simsiam_learning_rate(plan.global_batch),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": cfg.seed, "data_manifest_sha256": manifest,
        "pipeline_fingerprint": pipe.fingerprint(), "cache_namespace": prepared.namespace,
        "samples": {"train": int(len(prepared.table))},
        "prepare": {k: v for k, v in prepared.stats.items() if k != "audit"},
        "quarantined": q.astype({"frame": object}).where(q.notna(), None).to_dict("records"),
        "views": dict(describe_views(cfg.views)),
        "monitor": None if probe is None else {
            "csv": cfg.monitor.csv, "positive": probe.positive,
            "train": int(len(probe.train_y)), "test": int(len(probe.test_y)),
            "quarantined": probe.quarantined},
        "final": {k: v for k, v in history[-1].items() if k not in ("phase",)},
        "distribute": plan.to_dict(), "versions": versions(), "machine": machine(),
        "durations_s": {"total": round(seconds, 3)},
    }

