"""Load another benchmark script as a module (``benchmarks/`` is not a package).

Each script is imported once, under a private name (``_imaging_tl_bench_<name>``: no clash
with PyPI modules), whether a script or the tests ask first; dataclasses and pickling look
the module up in ``sys.modules`` by that name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``_imaging_tl_bench_<name>``."""
    mod_name = f"_imaging_tl_bench_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod
