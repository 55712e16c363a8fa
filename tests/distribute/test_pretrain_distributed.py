"""``imaging_tl.pretrain`` under ``multi_worker``: two localhost workers (TF_CONFIG)
pretrain in sync and only the chief writes the run directory (slow). Slow: two workers
interrupted after the first epoch (the processes end) are resumed by two new processes
from the chief's run directory and end where one process with two mirrored replicas does
(the same two replicas, each seeing the same half of every global batch: SimSiam's
BatchNorm makes one device with the global batch differ)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PRETRAIN_WORKER = Path(__file__).resolve().parents[1] / "pretrain" / "pretrain_worker.py"


def _config(data: Path, cache: Path, epochs: int, distribute: str = "auto") -> dict:
    """32 px, 2 steps an epoch, batch 4 per replica, a narrow projector, no probe."""
    return {"name": "ssl-dist", "seed": 0, "cache_dir": str(cache), "workers": 1,
            "data": {"folder": str(data)},
            "model": {"input_size": 32, "source": "none"},
            "pretrain": {"epochs": epochs, "steps_per_epoch": 2, "batch_size": 4,
                         "learning_rate": 0.05, "projection_dim": 16, "predictor_dim": 8,
                         "collapse_sample": 8, "collapse_ratio": 0.0,
                         "distribute": distribute}}


def _two_workers(kit, data: Path, tmp: Path, epochs: int, interrupt: int = 0) -> dict:
    """Two workers of a localhost MultiWorkerMirroredStrategy cluster (``distribute:
    auto`` picks multi_worker from TF_CONFIG); with ``interrupt``, both are interrupted
    after that epoch (the processes end) and two new processes resume the chief's run
    directory, as a user would."""
    phases = [(str(interrupt), None), ("0", str(tmp / "out0"))] if interrupt else [
        ("0", None)]
    for stop, resume in phases:
        cluster = {"worker": [f"localhost:{p}" for p in kit.free_ports(2)]}
        jobs = {}
        for i in range(2):
            cfg = kit.write_config(tmp / f"w{i}.json", _config(data, tmp / f"cache{i}", epochs))
            env = {**kit.base_env(), "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}})}
            jobs[f"worker{i}"] = ([cfg, str(tmp / f"out{i}"), "1", stop]
                                  + ([resume] if resume else []), env)
        res = kit.start_runs(jobs, script=PRETRAIN_WORKER)
    return res


@pytest.mark.slow  # ~40-65 s on 2 cores (tracing under the strategy); the same plumbing
# (TF_CONFIG, shard_by_data, only the chief writes) runs in the default run's two-worker
# `run` (tests/distribute/test_run_distributed.py)
def test_two_workers_pretrain_in_sync_and_only_the_chief_writes(kit, dist_data, tmp_path):
    res = _two_workers(kit, dist_data, tmp_path, epochs=1)
    chief, worker = res["worker0"], res["worker1"]
    assert chief["role"] == "chief" and worker["role"] == "worker 1"
    assert not (tmp_path / "out1").exists()  # the worker never wrote its --out
    assert not Path(worker["run_dir"]).exists()  # its scratch folder is gone
    d = Path(chief["run_dir"])
    assert d == tmp_path / "out0"
    for f in ("config.yaml", "run.json", "history.csv", "model.keras", "data_index.csv",
              "checkpoints/epoch-0001.npz"):
        assert (d / f).is_file(), f
    record = json.loads((d / "run.json").read_text())
    assert record["status"] == "finished" and chief["dtypes"] == ["float32"]
    dist = record["distribute"]
    assert (dist["mode"], dist["workers"], dist["replicas"]) == ("multi_worker", 2, 2)
    assert (dist["per_replica_batch"], dist["global_batch"]) == (4, 8)
    # in sync: each step's loss is reduced over both workers' replicas
    h = pd.read_csv(d / "history.csv")
    assert h["epoch"].tolist() == [1] and np.isfinite(h["loss"]).all()
    np.testing.assert_allclose(worker["loss"], chief["loss"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_two_workers_resume_and_match_one_process_with_two_mirrored_replicas(
        kit, dist_data, tmp_path):
    ref_cfg = kit.write_config(tmp_path / "mirrored.json", _config(
        dist_data, tmp_path / "cache_ref", 2, "mirrored"))
    ref = kit.start_runs({"mirrored": ([ref_cfg, str(tmp_path / "ref"), "2"],
                                       kit.base_env())}, script=PRETRAIN_WORKER)["mirrored"]
    assert (ref["distribute"]["replicas"], ref["distribute"]["global_batch"]) == (2, 8)
    res = _two_workers(kit, dist_data, tmp_path, epochs=2, interrupt=1)
    d = Path(res["worker0"]["run_dir"])
    assert sorted(p.name for p in (d / "checkpoints").glob("epoch-*.npz")) == [
        "epoch-0001.npz", "epoch-0002.npz"]
    assert json.loads((d / "run.json").read_text())["status"] == "finished"
    # resumed after epoch 1 with the chief's checkpoint, the data order and views: the
    # losses of the uninterrupted two-replica run (the all-reduce order may differ)
    assert res["worker1"]["role"] == "worker 1"
    np.testing.assert_allclose(res["worker0"]["loss"], ref["loss"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["worker1"]["loss"], ref["loss"], rtol=1e-4, atol=1e-5)


def test_multi_worker_without_tf_config_is_refused_before_the_run_directory(
        dist_data, tmp_path, monkeypatch):
    from imaging_tl.config import ConfigError
    from imaging_tl.pipeline import InputError
    from imaging_tl.pretrain import pretrain

    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = _config(dist_data, tmp_path / "cache", 1, "multi_worker")
    with pytest.raises(ConfigError, match="pretrain.distribute: 'multi_worker' needs the "
                                          "TF_CONFIG"):
        pretrain(cfg, out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()
    # a worker resuming where the chief's run directory is not (no shared filesystem)
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["localhost:1", "localhost:2"]},
         "task": {"type": "worker", "index": 1}}))
    with pytest.raises(InputError, match="same path on every worker"):
        pretrain(resume=tmp_path / "nowhere", verbose=False)
