"""Series-level evidence (issue 19): what 2.5-D inputs and slice aggregation buy, and what
streaming them from the cache costs.

Task: synthetic chest CT series (``imaging_tl.synthetic.series``, 10 slices of 96 px, 5 mm;
12 in ``--full``), half of them with a soft-tissue nodule crossing a few slices; the label
is per series. Three arms, each an ImageNet EfficientNet-Lite0 with a frozen backbone
(features from ``imaging_tl.train.extract_features``) and a new logistic-regression head
(scikit-learn, C chosen on the validation series' AUC), inputs from the library's stages
(lung window, 96 px):

1. ``middle``       one input per series, its middle slice (grey to RGB);
2. ``slice_max``    every slice of a training series is a sample with the series' label;
                    a series' probability is the max over its slices
                    (``imaging_tl.evaluate.aggregation.aggregate_scores``);
3. ``stack_max``    as 2, each slice with its neighbours as channels (the ``stack`` stage,
                    offsets -1, 0, +1; edges repeat the nearest slice);
4. ``stack_mean``, ``stack_top_k_mean`` (the 3 highest slices), ``stack_noisy_or``: as 3,
                    aggregated the other ways ``evaluate.series_aggregate`` offers (each
                    head chosen on the validation series under its own aggregation).

Sizes (default): 50-200 training series (nested subsets of a pool of 1.5 x the largest
size, drawn per seed), 3 seeds, 60 validation and 150 test series (one series per
patient); ``--full``: 50-400, 100 and 200. Printed:
AUC per arm and size (mean and range over seeds), paired differences (seed-mean AUC
difference with a 95% interval from a paired bootstrap over test patients), and the speed
check: batches of 2.5-D samples streamed by
``make_dataset`` from the array cache against batches of single slices of the same size,
in the same run (ratio of samples per second), and the peak memory added while streaming
for two numbers of series (each in a fresh process).

    .venv/bin/python benchmarks/series.py              # default (2 CPU cores)
    .venv/bin/python benchmarks/series.py --quick      # smoke run, not evidence
    .venv/bin/python benchmarks/series.py --speed-only

Outputs (``--out``, default benchmarks/results/): ``series_<setting>.csv`` (one row per size,
seed and arm with the test scores; the first row carries the test labels) and the printed
summary, also in ``series_<setting>.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

_HERE = Path(__file__).resolve().parent
RESULTS = _HERE / "results"
ARMS = ("middle", "slice_max", "stack_max", "stack_mean", "stack_top_k_mean",
        "stack_noisy_or")


def _aggregation(arm: str) -> str:
    """How an arm turns slice scores into a series score (``middle``: none)."""
    return "max" if arm == "slice_max" else arm.removeprefix("stack_")
SETTINGS: dict[str, dict] = {
    "quick": dict(sizes=(50, 100), seeds=1, val=60, test=100, slices=10, gen=96, input=96,
                  speed_series=(20, 60)),
    "default": dict(sizes=(50, 100, 200), seeds=3, val=60, test=150, slices=10, gen=96,
                    input=96, speed_series=(50, 200)),
    "full": dict(sizes=(50, 100, 200, 400), seeds=3, val=100, test=200, slices=12, gen=96,
                 input=96, speed_series=(50, 200)),
}
# A soft-tissue nodule (20 HU in -850 HU lung), 10-16 mm radius (2.5-4 px at 3.96 mm per
# pixel), crossing 3-7 slices of 5 mm.
LESION = dict(lesion_hu=20.0, lesion_radius_mm=(10.0, 16.0))


def _load_tvs():
    sys.path.append(str(_HERE))  # loaded by path from the tests too
    from siblings import load

    return load("transfer_vs_scratch")


# ----------------------------------------------------------------------------- data
def make_series(role: int, n: int, cfg: dict, slice_labels: list | None = None
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` preprocessed series (slices x H x W in [0, 1]) and their labels, half positive;
    ``slice_labels``, a list, receives each series' 0/1 label per slice (the lesion's)."""
    from imaging_tl.stages import Pipeline, Resize, Window
    from imaging_tl.synthetic.series import make_ct_series

    pipe = Pipeline([Window(preset="lung"), Resize(cfg["input"])])
    volumes, labels = [], []
    for i in range(n):
        s = make_ct_series([19, role, i], n_slices=cfg["slices"], size=cfg["gen"],
                           lesion=i % 2 == 1, **LESION)
        volumes.append(np.stack([pipe(x) for x in s.hu]))
        labels.append(int(bool(s.lesion_slices)))
        if slice_labels is not None:
            slice_labels.append(np.isin(np.arange(len(s.hu)), s.lesion_slices).astype(int))
    return volumes, np.array(labels)


