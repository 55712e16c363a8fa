"""One configuration in, one run directory out: :func:`run` names its steps in order.

``model.source`` checked -> census -> dataset table -> patient-level splits + leakage
audit -> preprocessing into the array cache -> cross-task audit against the source's data
(``data_index.csv``) -> model (from a source model: shared layers copied, new head) ->
phased training (frozen phases on cached features, checkpoints
after every epoch) -> evaluation on the test split (threshold chosen on validation) ->
model + contract -> Grad-CAM -> exports -> report and model card -> TensorBoard events ->
``run.json`` (-> MLflow, with ``tracking.mlflow``). With ``split.method: kfold`` and no
``split.fold``, training and evaluation are those of every fold and the fold ensemble
(:mod:`imaging_tl.pipeline.crossval`). The run directory::

    runs/<name>-<timestamp>/
      config.yaml  run.json  census.csv  splits.csv  data_index.csv  model.keras
      contract.json  history.csv  metrics.json  predictions.csv  plots/  gradcam/  report.html
      model_card.md  tensorboard/

Every artefact is written to a temporary name and renamed into place, so a killed run never
leaves a half-written file; ``run(..., resume=RUN_DIR)`` continues an interrupted run from
its last completed epoch (``checkpoints/`` holds the per-phase state until the run ends).

Several devices or machines (``train.distribute``, :mod:`imaging_tl.train.distribute`): the
model and its optimisers are built in the strategy's scope, ``train.batch_size`` is per
replica (global batch = batch_size x replicas, learning rates scaled by
``train.scale_learning_rate``), and under ``multi_worker`` every worker runs the same
command while only the chief (worker 0) writes the run directory; the others train into a
scratch folder that is deleted, and the chief evaluates and reports alone. Evaluation,
saving and exports use a plain float32 copy of the trained model, so ``model.keras`` runs
anywhere whatever the strategy or the mixed-precision policy of training. ``run.json``
records the plan under ``distribute``.

Examples
--------
>>> import imaging_tl
>>> result = imaging_tl.run("pipelines/demo.yaml")  # doctest: +SKIP
>>> result.metrics["roc_auc"]["value"], result.run_dir  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imaging_tl.config import ConfigError, RunConfig, load_config
from imaging_tl.pipeline.crossval import crossval_evaluate_step, crossval_step
from imaging_tl.pipeline.data_steps import census_step, prepare_step, splits_step, start_step
from imaging_tl.pipeline.domain import domain_step
from imaging_tl.pipeline.early import early_checks
from imaging_tl.pipeline.inputs import InputError, is_crossval
from imaging_tl.pipeline.mlflow_log import track_finished_run
from imaging_tl.pipeline.model_steps import (
    build_step,
    chain_step,
    plain_copy,
    source_of,
    source_record,
    source_step,
    train_step,
)
from imaging_tl.pipeline.output_steps import (
    evaluate_step,
    export_step,
    finish_step,
    gradcam_step,
    report_step,
    result_of,
    run_record,
    save_step,
)
from imaging_tl.pipeline.progress import ProgressLog
from imaging_tl.pipeline.result import RunResult
from imaging_tl.pipeline.state import RunState
from imaging_tl.pipeline.tensorboard import write_tensorboard

__all__ = ["clean_staging", "distribution_plan", "run", "run_location", "write_failed_record"]


def run(
    config: str | os.PathLike | dict[str, Any] | RunConfig | None,
    *,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overrides: Sequence[str] | None = None,
    verbose: bool = True,
    progress: bool | None = None,
    callbacks: Sequence[Any] | None = None,
) -> RunResult:
    """Run a whole pipeline and write its run directory.

    Parameters
    ----------
    config : path, dict or RunConfig
        The YAML file, its content as a dict, or a loaded configuration. May be None with
        ``resume`` (the run directory's ``config.yaml`` is used).
    out : path, optional
        The run directory (must be new or empty); default ``<output>/<name>-<timestamp>``.
    resume : path, optional
        An interrupted run directory: its ``config.yaml`` is used, the splits are checked to
        be unchanged, and training continues from the last completed epoch.
    overrides : list of str, optional
        ``key.path=value`` items applied to ``config``.
    verbose : bool
        Log each step (to stderr).
    progress : bool, optional
        Progress bars (default: when stderr is a terminal).
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks for every training phase.

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        The configuration is invalid (every problem listed).
    InputError
        The data is unusable (every problem listed).

    Examples
    --------
    >>> result = run({"data": {"csv": "sample_dicoms/labels.csv", "label_column": "label"},
    ...               "train": {"phases": [{"epochs": 2}]}})  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    log = ProgressLog(verbose, progress)
    cfg, resume_dir = _configuration(config, resume, overrides, log)
    if resume_dir is None:  # table-only checks: before TensorFlow and the run directory
        for note in early_checks(cfg):
            log(note)
    source = source_of(cfg)  # a bad model.source is refused before the run directory exists
    # the strategy first: MultiWorkerMirroredStrategy must exist before other TF work
    plan = distribution_plan(cfg)
    where, scratch = run_location(cfg, out, resume_dir, plan.is_chief, plan.task_index)
    s = RunState(cfg, where, plan, log, resume=resume_dir, callbacks=list(callbacks or []))
    s.source = source
    if resume_dir is not None:
        clean_staging(where, log)
    try:
        return _steps(s, cfg, plan, log)
    except Exception as exc:
        if plan.is_chief and not scratch:
            write_failed_record(s, exc)
        raise
    finally:
        _clear_keras_session()
        if scratch:
            shutil.rmtree(where, ignore_errors=True)


def _steps(s: RunState, cfg: RunConfig, plan: Any, log: ProgressLog) -> RunResult:
    """The steps of :func:`run` in order."""
    start_step(s)
    with s.step("census"):
        census_step(s)
    with s.step("splits"):
        splits_step(s)
    with s.step("prepare"):
        prepare_step(s)
    with s.step("source"):
        source_step(s)
    crossval = is_crossval(cfg)
    if crossval:  # every fold, then the fold ensemble (a float32 model already)
        with s.step("train"):
            crossval_step(s)
    else:
        with s.step("build"):
            build_step(s)
        with s.step("train"):
            train_step(s)
    if not plan.is_chief:
        log(f"worker {plan.task_index}: training done; the chief evaluates and writes")
        return result_of(s, role=f"worker {plan.task_index}")
    if not crossval and (plan.distributed or plan.precision != "float32"):
        s.model = plain_copy(s)
    outputs = [("evaluate", crossval_evaluate_step if crossval else evaluate_step),
               ("domain", domain_step), ("save", save_step), ("gradcam", gradcam_step)]
    if any(f != "keras" for f in cfg.export.formats):
        outputs.append(("export", export_step))
    for name, step in outputs:
        with s.step(name):
            step(s)
    record = run_record(s)
    chain_step(s, record)
    record.update(source_record(s))
    with s.step("report"):
        report_step(s, record)
    if cfg.tracking.tensorboard:
        with s.step("tensorboard"):
            s.paths["tensorboard"] = write_tensorboard(s.run_dir)
    result = finish_step(s, record)
    if cfg.tracking.mlflow:  # last: the artefacts are the finished run directory
        track_finished_run(s.run_dir, cfg.tracking.mlflow, cfg.output, log)
    return result


def clean_staging(run_dir: Path, log: Any = None) -> list[Path]:
    """Remove the staging folders a killed run left (``.report-*``, ``.model``,
    ``export/.export-*``, ``gradcam`` temporaries); returns what was removed."""
    gone = [p for pattern in (".report-*", ".model", ".*.tmp-*", "export/.export-*")
            for p in run_dir.glob(pattern) if p.is_dir()]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    if gone and log is not None:
        log(f"removed {len(gone)} staging folder(s) left by the interrupted run")
    return gone


def write_failed_record(state: RunState, exc: BaseException) -> None:
    """``run.json`` with ``status: failed`` and the reason, for a run that stopped on an
    error (an interrupted run writes none: it can be resumed)."""
    from imaging_tl.pipeline.provenance import write_plain_json

    done = state.run_dir / "run.json"
    if not state.run_dir.is_dir() or (done.exists() and not _failed(state.run_dir)):
        return
    record = {"name": state.cfg.name, "status": "failed",
              "failed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
              "error": f"{type(exc).__name__}: {exc}", "durations_s": state.durations,
              "best_epochs": state.best, "resumed_from": state.resumed_from}
    try:
        write_plain_json(state.run_dir / "run.json", record)
    except OSError:
        pass


def _clear_keras_session() -> None:
    import sys

    if "keras" in sys.modules:  # a run that failed before building a model never loaded it
        sys.modules["keras"].backend.clear_session(free_memory=False)


def _configuration(config: Any, resume: str | os.PathLike | None,
                   overrides: Sequence[str] | None,
                   log: ProgressLog) -> tuple[RunConfig, Path | None]:
    """The resolved configuration, and the run directory to resume (if any)."""
    if resume is None:
        if config is None:
            raise InputError("run: give a configuration (or resume=RUN_DIR)")
        # a RunConfig built by hand is resolved too (backbone defaults, final stages)
        raw = config.to_dict() if isinstance(config, RunConfig) else config
        return load_config(raw, list(overrides or [])), None
    run_dir = Path(resume)
    stored = run_dir / "config.yaml"
    if not stored.is_file():
        hint = ("; resuming a multi-worker run needs the chief's run directory at the "
                "same path on every worker (a shared filesystem)"
                if os.environ.get("TF_CONFIG") else "")
        raise InputError(f"--resume {run_dir}: no config.yaml there (not a run "
                         f"directory){hint}")
    if (run_dir / "run.json").is_file() and not _failed(run_dir):
        raise InputError(f"--resume {run_dir}: this run has finished (run.json is written); "
                         "start a new run to train again")
    cfg = load_config(stored)
    if config is not None:
        given = config if isinstance(config, RunConfig) else load_config(
            config, list(overrides or []))
        if given.to_dict() != cfg.to_dict():
            log("note: resuming with the run directory's config.yaml, not the one given")
    return cfg, run_dir


def _failed(run_dir: Path) -> bool:
    import json

    try:
        return json.loads((run_dir / "run.json").read_text()).get("status") == "failed"
    except (OSError, ValueError, AttributeError):
        return False


def run_location(cfg: RunConfig, out: str | os.PathLike | None, resume_dir: Path | None,
                 is_chief: bool, task_index: int) -> tuple[Path, bool]:
    """Where this process writes, and whether that is a scratch folder to delete.

    The standard TF pattern: only the chief writes the run directory (``out``, the resumed
    one, or a new ``<output>/<name>-<timestamp>``); every other worker writes into a new
    scratch folder and never touches the chief's.
    """
    if not is_chief:
        return Path(tempfile.mkdtemp(prefix=f"imaging_tl-worker{task_index}-")), True
    if resume_dir is not None:
        return resume_dir, False
    return _new_run_dir(cfg, out), False


def _new_run_dir(cfg: RunConfig, out: str | os.PathLike | None) -> Path:
    if out is not None:
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise InputError(f"--out {run_dir}: exists and is not a folder")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise InputError(f"--out {run_dir}: folder exists and is not empty (use --resume "
                             "to continue a run there)")
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.output) / f"{cfg.name}-{stamp}"
        i = 1
        while run_dir.exists():
            i += 1
            run_dir = Path(cfg.output) / f"{cfg.name}-{stamp}-{i}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def distribution_plan(cfg: RunConfig) -> Any:
    """The distribution plan of a configuration (configuration errors as ConfigError)."""
    from imaging_tl.train.distribute import n_gpus, plan_distribution

    t = cfg.train
    if t.mixed_precision == "mixed_float16" and n_gpus() == 0:
        raise ConfigError(["train.mixed_precision: 'mixed_float16' needs a GPU and none is "
                           "visible; use 'mixed_bfloat16' on CPU, or 'auto'"])
    try:
        return plan_distribution(t.distribute, per_replica_batch=t.batch_size,
                                 lr_rule=t.scale_learning_rate, precision=t.mixed_precision)
    except ValueError as exc:
        raise ConfigError([f"train.distribute: {exc}"]) from None
