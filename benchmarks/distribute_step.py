"""The cost of the distributed training step against Keras' fit, same data, same run.

Baseline: :func:`imaging_tl.train.train` without a strategy (Keras' ``fit``). Ours: the same
call under a one-device ``MirroredStrategy``, which takes the custom distributed step that
``imaging-tl run`` uses under any ``train.distribute`` strategy (Keras' ``fit`` fails under
``MultiWorkerMirroredStrategy``). One replica, so the ratio is the step's own overhead
(``strategy.run``, the global-batch gather for metrics, per-epoch validation in Python),
not a speed-up: on these 2 CPU cores there is no second device to gain from. Both arms
start from the same seed; the script also prints how far their weights end apart.

Phases: a cached-feature head phase (many small steps) and two end-to-end fine-tune epochs
(few large steps); per-epoch times after each phase's first epoch (which traces) are
compared, with the arms run twice, alternating, and the second round kept. Data: generated
two-class images, float32 RGB in [0, 1].

Usage::

    .venv/bin/python benchmarks/distribute_step.py                # 256 images at 96 px
    .venv/bin/python benchmarks/distribute_step.py --images 64    # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from head_training import generated_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--head-epochs", type=int, default=10)
    args = ap.parse_args()

    import tensorflow as tf

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train import Phase, train

    x, y = generated_images(args.images, args.size, seed=0)
    xv, yv = generated_images(max(args.images // 4, 8), args.size, seed=1)
    phases = [Phase("head", args.head_epochs, 0.01, optimizer="sgd"),
              Phase("finetune", 2, 0.001, freeze="block6d_add", optimizer="sgd")]

    def arm(strategy):
        scope = strategy.scope() if strategy is not None else None
        if scope is not None:
            with scope:
                m = build_transfer_model("efficientnet_lite0", "binary", ["a", "b"],
                                         input_size=args.size, seed=0)
        else:
            m = build_transfer_model("efficientnet_lite0", "binary", ["a", "b"],
                                     input_size=args.size, seed=0)
        t0 = time.perf_counter()
        res = train(m, (x, y), (xv, yv), batch_size=args.batch, phases=phases,
                    strategy=strategy)
        return m, time.perf_counter() - t0, res

    # alternate the arms and keep the second round: the first pays one-off warm-up
    runs = [arm(None), arm(tf.distribute.MirroredStrategy(["/cpu:0"]))]
    runs = [arm(None), arm(tf.distribute.MirroredStrategy(["/cpu:0"])), *runs]
    (keras_model, t_keras, r_keras), (ours, t_ours, r_ours) = runs[0], runs[1]
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(keras_model.weights, ours.weights, strict=True))

    def steady(res, name):
        # per-epoch seconds after each phase's first epoch (which includes tracing)
        rows = [r["seconds"] for r in res.history if r["phase_name"] == name][1:]
        return float(np.mean(rows))

    hk, ho = steady(r_keras, "head"), steady(r_ours, "head")
    fk, fo = steady(r_keras, "finetune"), steady(r_ours, "finetune")
    print(f"{args.images} images at {args.size} px, batch {args.batch}, "
          f"{args.head_epochs} cached head epochs + 2 fine-tune epochs (second round of two)")
    print(f"baseline Keras fit (no strategy): total {t_keras:.1f} s; steady epoch: head "
          f"{hk:.3f} s, fine-tune {fk:.2f} s")
    print(f"distributed step, 1-device MirroredStrategy: total {t_ours:.1f} s; steady epoch: "
          f"head {ho:.3f} s, fine-tune {fo:.2f} s")
    print(f"ratio distributed / Keras fit: total {t_ours / t_keras:.2f}x, steady head epoch "
          f"{ho / hk:.2f}x, steady fine-tune epoch {fo / fk:.2f}x")
    print(f"final val_auc: Keras {r_keras.history[-1]['val_auc']:.4f}, distributed "
          f"{r_ours.history[-1]['val_auc']:.4f}; max weight difference {diff:.2e}")

if __name__ == "__main__":
    main()
