"""Cross-validation in one run: every fold trained, out-of-fold predictions pooled, and the
fold ensemble as the run's model.

With ``split.method: kfold`` and no ``split.fold``, the test split lies outside the folds
(:func:`imaging_tl.data.crossval_table`). Fold ``k`` trains on the other folds and
validates on its own (early stopping, best epoch) into ``folds/fold-k/`` (``history.csv``,
``checkpoints/`` while it trains, ``model.keras``, ``predictions.csv`` of its validation
and test images, ``fold.json`` last: a fold with it is finished and ``--resume`` skips it).
The validation predictions of the folds, concatenated in fold order, are the out-of-fold
predictions (``oof_predictions.csv``); the run's threshold and calibration are chosen on
them, and the members averaged into one Keras model
(:func:`imaging_tl.models.build_ensemble`) are ``model.keras``, measured on the test split.

With a frozen first phase the pooled backbone features of every image are computed once
and shared by the folds (:func:`shared_features`): every fold starts from the same
backbone, so its features are the same.

Examples
--------
>>> imaging_tl.run("pipelines/demo.yaml", overrides=["split.method=kfold"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import read_csv, write_csv
from imaging_tl.pipeline.inputs import cv_split_table
from imaging_tl.pipeline.model_steps import build_step, plain_copy, train_step
from imaging_tl.pipeline.output_steps import (
    evaluate_scores,
    evaluation_options,
    prediction_rows,
)
from imaging_tl.pipeline.provenance import write_plain_json
from imaging_tl.pipeline.state import RunState, SplitArrays

__all__ = ["CrossVal", "FoldResult", "crossval_evaluate_step", "crossval_step",
           "shared_features"]

#: the file that marks a fold as finished
FOLD_DONE = "fold.json"


@dataclass
class FoldResult:
    """One fold: its member's probabilities on the fold's own images (out of fold) and on
    the test split, and the fold's validation rows."""

    fold: int
    oof: np.ndarray
    test: np.ndarray
    rows: pd.DataFrame
    y: np.ndarray
    best: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CrossVal:
    """Every fold of a cross-validated run, and the images of the folds."""

    folds: list[FoldResult]
    cv: SplitArrays

    def oof(self) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Pooled out-of-fold probabilities, labels and rows (fold order)."""
        return (np.concatenate([f.oof for f in self.folds]),
                np.concatenate([f.y for f in self.folds]),
                pd.concat([f.rows for f in self.folds], ignore_index=True))


def _cv_arrays(state: RunState) -> SplitArrays:
    """The images of the folds (every row outside the test split), with their fold."""
    tr, va = state.splits["train"], state.splits["val"]
    return SplitArrays(np.concatenate([tr.x, va.x]), np.concatenate([tr.y, va.y]),
                       pd.concat([tr.rows, va.rows], ignore_index=True))


def shared_features(state: RunState, cv: SplitArrays) -> tuple[np.ndarray, np.ndarray] | None:
    """Pooled backbone features of every image of the folds and of the test split,
    computed once (with the first trained fold's freshly built model) when the first
    phase trains the head on cached features; None otherwise."""
    cfg = state.cfg
    if cfg.train.phases[0].freeze != "all" or cfg.train.feature_cache != "auto":
        return None
    from imaging_tl.train.features import extract_features

    te = state.splits["test"]
    f = extract_features(state.model, np.concatenate([cv.x, te.x]), state.plan.global_batch)[0]
    return f[:len(cv.x)], f[len(cv.x):]


def _member_probabilities(state: RunState, member: Any, cv: SplitArrays, va: np.ndarray,
                          feats: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """A member's probabilities of its fold's images, then of the test split: from the
    shared features through its head when no phase trained the backbone, else through the
    whole model."""
    from imaging_tl.models import fast_predict, head_model

    batch = state.cfg.train.batch_size
    if feats is not None and all(p.freeze == "all" for p in state.cfg.train.phases):
        return fast_predict(head_model(member), np.concatenate([feats[0][va], feats[1]]), batch)
    return fast_predict(member, np.concatenate([cv.x[va], state.splits["test"].x]), batch)


def crossval_step(state: RunState) -> None:
    """Train every fold (or take a finished one from its folder on resume), then the
    ensemble of the members as ``state.model``; ``state.crossval`` holds the folds."""
    from imaging_tl.models import build_ensemble, load_transfer_model

    k = state.cfg.split.folds
    cv, te = _cv_arrays(state), state.splits["test"]
    folds, members, histories, feats = [], [], [], None
    kept, resumed = [], None  # finished folds taken over; the fold resumed mid-training
    for f in range(k):
        state.fold = f
        va = (cv.rows["fold"] == f).to_numpy()
        done = state.fold_dir / FOLD_DONE
        if state.resume is not None and done.is_file() and \
                (state.fold_dir / "model.keras").is_file():
            state.log(f"fold {f + 1}/{k}: finished before the interruption, not trained again")
            member = load_transfer_model(state.fold_dir / "model.keras", compile=False)
            best = list(json.loads(done.read_text()).get("best_epochs", []))
            history = read_csv(state.fold_dir / "history.csv")
            kept.append(f)
        else:
            state.log(f"fold {f + 1}/{k}: {int((~va).sum())} training and {int(va.sum())} "
                      "validation images")
            member, best, feats = _train_fold(state, cv, va, feats)
            history = state.history
            resumed = resumed or ({"fold": f, **state.resumed_from}
                                  if state.resumed_from else None)
        p = _member_probabilities(state, member, cv, va, feats)
        p_va, p_te = p[:int(va.sum())], p[int(va.sum()):]
        result = FoldResult(f, p_va, p_te, cv.rows[va].reset_index(drop=True), cv.y[va], best)
        _write_fold(state, result, te.rows)
        folds.append(result)
        members.append(member)
        histories.append(history.assign(fold=f))
    state.fold, state.fold_features = None, None
    state.resumed_from = ({"finished_folds_kept": kept, **(resumed or {})}
                          if kept or resumed else None)
    state.table = cv_split_table(state.table)  # the report's split table: test and cv
    state.model = build_ensemble(members)
    state.crossval = CrossVal(folds, cv)
    state.best = [{**b, "fold": r.fold} for r in folds for b in r.best]
    state.history = pd.concat(histories, ignore_index=True)
    state.paths["history"] = write_csv(state.run_dir / "history.csv", state.history)
    state.log(f"fold ensemble: {k} members averaged")


def _train_fold(state: RunState, cv: SplitArrays, va: np.ndarray,
                feats: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    """Build and train the member of one fold; save it and mark the fold finished."""
    from imaging_tl.models import save_transfer_model

    state.splits["train"] = SplitArrays(cv.x[~va], cv.y[~va],
                                        cv.rows[~va].reset_index(drop=True))
    state.splits["val"] = SplitArrays(cv.x[va], cv.y[va], cv.rows[va].reset_index(drop=True))
    state.best, state.resumed_from = [], None
    build_step(state)
    if feats is None:
        feats = shared_features(state, cv)
    state.fold_features = None if feats is None else (feats[0][~va], feats[0][va])
    train_step(state)
    plan = state.plan
    member = plain_copy(state) if plan.distributed or plan.precision != "float32" \
        else state.model
    save_transfer_model(member, state.fold_dir / "model.keras")
    shutil.rmtree(state.checkpoints, ignore_errors=True)
    write_plain_json(state.fold_dir / FOLD_DONE, {
        "fold": state.fold, "status": "finished", "best_epochs": state.best,
        "resumed_from": state.resumed_from})
    return member, list(state.best), feats


def _write_fold(state: RunState, r: FoldResult, test_rows: pd.DataFrame) -> None:
    """``folds/fold-k/predictions.csv``: the member's probabilities of its validation
    images (``split`` val: out of fold) and of the test split."""
    rows = pd.concat([prediction_rows(state, r.rows, r.oof, "val"),
                      prediction_rows(state, test_rows, r.test, "test")], ignore_index=True)
    rows.insert(3, "fold", r.fold)
    write_csv(state.fold_dir / "predictions.csv", rows.drop(columns="predicted"))


def crossval_evaluate_step(state: RunState) -> None:
    """The run's evaluation from the folds: threshold (and calibration) chosen on the
    pooled out-of-fold predictions, the ensemble measured on the test split; per-fold
    figures, pooled out-of-fold figures with patient-bootstrap CIs and (binary) the
    referral curve by the members' spread under ``metrics["crossval"]``;
    ``oof_predictions.csv``."""
    from imaging_tl.models import ensemble_predictions

    cv, te = state.crossval, state.splits["test"]
    p_oof, y_oof, rows = cv.oof()
    state.splits["train"] = cv.cv
    state.splits["val"] = SplitArrays(np.concatenate([
        cv.cv.x[(cv.cv.rows["fold"] == f.fold).to_numpy()] for f in cv.folds]), y_oof, rows)
    # the ensemble's test probabilities and its members', from one pass
    p_te, members = ensemble_predictions(state.model, te.x, state.cfg.train.batch_size)
    evaluate_scores(state, p_oof, p_te)
    state.metrics["crossval"] = _crossval_figures(state, members)
    state.paths["metrics"] = write_plain_json(state.run_dir / "metrics.json", state.metrics)
    oof = prediction_rows(state, rows, p_oof, "val")
    oof.insert(3, "fold", rows["fold"].to_numpy())
    state.paths["oof_predictions"] = write_csv(state.run_dir / "oof_predictions.csv", oof)
    state.log("cross-validation: " + _summary_line(state.metrics["crossval"]))


def _crossval_figures(state: RunState, members: np.ndarray) -> dict[str, Any]:
    """Per-fold and pooled figures (:func:`imaging_tl.evaluate.crossval_metrics`); binary
    tasks also get the referral curve with the members' spread as the uncertainty."""
    from imaging_tl.augment import tta_uncertainty
    from imaging_tl.evaluate import crossval_metrics, referral_curve

    cv, te, opts = state.crossval, state.splits["test"], evaluation_options(state.cfg)
    binary = state.task == "binary"

    def sc(p: np.ndarray) -> np.ndarray:
        return p.reshape(-1) if binary else p

    m = crossval_metrics(
        [f.y for f in cv.folds], [sc(f.oof) for f in cv.folds],
        [f.rows["group"].to_numpy() for f in cv.folds], task=state.task,
        class_names=state.classes, threshold=state.threshold,
        n_bootstraps=opts["n_bootstraps"], seed=opts["seed"], aggregate=opts["aggregate"],
        test_true=te.y, member_test_score=[sc(p) for p in members],
        test_groups=te.rows["group"].to_numpy())
    m["members"] = len(members)
    if binary:  # refer the test cases the members disagree on most
        m["uncertainty"] = "standard deviation of the members' probabilities"
        m["referral"] = referral_curve(te.y, sc(state.scores["test"]),
                                       tta_uncertainty(members), threshold=state.threshold)
    return m


def _summary_line(cvm: dict[str, Any]) -> str:
    key = cvm["headline"]
    s, o = cvm["summary"].get(key) or {}, (cvm["oof"].get(key) or {})
    mean, sd = s.get("mean"), s.get("sd")
    per_fold = f"{mean:.3f} ± {sd:.3f}" if mean is not None and sd is not None else "n/a"
    pooled = o.get("value")
    return (f"{key} per fold {per_fold} (mean ± SD of {cvm['folds']} folds), pooled out of "
            f"fold {pooled:.3f}" if pooled is not None else f"{key} per fold {per_fold}")
