"""A whole ``run`` with ``data.unit: series`` on the synthetic CT series of sample_dicoms/:
labels per series and per slice, 2.5-D inputs, training slices sampled around the lesion
slices, evaluation and predictions per series (and per slice), re-evaluation, TTA."""

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
                   "slice_labels": str(SERIES / "slice_labels.csv"),
                   "slice_sampling": "around_positive", "slice_margin": 1, "slice_rest": 0.25}
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
    # each slice keeps its own label; the series' label is the series CSV's
    lesion = {r.folder: {int(k) for k in str(r.lesion_slices).split(";")}
              for r in labels.itertuples() if r.label == "lesion"}
    for path, slice_no, label in zip(slices["path"], slices["slice"], slices["label"],
                                     strict=True):
        assert (label == "lesion") == (slice_no in lesion.get(Path(path).parent.name, set()))
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
    # training ran on the slices sampled around the lesion slices, the others on every slice
    from imaging_tl.data.series import from_series, sample_around_positive

    table = from_series(SERIES, slice_labels=SERIES / "slice_labels.csv")
    table["split"] = table["path"].map(dict(zip(splits["path"], splits["split"], strict=True)))
    kept = sample_around_positive(table, "lesion", margin=1, rest=0.25, seed=0)
    trained = pd.read_csv(d / "data_index.csv")["split"].value_counts()
    assert trained["train"] == (kept["split"] == "train").sum() < (table.split == "train").sum()
    assert trained["test"] == (table["split"] == "test").sum()
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
                        gradcam_dir=tmp_path / "cams", slice_csv=tmp_path / "slices.csv")
    ok = out[out["status"] == "ok"]
    assert len(out) == 3 and len(ok) == 1 and ok["n_slices"].iloc[0] == 8
    assert ok["series"].iloc[0] == first["series"]  # the same pseudonym as in the run
    assert ok["prob_lesion"].iloc[0] == pytest.approx(first["prob_lesion"], abs=1e-6)
    assert ok["deciding_slice"].iloc[0] == first["deciding_slice"]
    assert Path(ok["gradcam"].iloc[0]).is_file()
    bad = out[out["status"] == "error"].set_index("path")["reason"]
    assert "about 1 missing slice(s)" in bad[str(broken)]
    assert "not a DICOM file" in bad[str(tmp_path / "in" / "notes.dcm")]
    # one row per slice of the predicted series, as the run predicted them
    per_slice = pd.read_csv(tmp_path / "slices.csv")
    assert per_slice["series"].tolist() == [first["series"]] * 8
    assert per_slice["slice"].tolist() == list(range(8))
    in_run = pd.read_csv(d / "predictions.csv").query("series == @first.series")
    assert per_slice["prob_lesion"].to_numpy() == pytest.approx(
        in_run.sort_values("slice")["prob_lesion"].to_numpy(), abs=1e-6)
    assert per_slice["prob_lesion"].idxmax() == first["deciding_slice"]


def test_evaluate_again_gives_the_runs_series_figures(series_run):
    from imaging_tl.pipeline import reevaluate

    d = Path(series_run.run_dir)
    again = reevaluate(d, n_bootstraps=20)
    before = json.loads((d / "metrics.json").read_text())
    assert again["level"] == "series" and again["bootstrap"]["resampling"] == "patient"
    assert (again["n_series"], again["n_images"]) == (before["n_series"], before["n_images"])
    assert again["operating_point"]["threshold"] == before["operating_point"]["threshold"]
    for key in ("roc_auc", "sensitivity", "specificity"):
        assert again[key]["value"] == pytest.approx(before[key]["value"], abs=1e-6)
    with pytest.raises(ValueError, match="external validation of a data.unit series run"):
        reevaluate(d, data=SERIES)


def test_tta_per_slice_then_per_series_is_seeded(series_run, tmp_path):
    from imaging_tl.cli import main

    d = Path(series_run.run_dir)
    folder = SERIES / pd.read_csv(d / "series_predictions.csv")["deciding_path"].map(
        lambda p: Path(p).parent.name).iloc[0]
    args = ["predict", str(d / "model.keras"), str(folder), "--engine", "keras", "--tta", "2",
            "--per-slice", "--out"]
    assert main([*args, str(tmp_path / "a" / "p.csv")]) == 0
    assert main([*args, str(tmp_path / "b" / "p.csv")]) == 0
    a, b = (pd.read_csv(tmp_path / k / "p.csv") for k in "ab")
    assert a.equals(b) and len(a) == 1 and a["uncertainty"].iloc[0] >= 0  # same seed
    slices = pd.read_csv(tmp_path / "a" / "slice_predictions.csv")
    assert len(slices) == 8
    p = slices["prob_lesion"].to_numpy()
    assert a["prob_lesion"].iloc[0] == pytest.approx(1 - (1 - p).prod())  # the run's noisy-OR


def test_the_training_slices_follow_data_slice_sampling():
    from types import SimpleNamespace

    from imaging_tl.config import load_config
    from imaging_tl.data import split_table
    from imaging_tl.data.series import from_series
    from imaging_tl.pipeline.data_steps import training_slices

    table = split_table(from_series(SERIES, slice_labels=SERIES / "slice_labels.csv"),
                        val=0.2, test=0.2, seed=0)
    n_train = int((table["split"] == "train").sum())
    data = {"unit": "series", "folder": str(SERIES),
            "slice_labels": str(SERIES / "slice_labels.csv")}
    kept = {}
    for name, extra in (("all", {}), ("step", {"slice_step": 2}),
                        ("around", {"slice_sampling": "around_positive", "slice_rest": 0.0})):
        lines: list[str] = []
        state = SimpleNamespace(cfg=load_config({"data": {**data, **extra}}),
                                classes=["normal", "lesion"], log=lines.append)
        out = training_slices(state, table)
        kept[name] = out[out["split"] == "train"]
        others = [t[t["split"] != "train"].reset_index(drop=True) for t in (out, table)]
        assert others[0].equals(others[1])  # validation and test keep every slice
        assert (lines == []) == (name == "all")
    assert len(kept["all"]) == n_train and set(kept["step"]["slice"]) == {0, 2, 4, 6}
    lesion = kept["around"]["label"] == "lesion"
    assert lesion.sum() == ((table["split"] == "train") & (table["label"] == "lesion")).sum()
    assert len(kept["around"]) < n_train
