"""The templates in ``pipelines/`` run end to end, unchanged apart from their data paths and
tiny sizes (32 px, one epoch a phase, few bootstraps), on the session's synthetic data; and
(slow) ``make demo``'s config, unchanged, reaches the test AUC the README states."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from imaging_tl.pipeline import run

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"


def tiny_overrides(template: Path, data: list[str]) -> list[str]:
    """``--set`` values that shrink a template: its data, sizes, epochs, bootstrap."""
    raw = yaml.safe_load(template.read_text())
    over = [*data, "evaluate.bootstrap=10", "evaluate.gradcam=2", "export.formats=[keras]",
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


def _run_template(name: str, data: list[str], out: Path, extra: tuple[str, ...] = ()):
    template = PIPELINES / f"{name}.yaml"
    result = run(template, overrides=[*tiny_overrides(template, data), *extra], out=out,
                 verbose=False)
    d = result.run_dir
    for f in ("model.keras", "report.html", "metrics.json", "predictions.csv", "config.yaml"):
        assert (d / f).is_file(), f
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["model"]["input_size"] == 32
    assert cfg["task"]["type"] == yaml.safe_load(template.read_text())["task"]["type"]
    assert len(list((d / "gradcam").glob("*.png"))) >= 1
    return result


def test_the_templates_are_the_ones_tested_here():
    tested = {"chest_xray_folder", "head_ct_multiwindow", "multilabel_csv", "demo"}
    assert {p.stem for p in PIPELINES.glob("*.yaml")} == tested


def test_chest_xray_folder_template_runs_end_to_end(class_folders, tmp_path):
    r = _run_template("chest_xray_folder", [f"data.folder={class_folders}",
                                            "task.positive=nodule"], tmp_path / "chest",
                      ("split.val=0.3", "split.test=0.3"))  # both classes in 4 val patients
    assert r.task == "binary" and sorted(r.class_names) == ["nodule", "normal"]
    pred = pd.read_csv(r.run_dir / "predictions.csv")
    assert set(pred["split"]) == {"val", "test"} and set(pred["label"]) == {"nodule", "normal"}
    splits = pd.read_csv(r.run_dir / "splits.csv")
    assert len(splits) == 28  # every file of the class folders
    stored = yaml.safe_load((r.run_dir / "config.yaml").read_text())["evaluate"]
    assert (stored["patient_level"], stored["calibration"]) == ("max", "temperature")


def test_head_ct_template_runs_a_multiclass_task(tiny_data, tmp_path):
    # three classes derived from the synthetic findings stand in for the bleed types; the
    # template's three CT windows are applied unchanged
    labels = pd.read_csv(tiny_data / "labels.csv")
    labels["label"] = np.where(labels["nodule"] == 1, "nodule",
                               np.where(labels["effusion"] == 1, "effusion", "clear"))
    labels["path"] = [str(tiny_data / p) for p in labels["path"]]
    csv = tmp_path / "three.csv"
    labels.to_csv(csv, index=False)
    r = _run_template("head_ct_multiwindow", [f"data.csv={csv}"], tmp_path / "ct",
                      ("split.val=0.3", "split.test=0.3"))
    assert r.task == "multiclass" and sorted(r.class_names) == ["clear", "effusion", "nodule"]
    pred = pd.read_csv(r.run_dir / "predictions.csv")
    probs = pred[[f"prob_{c}" for c in r.class_names]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (pred["predicted"] == np.array(r.class_names)[probs.argmax(1)]).all()
    assert np.asarray(r.metrics["confusion_matrix"]).shape == (3, 3)


def test_multilabel_template_runs_with_a_kfold_split(tiny_data, tmp_path):
    r = _run_template("multilabel_csv", [f"data.csv={tiny_data / 'labels.csv'}"],
                      tmp_path / "ml", ("split.method=kfold", "split.folds=4", "split.fold=1",
                                        # too few consolidation patients for 4 folds
                                        "data.label_columns=[effusion, nodule]"))
    assert r.task == "multilabel"
    assert r.class_names == ["effusion", "nodule"]
    splits = pd.read_csv(r.run_dir / "splits.csv")
    assert set(splits["fold"]) == {0, 1, 2, 3}
    assert (splits.loc[splits["fold"] == 1, "split"] == "test").all()
    pred = pd.read_csv(r.run_dir / "predictions.csv")
    assert {f"{kind}_{c}" for kind in ("label", "prob") for c in r.class_names} <= set(pred)
    name, value, _ = r.headline()
    assert "auc" in name and 0 <= value <= 1


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
