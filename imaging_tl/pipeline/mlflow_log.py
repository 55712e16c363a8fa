"""MLflow tracking of a finished run (optional: ``pip install 'imaging-tl[mlflow]'``).

With ``tracking.mlflow`` set, a run logs itself when ``run.json`` is written: the resolved
configuration as params (dotted keys, :func:`~imaging_tl.pipeline.compare.flatten_config`),
every epoch of ``history.csv`` as metrics with the epoch (counted over all phases) as step,
the test metrics with their CI ends (``test_roc_auc``, ``test_roc_auc_ci_low``, ...), tags
(data-manifest hash, task, status, package version) and the run directory as artefacts.
``true`` logs to a local ``file:`` store in ``<output>/mlruns``; any other value is a
tracking URI. Everything is read from the run directory, so an old run can be logged later
with :func:`log_run`.

Examples
--------
>>> mlflow_uri(True, "/data/runs")
'file:///data/runs/mlruns'
>>> mlflow_uri("http://mlflow.internal:5000", "runs")
'http://mlflow.internal:5000'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imaging_tl.pipeline.compare import epoch_scalars, flatten_config, metric_scalars

__all__ = ["INSTALL_HINT", "log_run", "mlflow_uri", "track_finished_run"]

#: how to get MLflow (the light client is enough for a file: store or a server)
INSTALL_HINT = "pip install 'imaging-tl[mlflow]' (installs mlflow-skinny)"


def mlflow_uri(value: str | bool, output: str | os.PathLike) -> str:
    """The tracking URI of ``tracking.mlflow``: ``true`` is a ``file:`` store in
    ``<output>/mlruns`` (absolute), a string is used as given."""
    if value is True:
        return (Path(output).resolve() / "mlruns").as_uri()
    return str(value)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ImportError(f"tracking.mlflow: MLflow is not installed; {INSTALL_HINT}") from None
    return mlflow


def _epoch_metrics(run_dir: Path) -> list[tuple[str, float, int]]:
    import pandas as pd

    if not (run_dir / "history.csv").is_file():
        return []
    return [(tag, value, step) for step, _, tag, value in
            epoch_scalars(pd.read_csv(run_dir / "history.csv")) if math.isfinite(value)]


def _test_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {f"test_{k}": v for k, v in metric_scalars(metrics).items() if math.isfinite(v)}


def log_run(run_dir: str | os.PathLike, uri: str, *, experiment: str | None = None,
            artifacts: bool = True) -> str:
    """Log a finished run directory to MLflow; returns the MLflow run id.

    Parameters
    ----------
    run_dir : path
        A finished run directory (``run.json``, ``config.yaml``, ``history.csv``,
        ``metrics.json``).
    uri : str
        The tracking URI (``file:///...`` for a local store).
    experiment : str, optional
        The MLflow experiment (default: the run's ``name``).
    artifacts : bool
        Copy the run directory into the run's artefacts.

    Raises
    ------
    ImportError
        MLflow is not installed (the message says how to install it).
    FileNotFoundError
        ``run.json`` is missing: the run has not finished.

    Examples
    --------
    >>> log_run("runs/demo-20261206-101500", "file:///tmp/mlruns")  # doctest: +SKIP
    '3f2a...'
    """
    rd = Path(run_dir)
    if not (rd / "run.json").is_file():
        raise FileNotFoundError(f"{rd / 'run.json'}: missing; only a finished run is logged")
    mlflow = _mlflow()
    if uri.startswith("file:"):  # MLflow 3 keeps file stores behind an opt-in
        previous = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        try:
            return _log(mlflow, rd, uri, experiment, artifacts)
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
            else:
                os.environ["MLFLOW_ALLOW_FILE_STORE"] = previous
    return _log(mlflow, rd, uri, experiment, artifacts)


def _log(mlflow: Any, rd: Path, uri: str, experiment: str | None, artifacts: bool) -> str:
    import yaml

    record = json.loads((rd / "run.json").read_text())
    config = yaml.safe_load((rd / "config.yaml").read_text()) \
        if (rd / "config.yaml").is_file() else {}
    metrics = json.loads((rd / "metrics.json").read_text()) \
        if (rd / "metrics.json").is_file() else {}
    client = mlflow.MlflowClient(tracking_uri=uri)
    name = experiment or str(record.get("name") or "imaging_tl")
    found = client.get_experiment_by_name(name)
    exp_id = found.experiment_id if found is not None else client.create_experiment(name)
    tags = {"imaging_tl.run_dir": rd.resolve().name, "imaging_tl.status":
            str(record.get("status")), "imaging_tl.task": str(record.get("task")),
            "imaging_tl.data_manifest_sha256": str(record.get("data_manifest_sha256")),
            "imaging_tl.version": str((record.get("versions") or {}).get("imaging-tl"))}
    run = client.create_run(exp_id, run_name=rd.resolve().name, tags=tags)
    run_id = run.info.run_id
    from mlflow.entities import Metric, Param

    params = [Param(k, json.dumps(v, default=str) if not isinstance(v, str) else v)
              for k, v in flatten_config(config).items()]
    now = int(1000 * os.path.getmtime(rd / "run.json"))
    series = [Metric(k, v, now, s) for k, v, s in _epoch_metrics(rd)]
    final = [Metric(k, v, now, 0) for k, v in _test_metrics(metrics).items()]
    for i in range(0, len(params), 100):  # MLflow's batch limits
        client.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(series) + len(final), 1000):
        client.log_batch(run_id, metrics=(series + final)[i:i + 1000])
    if artifacts:
        client.log_artifacts(run_id, str(rd))
    client.set_terminated(run_id, "FINISHED" if record.get("status") == "finished"
                          else "FAILED")
    return str(run_id)


def track_finished_run(run_dir: Path, value: str | bool, output: str | os.PathLike,
                       log: Any) -> str | None:
    """The run's last step with ``tracking.mlflow``: :func:`log_run`, saying where on
    ``log``. A tracking failure (a server that cannot be reached, a store that cannot be
    written) does not undo a finished run: it is said, with how to log the run later, and
    None is returned.

    Examples
    --------
    >>> track_finished_run(Path("runs/x"), True, "runs", print)  # doctest: +SKIP
    mlflow: logged run 3f2a... to file:///.../runs/mlruns (experiment 'x')
    """
    uri = mlflow_uri(value, output)
    try:
        run_id = log_run(run_dir, uri)
    except ImportError:
        raise
    except Exception as exc:  # MLflow's own errors: the run itself is complete
        log(f"mlflow: logging to {uri} failed ({type(exc).__name__}: {exc}); the run "
            "directory is complete: log it later with imaging_tl.pipeline.mlflow_log."
            f"log_run({str(run_dir)!r}, {uri!r})")
        return None
    log(f"mlflow: logged run {run_id} to {uri}")
    return run_id
