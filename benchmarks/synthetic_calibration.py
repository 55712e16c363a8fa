"""Calibrated difficulty: can a task-specific model find the nodules of each preset?

For each difficulty preset (``easy``, ``medium``, ``hard``: nodule size and CNR ranges), a
balanced set of chest radiographs, nodule vs none, one film per patient (so the held-out
test patients are unseen), is generated with ``make_radiograph``; a task-specific CNN is
trained from scratch on 70% of the patients and its AUC measured on the other 30% (95% CI:
bootstrap over test images).

The model: four conv-BN-ReLU-maxpool blocks (16-128 filters) ending in **global max
pooling** -- a detector for one small finding anywhere in the film. (The same blocks ending
in global average pooling, the small CNN of ``benchmarks/transfer_vs_scratch.py``, stayed
at chance on this task at 224 px: a 5-15 px nodule is one of 196 averaged positions.)

``--curve`` trains one model on a set whose nodules span every size and CNR (radius
3-16 mm, CNR 0.5-10) and reports the test AUC of the positives in each CNR bin against all
test negatives (the visibility-to-AUC curve the preset ranges are chosen from), then the
same model's AUC on a fresh test set of each preset (patients unseen): whether a preset's
findings are in the pixels, for a model that learned what nodules look like.

Targets (the issue): easy >= 0.95, medium 0.8-0.9, hard 0.65-0.8, 4,000 images at 224 px.

Run: ``.venv/bin/python benchmarks/synthetic_calibration.py [--curve] [--images N --size S]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from imaging_tl.synthetic import DIFFICULTIES, Difficulty, make_radiograph

RESULTS = Path(__file__).parent / "results"
TARGETS = {"easy": (0.95, 1.0), "medium": (0.8, 0.9), "hard": (0.65, 0.8)}
#: every visibility at once, for --curve
WIDE = Difficulty(nodule_radius_mm=(3.0, 16.0), cnr=(0.5, 10.0))
CNR_BINS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0)


def make_set(difficulty: str | Difficulty, n: int, size: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n films of n patients, every other one with a nodule.

    Returns images (float32 N x S x S x 3), labels, and each positive's CNR and radius in mm
    (NaN for negatives).
    """
    x = np.empty((n, size, size, 3), np.float32)
    y = np.arange(n) % 2
    cnr, radius = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        img = make_radiograph([seed, i], ["nodule"] if y[i] else [], size=size,
                              difficulty=difficulty, anatomy_seed=[seed, i, 1])
        x[i] = img.pixels[..., None]
        if y[i]:
            cnr[i] = img.visibility["nodule"]
            radius[i] = img.params["nodule"]["radius_mm"]
    return x, y, cnr, radius


