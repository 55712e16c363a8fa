"""A whole ``run`` with ``data.unit: series`` on the synthetic CT series of sample_dicoms/:
2.5-D inputs, every 2nd training slice, evaluation and predictions per series."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

SERIES = Path(__file__).resolve().parents[2] / "sample_dicoms" / "ct_series"


@pytest.fixture(scope="module")
def series_run(tiny_config, tmp_path_factory):
    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["name"] = "series"
    cfg["data"] = {"unit": "series", "folder": str(SERIES),
                   "csv": str(SERIES / "series_labels.csv"), "label_column": "label",
                   "slice_step": 2}
    cfg["task"] = {"positive": "lesion"}
    cfg["split"] = {"val": 0.2, "test": 0.2}
    cfg["model"] = {"input_size": 32}
    cfg["preprocessing"] = [{"name": "window", "preset": "lung"},
                            {"name": "resize", "size": 32}, {"name": "stack"}]
    cfg["train"] = {"batch_size": 16,
                    "phases": [{"name": "head", "epochs": 1, "learning_rate": 0.003}]}
    cfg["evaluate"] = {"bootstrap": 50, "gradcam": 1, "series_aggregate": "noisy_or"}
    return run(cfg, out=tmp_path_factory.mktemp("series") / "run", verbose=False)


def test_the_run_evaluates_and_predicts_per_series(series_run):
    d = Path(series_run.run_dir)
    labels = pd.read_csv(SERIES / "series_labels.csv")
    splits = pd.read_csv(d / "splits.csv")
    assert (splits.groupby("group")["split"].nunique() == 1).all()  # patient-grouped
    per_series = pd.read_csv(d / "series_predictions.csv")
    slices = pd.read_csv(d / "predictions.csv")
    assert set(per_series["split"]) == {"val", "test"}
    assert len(per_series) == slices["series"].nunique() == len(slices) // 8
    assert (per_series["n_slices"] == 8).all() and per_series["series"].is_unique
    folder_label = dict(zip(labels.folder, labels.label, strict=True))
    for _, row in per_series.iterrows():
        mine = slices[slices["series"] == row["series"]]
        p = mine["prob_lesion"].to_numpy()
        assert row["prob_lesion"] == pytest.approx(1 - (1 - p).prod())  # noisy-OR
        assert row["deciding_path"] == mine["path"].iloc[p.argmax()]
        assert folder_label[Path(row["deciding_path"]).parent.name] == row["label"]
    m = json.loads((d / "metrics.json").read_text())
    assert m["level"] == "series" and m["bootstrap"]["resampling"] == "patient"
    assert m["n_series"] == (per_series["split"] == "test").sum()
    assert m["n_images"] == (slices["split"] == "test").sum()
    contract = json.loads((d / "contract.json").read_text())["preprocessing"]
    assert contract["unit"] == "series" and contract["series_aggregate"] == "noisy_or"
    assert contract["stages"][-1] == {"name": "stack"}
    census = pd.read_csv(d / "census.csv")
    assert set(census["slice_order"]) == {"position"}
    run_json = json.loads((d / "run.json").read_text())
    assert run_json["status"] == "finished"
    assert "Evaluated per series" in (d / "report.html").read_text()


def test_predict_writes_one_row_per_series_as_the_run_scored_it(series_run, tmp_path):
    import shutil

    from imaging_tl.pipeline import predict_files

    d = Path(series_run.run_dir)
    per_series = pd.read_csv(d / "series_predictions.csv")
    first = per_series.iloc[0]
    folder = Path(first["deciding_path"]).parent
    shutil.copytree(folder, tmp_path / "in" / folder.name)
    broken = tmp_path / "in" / "gap"
    shutil.copytree(SERIES / "SYNCT0002", broken)
    (broken / "im003.dcm").unlink()  # a missing slice: reported, the batch goes on
    (tmp_path / "in" / "notes.dcm").write_text("not a scan")
    out = predict_files(d / "model.keras", [tmp_path / "in"], engine="keras",
                        gradcam_dir=tmp_path / "cams")
    ok = out[out["status"] == "ok"]
    assert len(out) == 3 and len(ok) == 1 and ok["n_slices"].iloc[0] == 8
    assert ok["series"].iloc[0] == first["series"]  # the same pseudonym as in the run
    assert ok["prob_lesion"].iloc[0] == pytest.approx(first["prob_lesion"], abs=1e-6)
    assert ok["deciding_slice"].iloc[0] == first["deciding_slice"]
    assert Path(ok["gradcam"].iloc[0]).is_file()
    bad = out[out["status"] == "error"].set_index("path")["reason"]
    assert "about 1 missing slice(s)" in bad[str(broken)]
    assert "not a DICOM file" in bad[str(tmp_path / "in" / "notes.dcm")]
