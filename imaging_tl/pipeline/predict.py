"""Prediction with a trained model: preprocessing from its contract only, one row per file.

A file that cannot be read or does not fit the model's input contract becomes a row with
``status = error`` and its reason; the batch goes on. Files are read and predicted in
chunks, so memory stays bounded whatever their number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.augment import tta_predictions, tta_uncertainty
from imaging_tl.data.prepare import failure_reason
from imaging_tl.evaluate.aggregation import aggregate_scores
from imaging_tl.pipeline.inputs import InputError, expand_inputs
from imaging_tl.pipeline.prediction_rows import (
    decisions,
    probability_columns,
    series_prediction_rows,
    slice_prediction_rows,
)

__all__ = ["decisions", "domain_notes", "predict_files", "predict_series_rows",
           "probability_columns", "series_prediction_rows"]


@dataclass
class _Predictor:
    """A loaded model (or engine) with the contract and pipeline its inputs go through."""

    model: Any
    engine: Any
    contract: Any
    pipe: Any
    frame_mode: str
    last_meta: dict[str, Any] = field(default_factory=dict)  # header of the last file read
    metas: dict[int, dict[str, Any]] = field(default_factory=dict)  # per file, for the gate
    model_path: Path | None = None

    def prepare(self, path: str) -> np.ndarray:
        """The model input of one file, checked against the contract."""
        from imaging_tl.io import read_scan

        scan = read_scan(path)
        self.last_meta = scan.meta
        px = scan.pixels
        n_frames = px.shape[0] if (px.ndim == 4 or (px.ndim == 3 and not scan.is_colour)) \
            else 1
        if n_frames > 1:
            scan = read_scan(path, frame=0 if self.frame_mode == "first" else n_frames // 2)
        x = self.pipe(scan).pixels.astype(np.float32)
        if not np.isfinite(x).all():  # the contract's range check alone lets NaN through
            raise ValueError("the model input holds NaN or infinite values after "
                             "preprocessing")
        self.contract.check_batch(x[None])
        return x

    def keras_model(self) -> Any:
        """The Keras model (loaded on first use where another engine predicts)."""
        if self.model is None:
            from imaging_tl.models import load_transfer_model

            self.model = load_transfer_model(self.model_path, compile=False)
        return self.model

    def __call__(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        if self.engine.name == "keras":
            from imaging_tl.models import fast_predict

            return fast_predict(self.model, x, batch_size)
        return self.engine.predict(x, batch_size)


def _load_predictor(model_path: str | os.PathLike, engine: str, with_keras: bool,
                    frames: str | None, num_threads: int | None) -> _Predictor:
    from imaging_tl.deploy import EngineError, default_engine, load_engine
    from imaging_tl.models import load_transfer_model, model_file, read_contract
    from imaging_tl.stages import Pipeline

    try:
        mp = model_file(model_path)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    if engine == "auto":
        engine = "keras" if with_keras else default_engine()
    model = None
    try:
        if engine == "keras" or with_keras:
            model = load_transfer_model(mp, compile=False)
            contract = model.imaging_tl_contract
        else:
            contract = read_contract(mp)
    except (ValueError, OSError) as exc:
        raise InputError(f"{mp}: cannot load the model: {exc}") from None
    if contract.task == "self_supervised":
        raise InputError(f"{mp}: a backbone pretrained without labels (imaging-tl pretrain) "
                         "predicts nothing; use it as model.source of an imaging-tl run")
    try:
        eng = load_engine(mp, engine, num_threads=num_threads, model=model)
    except EngineError as exc:
        raise InputError(str(exc)) from None
    pre = contract.preprocessing or {}
    if not pre.get("stages"):
        raise InputError(f"{mp}: its contract has no preprocessing pipeline; cannot know how "
                         "to prepare the input")
    return _Predictor(model, eng, contract, Pipeline.from_config(pre["stages"]),
                      frames or pre.get("frames", "middle"), model_path=mp)


def _empty_output(files: list[str], predictor: Any, tta: int, tta_preset: str,
                  seed: int) -> pd.DataFrame:
    """One row per file, every prediction column empty; ``attrs`` name the engine, the TTA
    and where the uncertainty comes from."""
    contract = predictor.contract
    out = pd.DataFrame({"path": files, "status": "ok", "reason": ""})
    for c in contract.label_names:
        out[f"prob_{c}"] = np.nan
    out["predicted"] = ""
    out["threshold"] = contract.threshold
    out["domain"], out["domain_reason"] = "", ""
    out.attrs["engine"] = predictor.engine.name
    # uncertainty: the spread of the TTA copies, else of a fold ensemble's members
    spread = "tta" if tta else ("ensemble" if contract.ensemble else None)
    if tta:
        out.attrs["tta"] = {"n": tta, "preset": tta_preset, "seed": seed}
    if spread:
        out.attrs["uncertainty"] = spread
        out["uncertainty"] = np.nan
    return out


def predict_files(
    model_path: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    batch_size: int = 16,
    gradcam_dir: str | os.PathLike | None = None,
    frames: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 256,
    engine: str = "keras",
    num_threads: int | None = None,
    domain: str = "flag",
    tta: int = 0,
    tta_preset: str = "light",
    seed: int = 0,
    slice_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Predict files or folders of DICOM/PNG with a trained model; bad files become rows.

    The preprocessing comes from the model's contract (``contract.json``): the user gives
    no preprocessing flags, and the batch is checked against the input contract.

    Parameters
    ----------
    model_path : path
        ``model.keras`` (or its run directory).
    inputs : paths
        Files and folders (walked recursively).
    batch_size : int
    gradcam_dir : path, optional
        Also write a Grad-CAM overlay per predicted file there.
    frames : {"middle", "first"}, optional
        Frame of multi-frame files (default: the contract's, else the middle one).
    progress : callable, optional
        Called as ``progress(done, total)``.
    chunk : int
        Files read and predicted at a time (bounds the memory).
    engine : {"keras", "onnxruntime", "tflite", "auto"}
        Inference engine (:mod:`imaging_tl.deploy.engines`); ``auto`` is the fastest
        correct one on this machine (Keras when Grad-CAM is asked for, since that needs
        the Keras model).
    num_threads : int, optional
        CPU threads of ONNX Runtime / TFLite.
    domain : {"flag", "strict", "off"}
        The domain gate (:mod:`imaging_tl.pipeline.domain`): ``flag`` predicts every file
        and fills ``domain`` (``ok`` / ``out_of_domain``, ``unknown`` for a model without
        a reference) and ``domain_reason``; ``strict`` also skips flagged files (status
        ``skipped``); ``off`` leaves both columns empty.
    tta, tta_preset, seed :
        Test-time augmentation: the probabilities are the mean over each image and
        ``tta`` augmented copies of the preset (:func:`imaging_tl.augment.tta_predict`;
        never a vertical flip), seeded per file position: the same inputs and seed give
        the same probabilities. 0: off. Grad-CAM and the domain gate see the plain image.
        With TTA an ``uncertainty`` column holds the spread of the copies' probabilities
        (:func:`imaging_tl.augment.tta_uncertainty`; higher: refer to a reader first).
        A fold ensemble (a cross-validated run's model) without TTA fills ``uncertainty``
        with the same spread over its members (their probabilities computed with Keras,
        whatever the engine); with TTA the copies' spread is used.
        ``df.attrs["uncertainty"]`` says which (``tta`` or ``ensemble``).

    Returns
    -------
    pandas.DataFrame
        ``path, status, reason, prob_<class>..., predicted, threshold, domain,
        domain_reason`` (one row per file; ``status`` is ``ok``, ``skipped`` (strict gate)
        or ``error`` with the reason). ``df.attrs["engine"]`` names the engine used.
        A model trained on series (``data.unit: series``) gives one row per series
        instead (:func:`predict_series_rows`): its DICOM files are grouped and ordered
        (:mod:`imaging_tl.io.series`), each slice predicted with its neighbours (the
        ``stack`` stage) and the probabilities aggregated as the run did; ``gradcam_dir``
        then holds the Grad-CAM of each series' deciding slice. With ``tta`` each slice's
        probabilities are the mean over it and its copies (seeded by its place in the
        series), aggregated per series; ``uncertainty`` is the spread of the series'
        aggregated probability over the copies.
    slice_csv : path, optional
        A series model: also write one row per slice here (``series, slice, path,
        prob_<class>...``; :func:`~imaging_tl.pipeline.prediction_rows.
        slice_prediction_rows`). Refused for other models.

    Examples
    --------
    >>> predict_files("runs/demo/model.keras", ["new_scans/"])  # doctest: +SKIP
    """
    predictor = _load_predictor(model_path, engine, gradcam_dir is not None, frames,
                                num_threads)
    files = expand_inputs(inputs)
    if not files:
        raise InputError("no input files found")
    if (predictor.contract.preprocessing or {}).get("unit") == "series":
        return _predict_series(predictor, files, batch_size, gradcam_dir, slice_csv,
                               {"n": tta, "preset": tta_preset, "seed": seed})
    if slice_csv is not None:
        raise InputError("--per-slice: only for a model trained on series (data.unit series)")
    contract = predictor.contract
    classes, task = list(contract.label_names), contract.task
    out = _empty_output(files, predictor, tta, tta_preset, seed)
    spread = out.attrs.get("uncertainty")
    gate = _gate(predictor, model_path, domain)
    gd = None
    if gradcam_dir is not None:
        out["gradcam"] = ""
        gd = Path(gradcam_dir)
        gd.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), chunk):
        good_x, good_i = _read_chunk(predictor, files, range(start, min(start + chunk,
                                                                        len(files))),
                                     out, progress)
        if not good_x:
            continue
        x = np.stack(good_x)
        if gate is not None:
            x, good_i = _apply_gate(gate, predictor, x, good_i, out, domain == "strict",
                                    batch_size)
            if not good_i:
                continue
        p, spread_of = _probabilities(predictor, x, good_i, batch_size, spread,
                                      {"n": tta, "preset": tta_preset, "seed": seed})
        if spread_of is not None:
            out.loc[good_i, "uncertainty"] = spread_of
        x, p, good_i = _drop_non_finite(x, p, good_i, out)
        if not good_i:
            continue
        for col, v in probability_columns(task, classes, p).items():
            out.loc[good_i, col] = v
        out.loc[good_i, "predicted"] = decisions(task, classes, p, contract.threshold)
        if gd is not None:
            from imaging_tl.explain import save_overlays

            names = [gd / f"{i:04d}_{Path(files[i]).stem}.png" for i in good_i]
            save_overlays(predictor.model, x, names, None if task == "binary" else p.argmax(1))
            out.loc[good_i, "gradcam"] = [str(n) for n in names]
    return out


