"""A run must learn: on an easy, seeded synthetic task the tiny pipeline's test AUC is far
above chance (a run that learned nothing, or paired images with the wrong labels, fails).

The task: nodule vs normal radiographs with large, high-contrast nodules (80 px files, 64 px
input), 32 patients x 2 images, the head trained on cached Lite0 features for 40 epochs (well
under a second each). Measured test ROC AUC (16 test images) for config seeds 0, 1, 2 in
``MEASURED``: this small a run is seed-sensitive (0.62-0.84), so the test pins seed 0 (a
deterministic run: the bar guards against a run that stops learning, 0.14 below the measured
value, 0.2 above chance). With 14 patients the same setup measured 1.0 / 0.5 / 0.625.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging_tl.pipeline import run

MEASURED = {0: 0.841, 1: 0.746, 2: 0.619}  # config seed -> test ROC AUC (2 CPU cores)
BAR = 0.70


@pytest.fixture(scope="module")
def learnable_data(tmp_path_factory) -> Path:
    from imaging_tl.synthetic import generate_dataset
    from imaging_tl.synthetic.findings import Difficulty

    root = tmp_path_factory.mktemp("learnable")
    generate_dataset(root, n_patients=32, images_per_patient=2, seed=3, size=80,
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
    assert result.metrics["n"] == 16
    assert auc >= BAR, f"test ROC AUC {auc:.3f} < {BAR} (measured {MEASURED[0]}): no learning"
