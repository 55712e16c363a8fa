"""Does the transfer pay? Pretrained vs from-scratch across training-set sizes (issue 9).

Binary task "nodule vs none", AUC on a fixed held-out test set, five arms trained through
the library's own pieces (``imaging_tl.synthetic`` -> ``imaging_tl.stages`` ->
``imaging_tl.models.build_transfer_model`` -> ``imaging_tl.train.train`` ->
``imaging_tl.evaluate``):

1. ``tl_frozen``    efficientnet_lite0, ImageNet weights, frozen backbone, new head (cached
   features);
2. ``tl_finetune``  arm 1, then phase 2: the top two stages unfrozen at a lower rate
   (``default_phases``);
3. ``lite0_scratch`` efficientnet_lite0, random initialisation, trained end to end
   (BatchNorm training) for as many epochs as arms 1+2 together;
4. ``small_cnn``    a four-block CNN of the kind a researcher would write, same epochs;
5. ``logreg_pixels`` logistic regression on 32x32 downsampled pixels (C chosen on val).

Tasks: ``synthetic`` (phantom chest radiographs, two images per patient, nested training
subsets drawn by patient) and ``composite`` (findings composited onto random crops and
exposures of the real chest CR radiograph ``RG1`` of ``pydicom-data``). pydicom-data ships
only two distinct radiographs and the other one (``RG3``) is a lower leg, so every composite
image -- train, validation and test -- shares the one chest background: that run measures
finding detection on a known real background, not generalisation to unseen patients.

Difficulty is tuned once per task on a separate seed (``--tune-seed``) before measuring:
from the hardest rung of a ladder (``hard`` preset = 1.0, ``medium`` = 0.5, ``easy`` = 0)
towards the easiest, arm 1 is trained on the largest training size and the first rung
whose tuning-test AUC reaches ``--target-auc`` is used. ``--difficulty T`` skips tuning.

Settings::

    .venv/bin/python benchmarks/transfer_vs_scratch.py            # default: 2 CPU cores
    .venv/bin/python benchmarks/transfer_vs_scratch.py --tasks composite  # its 2nd task
    .venv/bin/python benchmarks/transfer_vs_scratch.py --quick    # reduced smoke run
    .venv/bin/python benchmarks/transfer_vs_scratch.py --full     # GPU machine
    .venv/bin/python benchmarks/transfer_vs_scratch.py --summarize RESULTS.csv

The default setting (sizes 50-800, 3 seeds, 1,000 test images, 200 validation images for
early stopping, 48 px, 12 + 3 epochs) runs the synthetic task with difficulty tuning in
17.7 min on 2 cores (measured; BENCHMARKS.md); the composite task is a second run of
16.4 min. Each arm's Keras model is built and traced once per process and reset to the cell's seed
(:class:`ModelPool`): tracing Lite0's train function costs 12-50 s here, more than most
cells' training.

Outputs (``--out``, default benchmarks/results/): ``transfer_vs_scratch_<setting>[_<task>].csv``
(one row per task, size, seed, arm, written as each cell finishes, with the cell's test
scores; a task's first row also carries the test labels and patient groups, so
``--summarize CSV`` rebuilds the summary and plot of a finished or interrupted run),
``....png`` (AUC against training-set size)
and a printed summary: AUC mean and spread per arm and size, the AUC gain over the pixel
floor and the training time as a ratio to arm 1 (baselines measured in the same run), and a
paired comparison of arms 1/2 against arm 3 (same seeds, same test images; 95% interval
from a paired bootstrap over test patients).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ARMS = ("tl_frozen", "tl_finetune", "lite0_scratch", "small_cnn", "logreg_pixels")
TASKS = ("synthetic", "composite")
RESULTS = Path(__file__).resolve().parent / "results"

# Per setting: input size, generation size, sizes, seeds, val/test images, epochs.
SETTINGS: dict[str, dict] = {
    "quick": dict(image_size=64, gen_size=128, sizes=(50, 100, 200), seeds=2, val=100,
                  test=300, head_epochs=15, finetune_epochs=4, patience=4, tune_test=200,
                  workers=2, ladder=(-0.5, -0.75, -1.0), tasks=TASKS),
    # default: fits 30 min on 2 cores, synthetic task only (measured 17.7 min with tuning;
    # see BENCHMARKS.md). Lite0 end-to-end training is the cost: ~1.3 s + 8.4 ms per
    # training image per epoch at 48 px, so the epoch budget (head + finetune = the scratch
    # arms' epochs) is 12 + 3. The composite task adds about as much again: --tasks
    # composite (or synthetic,composite) runs it.
    "default": dict(image_size=48, gen_size=96, sizes=(50, 100, 200, 400, 800), seeds=3,
                    val=200, test=1000, head_epochs=12, finetune_epochs=3, patience=4,
                    tune_test=400, workers=2,
                    # at 64 px the frozen-feature AUC was 0.47-0.53 from hard to easy (quick
                    # run): at 48 px the ladder starts at easy, saving ~13 s a rung
                    ladder=(0.0, -0.25, -0.5, -0.75, -1.0), tasks=("synthetic",)),
    "full": dict(image_size=224, gen_size=256, sizes=(50, 100, 200, 400, 800), seeds=5,
                 val=400, test=2000, head_epochs=50, finetune_epochs=20, patience=8,
                 tune_test=1000, workers=os.cpu_count() or 4,
                 ladder=(1.0, 0.75, 0.5, 0.25, 0.0, -0.25, -0.5, -0.75, -1.0), tasks=TASKS),
}

# Role ids in the seed sequence: measured data and tuning data never share a seed.
_ROLE = {"train": 1, "val": 2, "test": 3}


# ----------------------------------------------------------------------------- data
#: The ladder's anchors (radius mm, nodule, consolidation and effusion contrast, CNR): the
#: synthetic presets as they were when this benchmark's and source_transfer.py's figures were
#: measured. The presets have since been recalibrated (benchmarks/synthetic_calibration.py);
#: fixed here, the published ``--difficulty`` values keep meaning the same images.
LADDER = {
    "easy": ((8.0, 16.0), (0.3, 0.5), (0.45, 0.8), (0.2, 0.35), (4.0, 8.0)),
    "medium": ((5.0, 12.0), (0.12, 0.3), (0.25, 0.6), (0.12, 0.3), (1.5, 3.0)),
    "hard": ((3.0, 8.0), (0.05, 0.15), (0.12, 0.35), (0.06, 0.18), (0.6, 1.4)),
}


def difficulty_at(t: float):
    """Difficulty on the ladder: 0 = ``easy``, 0.5 = ``medium``, 1 = ``hard`` (linear between).

    Examples
    --------
    >>> difficulty_at(1.0).nodule_radius_mm
    (3.0, 8.0)
    """
    from imaging_tl.synthetic import Difficulty

    if not -1 <= t <= 1:
        raise ValueError(f"difficulty t={t}: expected a value in [-1, 1]")
    # t < 0 extrapolates the easy -> medium line: larger, denser nodules than "easy"
    lo, hi, u = ("easy", "medium", t * 2) if t <= 0.5 else ("medium", "hard", t * 2 - 1)
    a, b = (dataclasses.asdict(Difficulty(*LADDER[k][:4], cnr=LADDER[k][4])) for k in (lo, hi))
    return Difficulty(**{k: tuple(max(0.0, float((1 - u) * x + u * y))
                                  for x, y in zip(a[k], b[k], strict=True)) for k in a})


@functools.cache
def _background(name: str) -> np.ndarray:
    """A real CR radiograph of pydicom-data as a [0, 1] display image (dense = bright)."""
    import data_store

    from imaging_tl import read_scan
    from imaging_tl.stages import Window

    path = Path(data_store.__file__).parent / "data" / f"{name}_UNCR.dcm"
    return Window(mode="header")(read_scan(path)).pixels  # MONOCHROME1: inverted here


def _make_one(job: tuple) -> np.ndarray:
    task, seed, anatomy, positive, gen_size, t, background = job
    from imaging_tl.synthetic import composite_radiograph, make_radiograph

    findings = ["nodule"] if positive else []
    if task == "synthetic":
        img = make_radiograph(seed, findings, size=gen_size, difficulty=difficulty_at(t),
                              anatomy_seed=anatomy)
    else:
        img = composite_radiograph(seed, _background(background), findings, size=gen_size,
                                   difficulty=difficulty_at(t))
    return img.pixels


def make_split(task: str, role: str, n_images: int, *, base_seed: int, t: float,
               gen_size: int, image_size: int, workers: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and patient groups of one split, through the library's stages.

    Synthetic: two images per patient (shared anatomy), labels drawn per image at 50%.
    Composite: every image a crop of RG1, the only chest radiograph that ships (RG3 is a leg).
    Roles differ by seed: the same seed never appears in two roles.

    Returns
    -------
    x : float32 (N, S, S, 3) in [0, 1]; y : int (N,); groups : str (N,)
    """
    from imaging_tl.stages import Pipeline, Resize, ToRGB

    role_id = _ROLE[role]
    rng = np.random.default_rng([base_seed, role_id, 99])
    y = (rng.random(n_images) < 0.5).astype(np.int64)
    background = "RG1"
    jobs, groups = [], []
    for i in range(n_images):
        patient = i // 2
        seed = [base_seed, role_id, patient, i % 2]
        anatomy = [base_seed, role_id, patient]
        jobs.append((task, seed, anatomy, bool(y[i]), gen_size, t, background))
        groups.append(f"{role}-{patient}" if task == "synthetic" else background)
    if workers > 1:
        # spawn, not fork: a child forked after TensorFlow started its threads segfaults
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            pixels = list(ex.map(_make_one, jobs, chunksize=16))
    else:
        pixels = [_make_one(j) for j in jobs]
    pipe = Pipeline([Resize(image_size), ToRGB()])
    x = np.stack([pipe(p) for p in pixels]).astype(np.float32)
    return np.clip(x, 0, 1), y, np.asarray(groups)


