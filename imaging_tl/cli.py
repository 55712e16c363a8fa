"""The ``imaging-tl`` command.

Each sub-command is a small function that parses nothing itself: argparse does the parsing,
the library does the work. Exit codes: 0 success, 2 bad usage or bad input, 1 anything else.

Examples
--------
>>> build_parser().prog
'imaging-tl'
>>> main(["census", "no/such/folder", "--out", "census.csv"])
2
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from imaging_tl._atomic import write_csv
from imaging_tl.cli_compare import add_compare
from imaging_tl.cli_pretrain import add_pretrain


class UsageError(Exception):
    """Bad input from the user: printed without a stack trace, exit code 2."""


def _census(args: argparse.Namespace) -> int:
    from imaging_tl.io.census import run_census

    try:
        if args.workers is not None or args.scheduler is not None:
            from imaging_tl.scale import census_dask

            summary = census_dask(
                args.directory, args.out, workers=args.workers, scheduler=args.scheduler,
                progress=not args.quiet, decode=args.decode,
                keep_patient_id=args.keep_patient_id,
            )
        else:
            summary = run_census(
                args.directory, args.out, progress=not args.quiet, decode=args.decode,
                keep_patient_id=args.keep_patient_id,
            )
    except (NotADirectoryError, ImportError, ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from exc
    print(summary.format())
    return 0


def _add_census(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "census",
        help="list every scan under a folder with its header fields and read status",
        description=(
            "Walk DIR (DICOM by content, also gzipped; PNG, JPEG, TIFF) and write one CSV row "
            "per file: the normalised header fields, the transfer syntax and whether the file "
            "reads. Headers are read without decoding pixels where possible. Ends with a lint "
            "summary (mixed photometric interpretations, missing decoders, duplicate "
            "SOPInstanceUIDs, failures and why). Patient names and birth dates are never "
            "written; PatientID is replaced by a pseudonym unless --keep-patient-id."
        ),
    )
    p.add_argument("directory", help="folder to walk (recursively)")
    p.add_argument("--out", default="census.csv", help="CSV file to write (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--decode",
        action="store_true",
        help="also decode every file's pixels (slower; finds corrupt compressed data that "
        "the header checks cannot see)",
    )
    p.add_argument(
        "--keep-patient-id",
        action="store_true",
        help="write PatientID as in the files (default: a pseudonym, 'pid:' + 16 hex digits "
        "of its SHA-256, which still groups a patient's files)",
    )
    _add_cluster_options(p)
    p.set_defaults(func=_census)


def _add_cluster_options(p: argparse.ArgumentParser, same: str = "rows",
                         shared: str = "the same paths") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N",
                   help="spread the files over a local Dask cluster of N worker processes "
                        f"(same {same} as without; needs the 'scale' extra)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use an existing Dask cluster (tcp://host:8786); its workers must "
                        f"see {shared}")


def _cache(args: argparse.Namespace) -> int:
    from imaging_tl.data.cache import ArrayCache

    if args.action == "build":
        return _cache_build(args)
    cache = ArrayCache(args.dir)
    if args.action == "info":
        print(cache.info().format())
        return 0
    try:
        removed = cache.clear(quarantine_only=args.quarantine)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    what = "quarantine records" if args.quarantine else f"{removed} cached arrays"
    print(f"cleared {what} in {cache.root}")
    return 0


def _cache_build(args: argparse.Namespace) -> int:
    """The cache of a run config, filled as ``imaging-tl run`` would (or on a Dask cluster)."""
    from imaging_tl.config import ConfigError, load_config
    from imaging_tl.data import BadFileError, prepare
    from imaging_tl.data.prepare import CacheWriteError
    from imaging_tl.pipeline import InputError, load_inputs
    from imaging_tl.stages import Pipeline

    try:
        cfg = load_config(args.config, args.set or [])
        # the table and pipeline `run` builds: the same entry keys, so `run` finds them warm
        table = load_inputs(cfg)
        pipe = Pipeline.from_config(cfg.preprocessing)
        progress = not args.quiet and sys.stderr.isatty()
        if args.workers is not None or args.scheduler is not None:
            from imaging_tl.scale import build_cache_dask

            prepared = build_cache_dask(
                table, pipe, cache=cfg.cache_dir, workers=args.workers,
                scheduler=args.scheduler, files_per_task=args.files_per_task,
                strict=cfg.data.strict, retry_quarantined=args.retry_quarantined,
                progress=progress, decode=cfg.data.decode)
        else:
            prepared = prepare(table, pipe, cache=cfg.cache_dir, workers=cfg.workers,
                               strict=cfg.data.strict, retry_quarantined=args.retry_quarantined,
                               progress=progress, decode=cfg.data.decode)
    except (ConfigError, InputError, ImportError, ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from exc
    except BadFileError as exc:
        raise UsageError(f"data.strict is on and a file is bad: {exc}") from exc
    except CacheWriteError as exc:  # the cache's disk, not the input: exit code 1
        print(f"imaging-tl cache: {exc}", file=sys.stderr)
        return 1
    print(prepared.summary())
    print(f"cache {prepared.cache.root} (pipeline {prepared.namespace}): "
          f"{len(prepared.table)} of {prepared.stats['samples']} samples ready")
    return 0


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache",
        help="build, show or clear the cache of preprocessed arrays",
        description=(
            "build: decode and preprocess every sample of a run CONFIG into the cache, as "
            "`imaging-tl run` does, locally or (--workers/--scheduler) on a Dask cluster; "
            "`run` on the same config then decodes nothing. info: entries, size and "
            "quarantined (unreadable) files per preprocessing pipeline, and left-over "
            "temporary files of interrupted writes. clear: delete the cached arrays (only in "
            "a folder that imaging-tl created as a cache)."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser(
        "build", help="fill the cache for every sample of a run config",
        description=(
            "Read CONFIG (as `imaging-tl run`), build its dataset table and preprocessing "
            "pipeline, and write every sample's preprocessed array into the cache (cache_dir "
            "of the config, else $IMAGING_TL_CACHE_DIR or ~/.cache/imaging_tl). Samples "
            "already cached are skipped; files that cannot be read are quarantined and listed "
            "with their reason, and the build goes on. Without --workers/--scheduler the "
            "config's `workers` processes of this machine do the work."),
    )
    b.add_argument("config", help="the pipeline YAML file that `imaging-tl run` will use")
    b.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                   help="override a key, as for `run` (give `run` the same overrides)")
    _add_cluster_options(b, same="entries",
                         shared="the same input paths and cache folder (a shared file system)")
    b.add_argument("--files-per-task", type=int, default=8, metavar="N",
                   help="files per Dask task (default: %(default)s)")
    b.add_argument("--retry-quarantined", action="store_true",
                   help="try files quarantined by an earlier build or run again")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, text in (("info", "entries, size and quarantined files per pipeline"),
                       ("clear", "delete the cached arrays")):
        a = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        a.add_argument("--dir", default=None,
                       help="cache folder (default: $IMAGING_TL_CACHE_DIR or "
                            "~/.cache/imaging_tl)")
        if name == "clear":
            a.add_argument("--quarantine", action="store_true",
                           help="only forget the quarantined files (they are retried next run)")
    p.set_defaults(func=_cache)


def _run(args: argparse.Namespace) -> int:
    from imaging_tl.config import ConfigError
    from imaging_tl.pipeline import InputError, run

    if args.config is None and args.resume is None:
        raise UsageError("give a CONFIG file (or --resume RUN_DIR)")
    sets = [*(args.set or []), *([f"split.fold={args.fold}"] if args.fold is not None else [])]
    try:
        if args.check:
            from imaging_tl.config import load_config

            print(load_config(args.config, sets).to_yaml(), end="")
            print("configuration is valid", file=sys.stderr)
            return 0
        result = run(args.config, out=args.out, resume=args.resume, overrides=sets,
                     verbose=not args.quiet)
    except (ConfigError, InputError) as exc:
        raise UsageError(str(exc)) from exc
    print(result.summary())
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a whole pipeline from a YAML file and write a run directory",
        description=(
            "census -> dataset -> splits + leakage audit -> cache -> phased training -> "
            "evaluation -> export, writing runs/<name>-<timestamp>/ (config.yaml, run.json, "
            "census.csv, splits.csv, model.keras + contract.json, history.csv, metrics.json, "
            "predictions.csv, plots/, gradcam/, report.html). The configuration is validated "
            "first and every problem is listed. Interrupted (Ctrl-C, killed), continue with "
            "--resume RUN_DIR from the last completed epoch."
        ),
    )
    p.add_argument("config", nargs="?", help="the pipeline YAML file (see pipelines/)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                   help="override a key, e.g. --set train.phases.0.epochs=3 (repeatable; "
                   "values are YAML)")
    p.add_argument("--out", help="run directory to create (default: <output>/<name>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run (uses its config.yaml)")
    p.add_argument("--check", action="store_true",
                   help="only validate the configuration and print it resolved")
    p.add_argument("--fold", type=int, metavar="K", help="split.method kfold: train fold K "
                   "only (default: every fold, and their ensemble); as --set split.fold=K")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_verbose(p)
    p.set_defaults(func=_run)


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true",
                   help="keep TensorFlow's own start-up and log lines (hidden by default "
                        "unless TF_CPP_MIN_LOG_LEVEL=0)")


def _predict(args: argparse.Namespace) -> int:
    from imaging_tl.pipeline import InputError, predict_files
    from imaging_tl.pipeline.predict import domain_notes

    slices: Path | None = None
    try:
        if args.workers is not None or args.scheduler is not None:
            from imaging_tl.scale import predict_dask

            if args.gradcam or args.tta or args.per_slice:
                raise UsageError("--gradcam, --tta and --per-slice do not run with "
                                 "--workers/--scheduler")
            df = predict_dask(args.model, args.inputs, workers=args.workers,
                              scheduler=args.scheduler, engine=args.engine,
                              batch_size=args.batch_size, num_threads=args.threads or 1,
                              domain=args.domain)
        else:
            slices = Path(args.out).with_name("slice_predictions.csv") if args.per_slice \
                else None
            if slices is not None and slices.resolve() == Path(args.out).resolve():
                raise UsageError("--per-slice writes slice_predictions.csv beside --out; "
                                 "name --out otherwise")
            df = predict_files(args.model, args.inputs, batch_size=args.batch_size,
                               gradcam_dir=args.gradcam, engine=args.engine,
                               num_threads=args.threads, domain=args.domain,
                               tta=args.tta, tta_preset=args.tta_preset, seed=args.seed,
                               slice_csv=slices)
    except (InputError, ImportError, ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from exc
    out = write_csv(args.out, df)
    ok, unit = int((df["status"] == "ok").sum()), "series" if "series" in df.columns else "file(s)"
    how = {"tta": f", TTA {args.tta} copies ({args.tta_preset}, seed {args.seed})",
           "ensemble": ", uncertainty: the spread of the fold ensemble's members"}
    print(f"predicted {ok} of {len(df)} {unit} with {df.attrs.get('engine')}"
          f"{how.get(df.attrs.get('uncertainty'), '')} -> {out}"
          + (f" (per slice: {slices})" if slices is not None else ""))
    for line in domain_notes(df, args.domain):
        print(line, file=sys.stderr)
    for r in df[df["status"] == "error"].itertuples():
        print(f"  could not predict {r.path}: {r.reason}", file=sys.stderr)
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict files or folders with a trained model",
        description=(
            "Read DICOM/PNG/JPEG/TIFF files (folders are walked), preprocess them exactly as "
            "the model's contract says (no preprocessing flags), and write one CSV row per "
            "file: the probability of every class, the decision at the stored threshold, and "
            "for a file that cannot be read, its reason (the other files are still predicted)."
        ),
    )
    p.add_argument("model", help="model.keras (or its run directory)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders")
    p.add_argument("--out", default="predictions.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--gradcam", metavar="DIR", help="also write Grad-CAM overlays to DIR")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--engine", default="auto", choices=["auto", "keras", "onnxruntime", "tflite"],
                   help="inference engine (default: %(default)s = Keras on a GPU, else the "
                        "fastest correct CPU engine; an export made by `imaging-tl export` "
                        "beside the model is used, else one is converted once and cached)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of ONNX Runtime / TFLite (default: all cores; 1 per "
                        "worker with --workers)")
    p.add_argument("--domain", default="flag", choices=["flag", "strict", "off"],
                   help="the domain gate: flag (default) predicts every file and marks those "
                        "unlike the training data (domain=out_of_domain, domain_reason); "
                        "strict skips them; off does not check")
    p.add_argument("--tta", type=int, default=0, metavar="N", help="test-time augmentation: the "
                   "mean probability over each image and N augmented copies (0: off); "
                   "--tta-preset light|medium|heavy (never a vertical flip), --seed")
    p.add_argument("--tta-preset", default="light", choices=["light", "medium", "heavy"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-slice", action="store_true",
                   help="a model trained on series: also write one row per slice (series, "
                        "slice, path, probabilities) to slice_predictions.csv beside --out")
    _add_verbose(p)
    _add_cluster_options(p)
    p.set_defaults(func=_predict)


def _evaluate(args: argparse.Namespace) -> int:
    from imaging_tl.pipeline import InputError, reevaluate
    from imaging_tl.pipeline.external import recalibration_summary

    try:
        m = reevaluate(args.run_dir, data=args.data, label_column=args.label_column,
                       out=args.out, n_bootstraps=args.bootstrap,
                       recalibrate=args.recalibrate)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    from imaging_tl.pipeline import RunResult

    name, value, _ = (res := RunResult(Path(args.run_dir), None, m)).headline()
    print(f"{m['evaluated_on']}: {m.get('n_images')} images, {name} "
          f"{res.headline_text()}" if value is not None else f"{m['evaluated_on']}: no AUC")
    for note in m.get("small_sample", []):
        print(f"  caution, small sample: {note}")
    if m.get("n_unreadable"):
        print(f"  {m['n_unreadable']} file(s) could not be read and were left out:",
              file=sys.stderr)
        for bad in m.get("unreadable", [])[:5]:
            print(f"    {bad['path']}: {bad['reason']}", file=sys.stderr)
    if m.get("recalibration"):
        print("  " + recalibration_summary(m["recalibration"]))
    print(f"metrics -> {m['written']}" + (f"\npage -> {m['page']}" if m.get("page") else ""))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="re-evaluate a trained run on its test split or on a new labelled set",
        description=(
            "Evaluate the model of RUN_DIR again, on its own test split or (--data) on an "
            "external labelled set: a CSV with path and label columns, or a folder with one "
            "sub-folder per class. The threshold stored with the model is kept. Writes "
            "RUN_DIR/evaluation-<name>.json (or --out)."
        ),
    )
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--data", help="external validation data (CSV or class folders)")
    p.add_argument("--label-column", default="label", help="label column of a CSV")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (default: the run's)")
    p.add_argument("--out", help="JSON file to write")
    p.add_argument("--recalibrate", type=float, metavar="FRACTION",
                   help="with --data: fit temperature and threshold on this share of the "
                        "external patients, evaluate the rest before and after")
    p.set_defaults(func=_evaluate)


def _export(args: argparse.Namespace) -> int:
    from imaging_tl.deploy import ExportError, export_model
    from imaging_tl.models import model_file

    try:
        model = model_file(args.model)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    sample = None
    if args.sample:
        sample = _sample_inputs(model, args.sample)
    try:
        res = export_model(model, args.format, args.out, sample=sample, atol=args.atol)
    except ExportError as exc:
        print(f"imaging-tl export: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(res.summary())
    return 0


def _sample_inputs(model: Path, files: list[str]):
    """Preprocess real files with the model's own contract (for the export check)."""
    import json

    import numpy as np

    from imaging_tl.io import ScanReadError, read_scan
    from imaging_tl.stages import Pipeline

    contract = json.loads(model.with_name("contract.json").read_text()) \
        if model.with_name("contract.json").is_file() else None
    if not contract or not (contract.get("preprocessing") or {}).get("stages"):
        raise UsageError(f"{model}: no contract.json with the preprocessing beside it")
    pipe = Pipeline.from_config(contract["preprocessing"]["stages"])
    out = []
    for f in files:
        try:
            out.append(pipe(read_scan(f)).pixels)
        except (ScanReadError, ValueError) as exc:
            raise UsageError(f"--sample {f}: {exc}") from exc
    return np.stack(out).astype("float32")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model (keras, savedmodel, onnx, tflite) with its contract",
        description=("Convert model.keras and check that the export gives the same outputs "
                     "as the Keras model (within --atol) on real scans (--sample, preprocessed "
                     "with the model's contract) or on a seeded random batch. contract.json is "
                     "written beside the export."))
    p.add_argument("model", help="model.keras (or its run directory)")
    p.add_argument("--format", required=True, choices=["keras", "savedmodel", "onnx", "tflite"])
    p.add_argument("--out", help="folder for the export (default: export/ beside the model)")
    p.add_argument("--sample", nargs="+", metavar="FILE",
                   help="real scans to compare the outputs on")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference")
    p.set_defaults(func=_export)