def inputs(volumes: list[np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of every slice (``single`` or ``stack``) and the series of each."""
    from imaging_tl.stages import Stack

    stack = Stack()
    xs, codes = [], []
    for k, v in enumerate(volumes):
        n = len(v)
        for j in range(n):
            if kind == "single":
                xs.append(np.stack([v[j]] * 3, axis=-1))
            else:
                xs.append(stack.combine([v[i] for i in stack.neighbours(j, n)]))
            codes.append(k)
    return np.stack(xs).astype(np.float32), np.array(codes)


def features(volumes: list[np.ndarray], model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from imaging_tl.train import extract_features

    out = {}
    for kind in ("single", "stack"):
        x, codes = inputs(volumes, kind)
        out[kind] = (extract_features(model, x, 64)[0], codes)
    return out


# ----------------------------------------------------------------------------- arms
def _series_scores(clf, feats: np.ndarray, codes: np.ndarray, n: int, arm: str,
                   middle: np.ndarray | None) -> np.ndarray:
    from imaging_tl.evaluate.aggregation import aggregate_scores

    if arm == "middle":
        return clf.predict_proba(feats[middle])[:, 1]
    p = clf.predict_proba(feats)[:, 1]
    return aggregate_scores(p, codes, n, _aggregation(arm)).ravel()


def _middle_rows(codes: np.ndarray) -> np.ndarray:
    first = np.searchsorted(codes, np.unique(codes))
    counts = np.bincount(codes)
    return first + counts[np.unique(codes)] // 2


def run_arm(arm: str, train: dict, ytr: np.ndarray, chosen: np.ndarray, val: dict,
            yva: np.ndarray, test: dict) -> np.ndarray:
    """Test series scores of one arm trained on the training series ``chosen``."""
    kind = "stack" if arm.startswith("stack_") else "single"
    f, codes = train[kind]
    rows = np.flatnonzero(np.isin(codes, chosen))
    if arm == "middle":
        rows = _middle_rows(codes)[chosen]
        y = ytr[chosen]
    else:
        y = ytr[codes[rows]]
    return fit_head(f[rows], y, val[kind], yva, test[kind], arm)


def fit_head(x: np.ndarray, y: np.ndarray, val: tuple, yva: np.ndarray, test: tuple,
             arm: str = "stack_max") -> np.ndarray:
    """Logistic-regression heads (C 0.01, 0.1, 1) fitted on ``x, y``; the one with the best
    validation series AUC scores the test series (``val``/``test``: features and series
    codes; ``arm`` "middle" scores each series' middle slice, else the arm's aggregation
    over slices)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tvs = _load_tvs()
    best = None
    for c in (0.01, 0.1, 1.0):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        clf.fit(x, y)
        vf, vc = val
        s = _series_scores(clf, vf, vc, len(yva), arm, _middle_rows(vc))
        score = tvs.auc(yva, s)
        if best is None or score > best[0]:
            best = (score, clf)
    tf, tc = test
    return _series_scores(best[1], tf, tc, int(tc.max()) + 1, arm, _middle_rows(tc))


# ----------------------------------------------------------------------------- speed
def stream_rate(n_series: int, cfg: dict, folder: Path, batch: int = 32,
                repeats: int = 3) -> dict:
    """Samples per second streamed by make_dataset: 2.5-D vs single slices (same batch)."""
    from imaging_tl.data import prepare
    from imaging_tl.data.series import from_series
    from imaging_tl.data.tfdata import make_dataset
    from imaging_tl.stages import Pipeline, Resize, Stack, ToRGB, Window
    from imaging_tl.synthetic.series import generate_series_dataset

    data = folder / f"series{n_series}"
    if not (data / "series_labels.csv").is_file():
        generate_series_dataset(data, n_patients=n_series, n_slices=cfg["slices"],
                                size=cfg["gen"])
    table = from_series(data, csv=data / "series_labels.csv")
    base = [Window(preset="lung"), Resize(cfg["input"])]
    prepared = {name: prepare(table, Pipeline([*base, last]), cache=folder / "cache",
                              executor="serial", audit=False)
                for name, last in (("single", ToRGB()), ("stack", Stack()))}
    best = {name: 0.0 for name in prepared}
    for _ in range(repeats):  # alternate, keep each one's best pass
        for name, p in prepared.items():
            t = time.perf_counter()
            n = sum(len(b) for b in make_dataset(p, split=None, batch_size=batch,
                                                labels=False, shuffle=False))
            best[name] = max(best[name], n / (time.perf_counter() - t))
    return {"series": n_series, "samples": len(table), "single_per_s": best["single"],
            "stack_per_s": best["stack"], "ratio": best["stack"] / best["single"]}


def peak_memory(n_series: int, cfg: dict, folder: Path) -> dict:
    """Peak resident memory added by streaming every 2.5-D batch (a fresh process)."""
    code = f"""
import json, sys
from pathlib import Path
from imaging_tl.data import prepare
from imaging_tl.data.series import from_series
from imaging_tl.data.tfdata import make_dataset
from imaging_tl.stages import Pipeline, Resize, Stack, Window
cfg = {json.dumps(cfg)}
data = Path({str(folder)!r}) / "series{n_series}"
table = from_series(data, csv=data / "series_labels.csv")
p = prepare(table, Pipeline([Window(preset="lung"), Resize(cfg["input"]), Stack()]),
            cache=Path({str(folder)!r}) / "cache", executor="serial", audit=False)
ds = make_dataset(p, split=None, batch_size=32, labels=False, shuffle=False)
next(iter(ds))  # warm: tf.data built once
def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
before = kb("VmRSS:")
for _ in ds:
    pass
print(json.dumps({{"series": {n_series}, "rss_mb": before / 1024,
                  "added_peak_mb": (kb("VmHWM:") - before) / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- driver
def summarise(rows: list[dict], y: np.ndarray) -> list[str]:
    tvs = _load_tvs()
    lines = ["test AUC per series (mean [min-max] over seeds):"]
    sizes = sorted({r["n"] for r in rows})
    scores = {(r["n"], r["arm"], r["seed"]): np.array(r["scores"]) for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    groups = np.arange(len(y))  # one series per test patient
    for n in sizes:
        parts = []
        for arm in ARMS:
            a = [tvs.auc(y, scores[(n, arm, s)]) for s in seeds if (n, arm, s) in scores]
            if a:
                parts.append(f"{arm} {np.mean(a):.3f} [{min(a):.3f}-{max(a):.3f}]")
        lines.append(f"  n={n}: " + ", ".join(parts))
    for a_arm, b_arm in (("stack_max", "slice_max"), ("slice_max", "middle"),
                         ("stack_max", "middle"), ("stack_mean", "stack_max"),
                         ("stack_top_k_mean", "stack_max"), ("stack_noisy_or", "stack_max")):
        for n in sizes:
            a = [scores[(n, a_arm, s)] for s in seeds]
            b = [scores[(n, b_arm, s)] for s in seeds]
            d = tvs.paired_difference(y, groups, a, b)
            lines.append(f"paired {a_arm} - {b_arm}, n={n}: {d['mean']:+.3f} "
                         f"(95% CI {d['ci'][0]:+.3f} to {d['ci'][1]:+.3f}; "
                         f"{d['wins']}/{d['seeds']} seeds better)")
    return lines


def measure(cfg: dict, csv_path: Path) -> list[str]:
    from imaging_tl.models import build_transfer_model

    t0 = time.perf_counter()
    model = build_transfer_model("efficientnet_lite0", "binary", ["normal", "lesion"],
                                 input_size=cfg["input"])
    n_train = int(1.5 * max(cfg["sizes"]))  # a pool larger than the largest size, so that
    tr_v, ytr = make_series(0, n_train, cfg)  # every size differs between seeds
    va_v, yva = make_series(1, cfg["val"], cfg)
    te_v, yte = make_series(2, cfg["test"], cfg)
    train, val, test = (features(v, model) for v in (tr_v, va_v, te_v))
    print(f"data and features: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, ["n", "seed", "arm", "auc", "scores", "test_labels"])
        w.writeheader()
        for seed in range(cfg["seeds"]):
            order = np.random.default_rng([19, seed]).permutation(n_train)
            for n in cfg["sizes"]:
                chosen = np.sort(order[:n])
                for arm in ARMS:
                    s = run_arm(arm, train, ytr, chosen, val, yva, test)
                    auc = _load_tvs().auc(yte, s)
                    rows.append({"n": n, "seed": seed, "arm": arm, "scores": s.tolist()})
                    w.writerow({"n": n, "seed": seed, "arm": arm, "auc": f"{auc:.4f}",
                                "scores": json.dumps(np.round(s, 6).tolist()),
                                "test_labels": json.dumps(yte.tolist()) if not rows[:-1]
                                else ""})
                    f.flush()
                    print(f"n={n} seed={seed} {arm}: AUC {auc:.3f}", flush=True)
    return summarise(rows, yte)


def speed(cfg: dict) -> list[str]:
    lines = ["speed (same run, batch 32, 96 px, from the array cache):"]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        small, large = cfg["speed_series"]
        r = stream_rate(large, cfg, folder)
        lines.append(f"  {r['samples']} slices of {r['series']} series: single "
                     f"{r['single_per_s']:.0f}/s, 2.5-D {r['stack_per_s']:.0f}/s, "
                     f"ratio {r['ratio']:.2f}x (goal >= 0.8x)")
        stream_rate(small, cfg, folder, repeats=1)  # fill the cache for the small set
        for n in (small, large):
            m = peak_memory(n, cfg, folder)
            lines.append(f"  streaming {n} series: resident {m['rss_mb']:.0f} MB, peak added "
                         f"{m['added_peak_mb']:.1f} MB")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run, not evidence")
    p.add_argument("--full", action="store_true", help="400 training series, 200 test")
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    setting = "quick" if args.quick else "full" if args.full else "default"
    cfg = SETTINGS[setting]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lines = [] if args.speed_only else measure(cfg, args.out / f"series_{setting}.csv")
    lines += speed(cfg)
    lines.append(f"total {time.perf_counter() - t0:.0f} s, setting {setting}: {cfg}")
    text = "\n".join(lines)
    print(text)
    (args.out / f"series_{setting}.log").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
