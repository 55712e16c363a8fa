"""The output steps of a run: evaluation, the model with its contract, Grad-CAM, exports,
the report, and ``run.json`` last (a run without it has not finished)."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import atomic_dir, write_csv
from imaging_tl.data.cache import file_mode
from imaging_tl.io.pseudonyms import pseudonymize
from imaging_tl.pipeline.inputs import InputError
from imaging_tl.pipeline.prediction_rows import (
    decisions,
    probability_columns,
    series_prediction_rows,
)
from imaging_tl.pipeline.provenance import machine, versions, write_plain_json
from imaging_tl.pipeline.result import RunResult
from imaging_tl.pipeline.series_outputs import SERIES_FILE, series_evaluation_options
from imaging_tl.pipeline.state import RunState
from imaging_tl.pipeline.subgroups import subgroup_evaluation

__all__ = ["data_root", "evaluate_scores", "evaluate_step", "evaluation_options",
           "export_step", "finish_step", "gradcam_step", "output_paths", "prediction_rows",
           "report_step", "save_step", "settle_modes", "shown_in_pictures", "tta_evaluation"]


def evaluation_options(cfg: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`imaging_tl.evaluate.evaluate` that a run's
    ``evaluate`` section sets (used again when the run is re-evaluated)."""
    e = cfg.evaluate
    kw: dict[str, Any] = {
        "operating_point": e.operating_point.method, "n_bootstraps": e.bootstrap,
        "seed": cfg.seed, "temperature_scaling": e.calibration == "temperature",
        "aggregate": None if e.patient_level == "none" else e.patient_level,
        "top_k": e.top_k,
    }
    if e.operating_point.method == "sensitivity":
        kw["target_sensitivity"] = e.operating_point.value
    if e.operating_point.method == "fixed":
        kw["threshold"] = e.operating_point.value
    return kw


def evaluate_step(state: RunState) -> None:
    """Threshold and calibration chosen on validation, measured on test; ``metrics.json``
    and ``predictions.csv``."""
    from imaging_tl.models import fast_predict

    va, te = state.splits["val"], state.splits["test"]
    batch = state.cfg.train.batch_size
    evaluate_scores(state, fast_predict(state.model, va.x, batch),
                    fast_predict(state.model, te.x, batch))


def evaluate_scores(state: RunState, p_va: np.ndarray, p_te: np.ndarray) -> None:
    """:func:`evaluate_step` on given validation and test probabilities (rows of
    ``state.splits["val"]`` and ``["test"]``): the threshold and the calibration chosen on
    the first, measured on the second; ``metrics.json`` and ``predictions.csv``.
    Cross-validation gives the pooled out-of-fold predictions as the validation scores.

    Examples
    --------
    >>> evaluate_scores(state, oof_probabilities, ensemble_test_probabilities)  # doctest: +SKIP
    """
    from imaging_tl.evaluate import evaluate

    va, te = state.splits["val"], state.splits["test"]
    state.scores = {"val": p_va, "test": p_te}

    def scores(p: np.ndarray) -> np.ndarray:
        return p.reshape(-1) if state.task == "binary" else p

    try:
        state.metrics = evaluate(te.y, scores(p_te), task=state.task,
                                 groups=te.rows["group"].to_numpy(), val_true=va.y,
                                 val_score=scores(p_va), val_groups=va.rows["group"].to_numpy(),
                                 class_names=state.classes,
                                 **(evaluation_options(state.cfg)
                                    | series_evaluation_options(state.cfg, va.rows, te.rows)))
    except ValueError as exc:
        raise InputError(f"evaluation failed: {exc}") from None
    state.threshold = float(state.metrics.get("operating_point", {}).get("threshold", 0.5))
    if state.cfg.evaluate.subgroups:
        state.metrics["subgroups"] = subgroup_evaluation(state, scores(p_te))
    if state.cfg.evaluate.tta:
        state.metrics["tta"] = tta_evaluation(state, scores)
    state.paths["metrics"] = write_plain_json(state.run_dir / "metrics.json", state.metrics)
    state.predictions = pd.concat([prediction_rows(state, va.rows, p_va, "val"),
                                   prediction_rows(state, te.rows, p_te, "test")],
                                  ignore_index=True)
    state.paths["predictions"] = write_csv(state.run_dir / "predictions.csv", state.predictions)
    if state.cfg.data.unit == "series":
        e = state.cfg.evaluate
        per_series = pd.concat([series_prediction_rows(
            rows.assign(path=output_paths(state.cfg, rows["path"])), p, task=state.task,
            classes=state.classes, threshold=state.threshold, how=e.series_aggregate,
            top_k=e.top_k, split=split) for rows, p, split in
            ((va.rows, p_va, "val"), (te.rows, p_te, "test"))], ignore_index=True)
        state.paths["series_predictions"] = write_csv(state.run_dir / SERIES_FILE, per_series)


