"""Fuzz the loader: mutants of real files read to finite pixels consistent with their meta,
or fail with a ScanReadError, within a time and memory bound per file.

The default run checks a few hundred mutants of a fixed seed. The slow target takes a fresh
seed (or ``IMAGING_TL_FUZZ_SEED``) and ``IMAGING_TL_FUZZ_N`` mutants (default 3000)::

    IMAGING_TL_FUZZ_N=5000 pytest -q -m slow tests/fuzz      # or: make fuzz
"""

from __future__ import annotations

import importlib.util
import os
import random
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fuzzlib", Path(__file__).with_name("fuzzlib.py"))
assert _spec is not None and _spec.loader is not None
fuzzlib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzzlib)


def _run(tmp_path: Path, n: int, seed: int) -> tuple[dict, list[str], float]:
    seeds = fuzzlib.seed_files(REPO / "sample_dicoms") + fuzzlib.raster_seeds(tmp_path / "seeds")
    made = fuzzlib.make_mutants(seeds, tmp_path / "mutants", n, seed)
    t0 = time.perf_counter()
    counts, failures = fuzzlib.check(made, tmp_path, REPO)
    return counts, failures, time.perf_counter() - t0


def test_fuzz_invariant_default_seed(tmp_path):
    counts, failures, seconds = _run(tmp_path, 300, seed=22)
    assert not failures, "\n".join(failures[:20])
    assert sum(counts.values()) == 302  # 300 mutants and 2 FIFOs, each with a verdict
    assert counts.get("ok", 0) > 20 and counts.get("NotARegularFileError") == 2
    assert len(counts) > 5  # the mutants reach many kinds of error


@pytest.mark.slow
def test_fuzz_invariant_fresh_seed(tmp_path):
    seed = int(os.environ.get("IMAGING_TL_FUZZ_SEED") or random.SystemRandom().randrange(1 << 31))
    n = int(os.environ.get("IMAGING_TL_FUZZ_N") or 3000)
    counts, failures, seconds = _run(tmp_path, n, seed)
    print(f"fuzz: seed={seed} mutants={n} seconds={seconds:.1f} verdicts={counts}")
    assert not failures, f"seed {seed}:\n" + "\n".join(failures[:30])
