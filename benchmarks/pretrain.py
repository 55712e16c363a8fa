"""Does self-supervised pretraining on unlabelled images pay? (issue 16)

SimSiam (``imaging_tl.pretrain``) on about 5,000 unlabelled synthetic radiographs of the
local site, of patients used nowhere else; then the nodule target task of
``transfer_vs_scratch.py`` at 50-800 labelled images, 3 seeds, 1,000 test images, the same
input size (48 px) and epoch budget. Arms, all scored by test AUC on the same patients:

1. ``tl_frozen`` / ``tl_finetune``        ImageNet only (frozen head, then fine-tuned);
2. ``ssl_frozen`` / ``ssl_finetune``      ImageNet -> SimSiam -> target;
3. ``rssl_frozen`` / ``rssl_finetune``    random initialisation -> SimSiam -> target;
4. ``src_frozen`` / ``src_finetune``      ImageNet -> supervised source task -> target
   (the source arm of ``source_transfer.py``, imported, not copied).

The target model of arms 2-4 is built by the library's own path,
:func:`imaging_tl.models.transfer.build_from_source` (what ``model.source: RUN`` does).
The pretraining uses the library's model, optimiser, step and views
(:func:`~imaging_tl.pretrain.simsiam.build_simsiam`, ``make_train_step``,
:class:`~imaging_tl.pretrain.views.ViewMaker`) on arrays held in memory, as
``source_transfer.py`` trains its source with :func:`imaging_tl.train.train`. After every
pretraining epoch a linear probe (:func:`imaging_tl.pretrain.quality.linear_probe` on
pooled features; 200 labelled training images, the 200 validation images) gives the
representation-quality curve. Paired bootstrap CIs over test patients against arm 1.

Speed (``--speed``, also printed by every setting): one SimSiam step (two views, the whole
backbone trainable) against one supervised step of the same backbone, fully trainable, on
the same batch, timed in the same process; the goal is a ratio <= 2.5.

Settings::

    .venv/bin/python benchmarks/pretrain.py --quick      # smoke run, a few minutes
    .venv/bin/python benchmarks/pretrain.py              # default, 2 CPU cores (~25 min)
    .venv/bin/python benchmarks/pretrain.py --full       # GPU machine, 224 px
    .venv/bin/python benchmarks/pretrain.py --speed      # the step-time ratio only

Outputs (``--out``, default benchmarks/results/): ``pretrain_<setting>.csv`` (one row per
size, seed and arm), ``pretrain_<setting>.png``, ``pretrain_<setting>_probe.csv`` and
``.png`` (probe AUC per pretraining epoch) and ``pretrain_<setting>.log``.
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

st = load("source_transfer")
tvs = st.tvs

ARMS = ("tl_frozen", "tl_finetune", "ssl_frozen", "ssl_finetune", "rssl_frozen",
        "rssl_finetune", "src_frozen", "src_finetune")
_PRETRAIN_SEED = 7919  # base-seed offset: the unlabelled patients are used nowhere else

SETTINGS: dict[str, dict] = {
    # quick: a smoke run of every arm, not evidence
    "quick": {**st.SETTINGS["quick"], "sizes": (50,), "test": 200, "pretrain_n": 256,
              "ssl_epochs": 2, "ssl_batch": 32, "source_n": 200, "source_epochs": (2, 1),
              "probe_n": 100},
    # default: 2 CPU cores (the lead's quiet-machine run; not timed here)
    "default": {**st.SETTINGS["default"], "pretrain_n": 5000, "ssl_epochs": 6,
                "ssl_batch": 64, "probe_n": 200},
    "full": {**st.SETTINGS["full"], "pretrain_n": 5000, "ssl_epochs": 50, "ssl_batch": 128,
             "probe_n": 400},
}
SSL = {"learning_rate": None, "projection_dim": 512, "predictor_dim": 128, "warmup_epochs": 1,
       "train_batchnorm": None}
COLLAPSE_RATIO = 0.05  # pretrain.collapse_ratio's default


def unlabelled_images(n: int, *, base_seed: int, t: float, cfg: dict) -> np.ndarray:
    """``n`` images of the local site, two per patient, of patients no split shares (their
    labels are drawn and thrown away: an archive is a mix of findings)."""
    x, _ = st.source_split(n, base_seed=base_seed + _PRETRAIN_SEED, t=t,
                           gen_size=cfg["gen_size"], image_size=cfg["image_size"],
                           site="local")
    return x


def pretrain_arrays(x: np.ndarray, source: str, cfg: dict, probe: tuple, seed: int = 0
                    ) -> tuple[object, list[dict]]:
    """SimSiam on in-memory images with the library's model, step and views; the linear
    probe after every epoch. As ``imaging-tl pretrain`` does (``pretrain.keep:
    best_probe``), training stops at a collapse and the model returned holds the weights
    of the best probed epoch that had not collapsed. Returns the model (its ``transfer``
    model) and the curve (``kept`` marks the epoch kept)."""
    import tensorflow as tf

    from imaging_tl.pretrain.data import epoch_seed
    from imaging_tl.pretrain.quality import (
        collapse_reason,
        collapse_stats,
        feature_spread,
        kept_epoch,
        linear_probe,
    )
    from imaging_tl.pretrain.simsiam import (
        build_simsiam,
        make_optimizer,
        make_train_step,
        simsiam_learning_rate,
    )
    from imaging_tl.pretrain.views import ViewMaker, view_seeds
    from imaging_tl.train.features import extract_features, feature_fn

    batch, epochs = cfg["ssl_batch"], cfg["ssl_epochs"]
    steps = len(x) // batch
    model = build_simsiam("efficientnet_lite0", source=source, input_size=cfg["image_size"],
                          projection_dim=SSL["projection_dim"],
                          predictor_dim=SSL["predictor_dim"], seed=seed,
                          train_batchnorm=SSL["train_batchnorm"])
    opt = make_optimizer(SSL["learning_rate"] or simsiam_learning_rate(batch),
                         total_steps=epochs * steps)
    strategy = tf.distribute.get_strategy()
    steps_of = {part: make_train_step(model, opt, strategy, batch, backbone=part == "all")
                for part in ("all", "heads")}
    warmup = SSL["warmup_epochs"] if source == "imagenet" else 0
    maker, fn = ViewMaker(None, cfg["image_size"]), feature_fn(model.transfer)
    (xa, ya), (xb, yb) = probe

    def features() -> tuple[np.ndarray, np.ndarray]:
        return extract_features(model.transfer, xa, fn=fn)[0], extract_features(
            model.transfer, xb, fn=fn)[0]

    start = feature_spread(np.concatenate(features()))
    curve, best = [], model.joint.get_weights()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(x))
        losses, zs = [], []
        step = steps_of["heads" if epoch < warmup else "all"]
        for b in range(steps):
            v1, v2 = maker(x[order[b * batch:(b + 1) * batch]], view_seeds(seed, epoch, b, batch))
            loss, z = step(v1, v2)
            losses.append(float(loss))
            zs.append(np.asarray(z))
        fa, fb = features()
        spread = feature_spread(np.concatenate([fa, fb]))
        row = {"source": source, "epoch": epoch + 1, "loss": float(np.mean(losses)),
               "embedding_std_ratio": collapse_stats(np.concatenate(zs[-4:]))["std_ratio"],
               "feature_std_ratio": spread / start,
               "probe_auc": linear_probe(fa, ya, fb, yb, seed=seed)["auc"],
               "seconds": time.perf_counter() - t0}
        curve.append(row)
        print(f"  SimSiam from {source}: epoch {epoch + 1}/{epochs} loss {row['loss']:+.3f} "
              f"embedding std ratio {row['embedding_std_ratio']:.3f} feature spread "
              f"x{row['feature_std_ratio']:.4f} probe AUC {row['probe_auc']:.3f} "
              f"({row['seconds']:.0f} s)", flush=True)
        if kept_epoch(curve, "best_probe", COLLAPSE_RATIO) == epoch + 1:
            best = model.joint.get_weights()
        reason = collapse_reason(row, COLLAPSE_RATIO)
        if reason is not None:
            print(f"  SimSiam from {source}: collapsed at epoch {epoch + 1} ({reason}); "
                  "stopping", flush=True)
            break
    kept = kept_epoch(curve, "best_probe", COLLAPSE_RATIO)
    for row in curve:
        row["kept"] = int(row["epoch"] == kept)
    model.joint.set_weights(best)
    print(f"  SimSiam from {source}: keeping epoch {kept}", flush=True)
    return model, curve


def probe_before(x: tuple, cfg: dict) -> float:
    """The probe's AUC on ImageNet features before any pretraining (epoch 0)."""
    from imaging_tl.models import build_transfer_model
    from imaging_tl.pretrain.quality import linear_probe
    from imaging_tl.train.features import extract_features

    m = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=cfg["image_size"])
    (xa, ya), (xb, yb) = x
    return linear_probe(extract_features(m, xa)[0], ya, extract_features(m, xb)[0], yb)["auc"]


