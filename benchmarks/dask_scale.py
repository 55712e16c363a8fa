"""Prediction and cache build on Dask (1 and 2 local workers) against the plain paths.

Corpus: the single-frame DICOM files of pydicom's test files and pydicom-data (CT, MR, CR
radiographs of ~1800 x 1900 px, US, SC; every transfer syntax; some broken: those are rows
with a reason), linked into one folder and repeated ``--copies`` times.

- predict: an efficientnet_lite0 transfer model (ImageNet weights, ``--size`` px input,
  saved with its preprocessing contract) predicted with the default engine by the plain
  ``imaging-tl predict`` loop (:func:`imaging_tl.pipeline.predict_files`, engine threads on
  all cores) = 1.00x, against :func:`imaging_tl.scale.predict_dask` on a running
  LocalCluster of 1 and 2 workers (1 engine thread each). The Dask path's per-file overhead
  is (1 worker - plain loop with 1 engine thread) / files. Probabilities are checked equal.
- cache build: the local :func:`imaging_tl.data.prepare` (one process per core) = 1.00x,
  against :func:`imaging_tl.scale.build_cache_dask` with 1 and 2 workers, each into an empty
  cache; entries are checked byte-identical. Per-file overhead: (1 worker - prepare() in
  one process) / files.

Cluster start-up (and the workers' first import of the engine) is timed apart, on a warm-up
task. Figures are files/s, best of ``--repeats``.

Usage::

    .venv/bin/python benchmarks/dask_scale.py [--copies 1] [--repeats 2] [--size 64] [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path


def corpus(copies: int) -> tuple[Path, list[str]]:
    """Symlinks to every single-frame real DICOM file (and the broken ones)."""
    import pydicom
    import pydicom.data

    dirs = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    files = []
    for c in range(copies):
        for d in dirs:
            for f in sorted(d.rglob("*.dcm")):
                try:
                    ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
                    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                        continue
                except Exception:  # noqa: BLE001 - a broken header stays: a row with a reason
                    pass
                target = root / f"copy{c}" / d.name / f.relative_to(d)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(f, target)
                files.append(str(target))
    return root, files


def best(fn, repeats: int) -> tuple[float, object]:
    out, t = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def tree(root: Path) -> dict[str, bytes]:
    """A cache's files but its look-up index (a hint whose records depend on timing)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("index-")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="model input size (px)")
    ap.add_argument("--files-per-task", type=int, default=32, help="predict: files per task")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (a check)")
    args = ap.parse_args()

    # the broken files' decoder errors are rows with a reason; keep the terminal readable
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-work-"))
    os.environ["IMAGING_TL_CACHE_DIR"] = str(work / "engine-cache")  # workers inherit it
    import numpy as np
    import pandas as pd

    from imaging_tl.data import prepare
    from imaging_tl.scale import build_cache_dask, dask_client, predict_dask
    from imaging_tl.stages import Pipeline, Resize, ToGrey, ToRGB, Window

    root, files = corpus(args.copies)
    files = files[:args.limit]
    n = len(files)
    pipe = Pipeline([ToGrey(), Window(mode="header", fallback="percentile"),
                     Resize(args.size), ToRGB()])
    print(f"corpus: {n} single-frame DICOM files ({args.copies} cop(y/ies)); "
          f"{os.cpu_count()} CPUs")

    # -- cache build
    table = pd.DataFrame({"path": files})

    def fresh(name: str) -> Path:
        d = work / name
        shutil.rmtree(d, ignore_errors=True)
        return d

    t_local, local = best(lambda: prepare(table, pipe, cache=fresh("cache-local")),
                          args.repeats)
    print(f"cache build: {len(local.table)} of {n} files cached, "
          f"{len(local.quarantined)} quarantined")
    print(f"  local prepare() ({os.cpu_count()} processes) {n / t_local:7.1f} files/s   1.00x")
    t_serial, _ = best(lambda: prepare(table, pipe, cache=fresh("cache-serial"), workers=1),
                       args.repeats)
    print(f"  local prepare() (1 process)   {n / t_serial:7.1f} files/s   "
          f"{t_local / t_serial:.2f}x")
    t_one = None
    for w in (1, 2):
        t0 = time.perf_counter()
        with dask_client(workers=w) as client:
            # every worker imports the readers once (client.run: on each worker)
            client.run(prepare, table.iloc[:2], pipe, cache=fresh("warm-up"),
                       executor="serial")
            t_start = time.perf_counter() - t0
            t, res = best(lambda c=client, w=w: build_cache_dask(
                table, pipe, cache=fresh(f"cache-dask{w}"), client=c, progress=False),
                args.repeats)
        assert res.stats["decoded"] == n and len(res.table) == len(local.table)
        assert tree(work / f"cache-dask{w}") == tree(work / "cache-local"), "entries differ"
        print(f"  dask {w} worker(s)            {n / t:7.1f} files/s   {t_local / t:.2f}x "
              f"(of which {res.stats['collect_seconds']:.2f} s collecting here; start-up + "
              f"imports {t_start:.1f} s, not counted)")
        t_one = t if w == 1 else t_one
    print(f"  Dask per-file overhead (1 worker vs prepare() in 1 process): "
          f"{(t_one - t_serial) / n * 1e3:.2f} ms")

    # the model (imports TensorFlow) after the cache build: prepare()'s pool forks cheaply
    # only while TensorFlow is not loaded, as in `imaging-tl cache build`
    from imaging_tl.deploy.engines import default_engine, exported_model
    from imaging_tl.models import build_transfer_model, save_transfer_model
    from imaging_tl.pipeline import predict_files

    model = build_transfer_model("efficientnet_lite0", "binary", ["normal", "finding"],
                                 input_size=args.size)
    contract = model.imaging_tl_contract
    contract.preprocessing = {"stages": pipe.to_config(), "fingerprint": pipe.fingerprint()}
    mp = work / "model.keras"
    save_transfer_model(model, mp, contract)
    engine = default_engine()
    exported_model(mp, engine)  # converted once, outside every timing
    print(f"model efficientnet_lite0 {args.size} px, engine {engine}")

    # -- predict
    t_plain, plain = best(lambda: predict_files(mp, files, engine=engine), args.repeats)
    t_plain1, _ = best(lambda: predict_files(mp, files, engine=engine, num_threads=1),
                       args.repeats)
    ok = int((plain["status"] == "ok").sum())
    print(f"predict: {ok} of {n} files predicted")
    print(f"  plain loop (all cores)   {n / t_plain:7.1f} files/s   1.00x")
    print(f"  plain loop (1 thread)    {n / t_plain1:7.1f} files/s   {t_plain / t_plain1:.2f}x")
    t_one = None
    for w in (1, 2):
        t0 = time.perf_counter()
        with dask_client(workers=w) as client:
            # every worker imports the engine once (client.run: on each worker)
            client.run(predict_files, mp, files[:2], engine=engine, num_threads=1)
            t_start = time.perf_counter() - t0
            t, df = best(lambda c=client: predict_dask(
                mp, files, client=c, engine=engine, files_per_task=args.files_per_task,
                progress=False), args.repeats)
        assert list(df["status"]) == list(plain["status"]), "statuses differ"
        np.testing.assert_allclose(df["prob_finding"].to_numpy(float),
                                   plain["prob_finding"].to_numpy(float), atol=1e-5)
        t_one = t if w == 1 else t_one
        print(f"  dask {w} worker(s)         {n / t:7.1f} files/s   {t_plain / t:.2f}x "
              f"(start-up + engine import {t_start:.1f} s, not counted)")
    print(f"  Dask per-file overhead (1 worker vs plain loop, 1 thread): "
          f"{(t_one - t_plain1) / n * 1e3:.2f} ms")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