def training_subset(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of the first ``n`` images of a seeded patient order (nested across sizes).

    Examples
    --------
    >>> g = np.repeat(np.arange(10).astype(str), 2)
    >>> idx = training_subset(g, 6, 0)
    >>> len(idx), set(idx) <= set(training_subset(g, 10, 0))
    (6, True)
    """
    uniq = np.unique(groups)
    if len(uniq) == 1:  # one group (composite): images in a seeded order
        return np.random.default_rng([seed, 7]).permutation(len(groups))[:n]
    order = np.random.default_rng([seed, 7]).permutation(uniq)
    idx = np.concatenate([np.flatnonzero(groups == g) for g in order])
    return idx[:n]


# ----------------------------------------------------------------------------- arms
def small_cnn(input_size: int, seed: int):
    """A four-block CNN a researcher would write, with the transfer model's contract."""
    import keras
    from keras import layers

    from imaging_tl.models import ModelContract

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"cnn_conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.5, name=f"cnn_bn{i}")(x)
        x = layers.ReLU(name=f"cnn_relu{i}")(x)
        x = layers.MaxPooling2D(name=f"cnn_pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(0.2, seed=seed, name="head_dropout")(x)
    out = layers.Dense(1, activation="sigmoid", name="head_output")(x)
    model = keras.Model(inputs, out, name="small_cnn")
    # train() reads the task from the contract; "small_cnn" is not a registry backbone
    object.__setattr__(model, "imaging_tl_contract", ModelContract(
        "small_cnn", "binary", ["none", "nodule"], [input_size, input_size], "none"))
    return model


def _fast_batchnorm(model, momentum: float = 0.5) -> None:
    # Keras' default momentum 0.99 leaves the moving statistics of a randomly initialised
    # network near their initial values after the few steps of a small training set: the
    # inference-mode outputs were constant (AUC exactly 0.5), which would cripple the
    # from-scratch arm for a reason that has nothing to do with transfer.
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _scores(model, x: np.ndarray) -> np.ndarray:
    from imaging_tl.models import fast_predict

    # fast_predict keeps its traced function on the model: one trace per pooled model
    return fast_predict(model, x, batch_size=128)[:, 0].astype(np.float64)


def build_arm_model(arm: str, input_size: int, seed: int):
    """A freshly built model of one arm (what every cell would build without the pool)."""
    from imaging_tl.models import build_transfer_model

    labels = ["none", "nodule"]
    if arm in ("tl_frozen", "tl_finetune"):
        return build_transfer_model("efficientnet_lite0", "binary", labels,
                                    input_size=input_size, seed=seed)
    if arm == "lite0_scratch":
        model = build_transfer_model("efficientnet_lite0", "binary", labels, freeze="none",
                                     weights=None, input_size=input_size, seed=seed,
                                     train_batchnorm=True)
        _fast_batchnorm(model)
        return model
    if arm == "small_cnn":
        return small_cnn(input_size, seed)
    raise ValueError(f"arm={arm!r}: no Keras model (arms with one: tl_frozen, "
                     "lite0_scratch, small_cnn)")


class ModelPool:
    """One Keras model per arm and input size per process, reset to a seed's state per cell.

    Tracing Keras' train function for Lite0 costs 12-50 s on 2 cores, more than training a
    small cell. ``train()`` compiles (and so retraces) on every call, so the pooled model's
    ``compile`` is replaced: the first call compiles for real; later calls with the same
    optimizer class, loss and metrics keep the traced train/test functions and only reset
    the optimizer (step count and moments to zero, the new learning rate). :meth:`get`
    copies every variable -- weights, BatchNorm statistics, dropout seed states -- of a
    freshly built model of that seed into the pooled one (a build costs ~1-2 s, no trace),
    so a cell trains exactly as on a new model (tests/benchmarks check this).

    Examples
    --------
    >>> pool = ModelPool(32)
    >>> pool.get("small_cnn", seed=0) is pool.get("small_cnn", seed=1)
    True
    """

    def __init__(self, input_size: int) -> None:
        self.input_size = int(input_size)
        self._models: dict[str, object] = {}

    def warm(self, arms: tuple[str, ...]) -> None:
        """Build each arm's pooled model up front: a pool's first build of an arm runs
        ``keras.utils.set_random_seed`` unchanged, which clears TF's caches, so it is done
        before anything is traced."""
        for arm in arms:
            if arm != "logreg_pixels":
                self.get(arm, 0)

    def get(self, arm: str, seed: int):
        """The pooled model of ``arm`` with the initial state of ``build_arm_model(seed)``."""
        key = "tl" if arm in ("tl_frozen", "tl_finetune") else arm
        model = self._models.get(key)
        with _keep_tf_caches(model is not None):
            fresh = build_arm_model(arm, self.input_size, seed)
        if model is None:
            _reuse_compiled_functions(fresh)
            self._models[key] = fresh
            return fresh
        src, dst = fresh.variables, model.variables
        if [tuple(v.shape) for v in src] != [tuple(v.shape) for v in dst]:
            raise RuntimeError(f"ModelPool: {arm} built with seed {seed} does not match the "
                               "pooled model's variables")
        for d, v in zip(dst, src, strict=True):
            d.assign(v)
        # the freeze state of the seed's build (train() sets it again per phase)
        for a, b in zip(model.layers, fresh.layers, strict=True):
            a.trainable = b.trainable
        return model


@contextlib.contextmanager
def _keep_tf_caches(active: bool = True):
    """Builds skip ``tf.random.set_seed`` (called by ``keras.utils.set_random_seed``).

    It clears TensorFlow's kernel cache, after which the pooled Lite0 train function is
    instantiated and optimised again on its next call (6-9 s per cell here). Keras 3 models
    draw their initial weights and dropout seeds from Keras' own seed generators, not from
    TF's global seed, so the built weights are the same (the exact-equivalence test of
    tests/benchmarks builds the reference models without this).
    """
    import tensorflow as tf

    if not active:
        yield
        return
    original = tf.random.set_seed
    tf.random.set_seed = lambda seed: None
    try:
        yield
    finally:
        tf.random.set_seed = original


def _reuse_compiled_functions(model) -> None:
    """Make ``model.compile`` keep the traced functions after the first call (see ModelPool)."""
    import keras

    first = model.compile
    seen: dict[str, object] = {}

    def compile(optimizer=None, loss=None, metrics=None, **kwargs):  # noqa: A001
        sig = (type(optimizer), type(loss), tuple(type(m) for m in metrics or ()),
               tuple(sorted(kwargs.items())),
               {k: v for k, v in optimizer.get_config().items()
                if k not in ("learning_rate", "name")})
        if "sig" not in seen or seen["sig"] != sig:
            seen["sig"] = sig
            return first(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        # a fresh optimizer's state: Adam's step count and moments at zero, the new rate
        for v in model.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        model.optimizer.learning_rate = keras.ops.convert_to_numpy(optimizer.learning_rate)
        return None

    object.__setattr__(model, "compile", compile)


def run_arms(data: dict, seed: int, cfg: dict, arms: tuple[str, ...] = ARMS,
             pool: ModelPool | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """Train every requested arm on ``data["train"]`` and score ``data["test"]``.

    ``pool``: reuse traced models across calls (default: a new pool, i.e. fresh models).
    Returns ``{arm: (test scores, training seconds)}``; arm 2's time includes arm 1's.
    """
    from imaging_tl.train import Phase, default_phases, train

    (xtr, ytr), (xva, yva), (xte, _) = data["train"], data["val"], data["test"]
    pool = pool if pool is not None else ModelPool(cfg["image_size"])
    out = {}
    head, finetune = default_phases("efficientnet_lite0", head_epochs=cfg["head_epochs"],
                                    finetune_epochs=cfg["finetune_epochs"],
                                    patience=cfg["patience"])
    budget = cfg["head_epochs"] + cfg["finetune_epochs"]
    if "tl_frozen" in arms or "tl_finetune" in arms:
        model = pool.get("tl_frozen", seed)
        t0 = time.perf_counter()
        train(model, (xtr, ytr), (xva, yva), phases=[head], seed=seed, cache_features=True)
        t1 = time.perf_counter() - t0
        out["tl_frozen"] = (_scores(model, xte), t1)
        if "tl_finetune" in arms:
            t0 = time.perf_counter()
            train(model, (xtr, ytr), (xva, yva), phases=[finetune], seed=seed)
            out["tl_finetune"] = (_scores(model, xte), t1 + time.perf_counter() - t0)
    # No early stopping from scratch: the first epochs of a random network are flat, and
    # patience would stop it there. All epochs run; the best validation epoch is restored.
    scratch = Phase("scratch", budget, 1e-3, "none", patience=None, train_batchnorm=True)
    for arm in ("lite0_scratch", "small_cnn"):
        if arm in arms:
            model = pool.get(arm, seed)
            t0 = time.perf_counter()
            train(model, (xtr, ytr), (xva, yva), phases=[scratch], seed=seed)
            out[arm] = (_scores(model, xte), time.perf_counter() - t0)
    if "logreg_pixels" in arms:
        t0 = time.perf_counter()
        s = logreg_pixels(xtr, ytr, xva, yva, xte)
        out["logreg_pixels"] = (s, time.perf_counter() - t0)
    return out


def logreg_pixels(xtr, ytr, xva, yva, xte, side: int = 32) -> np.ndarray:
    """Floor: logistic regression on grey pixels downsampled to ``side``, C picked on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from imaging_tl.stages import Resize

    shrink = Resize(side)

    def feats(x):
        return np.stack([shrink(im[..., 0]).ravel() for im in x])

    ftr, fva, fte = feats(xtr), feats(xva), feats(xte)
    scaler = StandardScaler().fit(ftr)
    ftr, fva, fte = scaler.transform(ftr), scaler.transform(fva), scaler.transform(fte)
    best = None
    for c in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(ftr, ytr)
        auc = roc_auc_score(yva, clf.predict_proba(fva)[:, 1])
        if best is None or auc > best[0]:
            best = (auc, clf)
    return best[1].predict_proba(fte)[:, 1]


# ----------------------------------------------------------------------------- stats
def auc(y: np.ndarray, s: np.ndarray) -> float:
    from imaging_tl.evaluate import weighted_roc_auc

    return float(weighted_roc_auc(y, s, np.ones(len(y)))[0])


def paired_difference(y: np.ndarray, groups: np.ndarray, a: list[np.ndarray],
                      b: list[np.ndarray], n_boot: int = 1000) -> dict:
    """Seed-mean AUC(a) - AUC(b) with a paired bootstrap over test patients.

    ``a[k]``, ``b[k]``: test scores of seed k of the two arms (same test images).
    """
    from imaging_tl.evaluate import bootstrap_weights, percentile_ci, weighted_roc_auc

    diffs = np.array([auc(y, sa) - auc(y, sb) for sa, sb in zip(a, b, strict=True)])
    one_group = len(np.unique(groups)) == 1  # composite test set: resample images
    w = bootstrap_weights(len(y), n_boot, groups=None if one_group else groups, seed=123)
    # drop resamples with one class only
    pos = (w * y).sum(1) > 0
    neg = (w * (1 - y)).sum(1) > 0
    w = w[pos & neg]
    boot = np.mean([weighted_roc_auc(y, sa, w) - weighted_roc_auc(y, sb, w)
                    for sa, sb in zip(a, b, strict=True)], axis=0)
    lo, hi = percentile_ci(boot)
    return {"mean": float(diffs.mean()), "min": float(diffs.min()), "max": float(diffs.max()),
            "wins": int((diffs > 0).sum()), "seeds": len(diffs), "ci": (lo, hi)}


# ----------------------------------------------------------------------------- driver
def tune_difficulty(task: str, cfg: dict, tune_seed: int, target: float,
                    pool: ModelPool | None = None) -> tuple[float, list]:
    """Hardest rung of ``cfg["ladder"]`` where arm 1 at the largest size reaches ``target``."""
    trace, ladder = [], cfg["ladder"]
    n = max(cfg["sizes"])
    for t in ladder:
        kw = dict(base_seed=tune_seed, t=t, gen_size=cfg["gen_size"],
                  image_size=cfg["image_size"], workers=cfg["workers"])
        data = {"train": make_split(task, "train", n, **kw)[:2],
                "val": make_split(task, "val", cfg["val"], **kw)[:2],
                "test": make_split(task, "test", cfg["tune_test"], **kw)[:2]}
        s, _ = run_arms(data, tune_seed, cfg, ("tl_frozen",), pool)["tl_frozen"]
        a = auc(data["test"][1], s)
        trace.append((t, a))
        print(f"  tune {task}: difficulty {t:.2f} -> tl_frozen AUC {a:.3f}", flush=True)
        if a >= target:
            return t, trace
    return ladder[-1], trace


def summarise(rows: list[dict], tests: dict) -> list[str]:
    """Printable summary: AUC per arm and size, ratios to baselines, paired comparisons."""
    lines = []
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        sizes = sorted({r["size"] for r in rs})
        arms = [a for a in ARMS if any(r["arm"] == a for r in rs)]
        lines.append(f"\n## {task} (difficulty {rs[0]['difficulty']:.2f}; test n="
                     f"{len(tests[task][0])})")
        lines.append("| arm | " + " | ".join(f"n={n}" for n in sizes) + " | train s (ratio to "
                     "tl_frozen) |")
        lines.append("|---|" + "---:|" * (len(sizes) + 1))
        t_ref = np.mean([r["train_seconds"] for r in rs if r["arm"] == "tl_frozen"] or [np.nan])
        for arm in arms:
            cells = []
            for n in sizes:
                v = np.array([r["auc"] for r in rs if r["arm"] == arm and r["size"] == n])
                cells.append(f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}")
            ts = np.mean([r["train_seconds"] for r in rs if r["arm"] == arm])
            lines.append(f"| {arm} | " + " | ".join(cells) + f" | {ts:.1f} ({ts / t_ref:.2f}x) |")
        floor = {n: np.mean([r["auc"] for r in rs if r["arm"] == "logreg_pixels"
                             and r["size"] == n]) for n in sizes}
        if "logreg_pixels" in arms:
            for arm in arms[:-1]:
                gains = [np.mean([r["auc"] for r in rs if r["arm"] == arm and r["size"] == n])
                         - floor[n] for n in sizes]
                lines.append(f"AUC gain over the pixel floor, {arm}: "
                             + ", ".join(f"n={n}: {g:+.3f}" for n, g in
                                         zip(sizes, gains, strict=True)))
        y, groups = tests[task]
        for arm in ("tl_frozen", "tl_finetune"):
            if arm not in arms or "lite0_scratch" not in arms:
                continue
            for n in sizes:
                def scores(a, n=n, rs=rs):
                    return [r["scores"] for r in sorted(rs, key=lambda r: r["seed"])
                            if r["arm"] == a and r["size"] == n]
                d = paired_difference(y, groups, scores(arm), scores("lite0_scratch"))
                lines.append(f"paired {arm} - lite0_scratch, n={n}: {d['mean']:+.3f} "
                             f"(seeds {d['min']:+.3f}..{d['max']:+.3f}, {d['wins']}/{d['seeds']}"
                             f" wins; 95% CI {d['ci'][0]:+.3f}..{d['ci'][1]:+.3f})")
    return lines


def plot(rows: list[dict], path: Path, arms: tuple[str, ...] = ARMS) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rs = [r for r in rows if r["task"] == task]
        sizes = sorted({r["size"] for r in rs})
        for arm in arms:
            v = [[r["auc"] for r in rs if r["arm"] == arm and r["size"] == n] for n in sizes]
            if not any(v):
                continue
            m = np.array([np.mean(a) for a in v])
            ax.errorbar(sizes, m, yerr=[np.std(a) for a in v], marker="o", capsize=3,
                        label=arm)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("training images")
        ax.set_ylabel("test ROC AUC")
        ax.set_title(f"{task} (difficulty {rs[0]['difficulty']:.2f})")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- CSV
CSV_FIELDS = ("task", "setting", "difficulty", "size", "seed", "arm", "auc", "train_seconds",
              "scores", "test_labels", "test_groups")


def csv_row(row: dict, test: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """One CSV row: the cell's test scores ride along (space-separated), and the first row of
    a task also carries the test labels and patient groups, so the paired comparison can be
    recomputed from the CSV alone (``--summarize``)."""
    out = {k: row[k] for k in CSV_FIELDS[:8]}
    out["auc"] = repr(float(row["auc"]))
    out["train_seconds"] = repr(float(row["train_seconds"]))
    out["scores"] = " ".join(f"{v:.9g}" for v in row["scores"])  # float32 round trip
    out["test_labels"] = "" if test is None else "".join(str(int(v)) for v in test[0])
    out["test_groups"] = "" if test is None else " ".join(str(g) for g in test[1])
    return out


def read_results(path: Path) -> tuple[list[dict], dict]:
    """Rows and per-task test sets ``{task: (labels, groups)}`` of a results CSV.

    Examples
    --------
    >>> rows, tests = read_results(RESULTS / "transfer_vs_scratch_default.csv")  # doctest: +SKIP
    """
    rows, tests = [], {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in CSV_FIELDS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a results CSV of this harness (no columns "
                             f"{missing}; CSVs before the per-cell scores cannot be "
                             "re-summarised)")
        for r in reader:
            if r["test_labels"]:
                tests[r["task"]] = (np.array([int(c) for c in r["test_labels"]]),
                                    np.array(r["test_groups"].split()))
            rows.append(dict(task=r["task"], setting=r["setting"],
                             difficulty=float(r["difficulty"]), size=int(r["size"]),
                             seed=int(r["seed"]), arm=r["arm"], auc=float(r["auc"]),
                             train_seconds=float(r["train_seconds"]),
                             scores=np.array(r["scores"].split(), float)))
    missing = sorted({r["task"] for r in rows} - set(tests))
    if missing:
        raise ValueError(f"{path}: no test labels for task(s) {missing} (the first row of a "
                         "task carries them)")
    return rows, tests


def report(rows: list[dict], tests: dict, png: Path) -> None:
    """Print the summary table and write the plot."""
    print("\n".join(summarise(rows, tests)))
    plot(rows, png)
    print(f"\nwrote {png}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced smoke setting")
    mode.add_argument("--full", action="store_true", help="GPU setting")
    ap.add_argument("--tasks", help=f"comma list of {TASKS} (default: the setting's; "
                    "the default setting runs synthetic only)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of arms")
    ap.add_argument("--sizes", help="comma list of training sizes (override)")
    ap.add_argument("--seeds", type=int, help="seeds per cell (override)")
    ap.add_argument("--test", type=int, help="test images (override)")
    ap.add_argument("--val", type=int, help="validation images (override)")
    ap.add_argument("--image-size", type=int, help="model input size (override)")
    ap.add_argument("--gen-size", type=int, help="generated image size (override)")
    ap.add_argument("--epochs", type=int, nargs=2, metavar=("HEAD", "FINETUNE"),
                    help="epochs of the head and finetune phases (override)")
    ap.add_argument("--workers", type=int, help="generator processes (override)")
    ap.add_argument("--difficulty", type=float, help="skip tuning: ladder value in [-1, 1]")
    ap.add_argument("--target-auc", type=float, default=0.75,
                    help="tuning: hardest difficulty where arm 1 reaches this AUC")
    ap.add_argument("--tune-seed", type=int, default=1000, help="seed of the tuning data")
    ap.add_argument("--seed", type=int, default=0, help="seed of the measured data")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for CSV and PNG")
    ap.add_argument("--summarize", type=Path, metavar="CSV",
                    help="print the summary and plot of a (partial) results CSV; no training")
    args = ap.parse_args(argv)

    if args.summarize is not None:
        try:
            rows, tests = read_results(args.summarize)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: --summarize: {e}", file=sys.stderr)
            return 2
        if not rows:
            print(f"error: --summarize {args.summarize}: no rows", file=sys.stderr)
            return 2
        report(rows, tests, args.summarize.with_suffix(".png"))
        return 0

    setting = "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(SETTINGS[setting])
    for key, val in (("seeds", args.seeds), ("test", args.test), ("val", args.val),
                     ("image_size", args.image_size), ("gen_size", args.gen_size),
                     ("workers", args.workers)):
        if val is not None:
            cfg[key] = val
    if args.sizes:
        cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    if args.epochs:
        cfg["head_epochs"], cfg["finetune_epochs"] = args.epochs
    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else list(cfg["tasks"])
    arms = tuple(a for a in args.arms.split(",") if a)
    bad = [t for t in tasks if t not in TASKS] + [a for a in arms if a not in ARMS]
    if bad:
        print(f"error: unknown task/arm {bad}; tasks {TASKS}, arms {ARMS}", file=sys.stderr)
        return 2
    print(f"setting {setting}: {cfg}; tasks {tasks}; arms {list(arms)}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"transfer_vs_scratch_{setting}" + ("" if tasks == list(TASKS) else
                                                "_" + "_".join(tasks))
    csv_path = args.out / f"{stem}.csv"
    pool = ModelPool(cfg["image_size"])  # each arm's model is built and traced once
    pool.warm(arms if args.difficulty is not None else ("tl_frozen", *arms))
    rows, tests, t_start = [], {}, time.perf_counter()
    n_cells, done = len(tasks) * len(cfg["sizes"]) * cfg["seeds"], 0
    # a row per finished cell, flushed at once: an interrupted run keeps what it measured
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, CSV_FIELDS)
        writer.writeheader()
        for task in tasks:
            if args.difficulty is not None:
                t = args.difficulty
            else:
                t, _ = tune_difficulty(task, cfg, args.tune_seed, args.target_auc, pool)
            kw = dict(base_seed=args.seed, t=t, gen_size=cfg["gen_size"],
                      image_size=cfg["image_size"], workers=cfg["workers"])
            # generated once per task; every cell slices its nested subset of the pool
            xp, yp, gp = make_split(task, "train", max(cfg["sizes"]), **kw)
            xva, yva, _ = make_split(task, "val", cfg["val"], **kw)
            xte, yte, gte = make_split(task, "test", cfg["test"], **kw)
            tests[task] = (yte, gte)
            first = True
            for n in cfg["sizes"]:
                for seed in range(cfg["seeds"]):
                    idx = training_subset(gp, n, seed)
                    data = {"train": (xp[idx], yp[idx]), "val": (xva, yva),
                            "test": (xte, yte)}
                    for arm, (s, secs) in run_arms(data, seed, cfg, arms, pool).items():
                        rows.append(dict(task=task, setting=setting, difficulty=t, size=n,
                                         seed=seed, arm=arm, auc=auc(yte, s),
                                         train_seconds=secs, scores=s))
                        writer.writerow(csv_row(rows[-1], tests[task] if first else None))
                        fh.flush()
                        first = False
                        print(f"  {task} n={n} seed={seed} {arm:14s} AUC {rows[-1]['auc']:.3f} "
                              f"({secs:.1f} s)", flush=True)
                    done += 1
                    print(f"  [{done}/{n_cells} cells, {time.perf_counter() - t_start:.0f} s]",
                          flush=True)

    report(rows, tests, args.out / f"{stem}.png")
    print(f"wrote {csv_path}; total {time.perf_counter() - t_start:.0f} s "
          f"(re-summarise: --summarize {csv_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
