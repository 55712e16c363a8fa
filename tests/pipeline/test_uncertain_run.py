"""A public-style multi-label CSV (blank and uncertain cells, two sites' column names) trains
through ``imaging_tl.pipeline.run`` with ``task.uncertain`` and ``task.label_map``."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd

from imaging_tl.pipeline import run


def test_multilabel_csv_with_blanks_uncertain_and_label_map_trains(tiny_config, tiny_data,
                                                                 tmp_path):
    labels = pd.read_csv(tiny_data / "labels.csv", dtype=str, keep_default_na=False)
    labels["path"] = [str(tiny_data / p) for p in labels["path"]]
    n = len(labels)
    rng = np.random.default_rng(0)
    # the effusion finding under two names, each known for part of the rows
    site_b = np.arange(n) % 3 == 0
    effusion = labels.pop("effusion")
    labels["Effusion"] = np.where(site_b, "", effusion)
    labels["Pleural Effusion"] = np.where(site_b, effusion, "")
    nodule = labels.pop("nodule").to_numpy(object)
    nodule[rng.random(n) < 0.15] = ""
    nodule[rng.random(n) < 0.1] = "-1"
    labels["Nodule"] = nodule
    csv = tmp_path / "public.csv"
    labels.to_csv(csv, index=False)

    cfg = copy.deepcopy(tiny_config)
    cfg["data"] = {"csv": str(csv), "label_columns": ["Nodule", "Effusion", "Pleural Effusion"],
                   "group_column": "patient_id"}
    cfg["task"] = {"type": "multilabel", "uncertain": "ignore",
                   "label_map": {"Nodule": "nodule", "Effusion": "pleural_effusion",
                                 "Pleural Effusion": "pleural_effusion"}}
    cfg["train"] = {"batch_size": 8, "class_weights": "none",
                    "phases": [{"name": "head", "epochs": 1}]}
    cfg["evaluate"] = {"bootstrap": 20, "gradcam": 0}
    r = run(cfg, out=tmp_path / "public", verbose=False)
    assert r.task == "multilabel" and r.class_names == ["nodule", "pleural_effusion"]

    record = json.loads((r.run_dir / "run.json").read_text())["labels"]
    assert record["uncertain_policy"] == "ignore"
    nod = record["labels"]["nodule"]
    assert nod["uncertain"] == int((nodule == "-1").sum()) > 0
    assert nod["blank"] == int((nodule == "").sum()) > 0
    assert nod["missing"] == nod["uncertain"] + nod["blank"]
    eff = record["labels"]["pleural_effusion"]
    assert eff["columns"] == ["Effusion", "Pleural Effusion"] and eff["missing"] == 0
    assert eff["positive"] == int((effusion == "1").sum())

    splits = pd.read_csv(r.run_dir / "splits.csv")
    test = splits[splits["split"] == "test"]
    metrics = json.loads((r.run_dir / "metrics.json").read_text())
    assert metrics["n_observed"] == [int((test["nodule"] >= 0).sum()), len(test)]
    assert metrics["n_missing"][0] == int((test["nodule"] == -1).sum())
    pred = pd.read_csv(r.run_dir / "predictions.csv")
    assert {"label_nodule", "prob_nodule", "prob_pleural_effusion"} <= set(pred)
    page = (r.run_dir / "report.html").read_text()
    assert "Labels as read (uncertain policy: ignore" in page
    assert "Effusion, Pleural Effusion" in page

    # external validation reads the same public-style CSV as the run read its own labels
    from imaging_tl.pipeline import reevaluate

    ext = reevaluate(r.run_dir, data=csv, n_bootstraps=10)
    assert ext["n_unreadable"] == 0
    assert ext["n_observed"][0] == int(((nodule != "") & (nodule != "-1")).sum())
    assert ext["n_missing"][0] == int(((nodule == "") | (nodule == "-1")).sum())
