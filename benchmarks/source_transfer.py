"""Does a related source task beat ImageNet alone? ImageNet -> source run -> target (issue 15).

A source task on synthetic chest radiographs of another "site" (patients used nowhere
else), labelled multi-label for consolidation, effusion and nodule, is trained once; the
target task is nodule vs none at the local site with small training sets. Seven arms, all
scored by test AUC on the same test patients:

1. ``tl_frozen``      ImageNet, frozen backbone, new head (as in transfer_vs_scratch.py);
2. ``tl_finetune``    arm 1, then the top stages fine-tuned;
3. ``src_frozen``     ImageNet -> source (3 findings) -> target, frozen backbone;
4. ``src_finetune``   arm 3, then fine-tuned;
5. ``related_frozen`` ImageNet -> a source without the nodule label (consolidation and
   effusion only) -> target, frozen: a related task, not the same finding;
6. ``small_cnn``      the small task-specific CNN from scratch;
7. ``lite0_scratch``  EfficientNet-Lite0 from scratch.

Arms 3-5 build the target model with the library's own path,
:func:`imaging_tl.models.transfer.build_from_source`, from the source's saved
``model.keras`` (what ``model.source: RUN`` does in a run). Arms 1, 2, 6, 7, the data of the
target task, the difficulty tuning, the paired bootstrap and the CSV format are those of
``transfer_vs_scratch.py`` (imported, not copied): same input size (48 px) and epoch budget.
Paired bootstrap CIs over test patients are printed against arm 1 and against arm 6.

Everything site-specific is in :func:`site_kwargs`: the generator's named sites
(``public`` for the source, ``local`` for the target).

Settings::

    .venv/bin/python benchmarks/source_transfer.py --quick     # smoke run, ~8 min
    .venv/bin/python benchmarks/source_transfer.py             # default: 2 CPU cores
    .venv/bin/python benchmarks/source_transfer.py --full      # GPU machine, 224 px
    .venv/bin/python benchmarks/source_transfer.py --summarize RESULTS.csv

Outputs (``--out``, default benchmarks/results/): ``source_transfer_<setting>.csv`` (one row
per size, seed and arm with the test scores; re-summarised by ``--summarize``),
``source_transfer_<setting>.png``, ``source_transfer_<setting>.log`` and the source models
``source_<setting>_{all,related}/model.keras``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent


sys.path.append(str(_HERE))  # loaded by path from the tests too
from siblings import load  # noqa: E402

tvs = load("transfer_vs_scratch")

ARMS = ("tl_frozen", "tl_finetune", "src_frozen", "src_finetune", "related_frozen",
        "small_cnn", "lite0_scratch")
FINDINGS = ("consolidation", "effusion", "nodule")
RELATED = ("consolidation", "effusion")
_SOURCE_ROLE = 4  # the source's patients: a seed role used by no target split

SETTINGS: dict[str, dict] = {
    # quick: a smoke run of every arm (about 8 min on 2 shared cores), not evidence
    "quick": {**tvs.SETTINGS["default"], "sizes": (50, 100), "seeds": 1, "val": 60,
              "test": 200, "head_epochs": 5, "finetune_epochs": 1, "tune_test": 200,
              "ladder": (0.0,), "source_n": 300, "source_epochs": (4, 1)},
    "default": {**tvs.SETTINGS["default"], "source_n": 4000, "source_epochs": (8, 4)},
    "full": {**tvs.SETTINGS["full"], "source_n": 4000, "source_epochs": (20, 10),
             "tasks": ("synthetic",)},
}


def run_cells(csv_path: Path, cfg: dict, common: dict, train: tuple, val: tuple,
              test: tuple, order: tuple[str, ...], arms_of) -> list[dict]:
    """Every (training size, seed) cell: ``arms_of(data, seed)`` gives each arm's test
    scores and seconds; one CSV row per arm, written as it finishes (a task's first row
    carries the test labels and groups). Shared with ``benchmarks/pretrain.py``."""
    (xp, yp, gp), (xte, yte, gte) = train, test
    rows: list[dict] = []
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, tvs.CSV_FIELDS)
        writer.writeheader()
        for n in cfg["sizes"]:
            for seed in range(cfg["seeds"]):
                idx = tvs.training_subset(gp, n, seed)
                res = arms_of({"train": (xp[idx], yp[idx]), "val": val, "test": (xte, yte)},
                              seed)
                for arm in (a for a in order if a in res):
                    s, secs = res[arm]
                    rows.append(dict(task="synthetic", **common, size=n, seed=seed, arm=arm,
                                     auc=tvs.auc(yte, s), train_seconds=secs, scores=s))
                    writer.writerow(tvs.csv_row(rows[-1], (yte, gte) if len(rows) == 1
                                                else None))
                    fh.flush()
                    print(f"  n={n} seed={seed} {arm:15s} AUC {rows[-1]['auc']:.3f} "
                          f"({secs:.1f} s)", flush=True)
    return rows


def site_kwargs(site: str) -> dict:
    """The generator's keywords for one site: everything site-specific of this benchmark.

    ``local`` is the target's hospital, ``public`` the source's other hospitals: the
    generator's named acquisition sites (:data:`imaging_tl.synthetic.SITES`: other dose,
    blur, scatter, collimation, positioning, AP/PA mix, devices and processing curve).

    Examples
    --------
    >>> site_kwargs("public")["site"].name
    'public'
    """
    from imaging_tl.synthetic import get_site

    return {"site": get_site(site)}


def source_split(n: int, *, base_seed: int, t: float, gen_size: int, image_size: int,
                 site: str = "public") -> tuple[np.ndarray, np.ndarray]:
    """Multi-label source images (two per patient, patients of their own seed role).

    Returns ``x`` float32 (N, S, S, 3) and ``y`` (N, 3) 0/1 for :data:`FINDINGS`.
    """
    from imaging_tl.stages import Pipeline, Resize, ToRGB
    from imaging_tl.synthetic import make_radiograph

    kw = site_kwargs(site)
    rng = np.random.default_rng([base_seed, _SOURCE_ROLE, 99])
    y = (rng.random((n, len(FINDINGS))) < np.array([0.3, 0.3, 0.5])).astype(np.float32)
    pipe = Pipeline([Resize(image_size), ToRGB()])
    diff = tvs.difficulty_at(float(np.clip(t, -1, 1)))
    xs = []
    for i in range(n):
        findings = [f for f, on in zip(FINDINGS, y[i], strict=True) if on]
        img = make_radiograph([base_seed, _SOURCE_ROLE, i // 2, i % 2], findings,
                              size=gen_size, difficulty=diff,
                              anatomy_seed=[base_seed, _SOURCE_ROLE, i // 2], **kw)
        xs.append(pipe(np.clip(img.pixels, 0, 1).astype(np.float32)))
    return np.clip(np.stack(xs), 0, 1).astype(np.float32), y


def train_source(x: np.ndarray, y: np.ndarray, labels: tuple[str, ...], cfg: dict,
                 folder: Path, seed: int = 0) -> Path:
    """Train a multi-label source model (head, then fine-tune) and save its model.keras."""
    from imaging_tl.models import build_transfer_model, save_transfer_model
    from imaging_tl.train import default_phases, train

    cols = [FINDINGS.index(c) for c in labels]
    yy = y[:, cols]
    n_val = max(20, len(x) // 10)
    model = build_transfer_model("efficientnet_lite0", "multilabel", list(labels),
                                 input_size=cfg["image_size"], seed=seed)
    head, fine = default_phases("efficientnet_lite0", head_epochs=cfg["source_epochs"][0],
                                finetune_epochs=cfg["source_epochs"][1],
                                patience=cfg["patience"])
    train(model, (x[n_val:], yy[n_val:]), (x[:n_val], yy[:n_val]), phases=[head, fine],
          seed=seed, cache_features=True)
    model.imaging_tl_contract.lineage = [{"kind": "imagenet", "backbone": "efficientnet_lite0"}]
    path = folder / "model.keras"
    save_transfer_model(model, path)
    return path


def run_source_arms(data: dict, seed: int, cfg: dict, sources: dict[str, Path],
                    arms: tuple[str, ...]) -> dict[str, tuple[np.ndarray, float]]:
    """Arms 3-5: the target model from a source's model.keras, trained as arms 1-2."""
    from imaging_tl.models.transfer import build_from_source
    from imaging_tl.train import default_phases, train

    (xtr, ytr), (xva, yva), (xte, _) = data["train"], data["val"], data["test"]
    head, fine = default_phases("efficientnet_lite0", head_epochs=cfg["head_epochs"],
                                finetune_epochs=cfg["finetune_epochs"],
                                patience=cfg["patience"])
    out = {}
    for frozen, finetuned, src in (("src_frozen", "src_finetune", "all"),
                                   ("related_frozen", None, "related")):
        if frozen not in arms and finetuned not in arms:
            continue
        model = build_from_source(sources[src], "binary", ["none", "nodule"], seed=seed)
        t0 = time.perf_counter()
        train(model, (xtr, ytr), (xva, yva), phases=[head], seed=seed, cache_features=True)
        t1 = time.perf_counter() - t0
        out[frozen] = (tvs._scores(model, xte), t1)
        if finetuned in arms:
            t0 = time.perf_counter()
            train(model, (xtr, ytr), (xva, yva), phases=[fine], seed=seed)
            out[finetuned] = (tvs._scores(model, xte), t1 + time.perf_counter() - t0)
    return out


