"""A run with ``evaluate.subgroups`` on synthetic data whose one scanner is noisier: the
planted shift shows as that manufacturer's AUC below the overall one; without the shift it
does not. Real files, real weights, real training (head on cached features, 128 px).

Slow: a test split that can tell a scanner apart needs about 100 patients (two runs of
300 patients, about a minute each on 2 cores). Measured: shifted, Borealis AUC 0.511 vs
Acme 0.813, difference to overall -0.18 (95% CI -0.30 to -0.05); null, differences
-0.04 (-0.12 to 0.04) and +0.05 (-0.03 to 0.13). The default run checks the same
statistics on scores (``tests/evaluate/test_subgroups.py``) and the wiring on the tiny run
(``tests/pipeline/test_run.py``)."""

from __future__ import annotations

import copy
import json

import pytest

from imaging_tl.pipeline import run
from imaging_tl.synthetic import Population, Shift, generate_dataset
from imaging_tl.synthetic.__main__ import DEMO_DIFFICULTY

SCANNERS = (("Acme Imaging", "AX-100"), ("Borealis Medical", "BM-7"))


def _run(tmp_path_factory, name: str, shift: Shift | None):
    data = tmp_path_factory.mktemp(f"data_{name}")
    generate_dataset(data, n_patients=300, images_per_patient=1, seed=11, size=160,
                     difficulty=DEMO_DIFFICULTY, png_fraction=0,
                     population=Population(scanners=SCANNERS, shift=shift))
    cfg = {
        "name": name, "seed": 0, "workers": 1,
        "cache_dir": str(tmp_path_factory.mktemp(f"cache_{name}")),
        "data": {"csv": str(data / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "split": {"val": 0.15, "test": 0.34},
        "model": {"input_size": 128}, "augment": {"preset": "light"},
        "train": {"batch_size": 16,
                  "phases": [{"name": "head", "epochs": 40, "learning_rate": 0.003}]},
        "evaluate": {"bootstrap": 300, "gradcam": 0, "subgroups": ["manufacturer", "sex"]},
    }
    return run(copy.deepcopy(cfg), out=tmp_path_factory.mktemp(name) / "run", verbose=False)


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    return _run(tmp_path_factory, "shifted", Shift("manufacturer", "Borealis Medical", 0.5))


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    return _run(tmp_path_factory, "null", None)


def _vendor(result, name: str) -> dict:
    groups = result.metrics["subgroups"]["attributes"]["manufacturer"]
    return {g["group"]: g for g in groups}[name]


def test_the_planted_scanner_shift_is_detected(shifted):
    b = _vendor(shifted, "Borealis Medical")
    assert not b["too_small"]
    assert b["roc_auc_diff"]["ci"][1] < 0, b  # the noisier scanner is worse, and we can tell
    worst = shifted.metrics["subgroups"]["worst_group_auc"]
    assert (worst["attribute"], worst["group"]) == ("manufacturer", "Borealis Medical")
    assert "worst-group roc_auc: manufacturer Borealis Medical" in shifted.summary()
    on_disk = json.loads((shifted.run_dir / "metrics.json").read_text())
    assert on_disk["subgroups"]["worst_group_auc"] == worst
    page = (shifted.run_dir / "report.html").read_text()
    assert "<h2>Subgroups</h2>" in page and "Worst-group AUC" in page
    assert (shifted.run_dir / "plots" / "subgroups_forest.png").is_file()


def test_without_a_shift_no_scanner_differs(null):
    for g in null.metrics["subgroups"]["attributes"]["manufacturer"]:
        lo, hi = g["roc_auc_diff"]["ci"]
        assert lo < 0 < hi, g