def run_pretrained_arms(data: dict, seed: int, cfg: dict, sources: dict,
                        arms: tuple[str, ...]) -> dict[str, tuple[np.ndarray, float]]:
    """Arms 2-4: the target from a pretrained (or source) model, trained as arm 1."""
    from imaging_tl.models.transfer import build_from_source
    from imaging_tl.train import default_phases, train

    (xtr, ytr), (xva, yva), (xte, _) = data["train"], data["val"], data["test"]
    head, fine = default_phases("efficientnet_lite0", head_epochs=cfg["head_epochs"],
                                finetune_epochs=cfg["finetune_epochs"],
                                patience=cfg["patience"])
    out = {}
    for prefix, src in sources.items():
        frozen, finetuned = f"{prefix}_frozen", f"{prefix}_finetune"
        if frozen not in arms and finetuned not in arms:
            continue
        model = build_from_source(src, "binary", ["none", "nodule"], seed=seed)
        t0 = time.perf_counter()
        train(model, (xtr, ytr), (xva, yva), phases=[head], seed=seed, cache_features=True)
        t1 = time.perf_counter() - t0
        out[frozen] = (tvs._scores(model, xte), t1)
        if finetuned in arms:
            t0 = time.perf_counter()
            train(model, (xtr, ytr), (xva, yva), phases=[fine], seed=seed)
            out[finetuned] = (tvs._scores(model, xte), t1 + time.perf_counter() - t0)
    return out