def tta_evaluation(state: RunState, scores: Any) -> dict[str, Any]:
    """The ``tta`` section of ``metrics.json``: the evaluation of the mean prediction over
    each validation and test image and ``evaluate.tta`` augmented copies
    (:func:`imaging_tl.augment.tta_predict`, the run's augment preset and seed; the
    threshold chosen again on the validation split's TTA scores). The plain figures stay
    the run's figures (and its threshold the model's). Binary tasks also get the
    ``referral`` curve (:func:`imaging_tl.evaluate.referral_curve`) with the copies'
    spread as the uncertainty (:func:`imaging_tl.augment.tta_uncertainty`).

    Examples
    --------
    >>> tta_evaluation(state, lambda p: p.reshape(-1))["roc_auc"]  # doctest: +SKIP
    """
    from imaging_tl.augment import tta_predictions, tta_preset, tta_uncertainty
    from imaging_tl.evaluate import evaluate, referral_curve
    from imaging_tl.models import fast_predict

    cfg, va, te = state.cfg, state.splits["val"], state.splits["test"]
    kw = {"n": cfg.evaluate.tta, "preset": cfg.augment.preset, "hflip": cfg.augment.hflip,
          "seed": cfg.seed}

    def predict(x: np.ndarray) -> np.ndarray:
        return fast_predict(state.model, x, cfg.train.batch_size)

    pv, pt = tta_predictions(predict, va.x, **kw), tta_predictions(predict, te.x, **kw)
    tt = pt.astype(np.float64).mean(axis=0)
    m = evaluate(te.y, scores(tt), task=state.task, groups=te.rows["group"].to_numpy(),
                 val_true=va.y, val_score=scores(pv.astype(np.float64).mean(axis=0)),
                 val_groups=va.rows["group"].to_numpy(), class_names=state.classes,
                 **(evaluation_options(cfg) | series_evaluation_options(cfg, va.rows, te.rows)))
    m.pop("curves", None)
    if state.task == "binary":  # refer the cases whose copies disagree most
        m["referral"] = referral_curve(te.y, scores(tt), tta_uncertainty(pt),
                                       threshold=m["operating_point"]["threshold"])
    return {**m, "copies": cfg.evaluate.tta, "preset": tta_preset(cfg.augment.preset),
            "hflip": cfg.augment.hflip, "seed": cfg.seed}


def prediction_rows(state: RunState, rows: pd.DataFrame, p: np.ndarray,
                    split: str) -> pd.DataFrame:
    """The ``predictions.csv`` rows of one split: path (``output_paths``), frame, split,
    patient pseudonym, label(s), probabilities and the decision at ``state.threshold``.

    Examples
    --------
    >>> prediction_rows(state, state.splits["test"].rows, p_test, "test")  # doctest: +SKIP
    """
    out = pd.DataFrame({"path": output_paths(state.cfg, rows["path"]), "frame": rows["frame"],
                        "split": split,
                        "group": pseudonymize(rows["group"].astype(str))})
    for column in ("series", "slice"):  # data.unit series: which series, which slice
        if column in rows.columns:
            out[column] = rows[column].to_numpy()
    if state.task == "multilabel":
        for c in state.classes:
            out[f"label_{c}"] = rows[c].to_numpy()
    else:
        out["label"] = rows["label"].astype(str).to_numpy()
    for k, v in probability_columns(state.task, state.classes, p).items():
        out[k] = v
    out["predicted"] = decisions(state.task, state.classes, p, state.threshold)
    return out


