"""Load the benchmark scripts as modules (benchmarks/ is not a package)."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.append(str(BENCH))
from siblings import load as load_benchmark  # noqa: E402  (the scripts' own loader)


@pytest.fixture(scope="session")
def mm():
    return load_benchmark("medmnist")


@pytest.fixture(scope="session")
def tvs():
    return load_benchmark("transfer_vs_scratch")


@pytest.fixture(scope="session")
def st():
    return load_benchmark("source_transfer")
