"""Census throughput: the plain loop against Dask with 1 and 2 local workers (same run).

Corpus: the real DICOM files of pydicom's test files and pydicom-data (about 240 files,
CT/MR/CR/US, every transfer syntax, some broken), linked into one folder and repeated
``--copies`` times. Two workloads: headers only (the default census) and ``--decode``
(every file's pixels decoded: JPEG 2000 dominates). Each figure is files/s (best of
``--repeats``) and its ratio to the plain loop; the Dask path's per-file overhead is
(time with 1 worker - plain time) / files. Rows are checked identical to the plain loop's.

Usage::

    .venv/bin/python benchmarks/dask_census.py [--copies 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def corpus(copies: int) -> Path:
    import pydicom.data

    dirs = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    root = Path(tempfile.mkdtemp(prefix="bench-census-"))
    for c in range(copies):
        for d in dirs:
            for f in sorted(d.rglob("*.dcm")):
                target = root / f"copy{c}" / d.name / f.relative_to(d)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(f, target)
    return root


def best(fn, repeats: int) -> tuple[float, object]:
    out, t = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from imaging_tl.io.census import run_census
    from imaging_tl.scale import census_dask, dask_client

    root = corpus(args.copies)
    for decode in (False, True):
        what = "decode" if decode else "headers"
        t_plain, plain = best(lambda d=decode: run_census(root, None, progress=False,
                                                           decode=d), args.repeats)
        n = len(plain.rows)
        print(f"census {what}: {n} files; plain loop {n / t_plain:7.1f} files/s   1.00x")
        t1 = None
        for w in (1, 2):
            t0 = time.perf_counter()
            with dask_client(workers=w) as client:
                t_start = time.perf_counter() - t0
                t, res = best(lambda d=decode, c=client: census_dask(
                    root, None, client=c, decode=d, batch_size=16, progress=False),
                    args.repeats)
            assert res.rows == plain.rows, "Dask census rows differ from the plain loop's"
            t1 = t if w == 1 else t1
            print(f"  dask {w} worker(s)  {n / t:7.1f} files/s   {t_plain / t:.2f}x "
                  f"(running cluster; starting it took {t_start:.1f} s)")
        print(f"  Dask per-file overhead (1 worker vs plain): {(t1 - t_plain) / n * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