def step_ratio(image_size: int, batch: int, repeats: int = 10) -> dict[str, float]:
    """Seconds per SimSiam step (two views) and per supervised step of the same backbone
    (every layer trainable, SGD, binary cross-entropy), same batch, same process."""
    import keras
    import tensorflow as tf

    from imaging_tl.models import build_transfer_model
    from imaging_tl.pretrain.simsiam import build_simsiam, make_optimizer, make_train_step
    from imaging_tl.train.compile import compile_for_task

    rng = np.random.default_rng(0)
    x = rng.random((batch, image_size, image_size, 3), dtype=np.float32)
    y = (rng.random(batch) < 0.5).astype(np.float32)
    ssl = build_simsiam("efficientnet_lite0", input_size=image_size,
                        projection_dim=SSL["projection_dim"], predictor_dim=SSL["predictor_dim"])
    step = make_train_step(ssl, make_optimizer(0.05, schedule="constant"),
                           tf.distribute.get_strategy(), batch)
    sup = build_transfer_model("efficientnet_lite0", "binary", 2, freeze="none",
                               input_size=image_size)
    compile_for_task(sup, "binary", keras.optimizers.SGD(0.05, momentum=0.9))
    xs, x2 = tf.constant(x), tf.constant(x[::-1].copy())

    def timed(fn) -> float:
        for _ in range(3):  # tracing and warm-up
            fn()
        best = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best.append(time.perf_counter() - t0)
        return float(np.median(best))

    t_sup = timed(lambda: sup.train_on_batch(xs, y))
    t_ssl = timed(lambda: float(step(xs, x2)[0]))
    return {"supervised_s": t_sup, "simsiam_s": t_ssl, "ratio": t_ssl / t_sup}


