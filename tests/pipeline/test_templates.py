"""The templates in ``pipelines/`` run end to end, unchanged apart from their data paths and
tiny sizes (32 px, one epoch a phase, few bootstraps), on the session's synthetic data; and
(slow) ``make demo``'s config, unchanged, reaches the test AUC the README states."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imaging_tl.pipeline import run

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"


def tiny_overrides(template: Path, data: list[str]) -> list[str]:
    """``--set`` values that shrink a template: its data, sizes, epochs, bootstrap."""
    raw = yaml.safe_load(template.read_text())
    over = [*data, "evaluate.bootstrap=10", "evaluate.gradcam=1", "export.formats=[keras]",
            "train.batch_size=8", "workers=1"]
    for i, stage in enumerate(raw["preprocessing"]):
        if stage["name"] == "resize":
            over.append(f"preprocessing.{i}.size=32")
    for i, _ in enumerate(raw["train"]["phases"]):
        over += [f"train.phases.{i}.epochs=1"]
    return over


@pytest.fixture(scope="module")
def class_folders(tiny_data, tmp_path_factory) -> Path:
    """The session's data as one sub-folder per class (the folder template's layout)."""
    root = tmp_path_factory.mktemp("class_folders")
    labels = pd.read_csv(tiny_data / "labels.csv")
    for _, row in labels.iterrows():
        src = tiny_data / row["path"]
        dst = root / row["label"] / row["patient_id"] / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    return root


def test_every_template_runs_end_to_end(tiny_data, class_folders, tmp_path):
    csv = str(tiny_data / "labels.csv")
    cases = {
        "chest_xray_folder": [f"data.folder={class_folders}", "task.positive=nodule"],
        # two classes stand in for the bleed types; the three CT windows still apply
        "head_ct_multiwindow": [f"data.csv={csv}"],
        "multilabel_csv": [f"data.csv={csv}"],
    }
    assert sorted(cases) == sorted(p.stem for p in PIPELINES.glob("*.yaml") if p.stem != "demo")
    for name, data in cases.items():
        template = PIPELINES / f"{name}.yaml"
        result = run(template, overrides=tiny_overrides(template, data),
                     out=tmp_path / name, verbose=False)
        metrics = json.loads((result.run_dir / "metrics.json").read_text())
        assert (result.run_dir / "model.keras").is_file(), name
        assert (result.run_dir / "report.html").is_file(), name
        preds = pd.read_csv(result.run_dir / "predictions.csv")
        assert len(preds) == 28, name
        assert metrics, name
        cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
        assert cfg["model"]["input_size"] == 32 and cfg["task"]["type"] == \
            yaml.safe_load(template.read_text())["task"]["type"], name


def readme_demo_auc() -> float:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"reaches a test ROC AUC around (0\.\d+)", text)
    assert found, "README.md no longer states the demo's AUC"
    return float(found.group(1))


@pytest.mark.slow
def test_make_demo_reaches_the_auc_the_readme_states(tmp_path):
    # `make demo` is `imaging-tl run pipelines/demo.yaml`: the config unchanged (only where
    # the run directory goes)
    result = run(PIPELINES / "demo.yaml", out=tmp_path / "demo", verbose=False)
    auc = result.metrics["roc_auc"]["value"]
    assert auc == pytest.approx(readme_demo_auc(), abs=0.03), auc
    lo, hi = result.metrics["roc_auc"]["ci"]
    assert lo <= readme_demo_auc() <= hi