def data_root(cfg: Any) -> Path | None:
    """The folder a run's data lives in: ``data.folder``, else the folder of ``data.csv``."""
    d = cfg.data
    if d.folder:
        return Path(d.folder).resolve()
    return Path(d.csv).resolve().parent if d.csv else None


def output_paths(cfg: Any, paths: Any) -> list[str]:
    """Paths as the run's outputs write them: ``output_paths: relative`` -> relative to the
    data root (:func:`data_root`; a file outside it keeps its absolute path), ``absolute``
    (the default) -> as they are."""
    paths = [str(p) for p in paths]
    root = data_root(cfg) if getattr(cfg, "output_paths", "absolute") == "relative" else None
    if root is None:
        return paths
    out = []
    for p in paths:
        try:
            out.append(Path(p).resolve().relative_to(root).as_posix())
        except ValueError:
            out.append(p)
    return out


def save_step(state: RunState) -> None:
    """``model.keras`` and ``contract.json``: the model with its preprocessing contract."""
    from imaging_tl.models import ModelContract, save_transfer_model

    pipe, run_dir = state.pipe, state.run_dir
    contract = ModelContract.from_dict({
        **state.model.imaging_tl_contract.to_dict(), "threshold": state.threshold,
        "preprocessing": {"stages": pipe.to_config(), "fingerprint": pipe.fingerprint(),
                          "frames": state.cfg.data.frames, **_series_contract(state.cfg)},
        **({"domain": state.domain} if state.domain else {}),
    })
    with atomic_dir(run_dir / ".model") as tmp:
        save_transfer_model(state.model, tmp / "model.keras", contract)
        os.replace(tmp / "model.keras", run_dir / "model.keras")
        os.replace(tmp / "contract.json", run_dir / "contract.json")
    shutil.rmtree(run_dir / ".model", ignore_errors=True)
    state.paths["model"] = run_dir / "model.keras"
    state.paths["contract"] = run_dir / "contract.json"


def _series_contract(cfg: Any) -> dict[str, Any]:
    """What ``predict`` needs to predict per series (``{}`` for an image model)."""
    if cfg.data.unit != "series":
        return {}
    return {"unit": "series", "series_aggregate": cfg.evaluate.series_aggregate,
            "top_k": cfg.evaluate.top_k}


def gradcam_step(state: RunState) -> None:
    """Overlays of the most telling test images (names carry no identifiers)."""
    from imaging_tl.report import task_gallery

    te, n = state.splits["test"], state.cfg.evaluate.gradcam
    gallery: list[dict[str, Any]] = []
    keep = shown_in_pictures(te.rows, state.cfg.evaluate.show_burned_in, state.log)
    with atomic_dir(state.run_dir / "gradcam") as tmp:
        if n and keep.any():
            gallery = task_gallery(state.model, te.x[keep], te.y[keep],
                                   state.scores["test"][keep], state.task, state.threshold, n,
                                   tmp)
    state.gallery = [{**g, "path": state.run_dir / "gradcam" / Path(g["path"]).name}
                     for g in gallery]
    state.paths["gradcam"] = state.run_dir / "gradcam"


def shown_in_pictures(rows: Any, show_burned_in: bool, log: Any = None) -> np.ndarray:
    """Which rows (with a ``path`` column) may appear in a picture of the report: all with
    ``show_burned_in``, else those whose file carries no burned-in text (neither
    ``BurnedInAnnotation`` YES nor a secondary capture / ultrasound)."""
    from imaging_tl.io.census import burned_in_of

    paths = list(rows["path"])
    if show_burned_in:
        return np.ones(len(paths), dtype=bool)
    flags = {p: burned_in_of(p) for p in dict.fromkeys(paths)}
    keep = np.array([flags[p] not in ("yes", "likely") for p in paths], dtype=bool)
    if log is not None and not keep.all():
        log(f"report pictures: {int((~keep).sum())} test image(s) that may carry burned-in "
            "text are left out (evaluate.show_burned_in: true shows them)")
    return keep


def export_step(state: RunState) -> None:
    """The formats of ``export.formats`` beyond ``model.keras``, each checked."""
    from imaging_tl.deploy import export_model

    for fmt in [f for f in state.cfg.export.formats if f != "keras"]:
        res = export_model(state.run_dir / "model.keras", fmt, state.run_dir / "export",
                           sample=state.splits["test"].x[:2])
        state.paths[f"export_{fmt}"] = res.path
        state.log(res.summary())