def summarise(rows: list[dict], tests: dict) -> list[str]:
    """AUC per arm and size, and paired differences against ImageNet only."""
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

        for arm in (a for a in arms if not a.startswith("tl_")):
            ref = "tl_finetune" if arm.endswith("finetune") else "tl_frozen"
            if ref not in arms:
                continue
            for n in sizes:
                d = tvs.paired_difference(y, groups, scores(arm, n), scores(ref, n))
                lines.append(f"paired {arm} - {ref}, n={n}: {d['mean']:+.3f} "
                             f"({d['wins']}/{d['seeds']} wins; 95% CI "
                             f"{d['ci'][0]:+.3f}..{d['ci'][1]:+.3f})")
    return lines


def plot_probe(curve: list[dict], before: float, path: Path) -> Path:
    """The linear-probe AUC over pretraining epochs, one line per start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for source in dict.fromkeys(r["source"] for r in curve):
        rs = [r for r in curve if r["source"] == source]
        ax.plot([r["epoch"] for r in rs], [r["probe_auc"] for r in rs], marker="o",
                label=f"SimSiam from {source}")
    ax.axhline(before, color="grey", ls="--", label="ImageNet features, no SimSiam")
    ax.set_xlabel("pretraining epoch")
    ax.set_ylabel("linear-probe test AUC")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced smoke setting")
    mode.add_argument("--full", action="store_true", help="GPU setting (224 px)")
    ap.add_argument("--speed", action="store_true", help="only the step-time ratio")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of arms")
    ap.add_argument("--sizes", help="comma list of training sizes (override)")
    ap.add_argument("--seeds", type=int, help="seeds per cell (override)")
    ap.add_argument("--test", type=int, help="test images (override)")
    ap.add_argument("--pretrain-n", type=int, help="unlabelled images (override)")
    ap.add_argument("--ssl-epochs", type=int, help="pretraining epochs (override)")
    ap.add_argument("--ssl-lr", type=float, help="SimSiam learning rate (override)")
    ap.add_argument("--ssl-bn", choices=("auto", "train", "frozen"), default="auto",
                    help="the backbone's BatchNorm during SimSiam (auto: the library's default)")
    ap.add_argument("--difficulty", type=float, help="skip tuning: ladder value in [-1, 1]")
    ap.add_argument("--target-auc", type=float, default=0.75)
    ap.add_argument("--tune-seed", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=tvs.RESULTS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    setting = "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(SETTINGS[setting])
    for key, val in (("seeds", args.seeds), ("test", args.test),
                     ("pretrain_n", args.pretrain_n), ("ssl_epochs", args.ssl_epochs)):
        if val is not None:
            cfg[key] = val
    if args.ssl_lr is not None:
        SSL["learning_rate"] = args.ssl_lr
    SSL["train_batchnorm"] = {"auto": None, "train": True, "frozen": False}[args.ssl_bn]
    if args.sizes:
        cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    if args.speed:
        r = step_ratio(cfg["image_size"], cfg["ssl_batch"])
        print(f"speed at {cfg['image_size']} px, batch {cfg['ssl_batch']}: SimSiam step "
              f"{r['simsiam_s'] * 1e3:.0f} ms, supervised step {r['supervised_s'] * 1e3:.0f} "
              f"ms, ratio {r['ratio']:.2f} (goal <= 2.5)")
        return 0
    arms = tuple(a for a in args.arms.split(",") if a)
    if [a for a in arms if a not in ARMS]:
        print(f"error: unknown arm in {arms}; arms {ARMS}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"pretrain_{setting}"
    with open(args.out / f"{stem}.log", "w") as log, contextlib.redirect_stdout(
            st._Tee(sys.stdout, log)):
        return _measure(args, setting, cfg, arms, stem)


def _sources(args, setting: str, cfg: dict, arms: tuple[str, ...], t: float,
             probe: tuple) -> tuple[dict, list[dict]]:
    """The pretrained models (and the supervised source model) the arms start from."""
    sources, curve = {}, []
    for prefix, start in (("ssl", "imagenet"), ("rssl", "none")):
        if any(a.startswith(prefix + "_") for a in arms):
            t0 = time.perf_counter()
            x = unlabelled_images(cfg["pretrain_n"], base_seed=args.seed, t=t, cfg=cfg)
            model, c = pretrain_arrays(x, start, cfg, probe, seed=args.seed)
            sources[prefix], curve = model.transfer, curve + c
            print(f"  SimSiam from {start} on {len(x)} unlabelled images: "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    if any(a.startswith("src_") for a in arms):
        xs, ys = st.source_split(cfg["source_n"], base_seed=args.seed, t=t,
                                 gen_size=cfg["gen_size"], image_size=cfg["image_size"])
        sources["src"] = st.train_source(xs, ys, st.FINDINGS, cfg,
                                         args.out / f"pretrain_{setting}_source")
    return sources, curve


def _measure(args, setting: str, cfg: dict, arms: tuple[str, ...], stem: str) -> int:
    print(f"setting {setting}: {cfg}; arms {list(arms)}; SimSiam {SSL}", flush=True)
    t_start = time.perf_counter()
    speed = step_ratio(cfg["image_size"], cfg["ssl_batch"])
    print(f"speed: SimSiam step / supervised step = {speed['ratio']:.2f} "
          f"({speed['simsiam_s'] * 1e3:.0f} / {speed['supervised_s'] * 1e3:.0f} ms, "
          f"{cfg['image_size']} px, batch {cfg['ssl_batch']}; goal <= 2.5)", flush=True)
    base_arms = tuple(a for a in arms if a in tvs.ARMS)
    pool = tvs.ModelPool(cfg["image_size"])
    pool.warm(("tl_frozen", *base_arms))
    t = args.difficulty if args.difficulty is not None else tvs.tune_difficulty(
        "synthetic", cfg, args.tune_seed, args.target_auc, pool)[0]
    kw = dict(base_seed=args.seed, t=t, gen_size=cfg["gen_size"], image_size=cfg["image_size"],
              workers=cfg["workers"])
    xp, yp, gp = tvs.make_split("synthetic", "train", max(max(cfg["sizes"]), cfg["probe_n"]),
                                **kw)
    xva, yva, _ = tvs.make_split("synthetic", "val", cfg["val"], **kw)
    xte, yte, gte = tvs.make_split("synthetic", "test", cfg["test"], **kw)
    probe_idx = tvs.training_subset(gp, cfg["probe_n"], 0)
    probe = ((xp[probe_idx], yp[probe_idx]), (xva, yva))
    before = probe_before(probe, cfg)
    print(f"  linear probe on ImageNet features (no SimSiam): AUC {before:.3f}", flush=True)
    sources, curve = _sources(args, setting, cfg, arms, t, probe)
    _write_probe(curve, before, args.out / f"{stem}_probe")
    tests = {"synthetic": (yte, gte)}
    csv_path = args.out / f"{stem}.csv"
    rows = st.run_cells(csv_path, cfg, dict(setting=setting, difficulty=t), (xp, yp, gp),
                        (xva, yva), (xte, yte, gte), ARMS,
                        lambda data, seed: {**(tvs.run_arms(data, seed, cfg, base_arms, pool)
                                               if base_arms else {}),
                                            **run_pretrained_arms(data, seed, cfg, sources,
                                                                  arms)})
    print("\n".join(summarise(rows, tests)))
    tvs.plot(rows, args.out / f"{stem}.png", ARMS)
    print(f"wrote {csv_path}; total {time.perf_counter() - t_start:.0f} s")
    return 0


def _write_probe(curve: list[dict], before: float, stem: Path) -> None:
    if not curve:
        return
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, list(curve[0]))
        w.writeheader()
        w.writerow({"source": "imagenet (no SimSiam)", "epoch": 0, "probe_auc": before})
        w.writerows(curve)
    plot_probe(curve, before, stem.with_suffix(".png"))
    print(f"  wrote {stem.with_suffix('.csv')} and .png", flush=True)


if __name__ == "__main__":
    sys.exit(main())
