"""Load the benchmark scripts as modules (benchmarks/ is not a package)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str):
    """Import benchmarks/<name>.py under a private module name (no clash with PyPI names)."""
    mod_name = f"_imaging_tl_bench_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # dataclasses and pickling look the module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def mm():
    return load_benchmark("medmnist")


@pytest.fixture(scope="session")
def tvs():
    return load_benchmark("transfer_vs_scratch")


@pytest.fixture(scope="session")
def st():
    return load_benchmark("source_transfer")
