"""Cross-validation in one run (split.method kfold, every fold) and the fold ensemble.

One tiny 3-fold run (64 px, one head epoch on cached features) is interrupted in its
second fold and resumed; the finished run serves every test here.
"""

from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pandas as pd
import pytest

from imaging_tl.pipeline import run

FOLDS = 3


class _StopInFold(keras.callbacks.Callback):
    """Interrupts training (as Ctrl-C would) at the end of the first epoch of the n-th
    training phase; counts the phases it saw."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at, self.phases = stop_at, 0

    def on_train_begin(self, logs=None) -> None:
        self.phases += 1

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.phases == self.stop_at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def cv_run(tiny_config, tmp_path_factory):
    """The tiny config over 3 folds: interrupted in fold 2, then resumed."""
    cfg = copy.deepcopy(tiny_config)
    cfg["split"] = {"method": "kfold", "folds": FOLDS, "test": 0.25}
    cfg["train"]["phases"] = [{"name": "head", "epochs": 1, "learning_rate": 0.003}]
    cfg["evaluate"]["gradcam"] = 1
    out = tmp_path_factory.mktemp("crossval") / "run"
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=out, verbose=False, callbacks=[_StopInFold(stop_at=2)])
    fold0 = (out / "folds" / "fold-0" / "weights.npz").read_bytes()
    seen = _StopInFold()
    result = run(None, resume=out, verbose=False, callbacks=[seen])
    return result, fold0, seen


def test_resume_skips_the_finished_fold(cv_run):
    result, fold0, seen = cv_run
    # fold 1 was finished; fold 2 stopped after its last epoch's checkpoint, so only
    # fold 3 trains a phase again
    assert seen.phases == FOLDS - 2
    done = [json.loads((result.run_dir / "folds" / f"fold-{k}" / "fold.json").read_text())
            for k in range(FOLDS)]
    assert [d["resumed_from"] for d in done] == [None, {"phase": 0, "epoch": 1}, None]
    assert (result.run_dir / "folds" / "fold-0" / "weights.npz").read_bytes() == fold0
    assert not any(result.run_dir.glob("folds/*/checkpoints"))
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "finished" and len(record["best_epochs"]) == FOLDS
    assert record["resumed_from"] == {"finished_folds_kept": [0], "fold": 1, "phase": 0,
                                      "epoch": 1}


def test_every_image_is_out_of_fold_once_and_the_test_split_is_outside(cv_run):
    run_dir = cv_run[0].run_dir
    splits = pd.read_csv(run_dir / "splits.csv")
    oof = pd.read_csv(run_dir / "oof_predictions.csv")
    test = splits[splits["split"] == "test"]
    cv = splits[splits["split"] == "cv"]
    assert len(test) and set(test["fold"]) == {-1}
    assert set(cv["fold"]) == set(range(FOLDS))
    assert sorted(oof["path"]) == sorted(cv["path"])  # each fold image once
    assert not set(oof["path"]) & set(test["path"])
    assert not set(test["group"]) & set(cv["group"])  # patients stay on one side
    per_fold = cv.groupby("group")["fold"].nunique()
    assert (per_fold == 1).all()
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert sorted(pred.loc[pred["split"] == "test", "path"]) == sorted(test["path"])


def test_pooled_oof_predictions_are_the_folds_predictions(cv_run):
    run_dir = cv_run[0].run_dir
    oof = pd.read_csv(run_dir / "oof_predictions.csv")
    folds = [pd.read_csv(run_dir / "folds" / f"fold-{k}" / "predictions.csv")
             for k in range(FOLDS)]
    joined = pd.concat([f[f["split"] == "val"] for f in folds], ignore_index=True)
    cols = ["path", "fold", "prob_normal", "prob_nodule"]
    pd.testing.assert_frame_equal(oof[cols], joined[cols])
    cvm = cv_run[0].metrics["crossval"]
    assert cvm["folds"] == FOLDS and len(cvm["per_fold"]) == FOLDS
    assert cvm["oof"]["n_images"] == len(oof)
    assert cv_run[0].metrics["operating_point"]["chosen_on"] == "validation"


def test_the_ensemble_is_the_mean_of_its_members(cv_run):
    run_dir = cv_run[0].run_dir
    # on the test split: the run's ensemble probabilities against each fold's member's
    # (written by the trained member before the ensemble was built)
    pred = pd.read_csv(run_dir / "predictions.csv").query("split == 'test'")
    each = np.stack([pd.read_csv(run_dir / "folds" / f"fold-{k}" / "predictions.csv")
                    .query("split == 'test'")["prob_nodule"].to_numpy() for k in range(FOLDS)])
    np.testing.assert_allclose(pred["prob_nodule"], each.mean(axis=0), atol=1e-6)
    assert np.ptp(each, axis=0).max() > 0  # the members differ
    contract = json.loads((run_dir / "contract.json").read_text())
    assert contract["ensemble"]["members"] == FOLDS
    # no phase trained the backbone: the members share one, saved once (the fold rebuilt
    # from its folder too), and a fold keeps only its head
    with np.load(run_dir / "folds" / "fold-0" / "weights.npz") as z:
        assert {k.split(":", 1)[1].split("/")[0] for k in z} == {"head_output", "seed_generator"}
    ensemble = keras.models.load_model(run_dir / "model.keras", compile=False)
    assert [la.name for la in ensemble.layers][-FOLDS - 2:] == \
        ["head_pool", *(f"fold_{k}" for k in range(FOLDS)), "ensemble_mean"]


def test_predict_on_the_saved_ensemble_writes_the_members_spread(cv_run):
    from imaging_tl.pipeline.predict import predict_files

    result = cv_run[0]
    run_dir = result.run_dir
    folds = [pd.read_csv(run_dir / "folds" / f"fold-{k}" / "predictions.csv")
             .query("split == 'test'").set_index("path") for k in range(FOLDS)]
    files = list(folds[0].index[:3])
    df = predict_files(run_dir / "model.keras", files, engine="keras").set_index("path")
    assert df.attrs["uncertainty"] == "ensemble"
    # the saved model's mean output (its Average layer) and its members' spread
    each = np.stack([f.loc[files, "prob_nodule"].to_numpy() for f in folds])
    np.testing.assert_allclose(df.loc[files, "prob_nodule"], each.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(df.loc[files, "uncertainty"], each.std(axis=0), atol=1e-6)
    referral = result.metrics["crossval"]["referral"]
    assert referral["n_retained"][0] == len(folds[0]) > referral["n_retained"][-1]
    assert (run_dir / "report.html").read_text().count("Cross-validation (3 folds)") == 1


@pytest.mark.slow  # two conversions of a 3-member model: about 2 minutes on 2 cores
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_the_ensemble_exports_like_a_single_model(cv_run, fmt, tmp_path):
    from imaging_tl.deploy import export_model

    res = export_model(cv_run[0].run_dir / "model.keras", fmt, tmp_path / "export")
    assert res.path.is_file() and res.max_abs_diff < 1e-5


def test_folds_fine_tune_on_the_shared_frozen_part(tiny_config, tmp_path):
    # the fine-tuning phase's frozen part (up to its freeze point) runs once on augmented
    # views for all folds; each fold trains the layers after it
    from imaging_tl.pipeline.predict import predict_files

    cfg = copy.deepcopy(tiny_config)
    cfg["split"] = {"method": "kfold", "folds": 3, "test": 0.25}
    cfg["train"]["phases"] = [
        {"name": "head", "epochs": 1, "learning_rate": 0.003},
        {"name": "finetune", "epochs": 2, "learning_rate": 1e-4, "freeze": "block6d_add"}]
    cfg["evaluate"].update(bootstrap=10, gradcam=0)
    result = run(cfg, out=tmp_path / "run", verbose=False)
    history = pd.read_csv(result.run_dir / "history.csv")
    tuned = history[history["phase_name"] == "finetune"]
    assert len(tuned) == 2 * 3 and tuned["cached_features"].all()
    # the run's test probabilities: the mean of the members' through the layers after the
    # boundary; the saved ensemble runs each whole member
    pred = pd.read_csv(result.run_dir / "predictions.csv").query("split == 'test'")
    files = list(pred["path"][:2])
    saved = predict_files(result.run_dir / "model.keras", files, engine="keras")
    np.testing.assert_allclose(saved["prob_nodule"], pred["prob_nodule"][:2], atol=1e-5)


def test_a_damaged_fold_is_trained_again_on_resume(cv_run, tmp_path):
    # a finished fold whose weights.npz is truncated, or replaced by a partial but loadable
    # file, is not taken over: it trains again, and the run finishes
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(cv_run[0].run_dir, run_dir)
    (run_dir / "run.json").unlink()  # as if interrupted after the folds
    folds = run_dir / "folds"
    (folds / "fold-1" / "weights.npz").write_bytes(
        (folds / "fold-1" / "weights.npz").read_bytes()[:200])
    with np.load(folds / "fold-2" / "weights.npz") as z:
        one = {k: z[k] for k in list(z.files)[:1]}
    np.savez(folds / "fold-2" / "weights.npz", **one)
    result = run(None, resume=run_dir, verbose=False)
    assert result.resumed_from["finished_folds_kept"] == [0]
    for k in (1, 2):
        with np.load(folds / f"fold-{k}" / "weights.npz") as z:
            assert {n.split(":", 1)[1].split("/")[0] for n in z} == {"head_output",
                                                                    "seed_generator"}