def _probabilities(predictor: _Predictor, x: np.ndarray, good_i: list[int], batch_size: int,
                   spread: str | None, tta: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """A chunk's probabilities and, where asked, their uncertainty: the spread of the TTA
    copies (seeded per file position), else of a fold ensemble's members (computed with
    Keras; the mean comes from the engine)."""
    if spread == "tta":
        copies = tta_predictions(lambda b: predictor(b, batch_size), x, tta["n"],
                                 preset=tta["preset"], seed=tta["seed"], index=good_i)
        return (copies.astype(np.float64).mean(axis=0).astype(np.float32),
                tta_uncertainty(copies))
    if spread == "ensemble":
        from imaging_tl.models import ensemble_predictions

        p, members = ensemble_predictions(predictor.keras_model(), x, batch_size)
        if predictor.engine.name != "keras":
            p = predictor(x, batch_size)
        return p, tta_uncertainty(members)
    return predictor(x, batch_size), None


def domain_notes(df: pd.DataFrame, mode: str) -> list[str]:
    """What ``imaging-tl predict`` says about the domain gate: a model without a reference,
    and the count of flagged files with the first five and their reason.

    Examples
    --------
    >>> domain_notes(pd.DataFrame({"path": ["a"], "domain": ["ok"]}), "flag")
    []
    """
    if "domain" not in df.columns or mode == "off":
        return []
    lines = []
    if (df["domain"] == "unknown").any():
        lines.append("domain gate: the model has no domain reference (trained before the gate)")
    flagged = df[df["domain"] == "out_of_domain"]
    if flagged.empty:
        return lines
    what = "skipped" if mode == "strict" else "predicted, but flagged"
    lines.append(f"domain gate: {len(flagged)} of {len(df)} file(s) unlike the training data "
                 f"({what}; see the domain and domain_reason columns)")
    return lines + [f"  {r.path}: {r.domain_reason}" for r in flagged.head(5).itertuples()]


def check_domain_mode(mode: str) -> None:
    """Refuse a ``domain`` setting other than ``flag``, ``strict`` or ``off``.

    Examples
    --------
    >>> check_domain_mode("strict")
    """
    if mode not in ("flag", "strict", "off"):
        raise InputError(f"domain: {mode!r} is not one of flag, strict, off")


def _gate(predictor: _Predictor, model_path: str | os.PathLike, mode: str) -> Any:
    """The model's domain gate (None with ``mode`` off)."""
    check_domain_mode(mode)
    if mode == "off":
        return None
    from imaging_tl.models import model_file
    from imaging_tl.pipeline.domain import load_gate

    try:
        return load_gate(model_file(model_path), predictor.contract)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _apply_gate(gate: Any, predictor: _Predictor, x: np.ndarray, good_i: list[int],
                out: pd.DataFrame, strict: bool, batch_size: int
                ) -> tuple[np.ndarray, list[int]]:
    """Fill ``domain`` / ``domain_reason`` of a chunk; strict: drop the flagged rows."""
    feats = None
    if gate.needs_features:
        from imaging_tl.train.features import extract_features

        # an ONNX/TFLite engine: features from the Keras model
        feats = extract_features(predictor.keras_model(), x, batch_size)[0]
    status, reasons = gate.check([predictor.metas.pop(k, {}) for k in good_i], feats)
    out.loc[good_i, "domain"] = status
    out.loc[good_i, "domain_reason"] = reasons
    if not strict:
        return x, good_i
    keep = np.array([s != "out_of_domain" for s in status], dtype=bool)
    for k in np.asarray(good_i)[~keep]:
        out.loc[k, ["status", "reason"]] = ["skipped", "out of the training domain "
                                            "(--domain strict)"]
    return x[keep], [k for k, f in zip(good_i, keep, strict=True) if f]


def _drop_non_finite(x: np.ndarray, p: np.ndarray, good_i: list[int], out: pd.DataFrame
                     ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rows whose model output is not finite become error rows; the rest go on."""
    p = np.asarray(p)
    finite = np.isfinite(p.reshape(len(good_i), -1)).all(axis=1)
    if finite.all():
        return x, p, good_i
    for k in np.asarray(good_i)[~finite]:
        out.loc[k, ["status", "reason"]] = [
            "error", "ValueError: the model output NaN or infinite probabilities for this file"]
    keep = [k for k, f in zip(good_i, finite, strict=True) if f]
    return x[finite], p[finite], keep


def _read_chunk(predictor: _Predictor, files: list[str], indices: range, out: pd.DataFrame,
                progress: Callable[[int, int], None] | None) -> tuple[list[np.ndarray],
                                                                      list[int]]:
    """Model inputs of the readable files of one chunk; the others get their reason."""
    good_x: list[np.ndarray] = []
    good_i: list[int] = []
    for k in indices:
        try:
            good_x.append(predictor.prepare(files[k]))
            good_i.append(k)
            predictor.metas[k] = predictor.last_meta
        except Exception as exc:  # noqa: BLE001 - a bad file is a row with its reason
            out.loc[k, ["status", "reason"]] = ["error", failure_reason(exc)]
        if progress is not None:
            progress(k + 1, len(files))
    return good_x, good_i


def _predict_series(predictor: _Predictor, files: list[str], batch_size: int,
                    gradcam_dir: str | os.PathLike | None, slice_csv: str | os.PathLike | None,
                    tta: dict[str, Any]) -> pd.DataFrame:
    """:func:`predict_files` for a series model: one row per series, bad ones with why."""
    from imaging_tl._atomic import write_csv
    from imaging_tl.io.series import scan_series

    series, failed = scan_series(files)
    rows: list[dict[str, Any]] = []
    slices: list[pd.DataFrame] = []
    contract = predictor.contract
    for one in series:
        where = _series_path(one)
        if one.flagged:
            rows.append({"path": where, "status": "error", "reason": "; ".join(one.problems),
                         "n_slices": len(one.slices)})
            continue
        try:
            x, table = _series_input(predictor, one)
            p, spread = _series_probabilities(predictor, x, batch_size, tta)
        except Exception as exc:  # noqa: BLE001 - a bad series is a row with its reason
            rows.append({"path": where, "status": "error", "reason": failure_reason(exc),
                         "n_slices": len(one.slices)})
            continue
        row = predict_series_rows(table, p, contract).iloc[0].to_dict()
        if spread is not None:
            row["uncertainty"] = spread
        if gradcam_dir is not None:
            row["gradcam"] = _deciding_gradcam(predictor, x, row, Path(gradcam_dir), len(rows))
        rows.append({"status": "ok", "reason": "", **row})
        slices.append(slice_prediction_rows(table, p, task=contract.task,
                                            classes=list(contract.label_names)))
    rows += [{"path": path, "status": "error", "reason": why} for path, why in failed.items()]
    out = pd.DataFrame(rows)
    out["threshold"] = contract.threshold
    for column in ("n_slices", "deciding_slice"):
        if column in out.columns:
            out[column] = out[column].astype("Int64")
    front = [c for c in ("path", "series", "status", "reason", "n_slices") if c in out.columns]
    out = out[front + [c for c in out.columns if c not in front]]
    out.attrs["engine"] = predictor.engine.name
    if tta["n"]:
        out.attrs.update(tta=dict(tta), uncertainty="tta")
    if slice_csv is not None:
        write_csv(slice_csv, pd.concat(slices, ignore_index=True) if slices else
                  slice_prediction_rows(pd.DataFrame(columns=["series", "slice", "path", "frame"]),
                                        np.zeros((0, 1)), task=contract.task,
                                        classes=list(contract.label_names)))
    return out


def _series_probabilities(predictor: _Predictor, x: np.ndarray, batch_size: int,
                          tta: dict[str, Any]) -> tuple[np.ndarray, float | None]:
    """A series' slice probabilities and, with TTA, the spread of its aggregated probability
    over the copies (each slice's copies seeded by its place in the series)."""
    if not tta["n"]:
        return predictor(x, batch_size), None
    copies = tta_predictions(lambda b: predictor(b, batch_size), x, tta["n"],
                             preset=tta["preset"], seed=tta["seed"], index=range(len(x)))
    c = copies.astype(np.float64).reshape(len(copies), len(x), -1)
    pre = predictor.contract.preprocessing or {}
    per_copy = np.stack([aggregate_scores(
        one, np.zeros(len(x), np.int64), 1, pre.get("series_aggregate", "max"),
        int(pre.get("top_k", 3)), renormalise=predictor.contract.task == "multiclass")
        for one in c])
    return c.mean(axis=0).astype(np.float32), float(tta_uncertainty(per_copy)[0])


def _series_path(one: Any) -> str:
    """How a series is named in predictions: its folder, or its file (multi-frame)."""
    paths = {s.path for s in one.slices}
    return paths.pop() if len(paths) == 1 else str(Path(one.slices[0].path).parent)


def _series_input(predictor: _Predictor, one: Any) -> tuple[np.ndarray, pd.DataFrame]:
    """The stacked model inputs of one ordered series, and its slice table."""
    from imaging_tl.data.series import series_key
    from imaging_tl.data.stacking import split_stack
    from imaging_tl.io import read_scan

    slice_pipe, stack = split_stack(predictor.pipe)
    assert slice_pipe is not None
    singles = [slice_pipe(read_scan(s.path, frame=s.frame)).pixels.astype(np.float32)
               for s in one.slices]
    if stack is None:
        x = np.stack(singles)
    else:
        n = len(singles)
        x = np.stack([stack.combine([singles[j] for j in stack.neighbours(k, n, one.spacing)])
                      for k in range(n)])
    if not np.isfinite(x).all():
        raise ValueError("the model input holds NaN or infinite values after preprocessing")
    predictor.contract.check_batch(x)
    table = pd.DataFrame({"series": series_key(one.uid), "group": "",
                          "slice": range(len(one.slices)),
                          "path": [s.path for s in one.slices],
                          "frame": pd.array([s.frame for s in one.slices], dtype="Int64")})
    return x, table


def predict_series_rows(table: pd.DataFrame, probs: np.ndarray, contract: Any) -> pd.DataFrame:
    """One row per series of ``table`` (``series, slice, path``) from its slices'
    probabilities, aggregated as the model's run did (its contract).

    Examples
    --------
    >>> from imaging_tl.models import ModelContract
    >>> c = ModelContract("efficientnet_lite0", "binary", ["normal", "lesion"], [8, 8], "x",
    ...                   preprocessing={"unit": "series", "series_aggregate": "mean"})
    >>> t = pd.DataFrame({"series": "ser:1", "group": "", "slice": [0, 1], "path": ["a", "b"]})
    >>> predict_series_rows(t, np.array([[0.2], [0.6]]), c)["prob_lesion"].round(3).tolist()
    [0.4]
    """
    pre = contract.preprocessing or {}
    out = series_prediction_rows(
        table, probs, task=contract.task, classes=list(contract.label_names),
        threshold=contract.threshold, how=pre.get("series_aggregate", "max"),
        top_k=int(pre.get("top_k", 3)))
    # a series is named by its folder (or its file, when one multi-frame file holds it)
    one_file = table.groupby("series")["path"].nunique() == 1
    out.insert(0, "path", [p if one_file[k] else str(Path(p).parent)
                           for k, p in zip(out["series"], out["deciding_path"], strict=True)])
    return out.drop(columns=["group"])


def _deciding_gradcam(predictor: _Predictor, x: np.ndarray, row: dict[str, Any], folder: Path,
                      index: int) -> str:
    """The Grad-CAM overlay of the slice that decided the series' prediction."""
    from imaging_tl.explain import save_overlays

    folder.mkdir(parents=True, exist_ok=True)
    name = folder / f"{index:04d}_series_slice{int(row['deciding_slice']):03d}.png"
    save_overlays(predictor.model, x[[int(row["deciding_slice"])]], [name], None)
    return str(name)
