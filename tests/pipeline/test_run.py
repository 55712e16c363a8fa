"""End to end: run() writes every artefact of the run directory, resume, reproducibility."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from imaging_tl.config import load_config
from imaging_tl.pipeline import InputError, run

DESIGN_FILES = ["config.yaml", "run.json", "census.csv", "splits.csv", "model.keras",
                "contract.json", "history.csv", "metrics.json", "predictions.csv",
                "report.html"]


def test_run_directory_has_every_artefact(finished_run):
    d = finished_run.run_dir
    for name in DESIGN_FILES:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    plots = {p.name for p in (d / "plots").glob("*.png")}
    assert {"roc.png", "pr.png", "confusion_matrix.png", "reliability.png",
            "training_curves.png"} <= plots
    cams = list((d / "gradcam").glob("*.png"))
    assert 1 <= len(cams) <= 4 and (d / "gradcam" / "gallery.csv").is_file()
    assert not (d / "checkpoints").exists()  # removed once the run finished
    assert not [p for p in d.rglob(".*")]  # no half-written leftovers


def test_config_yaml_is_the_resolved_config_and_reruns(finished_run):
    stored = load_config(finished_run.run_dir / "config.yaml")
    assert stored.to_dict() == finished_run.config.to_dict()
    assert stored.preprocessing[-2:] == [{"name": "resize", "size": 64}, {"name": "to_rgb"}]
    assert [p.name for p in stored.train.phases] == ["head", "finetune"]


def test_run_json_records_versions_seed_manifest_machine_durations(finished_run):
    info = json.loads((finished_run.run_dir / "run.json").read_text())
    assert info["seed"] == 0
    assert len(info["data_manifest_sha256"]) == 64
    assert {"python", "numpy", "pydicom", "keras"} <= set(info["versions"])
    assert info["machine"]["cpu_count"] >= 1
    assert {"census", "splits", "prepare", "train", "evaluate"} <= set(info["durations_s"])
    assert info["samples"]["test"] > 0 and "no leak" in info["audit"]


def test_census_has_one_row_per_file_and_no_patient_ids(finished_run, tiny_data):
    census = pd.read_csv(finished_run.run_dir / "census.csv")
    labels = pd.read_csv(tiny_data / "labels.csv")
    assert len(census) == len(labels)
    assert (census["status"] == "ok").all()
    ids = census["PatientID"].dropna()
    assert len(ids) and ids.str.match(r"^pid:[0-9a-f]{16}$").all()  # hashed, never the ID
    assert not set(ids) & set(labels["patient_id"])


def test_splits_are_by_patient(finished_run):
    splits = pd.read_csv(finished_run.run_dir / "splits.csv")
    assert set(splits["split"]) == {"train", "val", "test"}
    assert (splits.groupby("group")["split"].nunique() == 1).all()


def test_history_has_every_epoch_of_every_phase(finished_run):
    h = pd.read_csv(finished_run.run_dir / "history.csv")
    assert h[["phase_name", "epoch"]].values.tolist() == [["head", 1], ["head", 2],
                                                           ["head", 3], ["finetune", 1]]
    assert h["cached_features"].tolist() == [True, True, True, False]
    assert np.isfinite(h["loss"]).all() and "val_auc" in h


def test_metrics_have_test_auc_with_ci(finished_run):
    m = json.loads((finished_run.run_dir / "metrics.json").read_text())
    lo, hi = m["roc_auc"]["ci"]
    assert 0 <= lo <= m["roc_auc"]["value"] <= hi <= 1
    assert m["operating_point"]["chosen_on"] == "validation"
    assert m["class_names"] == ["normal", "nodule"]
    assert m["bootstrap"]["n_bootstraps"] == 50


def test_predictions_match_the_saved_model(finished_run):
    from imaging_tl.models import load_transfer_model

    d = finished_run.run_dir
    pred = pd.read_csv(d / "predictions.csv")
    assert set(pred["split"]) == {"val", "test"}
    assert np.allclose(pred["prob_nodule"] + pred["prob_normal"], 1, atol=1e-6)
    contract = json.loads((d / "contract.json").read_text())
    thr = contract["threshold"]
    assert ((pred["prob_nodule"] >= thr) == (pred["predicted"] == "nodule")).all()
    # the saved model with the contract's preprocessing gives the same probabilities
    from imaging_tl.io import read_scan
    from imaging_tl.stages import Pipeline

    model = load_transfer_model(d / "model.keras", compile=False)
    pipe = Pipeline.from_config(contract["preprocessing"]["stages"])
    rows = pred.iloc[:3]
    x = np.stack([pipe(read_scan(p)).pixels for p in rows["path"]])
    p = np.asarray(model(x, training=False)).reshape(-1)
    np.testing.assert_allclose(p, rows["prob_nodule"].to_numpy(), atol=1e-5)


def test_contract_carries_preprocessing_threshold_labels(finished_run):
    c = json.loads((finished_run.run_dir / "contract.json").read_text())
    assert c["label_names"] == ["normal", "nodule"]
    assert c["input_size"] == [64, 64] and c["normalization"] == "efficientnet_lite"
    # the default preprocessing: the colour policy first, then the window
    assert [s["name"] for s in c["preprocessing"]["stages"][:2]] == ["color", "window"]
    assert 0 <= c["threshold"] <= 1


def test_report_shows_metrics_plots_and_gradcam(finished_run):
    html = (finished_run.run_dir / "report.html").read_text()
    assert "Test metrics" in html and "Grad-CAM gallery" in html
    assert html.count("data:image/png;base64,") >= 5  # self-contained: plots + overlays


def test_summary_fits_one_screen(finished_run):
    text = finished_run.summary()
    assert "test roc_auc" in text and "report.html" in text
    assert "95% CI" in text or "too few cases for an interval" in text
    # 14 patients in all: the test split is small, and the run says so beside the metric
    assert "  caution, small sample: test split: " in text
    assert finished_run.metrics["small_sample"] and "Small sample" in (
        finished_run.run_dir / "report.html").read_text()
    assert len(text.splitlines()) < 20


def test_subgroups_come_from_the_census_into_metrics_and_report(finished_run):
    sg = finished_run.metrics["subgroups"]
    census = pd.read_csv(finished_run.run_dir / "census.csv", dtype=str)
    splits = pd.read_csv(finished_run.run_dir / "splits.csv", dtype=str)
    test = splits[splits["split"] == "test"]
    for attr, column in (("sex", "PatientSex"), ("view", "ViewPosition")):
        groups = sg["attributes"][attr]
        assert sum(g["images"] for g in groups) == len(test)
        # PNG files carry no header tags: their group is "unknown"
        assert {g["group"] for g in groups} <= set(census[column].dropna()) | {"unknown"}
        assert all(g["too_small"] for g in groups)  # 14 patients in all
    assert sg["threshold"] == pytest.approx(finished_run.metrics["operating_point"]["threshold"])
    page = (finished_run.run_dir / "report.html").read_text()
    assert "<h2>Subgroups</h2>" in page and "too small" in page
    assert (finished_run.run_dir / "plots" / "subgroups_forest.png").is_file()


def test_tta_is_reported_beside_the_plain_figures_and_is_deterministic(finished_run, tmp_path):
    from imaging_tl.cli import main
    from imaging_tl.pipeline import predict_files

    tta = finished_run.metrics["tta"]
    assert (tta["copies"], tta["preset"], tta["seed"]) == (2, "light", 0)
    assert tta["n"] == finished_run.metrics["n"]  # the same test images
    assert tta["roc_auc"]["value"] is not None and "curves" not in tta
    assert "test roc_auc with test-time augmentation (2 copies, light): " in \
        finished_run.summary()
    page = (finished_run.run_dir / "report.html").read_text()
    assert "<h3>Test-time augmentation</h3>" in page and "Referral curve" in page
    assert (finished_run.run_dir / "plots" / "referral.png").is_file()
    ref = tta["referral"]
    assert ref["fraction_referred"][0] == 0.0 and ref["fraction_referred"][-1] == 0.5
    assert ref["n_retained"][0] == tta["n"] and ref["n_retained"] == sorted(
        ref["n_retained"], reverse=True)
    splits = pd.read_csv(finished_run.run_dir / "splits.csv")
    files = list(splits.loc[splits["split"] == "test", "path"][:4])
    model = finished_run.run_dir / "model.keras"
    a = predict_files(model, files, tta=3, seed=5)
    b = predict_files(model, files, tta=3, seed=5)
    plain = predict_files(model, files)
    cols = [c for c in a.columns if c.startswith("prob_")]
    assert a[cols].to_numpy().tolist() == b[cols].to_numpy().tolist()  # same seed, same output
    assert not np.allclose(a[cols].to_numpy(float), plain[cols].to_numpy(float))
    assert a.attrs["tta"] == {"n": 3, "preset": "light", "seed": 5}
    assert (a["uncertainty"] >= 0).all() and a["uncertainty"].tolist() == \
        b["uncertainty"].tolist() and "uncertainty" not in plain.columns
    out = tmp_path / "p.csv"
    assert main(["predict", str(model), *files, "--tta", "3", "--seed", "5", "--engine",
                 "keras", "--out", str(out)]) == 0
    assert np.allclose(pd.read_csv(out)[cols].to_numpy(float), a[cols].to_numpy(float),
                       atol=1e-6)


def test_bad_data_is_an_input_error(tiny_config, tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("path,label,patient_id\nmissing1.dcm,normal,p1\nmissing2.dcm,nodule,p2\n")
    cfg = copy.deepcopy(tiny_config)
    cfg["data"]["csv"] = str(bad)
    with pytest.raises(InputError, match="missing1.dcm: file not found"):
        run(cfg, out=tmp_path / "r", verbose=False)


class _StopAfter(keras.callbacks.Callback):
    """Simulates Ctrl-C in the middle of phase 1 (after its checkpoint was written)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.slow  # the default run resumes a killed run in test_integrity.py
