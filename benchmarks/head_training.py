"""Head training: feature caching vs the standard Keras recipe, same images, same run.

Baseline: the flat transfer model with the backbone frozen, ``model.fit`` for every head
epoch (the frozen forward pass runs again every epoch). Ours: :func:`imaging_tl.train.train`
with ``cache_features=True`` (pooled features computed once with a compiled tf.function,
then the head trained on them). Both start from the same seed; the script prints the wall
time ratio and both validation results.

Data: generated two-class images (a bright disc vs a bright square on textured noise),
labelled as generated, float32 RGB in [0, 1].

Usage::

    .venv/bin/python benchmarks/head_training.py                 # 512 images, 20 epochs
    .venv/bin/python benchmarks/head_training.py --images 128    # quicker, same ratio shape
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def generated_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated data: class 0 a disc, class 1 a square, random place/size, noisy."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rng.shuffle(y)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    x = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.1, 0.2) * size
        shape = (np.maximum(abs(yy - cy), abs(xx - cx)) < r) if y[i] else \
            ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
        grey = 0.3 + 0.4 * shape + rng.normal(0, 0.08, (size, size))
        x[i] = np.clip(grey, 0, 1)[..., None]
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=512, help="training images")
    ap.add_argument("--epochs", type=int, default=20, help="head epochs")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import keras

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train import Phase, compile_for_task, train

    x, y = generated_images(args.images, args.size, seed=0)
    xv, yv = generated_images(max(args.images // 4, 32), args.size, seed=1)
    print(f"{args.images} train + {len(xv)} val generated images, {args.size}px, "
          f"{args.epochs} head epochs, batch {args.batch}, efficientnet_lite0 (ImageNet)")

    # Baseline: standard recipe, frozen base inside model.fit every epoch.
    base = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=args.size, seed=0)
    compile_for_task(base, "binary", keras.optimizers.Adam(1e-3))
    t0 = time.perf_counter()
    hist = base.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(xv, yv),
                    shuffle=True, verbose=0)
    t_base = time.perf_counter() - t0
    base_auc, base_acc = hist.history["val_auc"][-1], hist.history["val_accuracy"][-1]

    # Ours: cached features.
    ours = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=args.size, seed=0)
    t0 = time.perf_counter()
    result = train(ours, (x, y), (xv, yv), phases=[Phase(epochs=args.epochs, learning_rate=1e-3)],
                   batch_size=args.batch, cache_features=True)
    t_ours = time.perf_counter() - t0
    last = result.history[-1]

    print(f"standard recipe (fit, frozen base every epoch): {t_base:8.1f} s   "
          f"val_auc {base_auc:.4f}  val_acc {base_acc:.4f}")
    print(f"feature caching (imaging_tl.train):           {t_ours:8.1f} s   "
          f"val_auc {last['val_auc']:.4f}  val_acc {last['val_accuracy']:.4f}  "
          f"(features {result.feature_seconds:.1f} s)")
    print(f"RATIO wall time standard / cached: {t_base / t_ours:.1f}x")


if __name__ == "__main__":
    main()
