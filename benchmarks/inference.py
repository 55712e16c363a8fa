"""Inference images/s for efficientnet_lite0 at 224 x 224, batch 32, on CPU.

Baseline: ``model.predict`` on the transfer model. Compared in the same run:
``imaging_tl.models.fast_predict`` (a tf.function traced once) and, when ``tf2onnx`` and
``onnxruntime`` are installed (the ``export`` extra), ONNX Runtime on the same model
(conversion time reported apart). Outputs are checked to agree before timing counts.

Usage::

    .venv/bin/python benchmarks/inference.py [--images 128] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU figures

import numpy as np  # noqa: E402


def rate(fn, x: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    fn(x[:32])  # warm-up (tracing, allocation)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(x)
        best = min(best, time.perf_counter() - t0)
    return len(x) / best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from imaging_tl.models import build_transfer_model, fast_predict

    model = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=224)
    x = np.random.default_rng(0).random((args.images, 224, 224, 3), dtype=np.float32)
    bs = args.batch

    base, ref = rate(lambda a: model.predict(a, batch_size=bs, verbose=0), x, args.repeats)
    print(f"model.predict            {base:7.1f} img/s   1.00x")
    fast, out = rate(lambda a: fast_predict(model, a, bs), x, args.repeats)
    assert np.allclose(out, ref, atol=1e-5), "fast_predict disagrees"
    print(f"fast_predict (tf.function){fast:6.1f} img/s   {fast / base:.2f}x")

    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        print("onnxruntime/tf2onnx not installed: skipped")
        return
    t0 = time.perf_counter()
    spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    t_conv = time.perf_counter() - t0
    name = sess.get_inputs()[0].name

    def run(a):
        return np.concatenate([sess.run(None, {name: a[i:i + bs]})[0]
                               for i in range(0, len(a), bs)])

    onnx, out = rate(run, x, args.repeats)
    agree = float(np.abs(out - ref).max())
    print(f"onnxruntime              {onnx:7.1f} img/s   {onnx / base:.2f}x   "
          f"(conversion {t_conv:.1f} s, max |diff| {agree:.1e})")


if __name__ == "__main__":
    main()