def summarise(rows: list[dict], tests: dict) -> list[str]:
    """AUC per arm and size, and paired differences against arms 1 and 6."""
    lines = []
    for task, (y, groups) in tests.items():
        rs = [r for r in rows if r["task"] == task]
        sizes = sorted({r["size"] for r in rs})
        arms = [a for a in ARMS if any(r["arm"] == a for r in rs)]
        lines.append(f"\n## {task} (difficulty {rs[0]['difficulty']:.2f}; test n={len(y)})")
        lines.append("| arm | " + " | ".join(f"n={n}" for n in sizes) + " |")
        lines.append("|---|" + "---:|" * len(sizes))
        for arm in arms:
            cells = []
            for n in sizes:
                v = np.array([r["auc"] for r in rs if r["arm"] == arm and r["size"] == n])
                cells.append(f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")

        def scores(a, n, rs=rs):
            return [r["scores"] for r in sorted(rs, key=lambda r: r["seed"])
                    if r["arm"] == a and r["size"] == n]

        for ref in ("tl_frozen", "small_cnn"):
            for arm in (a for a in arms if a.startswith(("src_", "related_"))):
                if ref not in arms:
                    continue
                for n in sizes:
                    d = tvs.paired_difference(y, groups, scores(arm, n), scores(ref, n))
                    lines.append(f"paired {arm} - {ref}, n={n}: {d['mean']:+.3f} "
                                 f"({d['wins']}/{d['seeds']} wins; 95% CI "
                                 f"{d['ci'][0]:+.3f}..{d['ci'][1]:+.3f})")
    return lines


def report(rows: list[dict], tests: dict, png: Path) -> None:
    print("\n".join(summarise(rows, tests)))
    tvs.plot(rows, png, ARMS)
    print(f"\nwrote {png}")


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced smoke setting")
    mode.add_argument("--full", action="store_true", help="GPU setting (224 px)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of arms")
    ap.add_argument("--sizes", help="comma list of training sizes (override)")
    ap.add_argument("--seeds", type=int, help="seeds per cell (override)")
    ap.add_argument("--test", type=int, help="test images (override)")
    ap.add_argument("--val", type=int, help="validation images (override)")
    ap.add_argument("--source-n", type=int, help="source images (override)")
    ap.add_argument("--image-size", type=int, help="model input size (override)")
    ap.add_argument("--gen-size", type=int, help="generated image size (override)")
    ap.add_argument("--epochs", type=int, nargs=2, metavar=("HEAD", "FINETUNE"),
                    help="epochs of the target's head and finetune phases (override)")
    ap.add_argument("--workers", type=int, help="generator processes (override)")
    ap.add_argument("--difficulty", type=float, help="skip tuning: ladder value in [-1, 1]")
    ap.add_argument("--target-auc", type=float, default=0.75)
    ap.add_argument("--tune-seed", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=tvs.RESULTS)
    ap.add_argument("--summarize", type=Path, metavar="CSV")
    return ap.parse_args(argv)


def _setting(args: argparse.Namespace) -> tuple[str, dict]:
    setting = "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(SETTINGS[setting])
    for key, val in (("seeds", args.seeds), ("test", args.test), ("val", args.val),
                     ("image_size", args.image_size), ("gen_size", args.gen_size),
                     ("workers", args.workers), ("source_n", args.source_n)):
        if val is not None:
            cfg[key] = val
    if args.sizes:
        cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    if args.epochs:
        cfg["head_epochs"], cfg["finetune_epochs"] = args.epochs
        cfg["source_epochs"] = tuple(args.epochs)
    return setting, cfg


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.summarize is not None:
        rows, tests = tvs.read_results(args.summarize)
        report(rows, tests, args.summarize.with_suffix(".png"))
        return 0
    setting, cfg = _setting(args)
    arms = tuple(a for a in args.arms.split(",") if a)
    if [a for a in arms if a not in ARMS]:
        print(f"error: unknown arm in {arms}; arms {ARMS}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"source_transfer_{setting}"
    with open(args.out / f"{stem}.log", "w") as log, contextlib.redirect_stdout(
            _Tee(sys.stdout, log)):
        return _measure(args, setting, cfg, arms, stem)


class _Tee:
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
            s.flush()
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def _measure(args: argparse.Namespace, setting: str, cfg: dict, arms: tuple[str, ...],
             stem: str) -> int:
    print(f"setting {setting}: {cfg}; arms {list(arms)}", flush=True)
    t_start = time.perf_counter()
    base_arms = tuple(a for a in arms if a in tvs.ARMS)
    pool = tvs.ModelPool(cfg["image_size"])
    pool.warm(base_arms if args.difficulty is not None else ("tl_frozen", *base_arms))
    t = args.difficulty if args.difficulty is not None else tvs.tune_difficulty(
        "synthetic", cfg, args.tune_seed, args.target_auc, pool)[0]
    xs, ys = source_split(cfg["source_n"], base_seed=args.seed, t=t, gen_size=cfg["gen_size"],
                          image_size=cfg["image_size"])
    sources = {}
    for key, labels in (("all", FINDINGS), ("related", RELATED)):
        t0 = time.perf_counter()
        sources[key] = train_source(xs, ys, labels, cfg, args.out / f"source_{setting}_{key}")
        print(f"  source {key} ({', '.join(labels)}; {len(xs)} images) trained in "
              f"{time.perf_counter() - t0:.0f} s -> {sources[key]}", flush=True)
    kw = dict(base_seed=args.seed, t=t, gen_size=cfg["gen_size"], image_size=cfg["image_size"],
              workers=cfg["workers"])
    xp, yp, gp = tvs.make_split("synthetic", "train", max(cfg["sizes"]), **kw)
    xva, yva, _ = tvs.make_split("synthetic", "val", cfg["val"], **kw)
    xte, yte, gte = tvs.make_split("synthetic", "test", cfg["test"], **kw)
    tests = {"synthetic": (yte, gte)}
    csv_path = args.out / f"{stem}.csv"
    rows = run_cells(csv_path, cfg, dict(setting=setting, difficulty=t), (xp, yp, gp),
                     (xva, yva), (xte, yte, gte), ARMS,
                     lambda data, seed: {**(tvs.run_arms(data, seed, cfg, base_arms, pool)
                                            if base_arms else {}),
                                         **run_source_arms(data, seed, cfg, sources, arms)})
    report(rows, tests, args.out / f"{stem}.png")
    print(f"wrote {csv_path}; total {time.perf_counter() - t_start:.0f} s "
          f"(re-summarise: --summarize {csv_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