def test_resume_after_interrupt_continues_from_last_epoch(tiny_config, tmp_path):
    # interrupted in this process, resumed through the command a user types
    cfg = copy.deepcopy(tiny_config)
    cfg["train"]["phases"][0]["epochs"] = 4
    cfg["evaluate"]["gradcam"] = 0
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=run_dir, verbose=False, callbacks=[_StopAfter(2)])
    assert not (run_dir / "model.keras").exists()
    state = json.loads(next((run_dir / "checkpoints").glob("phase0-*/state.json")).read_text())
    assert state["epoch"] == 2 and not state["phase_done"]

    done = subprocess.run([sys.executable, "-m", "imaging_tl.cli", "run", "--resume",
                           str(run_dir)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming phase 1 (head) after epoch 2" in done.stdout + done.stderr
    assert "resumed from phase 1, epoch 2" in done.stdout  # the summary says so
    h = pd.read_csv(run_dir / "history.csv")
    assert h["epoch"].tolist() == [1, 2, 3, 4]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumed_from"] == {"phase": 0, "epoch": 2}
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert not (run_dir / "checkpoints").exists()


def test_same_seed_same_splits_and_metrics(tiny_config, short_run, tmp_path, capsys):
    # run a: the command with --set overrides; run b: run() on the config they make
    from types import SimpleNamespace

    from imaging_tl.cli import main

    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(f), "--out", str(tmp_path / "a"), "--quiet", "--set",
                 "train.phases.0.epochs=1", "--set", "evaluate.gradcam=0"]) == 0
    text = capsys.readouterr().out
    assert "test roc_auc" in text and str(tmp_path / "a" / "report.html") in text
    stored = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert stored["train"]["phases"][0]["epochs"] == 1  # the override is in config.yaml
    a = SimpleNamespace(run_dir=tmp_path / "a", metrics=json.loads(
        (tmp_path / "a" / "metrics.json").read_text()))
    cfg = copy.deepcopy(tiny_config)
    cfg["evaluate"]["gradcam"] = 0
    cfg["train"]["phases"][0]["epochs"] = 1
    b = short_run  # run() on the same settings (a session fixture)
    assert len(pd.read_csv(b.run_dir / "history.csv")) == 1
    sa = pd.read_csv(a.run_dir / "splits.csv")
    sb = pd.read_csv(b.run_dir / "splits.csv")
    pd.testing.assert_frame_equal(sa, sb)
    ha = pd.read_csv(a.run_dir / "history.csv")
    hb = pd.read_csv(b.run_dir / "history.csv")
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-4, atol=1e-5)
    assert a.metrics["roc_auc"]["value"] == pytest.approx(b.metrics["roc_auc"]["value"], abs=1e-6)
    pa = pd.read_csv(a.run_dir / "predictions.csv")
    pb = pd.read_csv(b.run_dir / "predictions.csv")
    np.testing.assert_allclose(pa["prob_nodule"], pb["prob_nodule"], atol=1e-5)
    # a different seed gives a different split
    c_cfg = load_config(cfg, ["seed=5"])
    from imaging_tl.pipeline.inputs import load_inputs
    from imaging_tl.pipeline.inputs import split_of as _split

    sc = _split(c_cfg, load_inputs(c_cfg))
    assert sorted(zip(sc["path"], sc["split"], strict=True)) != \
        sorted(zip(sa["path"], sa["split"], strict=True))
    assert yaml.safe_load((a.run_dir / "config.yaml").read_text())["seed"] == 0
