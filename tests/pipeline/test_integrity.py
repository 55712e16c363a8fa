"""Issue 22 classes 9 and 10 at the level of a whole run: pseudonyms in every output, one
file mode, run.json on failure, --out checks, staging folders, resume = uninterrupted run."""

from __future__ import annotations

import copy
import json
import stat

import numpy as np
import pandas as pd
import pytest
import yaml

from imaging_tl.data.cache import file_mode
from imaging_tl.io.pseudonyms import is_pseudonym


def test_outputs_carry_pseudonyms_not_the_group_column(finished_run, tiny_data):
    raw = set(pd.read_csv(tiny_data / "labels.csv", dtype=str)["patient_id"])
    run_dir = finished_run.run_dir
    for name in ("splits.csv", "predictions.csv"):
        groups = pd.read_csv(run_dir / name, dtype=str)["group"]
        assert groups.map(is_pseudonym).all(), name
        assert not set(groups) & raw
    for f in run_dir.rglob("*"):
        if f.is_file() and f.suffix in (".csv", ".json", ".html", ".yaml"):
            text = f.read_text(errors="replace")
            leaked = [r for r in raw if f",{r}," in text or f'"{r}"' in text]
            assert not leaked, f"{f.name} holds raw group values"


def test_artefacts_have_one_mode_and_run_json_says_finished(finished_run):
    run_dir = finished_run.run_dir
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    for p in [run_dir, *run_dir.rglob("*")]:
        want = file_mode(directory=p.is_dir())
        assert stat.S_IMODE(p.stat().st_mode) == want, p


