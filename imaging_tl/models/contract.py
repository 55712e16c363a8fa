"""The preprocessing contract of a transfer model: what it expects and what its outputs mean.

A saved model carries its :class:`ModelContract` twice: as the zip entry
:data:`CONTRACT_ENTRY` inside the ``.keras`` file (Keras ignores unknown entries) and as
``contract.json`` beside it. Plain Python and numpy: reading a contract needs no TensorFlow.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CONTRACT_ENTRY", "ModelContract", "attach_contract", "model_file", "read_contract",
           "write_contract"]

CONTRACT_ENTRY = "imaging_tl_contract.json"  # inside the .keras zip
CONTRACT_FILE = "contract.json"  # beside the .keras file


@dataclass
class ModelContract:
    """What a trained model expects as input and what its outputs mean.

    Examples
    --------
    >>> c = ModelContract("efficientnet_lite0", "binary", ["normal", "abnormal"], [224, 224],
    ...                   "efficientnet_lite")
    >>> ModelContract.from_dict(c.to_dict()) == c
    True
    """

    backbone: str
    task: str
    label_names: list[str]
    input_size: list[int]
    normalization: str
    channels: int = 3
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    dtype: str = "float32"
    normalization_in_model: bool = True
    threshold: float = 0.5
    preprocessing: dict[str, Any] | None = None
    format_version: int = 1
    # where the shared layers came from, origin first (imaging_tl.models.source): ImageNet,
    # a weights file or nothing, then each source run or model; None for older files
    lineage: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelContract:
        """Build from :meth:`to_dict` output; unknown keys (newer writers) are ignored."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def check_batch(self, x: np.ndarray, tolerance: float = 1e-3) -> None:
        """Raise ValueError when a batch breaks the contract (shape, dtype, range).

        Examples
        --------
        >>> c = ModelContract("efficientnet_lite0", "binary", ["a", "b"], [4, 4], "x")
        >>> c.check_batch(np.zeros((1, 4, 4, 3), "float32"))
        >>> c.check_batch(np.full((1, 4, 4, 3), 255, "float32"))
        Traceback (most recent call last):
        ...
        ValueError: input values span [255, 255] but the model expects [0.0, 1.0] ...
        """
        x = np.asarray(x)
        want = (*self.input_size, self.channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"input batch has shape {x.shape}; the model expects "
                             f"(N, {want[0]}, {want[1]}, {want[2]})")
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < self.input_range[0] - tolerance or hi > self.input_range[1] + tolerance:
            raise ValueError(
                f"input values span [{lo:.4g}, {hi:.4g}] but the model expects "
                f"{self.input_range} (float RGB in [0, 1]; normalisation happens inside the "
                "model)")


def attach_contract(model: Any, contract: ModelContract) -> None:
    """Set ``model.imaging_tl_contract`` (kept away from Keras' attribute tracking).

    Examples
    --------
    >>> class Model: ...
    >>> m = Model()
    >>> attach_contract(m, ModelContract("resnet50", "binary", ["a", "b"], [8, 8], "caffe"))
    >>> m.imaging_tl_contract.backbone
    'resnet50'
    """
    # object.__setattr__: Keras would otherwise try to track a plain dataclass
    object.__setattr__(model, "imaging_tl_contract", contract)


def write_contract(path: str | Path, contract: ModelContract) -> Path:
    """Add the contract to a saved ``.keras`` file and write ``contract.json`` beside it.

    Returns
    -------
    Path
        The ``contract.json`` beside the model file.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.keras"
    >>> zipfile.ZipFile(p, "w").close()   # stands in for a file written by model.save
    >>> c = ModelContract("resnet50", "binary", ["a", "b"], [8, 8], "caffe")
    >>> write_contract(p, c).name, read_contract(p) == c
    ('contract.json', True)
    """
    path = Path(path)
    text = json.dumps(contract.to_dict(), indent=2, sort_keys=True)
    # Keras ignores unknown zip entries, so the contract travels inside the file too.
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(CONTRACT_ENTRY, text)
    beside = path.with_name(CONTRACT_FILE)
    beside.write_text(text + "\n")
    return beside


def model_file(path: str | os.PathLike) -> Path:
    """The ``model.keras`` a user named: the file itself, or the one in a run directory.

    Raises
    ------
    FileNotFoundError
        Neither exists (the message names the path).

    Examples
    --------
    >>> model_file("runs/no-such-run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: runs/no-such-run: model file not found
    """
    mp = Path(path)
    if mp.is_dir():
        mp = mp / "model.keras"
    if not mp.is_file():
        raise FileNotFoundError(f"{mp}: model file not found")
    return mp


def read_contract(path: str | Path) -> ModelContract:
    """The preprocessing contract of a saved model, without loading the model.

    Read from inside the ``.keras`` file, else from ``contract.json`` beside it.

    Raises
    ------
    ValueError
        Not a ``.keras`` (zip) file, or no contract inside it or beside it.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.keras"
    >>> zipfile.ZipFile(p, "w").close()   # stands in for a file written by model.save
    >>> _ = write_contract(p, ModelContract("resnet50", "binary", ["no", "yes"], [8, 8],
    ...                                     "caffe"))
    >>> read_contract(p).label_names
    ['no', 'yes']
    """
    path = Path(path)
    data = None
    try:
        with zipfile.ZipFile(path) as zf:
            if CONTRACT_ENTRY in zf.namelist():
                data = json.loads(zf.read(CONTRACT_ENTRY))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a .keras model file ({exc})") from exc
    if data is None and path.with_name(CONTRACT_FILE).is_file():
        data = json.loads(path.with_name(CONTRACT_FILE).read_text())
    if data is None:
        raise ValueError(f"{path}: no preprocessing contract inside the file or beside it")
    return ModelContract.from_dict(data)
