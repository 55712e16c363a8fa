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
