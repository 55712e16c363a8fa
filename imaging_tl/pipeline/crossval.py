"""Cross-validation in one run: every fold trained, out-of-fold predictions pooled, and the
fold ensemble as the run's model.

With ``split.method: kfold`` and no ``split.fold``, the test split lies outside the folds
(:func:`imaging_tl.data.crossval_table`). Fold ``k`` trains on the other folds and
validates on its own (early stopping, best epoch) into ``folds/fold-k/`` (``history.csv``,
``checkpoints/`` while it trains, ``weights.npz``, ``predictions.csv`` of its validation
and test images, ``fold.json`` last: a fold with it is finished and ``--resume`` skips it).
The validation predictions of the folds, concatenated in fold order, are the out-of-fold
predictions (``oof_predictions.csv``); the run's threshold and calibration are chosen on
them, and the members averaged into one Keras model
(:func:`imaging_tl.models.build_ensemble`) are ``model.keras``, measured on the test split.

With a frozen first phase the pooled backbone features of every image are computed once
and shared by the folds (:func:`shared_features`): every fold starts from the same
backbone, so its features are the same. So is the frozen part of the fine-tuning phase
that follows: it runs once on ``epochs`` augmented views of every image
(:func:`shared_boundary`), and each fold trains the layers after its freeze point on them.
When no phase trains the backbone, the members are one backbone with a head per fold
(:func:`imaging_tl.models.transfer.new_head_on`): built once, and the ensemble runs it
once.

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
from imaging_tl.pipeline.model_steps import build_step, make_augmenter, plain_copy, train_step
from imaging_tl.pipeline.output_steps import (
    evaluate_scores,
    evaluation_options,
    prediction_rows,
)
from imaging_tl.pipeline.provenance import write_plain_json
from imaging_tl.pipeline.state import RunState, SplitArrays

__all__ = ["CrossVal", "FoldResult", "crossval_evaluate_step", "crossval_step",
           "shared_boundary", "shared_features"]

#: the file that marks a fold as finished
FOLD_DONE = "fold.json"
#: a finished fold's trained variables (the rest is the run's model as built)
FOLD_WEIGHTS = "weights.npz"


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


def shared_features(state: RunState, cv: SplitArrays, boundary: Any = None
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """Pooled backbone features of every image of the folds and of the test split,
    computed once (with the first trained fold's freshly built model) when the first
    phase trains the head on cached features; None otherwise. From the ``boundary``
    outputs of :func:`shared_boundary` when given (the rest of the backbone only)."""
    cfg = state.cfg
    if cfg.train.phases[0].freeze != "all" or cfg.train.feature_cache != "auto":
        return None
    import keras

    from imaging_tl.models import fast_predict
    from imaging_tl.train.features import extract_features

    te, batch = state.splits["test"], state.plan.global_batch
    if boundary is not None:
        model = state.model
        rest = keras.Model(model.get_layer(boundary[0]).output,
                           model.get_layer("head_pool").output)
        f = fast_predict(rest, np.concatenate([boundary[2], boundary[3]]), batch)
    else:
        f = extract_features(state.model, np.concatenate([cv.x, te.x]), batch)[0]
    return f[:len(cv.x)], f[len(cv.x):]


#: the most memory the shared views of a fine-tuning phase may take (bytes)
BOUNDARY_BUDGET = 1 << 30


def shared_boundary(state: RunState, cv: SplitArrays
                    ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray] | None:
    """The fine-tuning phase's frozen part, run once for every fold: its freeze layer's
    output for one augmented view of every image of the folds per epoch, for the images
    themselves (validation) and for the test split; None when the first phase that trains
    the backbone does not freeze at a named layer, or the views would take more than
    :data:`BOUNDARY_BUDGET` at their peak (the views, the plain outputs, a fold's share and
    tf.data's copy of it), or the frozen part holds dropout (which drops in training even
    when frozen, so its output is not fixed)."""
    import keras

    from imaging_tl.data.tfdata import resolve_augment
    from imaging_tl.train.features import layer_views

    cfg, plan, model = state.cfg, state.plan, state.model
    tuned = [i for i, p in enumerate(cfg.train.phases) if p.freeze != "all"]
    if not tuned or plan.distributed or plan.precision != "float32":
        return None
    phase = cfg.train.phases[tuned[0]]
    names = {layer.name for layer in model.layers}
    if not isinstance(phase.freeze, str) or phase.freeze not in names:
        return None
    layer = model.get_layer(phase.freeze)
    before = model.layers[:model.layers.index(layer)]
    if any(isinstance(la, keras.layers.Dropout) for la in before):
        return None  # frozen dropout still drops while training: not a fixed output
    try:  # the layers after the freeze point must be a graph of its output alone
        keras.Model(layer.output, model.output)
    except ValueError:
        return None
    augment = make_augmenter(state)
    views = phase.epochs if augment is not None else 1
    # the views, the plain outputs, a fold's copy of its share and tf.data's copy of it
    size = (3 * views + 1) * len(cv.x) * int(np.prod(layer.output.shape[1:])) * 4
    if size > BOUNDARY_BUDGET:
        state.log(f"note: {phase.name}: {views} views at {layer.name} would take "
                  f"{size / 2**20:.0f} MiB; every fold runs the whole model")
        return None
    fn = resolve_augment(augment) if augment is not None else None
    batch = plan.global_batch
    plain = layer_views(model, layer.name, np.concatenate([cv.x, state.splits["test"].x]), 1,
                        batch_size=batch)[0]
    return (layer.name, layer_views(model, layer.name, cv.x, views, fn, seed=cfg.seed,
                                    batch_size=batch), plain[:len(cv.x)], plain[len(cv.x):])


def _member_probabilities(state: RunState, member: Any, cv: SplitArrays, va: np.ndarray,
                          feats: Any) -> np.ndarray:
    """A member's probabilities of its fold's images, then of the test split: from the
    shared features through its head when no phase trained the backbone, from the shared
    boundary through the layers after it when no phase trained anything before it, else
    through the whole model."""
    from imaging_tl.models import fast_predict, head_model, layers_after

    batch, phases = state.cfg.train.batch_size, state.cfg.train.phases
    pooled, boundary = feats if feats is not None else (None, None)
    if pooled is not None and all(p.freeze == "all" for p in phases):
        return fast_predict(head_model(member), np.concatenate([pooled[0][va], pooled[1]]),
                            batch)
    if boundary is not None and all(p.freeze in ("all", boundary[0]) for p in phases):
        return fast_predict(layers_after(member, boundary[0]),
                            np.concatenate([boundary[2][va], boundary[3]]), batch)
    return fast_predict(member, np.concatenate([cv.x[va], state.splits["test"].x]), batch)


def crossval_step(state: RunState) -> None:
    """Train every fold (or take a finished one from its folder on resume), then the
    ensemble of the members as ``state.model``; ``state.crossval`` holds the folds."""
    from imaging_tl.models import build_ensemble

    k = state.cfg.split.folds
    cv, te = _cv_arrays(state), state.splits["test"]
    folds, members, histories, feats = [], [], [], None
    # the first built model, untrained (the template of the next folds' members)
    start: dict[str, Any] = {"shared": _one_backbone(state)}
    kept, resumed = [], None  # finished folds taken over; the fold resumed mid-training
    for f in range(k):
        state.fold = f
        va = (cv.rows["fold"] == f).to_numpy()
        done = state.fold_dir / FOLD_DONE
        member = _finished_member(state, start) if state.resume is not None else None
        if member is not None:
            state.log(f"fold {f + 1}/{k}: finished before the interruption, not trained again")
            best = list(json.loads(done.read_text()).get("best_epochs", []))
            history = read_csv(state.fold_dir / "history.csv")
            kept.append(f)
        else:
            state.log(f"fold {f + 1}/{k}: {int((~va).sum())} training and {int(va.sum())} "
                      "validation images")
            member, best, feats = _train_fold(state, cv, va, feats, start)
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
    state.fold, state.fold_features, state.fold_boundary = None, None, None
    state.resumed_from = ({"finished_folds_kept": kept, **(resumed or {})}
                          if kept or resumed else None)
    state.table = cv_split_table(state.table)  # the report's split table: test and cv
    state.model = build_ensemble(members)
    state.crossval = CrossVal(folds, cv)
    state.best = [{**b, "fold": r.fold} for r in folds for b in r.best]
    state.history = pd.concat(histories, ignore_index=True)
    state.paths["history"] = write_csv(state.run_dir / "history.csv", state.history)
    state.log(f"fold ensemble: {k} members averaged")


def _one_backbone(state: RunState) -> bool:
    """Whether the members can share one backbone: no phase trains it, the heads train on
    cached features, and the trained model is the plain float32 one."""
    cfg, plan = state.cfg, state.plan
    return (cfg.train.feature_cache == "auto" and not plan.distributed
            and plan.precision == "float32"
            and all(p.freeze == "all" for p in cfg.train.phases))


def _new_member(state: RunState, start: dict[str, Any]) -> None:
    """``state.model``: a fold's member before training, as the first built model was
    (kept untrained in ``start["template"]``): a copy of its head on its backbone when the
    members share one (``start["shared"]``), else a clone of the whole model (a third of a
    build's time). Built when there is no template yet, and every time under a
    distribution strategy or mixed precision (the build's scope and policy)."""
    from imaging_tl.models.transfer import new_head_on

    plan = state.plan
    rebuild = plan.distributed or plan.precision != "float32"
    template = start.get("template")
    if template is None or rebuild:
        build_step(state)
        if not rebuild:
            start["template"] = new_head_on(state.model) if start["shared"] \
                else _clone(state.model)
    else:
        state.model = new_head_on(template) if start["shared"] else _clone(template)


def _clone(model: Any) -> Any:
    """A copy of ``model`` with its own layers and the same weights and contract."""
    import keras

    from imaging_tl.models.contract import ModelContract, attach_contract

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    attach_contract(copy, ModelContract.from_dict(model.imaging_tl_contract.to_dict()))
    return copy


def _plain_member(state: RunState) -> Any:
    plan = state.plan
    return plain_copy(state) if plan.distributed or plan.precision != "float32" \
        else state.model


def _finished_member(state: RunState, start: dict[str, Any]) -> Any:
    """The member of a fold finished before an interruption (``fold.json`` and
    ``weights.npz``), rebuilt with its saved weights; None when the fold must train (not
    finished, or its weights do not fit this run's model)."""
    from imaging_tl.models.source import file_sha256
    from imaging_tl.train.checkpoint import load_arrays

    weights, done = state.fold_dir / FOLD_WEIGHTS, state.fold_dir / FOLD_DONE
    if not done.is_file() or not weights.is_file():
        return None
    try:  # the file the fold wrote, whole (fold.json records its hash)
        if json.loads(done.read_text()).get("weights_sha256") != file_sha256(weights):
            raise ValueError("not the file the fold saved")
        _new_member(state, start)
        shutil.rmtree(state.checkpoints, ignore_errors=True)  # the build's plan record
        load_arrays(state.model, weights)
    except Exception as exc:  # noqa: BLE001 - any damage: the fold trains again
        state.log(f"fold {state.fold + 1}: {weights} cannot be used "
                  f"({type(exc).__name__}: {exc}); trained again")
        return None
    return _plain_member(state)


def _trained_keys(state: RunState) -> set[str] | None:
    """The variables the fold's phases could change (their checkpoints' keys)."""
    keys: set[str] = set()
    for path in state.checkpoints.glob("phase*/last.npz"):
        with np.load(path) as z:
            keys |= {k for k in z.files if not k.startswith("opt:")}
    return keys or None


def _train_fold(state: RunState, cv: SplitArrays, va: np.ndarray, feats: Any,
                start: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], Any]:
    """Build and train the member of one fold; save what its training changed
    (``weights.npz``) and mark the fold finished."""
    from imaging_tl.models.source import file_sha256
    from imaging_tl.train.checkpoint import save_arrays

    state.splits["train"] = SplitArrays(cv.x[~va], cv.y[~va],
                                        cv.rows[~va].reset_index(drop=True))
    state.splits["val"] = SplitArrays(cv.x[va], cv.y[va], cv.rows[va].reset_index(drop=True))
    state.best, state.resumed_from = [], None
    _new_member(state, start)
    if feats is None:
        boundary = shared_boundary(state, cv)
        feats = (shared_features(state, cv, boundary), boundary)
    pooled, boundary = feats
    state.fold_features = None if pooled is None else (pooled[0][~va], pooled[0][va])
    state.fold_boundary = None if boundary is None else \
        (boundary[0], boundary[1][:, ~va], boundary[2][va])  # (layer, train views, val)
    train_step(state)
    member = _plain_member(state)
    # the frozen layers are the built model's: the trained ones rebuild the member
    save_arrays(member, state.fold_dir / FOLD_WEIGHTS,
                keys=_trained_keys(state) if member is state.model else None)
    shutil.rmtree(state.checkpoints, ignore_errors=True)
    write_plain_json(state.fold_dir / FOLD_DONE, {
        "fold": state.fold, "status": "finished", "best_epochs": state.best,
        "resumed_from": state.resumed_from,
        "weights_sha256": file_sha256(state.fold_dir / FOLD_WEIGHTS)})
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
    cv = state.crossval
    p_oof, y_oof, rows = cv.oof()
    state.splits["train"] = cv.cv
    state.splits["val"] = SplitArrays(np.concatenate([
        cv.cv.x[(cv.cv.rows["fold"] == f.fold).to_numpy()] for f in cv.folds]), y_oof, rows)
    # the ensemble's output is the mean of its members' (the saved model's Average layer),
    # whose test probabilities each fold has computed already
    members = np.stack([f.test for f in cv.folds])
    p_te = members.mean(axis=0)
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
