"""predict / evaluate / export on the model of the session's tiny run (real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.cli import main


@pytest.fixture(scope="module")
def scan_folder(finished_run, tmp_path_factory) -> Path:
    """Four test scans, a truncated DICOM and a text file posing as DICOM."""
    folder = tmp_path_factory.mktemp("to_predict")
    pred = pd.read_csv(finished_run.run_dir / "predictions.csv")
    test = pred[pred["split"] == "test"].head(4)
    for i, p in enumerate(test["path"]):
        shutil.copy(p, folder / f"good{i}{Path(p).suffix}")
    dcm = next(p for p in pred["path"] if p.endswith(".dcm"))
    data = Path(dcm).read_bytes()
    (folder / "broken.dcm").write_bytes(data[: len(data) // 2])
    (folder / "notes.dcm").write_text("not an image at all\n")
    return folder


def test_predict_reports_broken_files_and_predicts_the_rest(finished_run, scan_folder,
                                                            tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code = main(["predict", str(finished_run.run_dir / "model.keras"), str(scan_folder),
                 "--out", str(out), "--gradcam", str(tmp_path / "cams")])
    assert code == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 6
    bad = df[df["status"] == "error"]
    assert {Path(p).name for p in bad["path"]} == {"broken.dcm", "notes.dcm"}
    assert all(r for r in bad["reason"])  # each with its reason
    good = df[df["status"] == "ok"]
    assert len(good) == 4
    assert np.allclose(good["prob_normal"].astype(float) + good["prob_nodule"].astype(float), 1)
    assert set(good["predicted"]) <= {"normal", "nodule"}
    assert len(list((tmp_path / "cams").glob("*.png"))) == 4
    err = capsys.readouterr().err
    assert "broken.dcm" in err and "Traceback" not in err


def test_per_slice_rows_are_refused_for_an_image_model(finished_run, scan_folder, tmp_path,
                                                       capsys):
    assert main(["predict", str(finished_run.run_dir / "model.keras"), str(scan_folder),
                 "--out", str(tmp_path / "p.csv"), "--per-slice"]) == 2
    err = capsys.readouterr().err
    assert "--per-slice: only for a model trained on series" in err and "Traceback" not in err
    assert not (tmp_path / "slice_predictions.csv").exists()


def test_predict_agrees_with_the_run_predictions(finished_run):
    from imaging_tl.pipeline import predict_files

    pred = pd.read_csv(finished_run.run_dir / "predictions.csv")
    test = pred[pred["split"] == "test"].head(3)
    df = predict_files(finished_run.run_dir, list(test["path"]))
    np.testing.assert_allclose(df["prob_nodule"].to_numpy(float),
                               test["prob_nodule"].to_numpy(), atol=1e-5)
    assert (df["predicted"].to_numpy() == test["predicted"].to_numpy()).all()


def test_evaluate_run_dir_reproduces_the_test_auc(finished_run, capsys):
    assert main(["evaluate", str(finished_run.run_dir), "--bootstrap", "20"]) == 0
    assert "roc_auc" in capsys.readouterr().out
    m = json.loads((finished_run.run_dir / "evaluation-test.json").read_text())
    assert m["roc_auc"]["value"] == pytest.approx(finished_run.metrics["roc_auc"]["value"],
                                                  abs=1e-6)
    assert m["n_images"] == finished_run.split_counts["test"]


def test_evaluate_on_external_labelled_data(finished_run, tiny_data, tmp_path):
    import pydicom

    from imaging_tl.pipeline import reevaluate

    labels = pd.read_csv(tiny_data / "labels.csv")
    labels["path"] = [str(tiny_data / p) for p in labels["path"]]
    dcm = next(p for p in labels["path"] if p.endswith(".dcm"))
    ds = pydicom.dcmread(dcm)
    ds.RescaleSlope = "NaN"  # a hostile header: left out, named, the rest evaluated
    ds.save_as(tmp_path / "nan.dcm")
    extra = labels.iloc[[0]].assign(path=str(tmp_path / "nan.dcm"))
    pd.concat([labels, extra]).to_csv(tmp_path / "ext.csv", index=False)
    m = reevaluate(finished_run.run_dir, data=tmp_path / "ext.csv", n_bootstraps=20,
                   out=tmp_path / "ext.json")
    assert m["n_images"] == len(labels) and m["n_unreadable"] == 1
    assert m["unreadable"][0]["path"].endswith("nan.dcm")
    assert "RescaleSlope" in m["unreadable"][0]["reason"]
    assert m["evaluated_on"].endswith("ext.csv") and (tmp_path / "ext.json").is_file()
    assert m["operating_point"]["threshold"] == pytest.approx(
        json.loads((finished_run.run_dir / "contract.json").read_text())["threshold"])


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("tflite", marks=pytest.mark.slow)])
def test_export_agrees_with_keras_on_real_scans(finished_run, scan_folder, tmp_path, fmt,
                                                capsys):
    files = sorted(str(p) for p in scan_folder.glob("good*"))[:2]
    code = main(["export", str(finished_run.run_dir / "model.keras"), "--format", fmt,
                 "--out", str(tmp_path), "--sample", *files])
    assert code == 0, capsys.readouterr().err
    assert "on a real input" in capsys.readouterr().out
    assert (tmp_path / f"model.{fmt}").is_file()
    contract = json.loads((tmp_path / "contract.json").read_text())
    assert contract["label_names"] == ["normal", "nodule"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_export_other_formats(finished_run, tmp_path, fmt):
    from imaging_tl.deploy.export import export_model

    res = export_model(finished_run.run_dir / "model.keras", fmt, tmp_path)
    assert res.max_abs_diff <= 1e-4 and res.path.exists()
    assert (tmp_path / "contract.json").is_file()


def test_export_mismatch_is_reported(finished_run, tmp_path):
    from imaging_tl.deploy.export import ExportError, export_model

    with pytest.raises(ExportError, match="disagrees with the Keras model"):
        export_model(finished_run.run_dir / "model.keras", "keras", tmp_path, atol=-1.0)


def test_evaluate_run_dir_honours_patient_level_and_calibration(finished_run, tmp_path):
    """A run evaluated per patient with temperature scaling is re-evaluated the same way."""
    import shutil

    import yaml

    from imaging_tl.evaluate import evaluate
    from imaging_tl.pipeline import reevaluate

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["evaluate"].update(patient_level="max", calibration="temperature")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    m = reevaluate(run_dir, n_bootstraps=20)
    test = pd.read_csv(run_dir / "predictions.csv").query("split == 'test'")
    assert m["level"] == "patient"
    assert m["n_patients"] == test["group"].nunique() < len(test)
    assert m["calibration"]["temperature"] > 0  # fitted on the run's validation split
    # the same figure as evaluating the run's own test predictions per patient
    val = pd.read_csv(run_dir / "predictions.csv").query("split == 'val'")
    ref = evaluate((test["label"] == "nodule").to_numpy(float), test["prob_nodule"].to_numpy(),
                   groups=test["group"].astype(str).to_numpy(), aggregate="max",
                   operating_point="fixed", threshold=m["operating_point"]["threshold"],
                   val_true=(val["label"] == "nodule").to_numpy(float),
                   val_score=val["prob_nodule"].to_numpy(),
                   val_groups=val["group"].astype(str).to_numpy(),
                   temperature_scaling=True, n_bootstraps=0)
    assert m["roc_auc"]["value"] == pytest.approx(ref["roc_auc"]["value"], abs=1e-6)
    assert m["calibration"]["temperature"] == pytest.approx(
        ref["calibration"]["temperature"], rel=1e-4)
