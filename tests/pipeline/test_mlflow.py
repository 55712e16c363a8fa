"""MLflow tracking (optional extra): a finished run logged to a local file store; without
MLflow the configuration key is refused with the install command."""

from __future__ import annotations

import copy
import importlib.util
import json
import os

import pandas as pd
import pytest

from imaging_tl.config import ConfigError, load_config

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed "
                                  "(pip install 'imaging-tl[mlflow]'); the store is not tested")


def _client(uri, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: file stores are opt-in
    return mlflow.MlflowClient(tracking_uri=uri)


def test_tracking_mlflow_without_mlflow_says_how_to_install(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["tracking"] = {"mlflow": True}
    if HAS_MLFLOW:
        assert load_config(cfg).tracking.mlflow is True
    else:
        with pytest.raises(ConfigError, match=r"tracking.mlflow: MLflow is not installed; "
                                              r"install it with pip install "
                                              r"'imaging-tl\[mlflow\]'"):
            load_config(cfg)


@needs_mlflow
def test_finished_run_is_logged_to_a_file_store(finished_run, tmp_path, monkeypatch):
    from imaging_tl.pipeline.mlflow_log import log_run, mlflow_uri

    uri = mlflow_uri(True, tmp_path)
    assert uri.startswith("file://") and uri.endswith("/mlruns")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run_id = log_run(finished_run.run_dir, uri)
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # the opt-in was for the call only
    client = _client(uri, monkeypatch)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    params = run.data.params
    assert params["seed"] == "0" and params["model.backbone"] == "efficientnet_lite0"
    assert params["train.phases.1.freeze"] == "block6d_add"
    metrics = json.loads((finished_run.run_dir / "metrics.json").read_text())
    got = run.data.metrics
    assert got["test_roc_auc"] == pytest.approx(metrics["roc_auc"]["value"])
    assert [got["test_roc_auc_ci_low"], got["test_roc_auc_ci_high"]] == pytest.approx(
        metrics["roc_auc"]["ci"])
    history = pd.read_csv(finished_run.run_dir / "history.csv")
    losses = client.get_metric_history(run_id, "loss")
    assert [m.step for m in losses] == list(range(1, len(history) + 1))
    assert [m.value for m in losses] == pytest.approx(history["loss"].tolist())
    assert len(client.get_metric_history(run_id, "learning_rate")) == len(history)
    artefacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"run.json", "model.keras", "model_card.md", "tensorboard", "report.html"} <= artefacts
    assert run.data.tags["imaging_tl.data_manifest_sha256"] == json.loads(
        (finished_run.run_dir / "run.json").read_text())["data_manifest_sha256"]


@pytest.mark.slow  # a run of its own; the logging itself is tested on the session's run above
@needs_mlflow
def test_a_run_with_tracking_mlflow_logs_itself(tiny_config, tmp_path, monkeypatch):
    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["train"]["phases"][0]["epochs"] = 1
    cfg["evaluate"]["gradcam"] = 0
    cfg["tracking"] = {"mlflow": (tmp_path / "store").as_uri(), "tensorboard": False}
    result = run(cfg, out=tmp_path / "run", verbose=False)
    client = _client((tmp_path / "store").as_uri(), monkeypatch)
    (exp,) = [e for e in client.search_experiments() if e.name == "tiny"]
    (logged,) = client.search_runs([exp.experiment_id])
    assert logged.info.run_name == result.run_dir.name and "test_roc_auc" in logged.data.metrics
