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

__all__ = ["CONTRACT_ENTRY", "MAX_INPUT_SIDE", "ContractError", "ModelContract",
           "attach_contract", "model_file", "read_contract", "validate_contract",
           "write_contract"]

CONTRACT_ENTRY = "imaging_tl_contract.json"  # inside the .keras zip
CONTRACT_FILE = "contract.json"  # beside the .keras file
MAX_INPUT_SIDE = 4096  # largest input side or resize value a contract may ask for
MAX_LABEL_LENGTH = 200
# "self_supervised": a backbone pretrained without labels (imaging-tl pretrain); its output
# is the pooled features, it predicts nothing and serves as a model.source
_TASK_LABELS = {"binary": (2, 2), "multiclass": (2, 10_000), "multilabel": (1, 10_000),
                "self_supervised": (1, 1)}
_CHANNELS = (1, 3)
_DTYPES = ("float32", "float16", "uint8")


class ContractError(ValueError):
    """A model contract that is malformed or out of bounds; the message names the file and
    the field.

    Examples
    --------
    >>> raise ContractError("runs/a/model.keras: contract field 'threshold': nan ...")
    Traceback (most recent call last):
    ...
    imaging_tl.models.contract.ContractError: runs/a/model.keras: contract field ...
    """


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
    # the training domain (header facts; the feature reference is domain.npz beside)
    domain: dict[str, Any] | None = None
    # a fold ensemble (imaging_tl.models.ensemble): members, method, member layer names
    ensemble: dict[str, Any] | None = None

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

    The contract is validated (:func:`validate_contract`) before it is returned.

    Raises
    ------
    ValueError
        Not a ``.keras`` (zip) file, or no contract inside it or beside it.
    ContractError
        A contract that is not valid JSON or out of bounds (a ``ValueError`` too).

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
    text, source = None, path
    try:
        with zipfile.ZipFile(path) as zf:
            if CONTRACT_ENTRY in zf.namelist():
                text = zf.read(CONTRACT_ENTRY)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a .keras model file ({exc})") from exc
    if text is None and path.with_name(CONTRACT_FILE).is_file():
        source = path.with_name(CONTRACT_FILE)
        text = source.read_bytes()
    if text is None:
        raise ValueError(f"{path}: no preprocessing contract inside the file or beside it")
    data = _parse_contract(text, source)
    validate_contract(data, source)
    return ModelContract.from_dict(data)


