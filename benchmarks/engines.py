"""Images/s of each inference engine against Keras ``model.predict`` (same run, same model).

efficientnet_lite0 transfer model (real ImageNet weights) at 224 x 224 on CPU, batch 1
and batch 32. Engines come from :func:`imaging_tl.deploy.engines.load_engine` (conversion time
reported apart, cached in a temporary folder). Before timing counts, every engine's
outputs on real photographs (scikit-image's coffee, chelsea, astronaut, rocket) must agree
with Keras within 1e-4. Each figure is the best of ``--repeats`` rounds.

Usage::

    .venv/bin/python benchmarks/engines.py [--images 64] [--single 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU figures

import numpy as np  # noqa: E402


def best_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up: tracing, allocation, tensor resize
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def real_inputs(size: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    imgs = [data.coffee(), data.chelsea(), data.astronaut(), data.rocket()]
    return np.stack([resize(im, (size, size), anti_aliasing=True) for im in imgs]
                    ).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64, help="images per batch-32 round")
    ap.add_argument("--single", type=int, default=16, help="images per batch-1 round")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from imaging_tl.deploy.engines import load_engine
    from imaging_tl.models import build_transfer_model, save_transfer_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    model = build_transfer_model("efficientnet_lite0", "binary", ["normal", "finding"],
                                 input_size=224)
    mp = tmp / "model.keras"
    save_transfer_model(model, mp)
    real = real_inputs(224)
    ref = model.predict(real, verbose=0)
    x = np.random.default_rng(0).random((args.images, 224, 224, 3), dtype=np.float32)
    x1 = x[:args.single]

    def keras_b32():
        model.predict(x, batch_size=32, verbose=0)

    def keras_b1():
        for i in range(len(x1)):
            model.predict(x1[i:i + 1], verbose=0)

    base32 = best_rate(keras_b32, len(x), args.repeats)
    base1 = best_rate(keras_b1, len(x1), args.repeats)
    print(f"cpu cores {os.cpu_count()}, {len(x)} images at batch 32, {len(x1)} at batch 1")
    print(f"{'engine':<12} {'batch 32':>9} {'ratio':>7} {'batch 1':>9} {'ratio':>7}  notes")
    print(f"{'keras.predict':<12}{base32:8.1f}/s {1:6.2f}x {base1:8.1f}/s {1:6.2f}x  baseline")
    for name in ("keras", "onnxruntime", "tflite"):
        t0 = time.perf_counter()
        try:
            eng = load_engine(mp, name, cache_dir=tmp / "cache",
                              model=model if name == "keras" else None)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"{name:<12} unavailable: {exc}")
            continue
        t_load = time.perf_counter() - t0
        diff = float(np.abs(eng.predict(real, batch_size=4) - ref).max())
        if diff > 1e-4:
            print(f"{name:<12} DISAGREES with Keras: max |diff| {diff:.2g}; not timed")
            continue
        r32 = best_rate(lambda e=eng: e.predict(x, batch_size=32), len(x), args.repeats)
        r1 = best_rate(lambda e=eng: e.predict(x1, batch_size=1), len(x1), args.repeats)
        label = "keras(tf.fn)" if name == "keras" else name
        print(f"{label:<12} {r32:8.1f}/s {r32 / base32:6.2f}x {r1:8.1f}/s {r1 / base1:6.2f}x  "
              f"max |diff| {diff:.1e} on real photos, load+convert {t_load:.1f} s")


if __name__ == "__main__":
    main()
