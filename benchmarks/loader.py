"""Loader benchmark: ``read_scan`` against plain ``pydicom.dcmread(path).pixel_array``.

Runs on the real single-frame grey DICOM files of pydicom's test files and pydicom-data
(every one that decodes). For each file the two readers alternate ``--repeats`` times and
the best time of each counts. Times are CPU time of this process (``time.process_time``):
on a shared machine wall time mostly measures the neighbours, and noise only ever adds. Prints
images/s over all files, the uncompressed and the compressed ones, and the ratio
read_scan / plain decode (goal: <= 1.15 over the corpus). read_scan does more than the
baseline (content sniffing, header checks, ``meta``, Modality LUT to float32); the ratio
is what that costs.

Usage: ``.venv/bin/python benchmarks/loader.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pydicom
import pydicom.data

from imaging_tl import ScanReadError, read_scan

GREY = ("MONOCHROME1", "MONOCHROME2")


def corpus() -> list[Path]:
    """Single-frame grey files of both corpora that decode."""
    dirs = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        print("pydicom-data not installed: pydicom's test files only")
    files = []
    for d in dirs:
        for p in sorted(d.glob("*.dcm")):
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
                grey = ds.get("PhotometricInterpretation", "") in GREY
                single = int(ds.get("NumberOfFrames") or 1) == 1
                if grey and single:
                    read_scan(p)  # keep only files that decode
                    files.append(p)
            except (ScanReadError, Exception):
                continue
    return files


def plain(path: Path) -> None:
    pydicom.dcmread(path).pixel_array  # noqa: B018 - the decode is the point


def ours(path: Path) -> None:
    read_scan(path)


def best_times(path: Path, repeats: int) -> tuple[float, float]:
    """Best time of each reader over ``repeats`` alternating runs (after one warm-up)."""
    plain(path)
    ours(path)
    best = {"plain": float("inf"), "ours": float("inf")}
    for r in range(repeats):
        pair = (("plain", plain), ("ours", ours))
        for name, fn in pair if r % 2 == 0 else pair[::-1]:
            t0 = time.process_time()
            fn(path)
            best[name] = min(best[name], time.process_time() - t0)
    return best["plain"], best["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="runs per file (default 11)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    files = corpus()
    results = {p: best_times(p, args.repeats) for p in files}
    compressed = {
        p for p in files
        if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    }
    print(f"{len(files)} single-frame grey files ({len(compressed)} compressed), "
          f"best of {args.repeats} alternating runs per file")
    groups = {
        "all": files,
        "uncompressed": [p for p in files if p not in compressed],
        "compressed": [p for p in files if p in compressed],
    }
    for label, subset in groups.items():
        if not subset:
            continue
        t_plain = sum(results[p][0] for p in subset)
        t_ours = sum(results[p][1] for p in subset)
        print(f"{label:>13}: plain {len(subset) / t_plain:7.1f} img/s, read_scan "
              f"{len(subset) / t_ours:7.1f} img/s, ratio read_scan/plain = {t_ours / t_plain:.3f}")
    big = [p for p in groups["uncompressed"] if results[p][0] > 1e-3]
    if big:
        t_plain = sum(results[p][0] for p in big)
        t_ours = sum(results[p][1] for p in big)
        print(f"  uncompressed files over 1 ms ({len(big)}): ratio {t_ours / t_plain:.3f}")
    for p in sorted(files, key=lambda p: results[p][1] / results[p][0])[-3:]:
        t_plain, t_ours = results[p]
        print(f"  highest ratio: {p.name} {t_ours / t_plain:.2f}x ({t_plain * 1e3:.2f} ms plain)")
    census_speed(sorted({p.parent for p in files}))


def census_speed(folders: list[Path]) -> None:
    """The census reads headers only: its cost against decoding every file (--decode)."""
    from imaging_tl.io.census import run_census

    for folder in folders:
        t0 = time.process_time()
        n = len(run_census(folder, None, progress=False).rows)
        t_header = time.process_time() - t0
        t0 = time.process_time()
        run_census(folder, None, progress=False, decode=True)
        t_decode = time.process_time() - t0
        print(f"census of {folder.parent.name}/{folder.name} ({n} files): headers only "
              f"{n / t_header:.0f} files/s, with decoding {n / t_decode:.0f} files/s, "
              f"ratio decode/headers = {t_decode / t_header:.1f}")


if __name__ == "__main__":
    main()
