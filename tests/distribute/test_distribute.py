"""tf.distribute on CPU: 2 logical devices (mirrored) and 2 worker processes on localhost
(multi-worker) reach the same weights as one device with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imaging_tl.train.distribute import (
    cluster_info,
    resolve_mode,
    scale_learning_rate,
    set_mixed_precision,
)

WORKER = Path(__file__).with_name("dist_worker.py")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(jobs: dict[str, tuple[list[str], dict[str, str]]]) -> None:
    procs = {k: subprocess.Popen([sys.executable, str(WORKER), *a], env=e,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, (a, e) in jobs.items()}
    for k, p in procs.items():
        out, _ = p.communicate(timeout=400)
        assert p.returncode == 0, f"{k} failed:\n{out[-3000:]}"


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two training processes started together: one device, and mirrored over two logical
    CPUs, with the same global batch."""
    tmp = tmp_path_factory.mktemp("dist")
    _start({"none": (["none", str(tmp / "none.npz")], _base_env()),
            "mirrored": (["mirrored", str(tmp / "mirrored.npz"), "2"], _base_env())})
    return {k: tmp / f"{k}.npz" for k in ("none", "mirrored")}


@pytest.fixture(scope="module")
def worker_runs(runs, tmp_path_factory) -> dict[str, Path]:
    """A two-worker MultiWorkerMirroredStrategy cluster on localhost (TF_CONFIG)."""
    tmp = tmp_path_factory.mktemp("workers")
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    jobs = {}
    for i in range(2):
        env = {**_base_env(), "TF_CONFIG": json.dumps({"cluster": cluster,
                                                       "task": {"type": "worker", "index": i}})}
        jobs[f"worker{i}"] = (["multi_worker", str(tmp / f"worker{i}.npz")], env)
    _start(jobs)
    return {**runs, **{k: tmp / f"{k}.npz" for k in jobs}}


def _weights(path: Path) -> list[np.ndarray]:
    d = np.load(path)
    return [d[f"arr_{i}"] for i in range(4)]


def _check_same(runs: dict[str, Path], mode: str) -> None:
    one, many = np.load(runs["none"]), np.load(runs[mode])
    assert int(one["replicas"]) == 1 and int(many["replicas"]) == 2
    for a, b in zip(_weights(runs["none"]), _weights(runs[mode]), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-7)  # measured: at most 3.0e-8
    np.testing.assert_allclose(many["loss"], one["loss"], rtol=0, atol=1e-7)  # 6.0e-8
    assert one["loss"][-1] < one["loss"][0]  # it did learn


# Both fixtures start two small training processes (~6 s each on 2 cores). The default run
# checks the product's multi-worker path through `run` (tests/distribute/
# test_run_distributed.py); this step-level two-worker check is in the slow set.
def test_mirrored_on_two_cpus_matches_one_device(runs):
    _check_same(runs, "mirrored")


@pytest.mark.slow
def test_two_workers_match_one_process_and_only_the_chief_writes(worker_runs):
    _check_same(worker_runs, "worker0")
    assert worker_runs["worker0"].is_file() and not worker_runs["worker1"].exists()


def test_cluster_info_follows_tf_config():
    two = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
    assert cluster_info(two).is_chief and cluster_info(two).n_workers == 2
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["a:1"]},
                  "task": {"type": "worker", "index": 0}}
    assert not cluster_info(with_chief).is_chief and cluster_info(with_chief).n_workers == 2
    assert cluster_info("").is_chief
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        cluster_info("{cluster")
    with pytest.raises(ValueError, match="TF_CONFIG needs cluster"):
        cluster_info({"cluster": {}})


def test_auto_mode_and_scaling_rules(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    several_gpus = len(tf.config.list_physical_devices("GPU")) > 1
    assert resolve_mode("auto") == ("mirrored" if several_gpus else "none")  # no cluster
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}))
    assert resolve_mode("auto") == "multi_worker"
    with pytest.raises(ValueError, match="train.distribute='tpu'"):
        resolve_mode("tpu")
    assert scale_learning_rate(1e-3, 256, 32) == pytest.approx(8e-3)
    assert scale_learning_rate(1e-3, 128, 32, "sqrt") == pytest.approx(2e-3)
    assert scale_learning_rate(1e-3, 128, 32, "none") == 1e-3
    with pytest.raises(ValueError, match="rule='cubic'"):
        scale_learning_rate(1e-3, 128, 32, "cubic")


def test_mixed_bfloat16_keeps_the_head_output_float32():
    import keras

    from imaging_tl.models import build_transfer_model

    try:
        assert set_mixed_precision("mixed_bfloat16") == "mixed_bfloat16"
        m = build_transfer_model("efficientnet_lite0", "multiclass", ["a", "b", "c"],
                                 weights=None, input_size=32)
        assert m.get_layer("head_output").compute_dtype == "float32"
        convs = [layer for layer in m.layers if "conv" in layer.name.lower()]
        assert any(layer.compute_dtype == "bfloat16" for layer in convs) or \
            any(sub.compute_dtype == "bfloat16" for layer in m.layers
                for sub in getattr(layer, "layers", []))
        out = m(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
        assert out.dtype == "float32"
        np.testing.assert_allclose(np.asarray(out).sum(1), 1.0, atol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_needs_a_gpu():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: mixed_float16 is allowed here")
    with pytest.raises(ValueError, match="needs a GPU"):
        set_mixed_precision("mixed_float16")
    with pytest.raises(ValueError, match="mixed_precision='float8'"):
        set_mixed_precision("float8")