def _backbones(args: argparse.Namespace) -> int:
    from imaging_tl.models import get_spec, list_backbones

    rows = []
    for name in list_backbones():
        spec = get_spec(name)
        rows.append((name, f"{spec.input_size}", f"{_param_count(name)}",
                     spec.normalization, _weights_offline(spec),
                     str(len(spec.freeze_points))))
    head = ("backbone", "input", "parameters", "normalisation", "weights offline",
            "freeze points (--verbose)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if args.verbose:
        for name in list_backbones():
            print(f"\n{name} freeze points: {', '.join(get_spec(name).freeze_points)}")
    if args.runs is not None:
        _source_runs(args.runs)
    return 0


def _source_runs(folder: str) -> None:
    """The finished runs under ``folder``, usable as ``model.source``."""
    from imaging_tl.models.source import find_source_runs

    runs, unfinished = find_source_runs(folder)
    print(f"\nfinished runs under {folder} (usable as model.source): {len(runs)}")
    rows = [(str(r["path"]), r["backbone"], r["task"], ", ".join(r["labels"]),
             f"{r['input_size']}", r["finished"][:19]) for r in runs]
    if rows:
        head = ("run", "backbone", "task", "labels", "input", "finished")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if unfinished:
        print(f"({len(unfinished)} run(s) that did not finish skipped: "
              f"{', '.join(p.name for p in unfinished[:5])})")


# Parameter counts without the 1000-class top, from build_backbone(name, weights=None,
# include_top=False).count_params() (tests/cli checks Lite0); building every backbone at
# each call would take a minute on 2 cores. A domain backbone counts as its architecture.
PARAMS = {"efficientnet_lite0": 3_413_024, "efficientnet_lite1": 4_189_344,
          "efficientnet_lite2": 4_869_168, "efficientnet_b0": 4_049_571,
          "resnet50": 23_587_712, "densenet121": 7_037_504, "mobilenet_v2": 2_257_984,
          "inception_v3": 21_802_784, "inception_resnet_v2": 54_336_736}


def _param_count(name: str) -> str:
    from imaging_tl.models.weights.domain import DOMAIN_WEIGHTS

    n = PARAMS.get(DOMAIN_WEIGHTS[name].architecture if name in DOMAIN_WEIGHTS else name)
    return f"{n / 1e6:.2f} M" if n else "?"


def _weights_offline(spec) -> str:
    from imaging_tl.models import WeightsFileError
    from imaging_tl.models.weights import lite_weights_source
    from imaging_tl.models.weights.domain import DOMAIN_WEIGHTS, domain_weights_file

    if spec.name in DOMAIN_WEIGHTS:
        try:
            return f"yes ({domain_weights_file(spec.name).name})"
        except WeightsFileError:
            return f"no (user-supplied {DOMAIN_WEIGHTS[spec.name].filename}; see README)"
    if spec.family != "efficientnet_lite":
        return "no (Keras download; or a local file)"
    try:
        lite_weights_source(spec.name)
    except WeightsFileError as exc:
        return f"no ({exc.reason})"
    return "yes"


def _add_backbones(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backbones",
        help="list the backbones (and, with --runs, finished runs usable as sources)",
        description="The backbone registry (names usable as model.backbone).",
    )
    p.add_argument("--verbose", action="store_true", help="also list every freeze point")
    p.add_argument("--runs", metavar="FOLDER",
                   help="also list the finished runs under FOLDER, usable as model.source "
                        "(name, backbone, task, labels, date)")
    p.set_defaults(func=_backbones)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imaging-tl",
        description="Transfer learning for radiology: census, train, evaluate, predict, export.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_run(sub)
    add_pretrain(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_backbones(sub)
    _add_census(sub)
    _add_cache(sub)
    add_compare(sub)
    return parser


def quiet_logging(argv: Sequence[str]) -> bool:
    """Silence TensorFlow's C++/absl start-up lines unless ``--verbose`` is among ``argv``
    or the user asked for them (``TF_CPP_MIN_LOG_LEVEL=0``); returns whether it did.

    Must run before TensorFlow is imported (the C++ side reads the variable once, and the
    notices are written during the import: :mod:`imaging_tl._tf_quiet`).

    Examples
    --------
    >>> quiet_logging(["run", "x.yaml", "--verbose"])
    False
    """
    if "--verbose" in argv or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's own INFO and WARNING lines
    import logging

    from imaging_tl._tf_quiet import hide_tensorflow_start_up

    hide_tensorflow_start_up()  # the import-time notices the variable no longer hides
    logging.getLogger("absl").setLevel(logging.ERROR)  # absl's Python warnings (keras saving)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter hides our own messages on a terminal
    quiet_logging(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"imaging-tl {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