def run_record(state: RunState) -> dict[str, Any]:
    """What ``run.json`` holds: data and code versions, seed, plan, machine, durations."""
    cfg, prepared, plan = state.cfg, state.prepared, state.plan
    quarantined = prepared.quarantined
    return {
        "name": cfg.name, "status": "finished", "run_dir": str(state.run_dir.resolve()),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": cfg.seed, "data_manifest_sha256": state.manifest,
        "pipeline_fingerprint": state.pipe.fingerprint(),
        "cache_namespace": prepared.namespace, "task": state.task,
        "class_names": state.classes, "samples": state.counts,
        "labels": state.table.attrs.get("label_summary"),  # policy, map, counts per label
        "prepare": {k: v for k, v in prepared.stats.items() if k != "audit"},
        "audit": prepared.stats["audit"].format() if "audit" in prepared.stats else None,
        "quarantined": quarantined.astype({"frame": object}).where(
            quarantined.notna(), None).to_dict("records"),
        "best_epochs": state.best, "resumed_from": state.resumed_from,
        "distribute": {**plan.to_dict(), "phase_learning_rates": [
            pc.learning_rate * plan.lr_factor for pc in cfg.train.phases]},
        "versions": versions(), "machine": machine(), "durations_s": state.durations,
    }


def report_step(state: RunState, record: dict[str, Any]) -> None:
    """``plots/``, ``report.html`` and ``model_card.md``; the page and its plots are written
    in a staging folder, then moved, so both appear complete."""
    from imaging_tl.report import write_report
    from imaging_tl.report.model_card import (
        model_card_html,
        model_card_sections,
        write_model_card,
    )

    run_dir = state.run_dir
    card = {"config": state.cfg.to_dict(), "record": record, "metrics": state.metrics}
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=run_dir))
    try:
        write_report(stage, config=state.cfg.to_dict(), census=run_dir / "census.csv",
                     splits=state.table, metrics=state.metrics, history=state.history,
                     predictions=state.predictions, gradcam=state.gallery,
                     audit=record.get("audit"), title=f"{run_dir.name}", chain=state.chain,
                     model_card=model_card_html(model_card_sections(run_dir, **card)))
        if (run_dir / "plots").exists():
            shutil.rmtree(run_dir / "plots")
        os.replace(stage / "plots", run_dir / "plots")
        os.replace(stage / "report.html", run_dir / "report.html")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    state.paths["plots"] = run_dir / "plots"
    state.paths["report"] = run_dir / "report.html"
    state.paths["model_card"] = write_model_card(run_dir, **card)


def settle_modes(run_dir: Path) -> None:
    """One mode for every artefact of a run: files 0644, folders 0755 (less a stricter
    umask). Temporary-file writers create 0600 files and 0700 folders; a run directory is
    meant to be shared like any output."""
    fmode, dmode = file_mode(), file_mode(directory=True)
    for p in [run_dir, *run_dir.rglob("*")]:
        if p.is_symlink():
            continue
        try:
            os.chmod(p, dmode if p.is_dir() else fmode)
        except OSError:
            pass


def finish_step(state: RunState, record: dict[str, Any]) -> RunResult:
    """``run.json`` last, then the checkpoints go: a kill before this point can resume."""
    record["durations_s"] = {**state.durations, "total": round(sum(state.durations.values()), 3)}
    settle_modes(state.run_dir)
    state.paths["run_json"] = write_plain_json(state.run_dir / "run.json", record)
    os.chmod(state.paths["run_json"], file_mode())
    shutil.rmtree(state.checkpoints, ignore_errors=True)
    state.log(f"finished {state.run_dir} in {sum(state.durations.values()):.0f} s")
    return result_of(state)


def result_of(state: RunState, role: str = "chief") -> RunResult:
    """The :class:`RunResult` of the state (a worker's has no metrics or paths)."""
    chief = role == "chief"
    return RunResult(state.run_dir, state.cfg, state.metrics if chief else {},
                     dict(state.paths) if chief else {}, dict(state.durations),
                     state.prepared.quarantined, state.task, state.classes, state.counts,
                     state.resumed_from, role=role)
