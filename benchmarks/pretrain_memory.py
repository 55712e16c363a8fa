"""Is ``imaging-tl pretrain`` memory-flat in the number of cached images? (issue 16)

For each archive size N, a folder of N small grey PNGs (32 px, seeded noise) is
preprocessed into a fresh array cache in one process; then, in a new process, the library's
:func:`imaging_tl.pretrain.pretrain` runs over the cached images (every array a cache hit)
for one epoch of a fixed number of steps, and the process's peak RSS (``ru_maxrss``) is
read. The claim: 100,000 cached images raise the peak by at most 10 % over 1,000.

Settings::

    .venv/bin/python benchmarks/pretrain_memory.py                 # 1,000 vs 100,000
    .venv/bin/python benchmarks/pretrain_memory.py --sizes 1000,5000 --steps 10   # smoke

The arrays are streamed batch by batch. What grows with N is the per-image bookkeeping:
while the images are looked up and indexed, the dataset table, the cache's look-up index
and each image's cache record (~3.5 KB an image at this size, measured at 20,000 images);
pretrain then keeps only the streaming form of the table (``Prepared.streaming``: cache
file, offset, checksum, ~200 bytes an image) and TensorFlow's shuffle buffer of the
epoch's indices, and hands the rest back to the system before training
(``release_memory``), so the peak is training's. Measured (BENCHMARKS.md, load ~2.7 from
other jobs): 1,238 MiB with 1,000 images, 1,293 MiB with 100,000: ratio 1.045; a second
run 1.037 (it was 1.24 before). Run-to-run noise of the peak is about +-40 MiB. The
preparation's own transient peak still grows ~3.5 KB an image; at this size it stays under
training's up to ~150,000 images.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_images(folder: Path, n: int, size: int = 32) -> None:
    """``n`` seeded 8-bit grey PNGs in sub-folders of 1,000."""
    from PIL import Image

    rng = np.random.default_rng(n)
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            sub / f"{i:06d}.png")


def config(folder: Path, cache: Path, runs: Path, steps: int) -> dict:
    return {"name": "mem", "output": str(runs), "cache_dir": str(cache), "workers": 2,
            "data": {"folder": str(folder)}, "model": {"input_size": 32, "source": "none"},
            "pretrain": {"epochs": 1, "steps_per_epoch": steps, "batch_size": 32,
                         "projection_dim": 64, "predictor_dim": 16, "collapse_ratio": 0.0,
                         "collapse_sample": 64}}


def child(mode: str, folder: Path, cache: Path, runs: Path, steps: int) -> None:
    cfg = config(folder, cache, runs, steps)
    if mode == "prepare":
        from imaging_tl.config import load_pretrain_config
        from imaging_tl.data.prepare import prepare
        from imaging_tl.pretrain.data import unlabelled_table
        from imaging_tl.stages import Pipeline

        c = load_pretrain_config(cfg)
        prepare(unlabelled_table(c), Pipeline.from_config(c.preprocessing), cache=cache,
                workers=2)
        return
    from imaging_tl.pretrain import pretrain

    t0 = time.perf_counter()
    pretrain(cfg, verbose=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": peak_mib, "seconds": time.perf_counter() - t0}))


def measure(n: int, steps: int, root: Path) -> dict:
    folder, cache, runs = root / f"img{n}", root / f"cache{n}", root / f"runs{n}"
    t0 = time.perf_counter()
    write_images(folder, n)
    me = [sys.executable, __file__, "--child"]
    args = [str(folder), str(cache), str(runs), str(steps)]
    subprocess.run([*me, "prepare", *args], check=True)
    prep = time.perf_counter() - t0
    out = subprocess.run([*me, "pretrain", *args], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"n": n, "write_and_cache_s": prep, **result}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--child", nargs=5, metavar=("MODE", "FOLDER", "CACHE", "RUNS", "STEPS"))
    args = ap.parse_args(argv)
    if args.child:
        mode, folder, cache, runs, steps = args.child
        child(mode, Path(folder), Path(cache), Path(runs), int(steps))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pretrain_memory_") as tmp:
        rows = [measure(n, args.steps, Path(tmp)) for n in sizes]
    for r in rows:
        print(f"N={r['n']:>7}: peak RSS {r['peak_rss_mib']:.0f} MiB during pretrain "
              f"({args.steps} steps, {r['seconds']:.0f} s; images written and cached in "
              f"{r['write_and_cache_s']:.0f} s)")
    base = rows[0]["peak_rss_mib"]
    for r in rows[1:]:
        print(f"peak RSS ratio N={r['n']} / N={rows[0]['n']}: {r['peak_rss_mib'] / base:.3f} "
              "(goal <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
