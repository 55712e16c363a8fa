"""One tiny pipeline run per session (real DICOM/PNG files, real weights, real training).

The data are synthetic radiographs from :mod:`imaging_tl.synthetic` (not patient data),
written as real DICOM (several transfer syntaxes) and PNG files with a labels.csv.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from imaging_tl.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny_data")
    generate_dataset(root, n_patients=14, images_per_patient=2, seed=3, size=80,
                     difficulty="easy")
    return root


@pytest.fixture(scope="session")
def tiny_config(tiny_data, tmp_path_factory) -> dict[str, Any]:
    """A config that trains in seconds: 64 px, head on cached features, bootstrap 50."""
    cache = tmp_path_factory.mktemp("cache")
    return {
        "name": "tiny",
        "seed": 0,
        "output": str(tmp_path_factory.mktemp("runs")),
        "cache_dir": str(cache),
        "workers": 1,
        "data": {"csv": str(tiny_data / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "split": {"val": 0.25, "test": 0.25},
        "model": {"input_size": 64},
        "augment": {"preset": "light"},
        "train": {"batch_size": 8,
                  "phases": [{"name": "head", "epochs": 3, "learning_rate": 0.003}]},
        "evaluate": {"bootstrap": 50, "gradcam": 2},
    }


@pytest.fixture(scope="session")
def finished_run(tiny_config, tmp_path_factory):
    """The tiny pipeline with a short fine-tune phase (tf.data + augmentation), run once."""
    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["train"]["phases"].append({"name": "finetune", "epochs": 1, "learning_rate": 1e-4,
                                   "freeze": "block6d_add"})
    cfg["evaluate"]["subgroups"] = ["sex", "view"]  # header attributes, via the census
    cfg["evaluate"]["tta"] = 2  # test-time augmentation beside the plain figures
    return run(cfg, out=tmp_path_factory.mktemp("finished") / "run", verbose=False)


@pytest.fixture(scope="session")
def target_data(tmp_path_factory) -> Path:
    """Patients SYN0015-SYN0024 of another seed: nobody the finished run has seen."""
    import pandas as pd

    from imaging_tl.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("target_data")
    generate_dataset(root, n_patients=24, images_per_patient=2, seed=11, size=80,
                     difficulty="easy")
    table = pd.read_csv(root / "labels.csv")
    table[table["patient_id"] > "SYN0014"].to_csv(root / "labels.csv", index=False)
    return root


def _target_config(tiny_config, data: Path, source: Path) -> dict:
    cfg = copy.deepcopy(tiny_config)
    cfg["name"] = "target"
    cfg["data"]["csv"] = str(data / "labels.csv")
    cfg["model"] = {"source": str(source)}  # backbone, input size, stages: inherited
    cfg["train"]["phases"] = [{"name": "head", "epochs": 2, "learning_rate": 0.003}]
    cfg["evaluate"] = {"bootstrap": 20, "gradcam": 0}
    return cfg


@pytest.fixture(scope="session")
def target_config():
    """``target_config(tiny_config, data_folder, source)``: a target task's configuration."""
    return _target_config


@pytest.fixture(scope="session")
def target_run(tiny_config, target_data, finished_run, tmp_path_factory):
    """A target task on other patients, transferred from the finished run (run once)."""
    from imaging_tl.pipeline import run

    cfg = _target_config(tiny_config, target_data, finished_run.run_dir)
    return run(cfg, out=tmp_path_factory.mktemp("chain") / "target1", verbose=False)


@pytest.fixture(scope="session")
def short_run(tiny_config, tmp_path_factory):
    """The tiny pipeline with one epoch, no Grad-CAM and no TensorBoard events (run once):
    the finished run's data with other settings."""
    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["evaluate"]["gradcam"] = 0
    cfg["train"]["phases"][0]["epochs"] = 1
    cfg["tracking"] = {"tensorboard": False}  # no event files (the others write them)
    return run(cfg, out=tmp_path_factory.mktemp("short") / "run", verbose=False)