def detector_cnn(size: int, seed: int):
    """Four conv blocks and global max pooling: a from-scratch detector of one finding."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    out = layers.Dense(1, activation="sigmoid", name="output")(x)
    return keras.Model(inputs, out, name="detector_cnn")


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def bootstrap_ci(y: np.ndarray, s: np.ndarray, n_boot: int = 500) -> tuple[float, float]:
    """95% percentile interval of the AUC over image resamples."""
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            vals.append(auc(y[idx], s[idx]))
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def train_and_score(x: np.ndarray, y: np.ndarray, size: int, epochs: int, seed: int
                    ) -> tuple[np.ndarray, float, object]:
    """Train on the first 70%; the scores of the rest, the training seconds, the model."""
    import keras

    n_train = int(0.7 * len(y))
    model = detector_cnn(size, seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    t = time.perf_counter()
    model.fit(x[:n_train], y[:n_train], batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - t
    s = model.predict(x[n_train:], batch_size=128, verbose=0)[:, 0].astype(np.float64)
    return s, seconds, model


def calibrate(preset: str, n: int, size: int, epochs: int, seed: int) -> dict:
    """One preset: generate, train, test AUC with its CI against the target."""
    t = time.perf_counter()
    x, y, cnr, _ = make_set(preset, n, size, seed)
    t_gen = time.perf_counter() - t
    s, t_train, _ = train_and_score(x, y, size, epochs, seed)
    yt = y[int(0.7 * n):]
    a, (lo, hi) = auc(yt, s), bootstrap_ci(yt, s)
    tlo, thi = TARGETS[preset]
    d = DIFFICULTIES[preset]
    return {"preset": preset, "cnr": list(d.cnr or ()), "radius_mm": list(d.nodule_radius_mm),
            "images": n, "train": int(0.7 * n), "test": len(yt), "size": size,
            "epochs": epochs, "auc": a, "ci95": [lo, hi], "target": [tlo, thi],
            "on_target": bool(tlo <= a <= thi), "generate_s": round(t_gen, 1),
            "train_s": round(t_train, 1)}


def curve(n: int, size: int, epochs: int, seed: int) -> list[dict]:
    """AUC of the test positives in each CNR bin against all test negatives."""
    x, y, cnr, radius = make_set(WIDE, n, size, seed)
    s, _, model = train_and_score(x, y, size, epochs, seed)
    del x  # 2.4 GB at 4,000 x 224 px
    n_train = int(0.7 * n)
    yt, ct, rt = y[n_train:], cnr[n_train:], radius[n_train:]
    neg = s[yt == 0]
    rows = []
    for lo, hi in zip(CNR_BINS[:-1], CNR_BINS[1:], strict=False):
        sel = (yt == 1) & (ct >= lo) & (ct < hi)
        if sel.sum() == 0:
            continue
        pos = s[sel]
        rows.append({"cnr": [lo, hi], "positives": int(sel.sum()), "negatives": len(neg),
                     "radius_mm_median": float(np.median(rt[sel])),
                     "auc": auc(np.r_[np.ones(len(pos)), np.zeros(len(neg))],
                                np.r_[pos, neg])})
        print(f"CNR {lo:4.1f}-{hi:4.1f}  {rows[-1]['positives']:3d} positives  "
              f"AUC {rows[-1]['auc']:.3f}", flush=True)
    rows.append({"cnr": "all", "auc": auc(yt, s), "images": n, "size": size,
                 "epochs": epochs, "seed": seed})
    for preset in TARGETS:  # fresh patients of each preset, scored by the same model
        xp, yp, _, _ = make_set(preset, len(yt), size, seed + 1000)
        sp = model.predict(xp, batch_size=128, verbose=0)[:, 0].astype(np.float64)
        a, (lo, hi) = auc(yp, sp), bootstrap_ci(yp, sp)
        rows.append({"preset": preset, "test": len(yp), "auc": a, "ci95": [lo, hi],
                     "target": list(TARGETS[preset]),
                     "on_target": bool(TARGETS[preset][0] <= a <= TARGETS[preset][1])})
        print(f"{preset:7s} test set scored by the wide-range model: AUC {a:.3f} "
              f"(95% CI {lo:.3f}-{hi:.3f})  target {TARGETS[preset]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curve", action="store_true", help="AUC per CNR bin, one wide set")
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presets", nargs="+", default=list(TARGETS))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.curve:
        rows = curve(args.images, args.size, args.epochs, args.seed)
        out = args.out or RESULTS / "synthetic_calibration_curve.json"
    else:
        rows = []
        out = args.out or RESULTS / "synthetic_calibration.json"
        for preset in args.presets:
            row = calibrate(preset, args.images, args.size, args.epochs, args.seed)
            rows.append(row)
            out.write_text(json.dumps(rows, indent=2))  # a finished preset is kept
            print(f"{preset:7s} CNR {row['cnr']}  AUC {row['auc']:.3f} "
                  f"(95% CI {row['ci95'][0]:.3f}-{row['ci95'][1]:.3f})  target "
                  f"{row['target']}  {'on target' if row['on_target'] else 'MISSED'}  "
                  f"[{row['generate_s']} s generate, {row['train_s']} s train]", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
