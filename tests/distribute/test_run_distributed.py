"""``imaging_tl.pipeline.run`` under tf.distribute: 2 localhost workers (and, in the slow
run, mirrored over 2 logical CPUs with an interrupt and resume) give the predictions of
one device with the same global batch and learning rate; only the chief writes the run
directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.config import ConfigError, load_config
from imaging_tl.pipeline.runner import run_location as _run_location
from imaging_tl.train.distribute import cluster_info


def _reference(kit, data: Path, tmp: Path) -> str:
    """One device with the global batch (16) and the learning rates that 2 replicas of
    batch 8 get under the linear rule (x2)."""
    cfg = kit.tiny_run_config(data, tmp / "cache_none", batch_size=16, distribute="none")
    for phase in cfg["train"]["phases"]:
        phase["learning_rate"] *= 2
    return kit.write_config(tmp / "none.json", cfg)


@pytest.fixture(scope="module")
def dist_runs(kit, dist_data, tmp_path_factory) -> dict[str, dict]:
    """Three ``run`` processes started together: the one-device reference and the two
    workers of a localhost MultiWorkerMirroredStrategy cluster (``distribute: auto`` picks
    multi_worker from TF_CONFIG; the same command on each worker)."""
    tmp = tmp_path_factory.mktemp("run_dist")
    jobs = {"none": ([_reference(kit, dist_data, tmp), str(tmp / "none"), "1"],
                     kit.base_env())}
    cluster = {"worker": [f"localhost:{p}" for p in kit.free_ports(2)]}
    for i in range(2):
        cfg = kit.write_config(tmp / f"w{i}.json",
                               kit.tiny_run_config(dist_data, tmp / f"cache{i}"))
        env = {**kit.base_env(), "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": i}})}
        jobs[f"worker{i}"] = ([cfg, str(tmp / f"out{i}"), "1"], env)
    res = kit.start_runs(jobs)
    res["tmp"] = {"path": str(tmp)}
    return res


@pytest.fixture(scope="module")
def mirrored_run(kit, dist_data, tmp_path_factory) -> dict:
    """A mirrored run over 2 logical CPUs, interrupted after its first epoch and resumed
    (slow: mirrored training itself is compared with one device in test_distribute.py)."""
    tmp = tmp_path_factory.mktemp("run_mirrored")
    mirrored = kit.write_config(tmp / "mirrored.json", kit.tiny_run_config(
        dist_data, tmp / "cache_mirrored", distribute="mirrored"))
    return kit.start_runs({"mirrored": ([mirrored, str(tmp / "mirrored"), "2", "1"],
                                        kit.base_env())})["mirrored"]


def _same_predictions(a: dict, b: dict) -> None:
    pa = pd.read_csv(Path(a["run_dir"]) / "predictions.csv")
    pb = pd.read_csv(Path(b["run_dir"]) / "predictions.csv")
    assert pa["path"].tolist() == pb["path"].tolist()
    assert pa["prob_nodule"].std() > 1e-4  # not a constant output
    # README: "the same predictions as one device ... (within 1e-6)": the summation order
    # differs across replicas, so a float32 output may move by an ulp (1.2e-7 near 1)
    np.testing.assert_allclose(pb["prob_nodule"], pa["prob_nodule"], rtol=0, atol=1e-6)
    ha = pd.read_csv(Path(a["run_dir"]) / "history.csv")
    hb = pd.read_csv(Path(b["run_dir"]) / "history.csv")
    for col in ("loss", "val_loss", "val_auc", "lr"):
        np.testing.assert_allclose(hb[col], ha[col], rtol=1e-4, atol=1e-5, err_msg=col)


@pytest.mark.slow
def test_mirrored_run_on_two_cpus_matches_one_device(dist_runs, mirrored_run):
    _same_predictions(dist_runs["none"], mirrored_run)
    info = json.loads((Path(mirrored_run["run_dir"]) / "run.json").read_text())
    d = info["distribute"]
    assert (d["mode"], d["strategy"], d["replicas"]) == ("mirrored", "MirroredStrategy", 2)
    assert (d["per_replica_batch"], d["global_batch"], d["learning_rate_factor"]) == (8, 16, 2)
    assert d["phase_learning_rates"] == pytest.approx([0.02, 0.002])
    assert d["mixed_precision"] == "float32"
    ref = json.loads((Path(dist_runs["none"]["run_dir"]) / "run.json").read_text())
    assert (ref["distribute"]["replicas"], ref["distribute"]["global_batch"]) == (1, 16)


@pytest.mark.slow
def test_resume_under_the_mirrored_strategy(mirrored_run):
    res = mirrored_run
    assert res["resumed_from"] == {"phase": 0, "epoch": 1}
    d = Path(res["run_dir"])
    h = pd.read_csv(d / "history.csv")
    assert h[["phase_name", "epoch"]].values.tolist() == [["head", 1], ["head", 2],
                                                           ["finetune", 1]]
    assert h["cached_features"].tolist() == [True, True, False]
    assert (d / "model.keras").is_file() and not (d / "checkpoints").exists()


def test_two_workers_match_one_device_and_only_the_chief_writes(dist_runs):
    res, tmp = dist_runs, Path(dist_runs["tmp"]["path"])
    assert res["worker0"]["role"] == "chief" and res["worker1"]["role"] == "worker 1"
    assert not (tmp / "out1").exists()  # the worker never wrote its --out
    assert not Path(res["worker1"]["run_dir"]).exists()  # its scratch folder is gone
    chief = Path(res["worker0"]["run_dir"])
    assert (chief / "report.html").is_file() and (chief / "model.keras").is_file()
    _same_predictions(res["none"], res["worker0"])
    d = json.loads((chief / "run.json").read_text())["distribute"]
    assert (d["mode"], d["workers"], d["replicas"], d["global_batch"]) == \
        ("multi_worker", 2, 2, 16)


def test_only_the_chief_writes_the_run_directory(tmp_path):
    cfg = load_config({"data": {"folder": str(tmp_path)}, "output": str(tmp_path / "runs")})
    cluster = {"worker": ["a:1", "b:1"]}
    worker = cluster_info({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    where, scratch = _run_location(cfg, tmp_path / "out", None, worker.is_chief,
                                   worker.task_index)
    assert scratch and where.is_dir() and "worker1" in where.name
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    where.rmdir()
    # resuming: the worker still gets a scratch folder, never the chief's directory
    chief_dir = tmp_path / "chief"
    chief_dir.mkdir()
    where, scratch = _run_location(cfg, None, chief_dir, False, 1)
    assert scratch and where != chief_dir and not any(chief_dir.iterdir())
    where.rmdir()
    chief = cluster_info({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    where, scratch = _run_location(cfg, tmp_path / "out", None, chief.is_chief, 0)
    assert not scratch and where == tmp_path / "out" and where.is_dir()
    where, scratch = _run_location(cfg, None, chief_dir, True, 0)
    assert (where, scratch) == (chief_dir, False)


def test_config_keys_of_distribution(tmp_path):
    cfg = load_config({"data": {"folder": str(tmp_path)}})
    t = cfg.train
    assert (t.distribute, t.mixed_precision, t.scale_learning_rate) == ("auto", "none", "linear")
    ok = load_config({"data": {"folder": str(tmp_path)}},
                     ["train.distribute=mirrored", "train.mixed_precision=mixed_bfloat16",
                      "train.scale_learning_rate=sqrt"])
    assert ok.train.distribute == "mirrored" and ok.to_dict()["train"]["mixed_precision"] == \
        "mixed_bfloat16"
    with pytest.raises(ConfigError) as err:
        load_config({"data": {"folder": str(tmp_path)},
                     "train": {"distribute": "tpu", "mixed_precision": "float8",
                               "scale_learning_rate": "cubic", "distributed": True}})
    text = str(err.value)
    assert "train.distribute: 'tpu' is not allowed; choose one of 'auto', 'none', " \
        "'mirrored' or 'multi_worker'" in text
    assert "train.mixed_precision: 'float8' is not allowed" in text
    assert "train.scale_learning_rate: 'cubic' is not allowed" in text
    assert "train.distributed: unknown key; did you mean 'distribute'?" in text


def test_run_refuses_what_this_machine_cannot_do(dist_data, tmp_path, monkeypatch):
    import tensorflow as tf

    from imaging_tl.pipeline import run

    monkeypatch.delenv("TF_CONFIG", raising=False)
    # usable data: the table-only early checks pass, so the device refusals are reached
    base = {"data": {"csv": str(dist_data / "labels.csv"), "label_column": "label"},
            "output": str(tmp_path / "runs")}
    with pytest.raises(ConfigError, match="train.distribute: .*needs the TF_CONFIG"):
        run({**base, "train": {"distribute": "multi_worker"}}, verbose=False)
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ConfigError, match="mixed_float16' needs a GPU"):
            run({**base, "train": {"mixed_precision": "mixed_float16"}}, verbose=False)
    assert not (tmp_path / "runs").exists()  # refused before the run directory
