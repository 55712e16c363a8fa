"""What full cross-validation costs: a k-fold run against a holdout run of the same data.

Runs one configuration (default ``pipelines/demo.yaml``) in one process: a warm-up run (its
own output, the shared array cache filled, TensorFlow started and traced, not counted),
then the holdout run and the k-fold run (``split.method kfold``, every fold and the
ensemble), and prints the ratio of their wall-clock and CPU times (CPU: this process, all
threads) with the time of each step. With ``--repeats N`` the two runs alternate N times
and the medians are compared (a shared machine's load drifts). With a frozen first phase
the folds share one computation of the backbone features, and the frozen part of a
fine-tuning phase; no phase training the backbone, they share the backbone itself.

    .venv/bin/python benchmarks/kfold.py [--config pipelines/demo.yaml] [--folds 5]
        [--repeats 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "pipelines" / "demo.yaml"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1,
                    help="alternate the two runs this many times; compare the medians")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the configuration, for both runs (repeatable)")
    args = ap.parse_args()

    from imaging_tl.config import load_config
    from imaging_tl.pipeline import run

    work = Path(tempfile.mkdtemp(prefix="bench-kfold-"))
    common = [*args.set, f"output={work / 'runs'}", f"cache_dir={work / 'cache'}"]
    holdout = load_config(args.config, common)
    kfold = load_config(args.config, [*common, "split.method=kfold",
                                      f"split.folds={args.folds}"])
    # warm-up: fills the array cache and starts TensorFlow; one short head phase
    warm = load_config(args.config, [*common, "train.phases.0.epochs=1", "evaluate.bootstrap=10",
                                     "evaluate.gradcam=0"])
    run(warm, out=work / "warmup", verbose=False)

    def timed(cfg, name):
        t0, c0 = time.perf_counter(), time.process_time()
        res = run(cfg, out=work / name, verbose=False)
        return res, time.perf_counter() - t0, time.process_time() - c0

    times: dict[str, list[tuple[float, float]]] = {"holdout": [], "kfold": []}
    for r in range(args.repeats):
        ho, *t = timed(holdout, f"holdout-{r}")
        times["holdout"].append(tuple(t))
        cv, *t = timed(kfold, f"kfold-{r}")
        times["kfold"].append(tuple(t))
    ho_wall, ho_cpu = np.median(times["holdout"], axis=0)
    cv_wall, cv_cpu = np.median(times["kfold"], axis=0)
    phases = ", ".join(f"{p.name} {p.epochs} epochs (freeze {p.freeze})"
                       for p in holdout.train.phases)
    print(f"{Path(args.config).name}: {sum(ho.split_counts.values())} images; {phases}; "
          f"on {os.cpu_count()} CPU(s); {args.repeats} repeat(s), medians")
    for label, res, wall, cpu in (("holdout", ho, ho_wall, ho_cpu),
                                  (f"{args.folds}-fold", cv, cv_wall, cv_cpu)):
        name, value, _ = res.headline()
        steps = ", ".join(f"{k} {v:.1f}" for k, v in res.durations.items() if v >= 0.05)
        print(f"  {label}: wall {wall:.1f} s, CPU {cpu:.1f} s, test {name} {value:.3f} "
              f"(last run's steps, s: {steps})")
    print(f"  {args.folds}-fold / holdout: wall {cv_wall / ho_wall:.2f}, "
          f"CPU {cv_cpu / ho_cpu:.2f}")


if __name__ == "__main__":
    main()
