"""GPU kit: one command, at most about 5 minutes, that measures the GPU paths as ratios.

On a machine with an NVIDIA GPU (``make EXTRAS=gpu,test,export test`` installs the CUDA
build of TensorFlow) it measures, each part in a fresh process:

1. fine-tune training images/s at 224 px, ``float32`` against ``mixed_float16``
   (efficientnet_lite0, every layer trainable, in-memory batches);
2. whether tf.data keeps the GPU fed: the fraction of step time spent waiting for input,
   streaming from the array cache after ``prepare()`` (warm: the cache exists; cold: the
   cache build is counted, as a first run pays it), against the same steps on one batch
   held on the device;
3. head training on cached features against the standard frozen-base ``fit``;
4. inference images/s of Keras ``predict`` against each exported engine
   (:func:`imaging_tl.deploy.engines.load_engine`) on the GPU where the engine can use it;

prints them as ratios and writes ``gpu.json`` beside this file (``--json`` to change it).
Weights are random (``weights=None``): speed does not depend on them and nothing is
downloaded. On a machine without a GPU it says so and exits 0.

Run: ``.venv/bin/python benchmarks/gpu.py`` (``--quick`` for a smoke run of the code
paths, e.g. ``--quick --force-cpu`` on a CPU machine; such figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
SIZE = 224
PART_TIMEOUT = 150  # seconds a part may take; the whole kit stays near 5 minutes


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists (empty when there is none)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] \
        if out.returncode == 0 else []


def _images(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((n, SIZE, SIZE, 3), dtype=np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    return x, y


def _model(policy: str):
    import keras

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train.distribute import set_mixed_precision

    set_mixed_precision(policy)
    model = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=SIZE,
                                 weights=None, seed=0)
    return model, keras


def _timed_fit(model, keras, data, steps: int, policy: str) -> float:
    """Seconds per step of ``steps`` training steps after a warm-up epoch of 3 steps."""
    from imaging_tl.train import compile_for_task

    opt = keras.optimizers.Adam(1e-4)
    if policy == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    model.trainable = True
    compile_for_task(model, "binary", opt)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace, allocate
    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - t0) / steps


def part_train(args) -> dict:
    """Fine-tune images/s at 224 px under one precision policy."""
    import tensorflow as tf

    x, y = _images(args.batch * 4)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache().repeat()
    model, keras = _model(args.policy)
    step = _timed_fit(model, keras, data.prefetch(2), args.steps, args.policy)
    return {"policy": args.policy, "images_per_s": args.batch / step, "step_s": step}


def _radiograph_cache(tmp: Path, n: int):
    """``n`` synthetic JPEG 2000 radiographs at 1,024 px, their table and the pipeline."""
    import pandas as pd

    from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
    from imaging_tl.synthetic import generate_dataset

    table = generate_dataset(tmp / "data", n_patients=n, images_per_patient=1, seed=0,
                             size=1024, png_fraction=0.0, transfer_syntaxes={"jpeg2000": 1.0})
    paths = [p if os.path.isabs(p) else str(tmp / "data" / p) for p in table["path"]]
    table = pd.DataFrame({"path": paths})
    return table, Pipeline([Window.from_header(), Resize(SIZE, mode="stretch"), ToRGB()])


def part_input(args) -> dict:
    """Fraction of step time waiting for input, cache cold and warm."""
    import tensorflow as tf

    from imaging_tl.data import prepare
    from imaging_tl.data.tfdata import make_dataset

    tmp = Path(tempfile.mkdtemp(prefix="gpu-kit-"))
    try:
        table, pipe = _radiograph_cache(tmp, args.images)
        t0 = time.perf_counter()
        prepared = prepare(table, pipe, cache=tmp / "cache", workers=os.cpu_count(),
                           audit=False)
        build_s = time.perf_counter() - t0
        ds = make_dataset(prepared, split=None, batch_size=args.batch, labels=False,
                          repeat=True, shuffle=True)
        ds = ds.map(lambda im: (im, tf.zeros((tf.shape(im)[0],), tf.int32)))
        model, keras = _model("float32")
        fed = _timed_fit(model, keras, ds, args.steps, "float32")
        one = next(iter(ds))
        held = tf.data.Dataset.from_tensors(one).repeat()
        compute = _timed_fit(model, keras, held, args.steps, "float32")
        steps_epoch = max(1, len(prepared.table) // args.batch)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warm_wait = max(0.0, 1 - compute / fed)
    cold_total = build_s + fed * steps_epoch  # first epoch of a cold run
    return {"step_s_streamed": fed, "step_s_on_device": compute, "cache_build_s": build_s,
            "images": len(prepared.table), "wait_fraction_warm": warm_wait,
            "wait_fraction_cold_first_epoch": 1 - compute * steps_epoch / cold_total}


def part_head(args) -> dict:
    """Head training: cached features against the frozen base inside every epoch."""
    import keras

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train import Phase, compile_for_task, train

    x, y = _images(args.batch * 8)
    xv, yv = _images(args.batch * 2, seed=1)
    base = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=SIZE,
                                weights=None, seed=0)
    compile_for_task(base, "binary", keras.optimizers.Adam(1e-3))
    base.fit(x[:args.batch], y[:args.batch], epochs=1, verbose=0)  # trace
    t0 = time.perf_counter()
    base.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(xv, yv),
             verbose=0)
    t_base = time.perf_counter() - t0
    ours = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=SIZE,
                                weights=None, seed=0)
    t0 = time.perf_counter()
    train(ours, (x, y), (xv, yv), phases=[Phase(epochs=args.epochs, learning_rate=1e-3)],
          batch_size=args.batch, cache_features=True)
    return {"standard_s": t_base, "cached_features_s": time.perf_counter() - t0,
            "epochs": args.epochs, "images": len(x)}


def part_infer(args) -> dict:
    """Inference images/s: Keras predict against each exported engine."""
    import numpy as np

    from imaging_tl.deploy.engines import load_engine
    from imaging_tl.models import build_transfer_model, save_transfer_model

    tmp = Path(tempfile.mkdtemp(prefix="gpu-kit-"))
    x, _ = _images(args.batch * 4)
    model = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=SIZE,
                                 weights=None, seed=0)
    path = tmp / "model.keras"
    save_transfer_model(model, path)

    def rate(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return len(x) / best

    ref = model.predict(x[:8], verbose=0)
    out = {"keras_predict": rate(lambda: model.predict(x, batch_size=args.batch, verbose=0))}
    for name in ("keras", "onnxruntime", "tflite"):
        try:
            eng = load_engine(path, name, cache_dir=tmp / "cache",
                              model=model if name == "keras" else None)
            diff = float(np.abs(eng.predict(x[:8], batch_size=8) - ref).max())
            out[name] = rate(lambda e=eng: e.predict(x, batch_size=args.batch))
            out[f"{name}_max_diff"] = diff
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            out[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    shutil.rmtree(tmp, ignore_errors=True)
    return out


PARTS = {"train": part_train, "input": part_input, "head": part_head, "infer": part_infer}


def run_part(name: str, extra: list[str], force_cpu: bool) -> dict:
    cmd = [sys.executable, __file__, "--part", name, *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    if force_cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PART_TIMEOUT,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {PART_TIMEOUT} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"rc {proc.returncode}: {proc.stderr.strip()[-600:]}"}
    res = json.loads(lines[-1][7:])
    res["wall_s"] = time.perf_counter() - t0
    return res


def report(res: dict) -> None:
    """Print the ratios (and any part that failed)."""
    f32, f16 = res.get("train_float32", {}), res.get("train_mixed_float16", {})
    if "images_per_s" in f32 and "images_per_s" in f16:
        print(f"fine-tune 224 px: float32 {f32['images_per_s']:.0f} img/s, mixed_float16 "
              f"{f16['images_per_s']:.0f} img/s -> mixed / float32 "
              f"{f16['images_per_s'] / f32['images_per_s']:.2f}")
    inp = res.get("input", {})
    if "wait_fraction_warm" in inp:
        print(f"tf.data input wait (fraction of step time): warm cache "
              f"{inp['wait_fraction_warm']:.2f}; cold (cache build + first epoch) "
              f"{inp['wait_fraction_cold_first_epoch']:.2f}  ({inp['images']} radiographs, "
              f"build {inp['cache_build_s']:.1f} s)")
    head = res.get("head", {})
    if "standard_s" in head:
        print(f"head training, {head['epochs']} epochs: standard / cached features "
              f"{head['standard_s'] / head['cached_features_s']:.2f}")
    inf = res.get("infer", {})
    if "keras_predict" in inf:
        for name in ("keras", "onnxruntime", "tflite"):
            if name in inf:
                print(f"inference {name:12s} / Keras predict {inf[name] / inf['keras_predict']:.2f}"
                      f"  (max |diff| {inf[f'{name}_max_diff']:.1e})")
            elif f"{name}_error" in inf:
                print(f"inference {name:12s} unavailable: {inf[f'{name}_error']}")
    for k, v in res.items():
        if isinstance(v, dict) and "error" in v:
            print(f"{k}: FAILED {v['error']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few steps: checks the code paths")
    ap.add_argument("--force-cpu", action="store_true",
                    help="run the parts without a GPU (with --quick: a smoke test)")
    ap.add_argument("--json", default=str(HERE / "gpu.json"))
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--images", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        print("RESULT " + json.dumps(PARTS[args.part](args)), flush=True)
        return 0
    gpus = gpu_names()
    if not gpus and not args.force_cpu:
        print("benchmarks/gpu.py: no NVIDIA GPU on this machine (nvidia-smi lists none): "
              "nothing measured. Run it on a GPU machine after `make EXTRAS=gpu,test,export "
              "test`.")
        return 0
    size = ["--steps", "2", "--batch", "4", "--images", "4", "--epochs", "1"] if args.quick \
        else ["--steps", "30", "--batch", "64", "--images", "96", "--epochs", "5"]
    print(f"GPU: {', '.join(gpus) or 'none (forced CPU)'}; load {os.getloadavg()[0]:.1f}")
    res: dict = {"gpus": gpus, "quick": args.quick}
    t0 = time.perf_counter()
    for key, part, extra in (("train_float32", "train", ["--policy", "float32"]),
                             ("train_mixed_float16", "train", ["--policy", "mixed_float16"]),
                             ("input", "input", []), ("head", "head", []),
                             ("infer", "infer", [])):
        if args.force_cpu and extra[-1:] == ["mixed_float16"]:
            res[key] = {"error": "mixed_float16 needs a GPU"}
            continue
        res[key] = run_part(part, size + extra, args.force_cpu)
        print(f"  {key}: {time.perf_counter() - t0:.0f} s", flush=True)
    report(res)
    Path(args.json).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