def _parse_contract(text: bytes, source: Path) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ContractError(f"{source}: the contract is not valid JSON ({exc})") from None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def _is_side(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIDE


def _check_labels(d: dict[str, Any]) -> list[tuple[str, str]]:
    task, names = d.get("task"), d.get("label_names")
    if task not in _TASK_LABELS:
        return [("task", f"{task!r} is not one of {', '.join(_TASK_LABELS)}")]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [("label_names", "must be a list of strings")]
    bad: list[tuple[str, str]] = []
    lo, hi = _TASK_LABELS[task]
    if not lo <= len(names) <= hi:
        want = f"exactly {lo}" if lo == hi else f"at least {lo}"
        bad.append(("label_names", f"{len(names)} name(s) for task {task!r}, which needs "
                                   f"{want} (binary: [negative, positive])"))
    if len(set(names)) != len(names):
        bad.append(("label_names", "names are not unique"))
    for n in names:
        if not n.strip() or len(n) > MAX_LABEL_LENGTH or not n.isprintable():
            bad.append(("label_names", f"{n[:40]!r} is empty, longer than "
                                       f"{MAX_LABEL_LENGTH} characters or not printable"))
    return bad


def _check_sizes(d: dict[str, Any]) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    size = d.get("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_side(v) for v in size)):
        bad.append(("input_size", f"{size!r} is not two whole numbers in "
                                  f"[1, {MAX_INPUT_SIDE}]"))
    pre = d.get("preprocessing")
    if pre is None:
        return bad
    stages = pre.get("stages", []) if isinstance(pre, dict) else None
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        return [*bad, ("preprocessing", "must be a mapping whose 'stages' is a list of "
                                        "stage mappings")]
    for i, st in enumerate(stages):
        for key in ("size", "output_size", "crop"):
            if key not in st:
                continue
            v = st[key]
            vals = v if isinstance(v, list) else [v]
            if not vals or not all(_is_side(x) for x in vals):
                bad.append((f"preprocessing.stages[{i}].{key}",
                            f"{v!r} is not a whole number in [1, {MAX_INPUT_SIDE}] "
                            f"(stage {st.get('name')!r})"))
    return bad


def _check_values(d: dict[str, Any]) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    t = d.get("threshold", 0.5)
    if not (_is_number(t) and 0.0 <= t <= 1.0):
        bad.append(("threshold", f"{t!r} is not a finite number in [0, 1]"))
    if d.get("channels", 3) not in _CHANNELS or isinstance(d.get("channels"), bool):
        bad.append(("channels", f"{d.get('channels')!r} is not one of {_CHANNELS}"))
    r = d.get("input_range", [0.0, 1.0])
    if not (isinstance(r, list) and len(r) == 2 and all(_is_number(v) for v in r)
            and r[0] < r[1]):
        bad.append(("input_range", f"{r!r} is not two finite numbers [low, high], low < high"))
    if d.get("dtype", "float32") not in _DTYPES:
        bad.append(("dtype", f"{d.get('dtype')!r} is not one of {', '.join(_DTYPES)}"))
    for key in ("backbone", "normalization"):
        if not isinstance(d.get(key), str) or not d.get(key):
            bad.append((key, f"{d.get(key)!r} is not a non-empty string"))
    if not isinstance(d.get("normalization_in_model", True), bool):
        bad.append(("normalization_in_model", "must be true or false"))
    return bad


def _check_domain(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The training-domain facts: a mapping of lists (or null ranges), nothing else."""
    dom = d.get("domain")
    if dom is None:
        return []
    if not isinstance(dom, dict) or not all(
            isinstance(v, list) and len(v) <= 10_000 or v is None for v in dom.values()):
        return [("domain", "must be a mapping of lists (the training files' header facts)")]
    return []


def validate_contract(data: Any, source: str | os.PathLike = "contract") -> None:
    """Raise :class:`ContractError` unless ``data`` (a contract mapping) is in bounds.

    Checked: ``threshold`` finite and in [0, 1]; ``input_size`` and every ``size`` of a
    preprocessing stage whole numbers in [1, :data:`MAX_INPUT_SIDE`]; ``task`` known and
    ``label_names`` consistent with it (binary: exactly two, ``[negative, positive]``;
    multiclass: at least two; multilabel: at least one; unique, printable, non-empty);
    ``channels`` 1 or 3; ``input_range`` finite and increasing; ``dtype`` known. Fields this
    version does not know are ignored (newer writers may add them).

    Parameters
    ----------
    data : dict
        The contract as read from JSON (``ModelContract.to_dict()`` form).
    source : str or path
        Named in the message (the model or contract file).

    Raises
    ------
    ContractError
        Naming ``source`` and every field out of bounds.

    Examples
    --------
    >>> c = ModelContract("resnet50", "binary", ["no", "yes"], [8, 8], "caffe")
    >>> validate_contract(c.to_dict(), "m.keras")
    >>> validate_contract({**c.to_dict(), "threshold": 2.0}, "m.keras")
    Traceback (most recent call last):
    ...
    imaging_tl.models.contract.ContractError: m.keras: contract field 'threshold': 2.0 is ...
    """
    if not isinstance(data, dict):
        raise ContractError(f"{source}: the contract is not a JSON object "
                            f"({type(data).__name__})")
    missing = [k for k in ("backbone", "task", "label_names", "input_size", "normalization")
               if k not in data]
    if missing:
        raise ContractError(f"{source}: contract field(s) missing: {', '.join(missing)}")
    bad = _check_labels(data) + _check_sizes(data) + _check_values(data) + _check_domain(data)
    if bad:
        raise ContractError(f"{source}: " + "; ".join(f"contract field {k!r}: {why}"
                                                      for k, why in bad))
