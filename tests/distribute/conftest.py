"""Tiny pipeline runs under tf.distribute, each in its own process (see run_worker.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

RUN_WORKER = Path(__file__).with_name("run_worker.py")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}


def start_runs(jobs: dict[str, tuple[list[str], dict[str, str]]],
               script: Path = RUN_WORKER) -> dict[str, dict]:
    """Start worker processes (run_worker.py or ``script``) together; their RESULT lines by
    job name."""
    procs = {k: subprocess.Popen([sys.executable, str(script), *a], env=e,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, (a, e) in jobs.items()}
    results = {}
    for k, p in procs.items():
        out, _ = p.communicate(timeout=500)
        assert p.returncode == 0, f"{k} failed:\n{out[-4000:]}"
        line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
        results[k] = json.loads(line.removeprefix("RESULT "))
    return results


@pytest.fixture(scope="session")
def dist_data(tmp_path_factory) -> Path:
    from imaging_tl.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("dist_data")
    generate_dataset(root, n_patients=12, images_per_patient=2, seed=3, size=72,
                     difficulty="easy")
    return root


def tiny_run_config(data: Path, cache: Path, **train: Any) -> dict[str, Any]:
    """64 px, a cached head phase and an end-to-end phase (augmented tf.data), plain SGD
    (no optimiser state, so an interrupted and resumed run equals an uninterrupted one),
    no dropout (its masks are drawn per replica, so only its statistics would match)."""
    return {
        "name": "dist", "seed": 0, "cache_dir": str(cache), "workers": 1,
        "data": {"csv": str(data / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "split": {"val": 0.25, "test": 0.25},
        "model": {"input_size": 64, "head": {"dropout": 0.0}},
        "augment": {"preset": "light"},
        "train": {"batch_size": 8, "class_weights": "balanced", **train,
                  "phases": [{"name": "head", "epochs": 2, "learning_rate": 0.01,
                              "optimizer": "sgd"},
                             {"name": "finetune", "epochs": 1, "learning_rate": 0.001,
                              "optimizer": "sgd", "freeze": "block6d_add"}]},
        "evaluate": {"bootstrap": 20, "gradcam": 0},
    }


def write_config(path: Path, cfg: dict[str, Any]) -> str:
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (importlib mode: no conftest imports)."""
    return SimpleNamespace(base_env=base_env, free_ports=free_ports, start_runs=start_runs,
                           tiny_run_config=tiny_run_config, write_config=write_config)
