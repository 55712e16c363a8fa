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
from imaging_tl.io.pseudonyms import pseudonymize
from imaging_tl.pipeline.inputs import InputError, expand_inputs

__all__ = ["decisions", "domain_notes", "predict_files", "predict_series_rows",
           "probability_columns", "series_prediction_rows"]


def probability_columns(task: str, classes: list[str],
                        probs: np.ndarray) -> dict[str, np.ndarray]:
    """``prob_<class>`` columns of model outputs (binary: both classes).

    Examples
    --------
    >>> cols = probability_columns("binary", ["normal", "nodule"], np.array([[0.25]]))
    >>> {k: v.tolist() for k, v in cols.items()}
    {'prob_normal': [0.75], 'prob_nodule': [0.25]}
    """
    # float64: its CSV text reads back exactly, so "prob >= threshold" agrees with the file
    probs = np.asarray(probs, dtype=np.float64)
    if task == "binary":
        p = probs.reshape(-1)
        return {f"prob_{classes[0]}": 1.0 - p, f"prob_{classes[1]}": p}
    return {f"prob_{c}": probs[:, i] for i, c in enumerate(classes)}


def decisions(task: str, classes: list[str], probs: np.ndarray, threshold: float) -> list[str]:
    """The predicted label of each row (multilabel: the labels at or above the threshold,
    joined by ``;``).

    Examples
    --------
    >>> decisions("binary", ["normal", "nodule"], np.array([[0.7], [0.2]]), 0.5)
    ['nodule', 'normal']
    """
    if task == "binary":
        return [classes[1] if p >= threshold else classes[0] for p in probs.reshape(-1)]
    if task == "multiclass":
        return [classes[i] for i in probs.argmax(1)]
    return [";".join(c for c, on in zip(classes, row >= threshold, strict=True) if on)
            for row in probs]


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
        then holds the Grad-CAM of each series' deciding slice.

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
        if tta:
            raise InputError("--tta: not for a model trained on series (data.unit series)")
        return _predict_series(predictor, files, batch_size, gradcam_dir)
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
                    gradcam_dir: str | os.PathLike | None) -> pd.DataFrame:
    """:func:`predict_files` for a series model: one row per series, bad ones with why."""
    from imaging_tl.io.series import scan_series

    series, failed = scan_series(files)
    rows: list[dict[str, Any]] = []
    for one in series:
        where = _series_path(one)
        if one.flagged:
            rows.append({"path": where, "status": "error", "reason": "; ".join(one.problems),
                         "n_slices": len(one.slices)})
            continue
        try:
            x, table = _series_input(predictor, one)
            p = predictor(x, batch_size)
        except Exception as exc:  # noqa: BLE001 - a bad series is a row with its reason
            rows.append({"path": where, "status": "error", "reason": failure_reason(exc),
                         "n_slices": len(one.slices)})
            continue
        row = predict_series_rows(table, p, predictor.contract).iloc[0].to_dict()
        if gradcam_dir is not None:
            row["gradcam"] = _deciding_gradcam(predictor, x, row, Path(gradcam_dir), len(rows))
        rows.append({"status": "ok", "reason": "", **row})
    rows += [{"path": path, "status": "error", "reason": why} for path, why in failed.items()]
    out = pd.DataFrame(rows)
    out["threshold"] = predictor.contract.threshold
    for column in ("n_slices", "deciding_slice"):
        if column in out.columns:
            out[column] = out[column].astype("Int64")
    front = [c for c in ("path", "series", "status", "reason", "n_slices") if c in out.columns]
    out = out[front + [c for c in out.columns if c not in front]]
    out.attrs["engine"] = predictor.engine.name
    return out


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
                          "path": [s.path for s in one.slices]})
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


def series_prediction_rows(rows: pd.DataFrame, probs: np.ndarray, *, task: str,
                           classes: list[str], threshold: float, how: str, top_k: int,
                           split: str | None = None) -> pd.DataFrame:
    """One row per series: its patient (pseudonym), label, slice count, aggregated
    probabilities, decision, and the slice that decided (highest probability of the
    positive class, binary; else of the predicted class).

    Examples
    --------
    >>> rows = pd.DataFrame({"series": ["s1"] * 3, "group": ["pid:1"] * 3, "slice": [0, 1, 2],
    ...                      "path": ["a", "b", "c"], "label": ["lesion"] * 3})
    >>> out = series_prediction_rows(rows, np.array([[0.1], [0.8], [0.3]]), task="binary",
    ...                              classes=["normal", "lesion"], threshold=0.5, how="max",
    ...                              top_k=3)
    >>> out[["n_slices", "prob_lesion", "predicted", "deciding_path"]].values.tolist()
    [[3, 0.8, 'lesion', 'b']]
    """
    keys, codes = np.unique(rows["series"].astype(str).to_numpy(), return_inverse=True)
    p = np.asarray(probs, dtype=np.float64)
    p2 = p.reshape(len(rows), -1)
    agg = aggregate_scores(p2, codes, len(keys), how, top_k,  # type: ignore[arg-type]
                           renormalise=task == "multiclass")
    first = np.array([np.flatnonzero(codes == k)[0] for k in range(len(keys))])
    column = p2[:, -1] if task == "binary" else p2[np.arange(len(p2)), p2.argmax(1)]
    deciding = np.array([np.flatnonzero(codes == k)[np.argmax(column[codes == k])]
                         for k in range(len(keys))])
    out = pd.DataFrame({"series": keys,
                        "group": pseudonymize(rows["group"].astype(str).to_numpy()[first]),
                        "n_slices": np.bincount(codes, minlength=len(keys))})
    if split is not None:
        out.insert(1, "split", split)
    if "label" in rows.columns:
        out["label"] = rows["label"].astype(str).to_numpy()[first]
    for name, values in probability_columns(task, classes, agg).items():
        out[name] = values
    out["predicted"] = decisions(task, classes, agg, threshold)
    out["deciding_slice"] = rows["slice"].to_numpy()[deciding]
    out["deciding_path"] = rows["path"].astype(str).to_numpy()[deciding]
    return out
