"""What ``imaging-tl run`` costs around the training itself, and what the cache and --resume save.

Runs one small pipeline (synthetic radiographs, clearly not patient data) several times in
one process and prints ratios against baselines measured in the same run:

1. cold cache vs warm cache (after a warm-up run on a separate cache, so that TensorFlow's
   start-up is not counted): the second run decodes nothing (``prepare`` reads the cache);
2. the share of a run spent outside training (census, splits, evaluation with bootstrap,
   model saving, Grad-CAM, plots and report);
3. --resume: a run interrupted after half of its head epochs, then resumed, against the
   training time of an uninterrupted run.

    .venv/bin/python benchmarks/pipeline_run.py [--patients 24] [--size 256] [--epochs 8]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--size", type=int, default=256, help="side of the generated images")
    ap.add_argument("--input", type=int, default=128, help="model input size")
    ap.add_argument("--epochs", type=int, default=8, help="head epochs")
    args = ap.parse_args()

    import keras

    from imaging_tl.pipeline import run
    from imaging_tl.synthetic import generate_dataset

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    generate_dataset(work / "data", n_patients=args.patients, images_per_patient=3, seed=0,
                     size=args.size, difficulty="medium")
    cfg = {
        "name": "bench", "seed": 0, "output": str(work / "runs"),
        "cache_dir": str(work / "cache"),
        "data": {"csv": str(work / "data" / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "model": {"input_size": args.input},
        "augment": {"preset": "none"},
        "train": {"batch_size": 32, "phases": [{"name": "head", "epochs": args.epochs,
                                                "learning_rate": 0.003}]},
        "evaluate": {"bootstrap": 1000, "gradcam": 4},
    }

    def timed(cache: str = "cache", **kw):
        c = copy.deepcopy(cfg)
        c["cache_dir"] = str(work / cache)
        t0 = time.perf_counter()
        res = run(c if "resume" not in kw else None, verbose=False, **kw)
        return res, time.perf_counter() - t0

    # warm-up in its own cache: TensorFlow start-up and first tracing are not the cache's
    timed(cache="warmup-cache")
    cold, t_cold = timed()
    warm, t_warm = timed()
    n = sum(cold.split_counts.values())
    print(f"{n} images ({args.size} px -> {args.input} px), {args.epochs} head epochs, "
          f"bootstrap 1000, on {os.cpu_count()} CPU(s)")
    print(f"cold-cache run {t_cold:.1f} s, warm-cache run {t_warm:.1f} s")
    print(f"  prepare warm / cold: {warm.durations['prepare'] / cold.durations['prepare']:.3f}")
    print(f"  whole run warm / cold: {t_warm / t_cold:.3f}")
    outside = 1 - warm.durations["train"] / sum(warm.durations.values())
    print(f"  share of the warm run outside training: {outside:.3f} "
          f"(steps: {', '.join(f'{k} {v:.1f}s' for k, v in warm.durations.items())})")

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == args.epochs // 2:
                raise KeyboardInterrupt

    out = work / "runs" / "interrupted"
    t0 = time.perf_counter()
    try:
        run(copy.deepcopy(cfg), out=out, verbose=False, callbacks=[Stop()])
    except KeyboardInterrupt:
        pass
    t_first = time.perf_counter() - t0
    resumed, t_resumed = timed(resume=out)
    print(f"interrupted after epoch {args.epochs // 2} ({t_first:.1f} s), resumed run "
          f"{t_resumed:.1f} s")
    print(f"  training time resumed / uninterrupted: "
          f"{resumed.durations['train'] / warm.durations['train']:.3f}")
    print(f"  interrupted + resumed / one uninterrupted run: {(t_first + t_resumed) / t_warm:.3f}")


if __name__ == "__main__":
    main()