def _yaml(cfg, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_out_existing_file_exits_2(tiny_config, tmp_path, capsys):
    from imaging_tl.cli import main

    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["run", str(_yaml(tiny_config, tmp_path)), "--out", str(target)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_failed_run_leaves_run_json_with_the_reason(tiny_config, tiny_data, tmp_path):
    from imaging_tl.pipeline import InputError, run

    cfg = copy.deepcopy(tiny_config)
    rows = pd.read_csv(tiny_data / "labels.csv")
    for p in rows["path"]:  # a table that passes the early checks, of files none can read
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"not a scan")
    rows.to_csv(tmp_path / "junk.csv", index=False)
    cfg["data"]["csv"] = str(tmp_path / "junk.csv")
    cfg["cache_dir"] = str(tmp_path / "cache")
    with pytest.raises(InputError) as exc:
        run(cfg, out=tmp_path / "run", verbose=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and str(exc.value)[:40] in record["error"]


def test_a_run_refused_by_the_early_checks_leaves_no_run_directory(tiny_config, tiny_data,
                                                                   tmp_path):
    from imaging_tl.pipeline import InputError, run

    cfg = copy.deepcopy(tiny_config)
    rows = pd.read_csv(tiny_data / "labels.csv").head(3)  # too few to split
    rows["path"] = [str(tiny_data / p) for p in rows["path"]]
    rows.to_csv(tmp_path / "few.csv", index=False)
    cfg["data"]["csv"] = str(tmp_path / "few.csv")
    with pytest.raises(InputError):
        run(cfg, out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


def test_clean_staging_removes_what_a_kill_left(tmp_path):
    from imaging_tl.pipeline.runner import clean_staging

    (tmp_path / ".report-abc" / "plots").mkdir(parents=True)
    (tmp_path / ".model").mkdir()
    (tmp_path / "export" / ".export-tflite-x").mkdir(parents=True)
    (tmp_path / "plots").mkdir()
    gone = clean_staging(tmp_path)
    assert len(gone) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["export",
                                                                            "plots"]


def test_resume_after_a_kill_gives_the_uninterrupted_run(tiny_config, tmp_path, capsys):
    import keras

    from imaging_tl.cli import main
    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["evaluate"] = {"bootstrap": 0, "gradcam": 0}

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    whole = run(cfg, out=tmp_path / "whole", verbose=False)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=tmp_path / "killed", verbose=False, callbacks=[Kill()])
    killed = tmp_path / "killed"
    assert not (killed / "run.json").exists()  # interrupted, not failed: resumable
    (killed / ".report-left").mkdir()
    capsys.readouterr()
    # resumed through the command a user types (the installed script calls this main)
    assert main(["run", "--resume", str(killed)]) == 0
    assert "resumed from phase 1, epoch 2" in capsys.readouterr().out
    assert not (killed / ".report-left").exists()
    a = pd.read_csv(whole.run_dir / "predictions.csv")
    b = pd.read_csv(killed / "predictions.csv")
    prob = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(b[prob].to_numpy(), a[prob].to_numpy(), atol=1e-5)
    ra = json.loads((whole.run_dir / "run.json").read_text())
    rb = json.loads((killed / "run.json").read_text())
    assert rb["resumed_from"] == {"phase": 0, "epoch": 2}
    assert [(x["phase"], x["epoch"]) for x in rb["best_epochs"]] == \
        [(x["phase"], x["epoch"]) for x in ra["best_epochs"]]
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["roc_auc"]["value"] == pytest.approx(
        whole.metrics["roc_auc"]["value"], abs=1e-6)


@pytest.mark.slow  # undecodable names in the default run: tests/io and tests/data
def test_resume_with_an_undecodable_file_name(tiny_config, tiny_data, tmp_path):
    # splits.csv holds such a name escaped ("odd\xff.dcm"); the resume must still find
    # the same splits
    import os

    import keras

    from imaging_tl.pipeline import run

    labels = pd.read_csv(tiny_data / "labels.csv")
    root = tmp_path / "data"
    for k, row in labels.iterrows():
        src = tiny_data / row["path"]
        folder = root / row["label"] / row["patient_id"]
        folder.mkdir(parents=True, exist_ok=True)
        name = os.fsdecode(b"odd\xff" + src.suffix.encode()) if k == 0 else src.name
        try:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(src.read_bytes())
        except (OSError, UnicodeEncodeError):
            pytest.skip("this file system refuses non-UTF-8 names")

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    cfg = copy.deepcopy(tiny_config)
    cfg["data"] = {"folder": str(root)}
    cfg["evaluate"] = {"bootstrap": 0, "gradcam": 0}
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=tmp_path / "run", verbose=False, callbacks=[Kill()])
    assert "odd\\xff" in (tmp_path / "run" / "splits.csv").read_text()
    resumed = run(None, resume=tmp_path / "run", verbose=False)
    assert json.loads((resumed.run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow  # the default run resumes inside the head phase (above)
def test_resume_inside_an_augmented_finetune_phase_gives_the_uninterrupted_run(tiny_config,
                                                                               tmp_path):
    import keras

    from imaging_tl.pipeline import run

    cfg = copy.deepcopy(tiny_config)
    cfg["evaluate"] = {"bootstrap": 0, "gradcam": 0}
    cfg["train"]["phases"] = [
        {"name": "head", "epochs": 1, "learning_rate": 0.003},
        {"name": "finetune", "epochs": 3, "learning_rate": 0.0005, "freeze": "block6d_add"}]

    class Kill(keras.callbacks.Callback):  # after the second fine-tune epoch
        seen = 0

        def on_epoch_end(self, epoch, logs=None):
            Kill.seen += 1
            if Kill.seen == 3:
                raise KeyboardInterrupt

    whole = run(cfg, out=tmp_path / "whole", verbose=False)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=tmp_path / "killed", verbose=False, callbacks=[Kill()])
    run(None, resume=tmp_path / "killed", verbose=False)
    a = pd.read_csv(whole.run_dir / "predictions.csv")
    b = pd.read_csv(tmp_path / "killed" / "predictions.csv")
    np.testing.assert_allclose(b["prob_nodule"], a["prob_nodule"], atol=1e-6)
    info = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert info["resumed_from"] == {"phase": 1, "epoch": 2}
