"""Slice-level labels (issue 19): what labelling the lesion's slices buys over labelling the
series, and what sampling the training slices around them costs.

Task and model as ``benchmarks/series.py`` (synthetic chest CT series of 10 slices of
96 px, half with a soft-tissue nodule crossing a few slices; ImageNet EfficientNet-Lite0
frozen, 2.5-D inputs from the ``stack`` stage, a logistic-regression head with C chosen on
the validation series' AUC, a series' probability the max over its slices). Three arms
differ only in the labels and slices they train on:

1. ``series_labels``    every slice of a training series, labelled as its series
                        (``series.py``'s ``stack_max``);
2. ``slice_labels``     every slice, labelled with its own label (lesion on the slices the
                        nodule crosses; ``data.slice_labels``);
3. ``around_positive``  slice labels, and only the lesion slices, those within 1 slice of
                        one and a seeded quarter of the others
                        (``imaging_tl.data.series.sample_around_positive``, as
                        ``data.slice_sampling: around_positive``, margin 1, rest 0.25).

Sizes (default): 25, 50 and 100 training series (nested subsets of a pool of 150, drawn
per seed), 3 seeds, 60 validation and 150 test series (one series per patient).
Printed: test AUC per arm and size (mean and range over seeds), paired differences against
``series_labels`` (seed-mean AUC difference, 95% interval from a paired bootstrap over test
patients), and the share of training slices ``around_positive`` keeps.

    .venv/bin/python benchmarks/series_slices.py            # default (2 CPU cores)
    .venv/bin/python benchmarks/series_slices.py --quick    # smoke run, not evidence

Outputs (``--out``, default benchmarks/results/): ``series_slices_<setting>.csv`` and the
printed summary in ``series_slices_<setting>.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

_HERE = Path(__file__).resolve().parent
RESULTS = _HERE / "results"
ARMS = ("series_labels", "slice_labels", "around_positive")
SETTINGS: dict[str, dict] = {
    "quick": dict(sizes=(25, 50), seeds=1, val=40, test=60, slices=10, gen=96, input=96),
    "default": dict(sizes=(25, 50, 100), seeds=3, val=60, test=150, slices=10, gen=96,
                    input=96),
}


def _sibling(name: str):
    sys.path.append(str(_HERE))  # loaded by path from the tests too
    from siblings import load

    return load(name)


def stack_features(volumes: list[np.ndarray], model) -> tuple[np.ndarray, np.ndarray]:
    """Features of every slice's 2.5-D input, and the series of each."""
    from imaging_tl.train import extract_features

    x, codes = _sibling("series").inputs(volumes, "stack")
    return extract_features(model, x, 64)[0], codes


def training_rows(arm: str, codes: np.ndarray, chosen: np.ndarray, y_series: np.ndarray,
                  y_slices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows of an arm (slices of the series ``chosen``) and their labels."""
    import pandas as pd

    from imaging_tl.data.series import sample_around_positive

    rows = np.flatnonzero(np.isin(codes, chosen))
    if arm == "series_labels":
        return rows, y_series[codes[rows]]
    if arm == "slice_labels":
        return rows, y_slices[rows]
    number = np.concatenate([np.arange(n) for n in np.bincount(codes)])
    table = pd.DataFrame({"series": codes[rows], "slice": number[rows], "row": rows,
                          "label": y_slices[rows].astype(str), "split": "train"})
    kept = sample_around_positive(table, "1", margin=1, rest=0.25, seed=seed)
    picked = kept["row"].to_numpy()
    return picked, y_slices[picked]


def measure(cfg: dict, csv_path: Path) -> list[str]:
    from imaging_tl.models import build_transfer_model

    series, tvs = _sibling("series"), _sibling("transfer_vs_scratch")
    t0 = time.perf_counter()
    model = build_transfer_model("efficientnet_lite0", "binary", ["normal", "lesion"],
                                 input_size=cfg["input"])
    n_train = int(1.5 * max(cfg["sizes"]))
    per_slice: list[np.ndarray] = []
    tr_v, ytr = series.make_series(0, n_train, cfg, slice_labels=per_slice)
    y_slices = np.concatenate(per_slice)
    va_v, yva = series.make_series(1, cfg["val"], cfg)
    te_v, yte = series.make_series(2, cfg["test"], cfg)
    train, val, test = (stack_features(v, model) for v in (tr_v, va_v, te_v))
    print(f"data and features: {time.perf_counter() - t0:.0f} s", flush=True)
    rows, kept_share = [], []
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, ["n", "seed", "arm", "auc", "train_slices", "scores"])
        w.writeheader()
        for seed in range(cfg["seeds"]):
            order = np.random.default_rng([19, seed]).permutation(n_train)
            for n in cfg["sizes"]:
                chosen = np.sort(order[:n])
                for arm in ARMS:
                    r, y = training_rows(arm, train[1], chosen, ytr, y_slices, seed)
                    s = series.fit_head(train[0][r], y, val, yva, test)
                    auc = tvs.auc(yte, s)
                    rows.append({"n": n, "seed": seed, "arm": arm, "scores": s})
                    if arm == "around_positive":
                        kept_share.append(len(r) / np.isin(train[1], chosen).sum())
                    w.writerow({"n": n, "seed": seed, "arm": arm, "auc": f"{auc:.4f}",
                                "train_slices": len(r),
                                "scores": json.dumps(np.round(s, 6).tolist())})
                    f.flush()
                    print(f"n={n} seed={seed} {arm}: AUC {auc:.3f} ({len(r)} slices)",
                          flush=True)
    return summarise(rows, yte, tvs) + [
        f"around_positive trained on {np.mean(kept_share):.0%} of the slices "
        f"[{min(kept_share):.0%}-{max(kept_share):.0%}]"]


def summarise(rows: list[dict], y: np.ndarray, tvs) -> list[str]:
    lines = ["test AUC per series (mean [min-max] over seeds):"]
    sizes = sorted({r["n"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    scores = {(r["n"], r["arm"], r["seed"]): r["scores"] for r in rows}
    for n in sizes:
        parts = []
        for arm in ARMS:
            a = [tvs.auc(y, scores[(n, arm, s)]) for s in seeds]
            parts.append(f"{arm} {np.mean(a):.3f} [{min(a):.3f}-{max(a):.3f}]")
        lines.append(f"  n={n}: " + ", ".join(parts))
    groups = np.arange(len(y))  # one series per test patient
    for arm in ARMS[1:]:
        for n in sizes:
            d = tvs.paired_difference(y, groups, [scores[(n, arm, s)] for s in seeds],
                                      [scores[(n, "series_labels", s)] for s in seeds])
            lines.append(f"paired {arm} - series_labels, n={n}: {d['mean']:+.3f} "
                         f"(95% CI {d['ci'][0]:+.3f} to {d['ci'][1]:+.3f}; "
                         f"{d['wins']}/{d['seeds']} seeds better)")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run, not evidence")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    setting = "quick" if args.quick else "default"
    cfg = SETTINGS[setting]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lines = measure(cfg, args.out / f"series_slices_{setting}.csv")
    lines.append(f"total {time.perf_counter() - t0:.0f} s, setting {setting}: {cfg}")
    text = "\n".join(lines)
    print(text)
    (args.out / f"series_slices_{setting}.log").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
