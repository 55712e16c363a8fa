"""Where a model's shared layers come from: ``model.source``, its checks and its chain.

A source is ``imagenet`` (the default), ``none`` (random initialisation), a weights file
(passed to :func:`~imaging_tl.models.build_backbone`), or a model of this package: a
finished run directory or its ``model.keras``. From a model, the target inherits the
source's preprocessing contract (:func:`inherit_source` fills the keys a configuration
leaves out; :func:`preprocessing_differences` lists what a configuration changes) and its
chain of provenance: every link from the origin (ImageNet, a weights file or nothing)
through each source run to the target, with run id, config hash, data-manifest hash and
the sha256 of the model file (:func:`run_link`). The layers themselves are copied by
:func:`imaging_tl.models.transfer.build_from_source`.

Plain Python (reading a contract needs no TensorFlow), so configuration checks use it.

Examples
--------
>>> resolve_source("imagenet").kind
'imagenet'
>>> resolve_source("runs/no-such-run")
Traceback (most recent call last):
...
imaging_tl.models.source.SourceError: model.source: runs/no-such-run: no such file or folder
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging_tl.models.contract import ModelContract, read_contract

__all__ = ["Source", "SourceError", "file_sha256", "find_source_runs", "inherit_source",
           "origin_link", "preprocessing_differences", "resolve_source", "run_link"]

RUN_FILES = ("config.yaml", "model.keras", "run.json")


class SourceError(ValueError):
    """``model.source`` names something that cannot be a source (the message says why)."""


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"")
    >>> file_sha256(p)[:12]
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Source:
    """A resolved ``model.source``.

    Attributes
    ----------
    kind : {"imagenet", "none", "weights", "run", "model"}
        What the source is: a run directory and a ``model.keras`` of this package are
        ``run`` and ``model``.
    path : Path or None
        The run directory, model file or weights file.
    contract : ModelContract or None
        The source model's contract (``run`` and ``model``).
    record : dict or None
        The source run's ``run.json``.
    chain : list of dict
        The links up to and including the source (origin first).
    """

    kind: str
    path: Path | None = None
    contract: ModelContract | None = None
    record: dict[str, Any] | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_model(self) -> bool:
        """True for a run or model of this package (layers are copied from it)."""
        return self.kind in ("run", "model")

    @property
    def model_path(self) -> Path | None:
        """The source's ``model.keras``, for a run or model."""
        if not self.is_model or self.path is None:
            return None
        return self.path / "model.keras" if self.path.is_dir() else self.path

    @property
    def weights(self) -> str | None:
        """The ``weights`` argument of the backbone builder (``imagenet``, None or a file);
        None for a model source too (its layers are copied after the build)."""
        if self.kind == "imagenet":
            return "imagenet"
        return str(self.path) if self.kind == "weights" else None

    def describe(self) -> str:
        """One line for the log, e.g. ``run runs/src-20250101 (efficientnet_lite0, ...)``."""
        if not self.is_model:
            return {"imagenet": "ImageNet", "none": "random initialisation"}.get(
                self.kind, f"weights file {self.path}")
        c = self.contract
        assert c is not None
        return (f"{self.kind} {self.path} ({c.backbone}, {c.task} task, labels "
                f"{', '.join(c.label_names)}; chain of {len(self.chain)} link(s))")


def origin_link(source: str, backbone: str) -> dict[str, Any]:
    """The first link of a chain: ImageNet, no pretraining, or a weights file (hashed).

    Examples
    --------
    >>> origin_link("imagenet", "efficientnet_lite0")
    {'kind': 'imagenet', 'backbone': 'efficientnet_lite0'}
    """
    if source in ("imagenet", "none"):
        return {"kind": source, "backbone": backbone}
    return {"kind": "weights", "backbone": backbone, "path": str(Path(source).resolve()),
            "sha256": file_sha256(source)}


def run_link(run_dir: str | os.PathLike, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chain link of a finished run: id, task, labels and the hashes that pin it.

    Parameters
    ----------
    run_dir : path
        A run directory holding ``config.yaml``, ``model.keras`` and ``contract.json``.
    record : dict, optional
        Its ``run.json`` content (read when not given; the data-manifest hash comes from it).

    Returns
    -------
    dict
        ``kind`` "run", ``run_id`` (the folder name), ``name``, ``task``, ``labels``,
        ``backbone``, ``finished``, ``config_sha256``, ``data_manifest_sha256``,
        ``model_sha256``, ``run_dir``.

    Examples
    --------
    >>> run_link("runs/my-run")  # doctest: +SKIP
    {'kind': 'run', 'run_id': 'my-run', ...}
    """
    run_dir = Path(run_dir)
    if record is None:
        record = json.loads((run_dir / "run.json").read_text())
    contract = read_contract(run_dir / "model.keras")
    return {
        "kind": "run", "run_id": run_dir.name, "name": record.get("name"),
        "task": contract.task, "labels": list(contract.label_names),
        "backbone": contract.backbone, "finished": record.get("finished"),
        "config_sha256": file_sha256(run_dir / "config.yaml"),
        "data_manifest_sha256": record.get("data_manifest_sha256"),
        "model_sha256": file_sha256(run_dir / "model.keras"),
        "run_dir": str(run_dir.resolve()),
    }


def _run_dir_of(path: Path) -> Path | None:
    """The run directory of a path (itself, or the folder of a ``model.keras``), if any."""
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "config.yaml").is_file() else None


def _unfinished(folder: Path) -> str:
    missing = [f for f in RUN_FILES if not (folder / f).is_file()]
    if (folder / "config.yaml").is_file():
        return (f"model.source: {folder} is a run that did not finish (no "
                f"{' or '.join(missing)}); let it finish (imaging-tl run --resume {folder}) "
                "or choose a finished run")
    return (f"model.source: {folder} is not a run directory of imaging_tl (no "
            f"{', '.join(missing)})")


def _read_model_contract(path: Path) -> ModelContract:
    try:
        return read_contract(path)
    except ValueError as exc:
        raise SourceError(f"model.source: {path} is not a model file of imaging_tl ({exc})"
                          ) from None


def _origin_of_config(folder: Path, contract: ModelContract) -> list[dict[str, Any]]:
    """The origin link of an older run, from its ``config.yaml`` (none when unreadable)."""
    import yaml

    try:
        model = (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("model") or {}
    except (OSError, ValueError):
        return []
    value = model.get("source", model.get("weights", "imagenet"))
    value = "none" if value in (None, "none") else str(value)
    if value not in ("imagenet", "none") and not Path(value).is_file():
        return [{"kind": "weights", "backbone": contract.backbone, "path": value}]
    return [origin_link(value, contract.backbone)]


def _run_source(folder: Path, verify: bool) -> Source:
    """A finished run as a source, its model checked against the hash its run recorded."""
    if not all((folder / f).is_file() for f in RUN_FILES):
        raise SourceError(_unfinished(folder))
    contract = _read_model_contract(folder / "model.keras")
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"model.source: {folder}/run.json cannot be read ({exc})") from None
    chain = [dict(link) for link in record.get("chain") or []]
    if not chain:  # a run written before chains were recorded
        chain = [*(contract.lineage or _origin_of_config(folder, contract)),
                 run_link(folder, record)]
    elif verify:
        want = chain[-1].get("model_sha256")
        got = file_sha256(folder / "model.keras")
        if want and got != want:
            raise SourceError(
                f"model.source: {folder}/model.keras changed since the run finished (sha256 "
                f"{got[:12]}..., run.json records {want[:12]}...): a corrupt or replaced file")
    return Source("run", folder, contract, record, chain)


def resolve_source(value: str | None, *, backbone: str | None = None,
                   verify: bool = True) -> Source:
    """Check a ``model.source`` value and say what it is.

    Parameters
    ----------
    value : str or None
        ``imagenet``, ``none``/None, a run directory, a ``model.keras`` or a weights file.
    backbone : str, optional
        The configuration's backbone: a model source of another backbone is refused.
    verify : bool
        Compare a run's ``model.keras`` with the sha256 its ``run.json`` recorded.

    Returns
    -------
    Source

    Raises
    ------
    SourceError
        Missing path, a run that did not finish, a file that is not a model of this
        package (a ``.keras`` file without contract), a corrupt model, another backbone.

    Examples
    --------
    >>> resolve_source(None).weights is None
    True
    """
    if value is None or value in ("none", "imagenet"):
        return Source(value or "none")
    path = Path(os.path.expanduser(value))
    if not path.exists():
        raise SourceError(f"model.source: {value}: no such file or folder")
    run_dir = _run_dir_of(path)
    if path.is_dir():
        if run_dir is None and not (path / "model.keras").is_file():
            raise SourceError(_unfinished(path))
        src = _run_source(path, verify) if run_dir is not None else _model_source(
            path / "model.keras")
    elif path.suffix == ".keras":
        if run_dir is not None and (run_dir / "run.json").is_file():
            src = _run_source(run_dir, verify)
        else:
            src = _model_source(path)
    else:
        return Source("weights", path)
    c = src.contract
    assert c is not None
    if backbone is not None and c.backbone != backbone:
        raise SourceError(
            f"model.source: {value} is a model of {c.backbone}, but model.backbone is "
            f"{backbone}; the shared layers can only be copied into the same backbone "
            "(leave model.backbone out: it is inherited from the source)")
    return src


def _model_source(path: Path) -> Source:
    contract = _read_model_contract(path)
    link = {"kind": "model", "path": str(path.resolve()), "task": contract.task,
            "labels": list(contract.label_names), "backbone": contract.backbone,
            "model_sha256": file_sha256(path)}
    return Source("model", path, contract, None, [*(contract.lineage or []), link])


def _contract_of(value: Any) -> ModelContract | None:
    """The contract of a run directory or model file, or None when there is none."""
    if not isinstance(value, str) or value in ("imagenet", "none"):
        return None
    path = Path(value)
    model = path / "model.keras" if path.is_dir() else path
    if model.suffix != ".keras" or not model.is_file():
        return None
    try:
        return read_contract(model)
    except ValueError:
        return None


def inherit_source(raw: dict[str, Any], base: str | os.PathLike = ".") -> dict[str, Any]:
    """A raw configuration with ``model.source`` resolved against ``base`` and, when it is
    a model of this package, the source's backbone, input size and preprocessing stages
    filled in where the configuration leaves them out.

    Examples
    --------
    >>> inherit_source({"model": {"source": "imagenet"}})
    {'model': {'source': 'imagenet'}}
    """
    model = raw.get("model")
    if not isinstance(model, dict):
        return raw
    for key in ("source", "weights"):
        v = model.get(key)
        if isinstance(v, str) and v.strip().lower() not in ("imagenet", "none", "null", ""):
            p = Path(v).expanduser()
            model[key] = os.path.normpath(p if p.is_absolute() else Path(base) / p)
    contract = _contract_of(model.get("source", model.get("weights")))
    if contract is None:
        return raw
    model.setdefault("backbone", contract.backbone)
    if "preprocessing" in raw:  # the stages given say the size (differences are reported)
        return raw
    model.setdefault("input_size", int(contract.input_size[0]))
    stages = (contract.preprocessing or {}).get("stages")
    if stages:
        # a size given in the configuration replaces the source's (and is reported)
        raw["preprocessing"] = [{**s, "size": model["input_size"]} if s.get("name") == "resize"
                                else dict(s) for s in stages]
    return raw


def _stage_text(stage: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(stage.items()) if k != "name")
    return f"{stage.get('name')}({params})"


def preprocessing_differences(contract: ModelContract, stages: list[dict[str, Any]],
                              input_size: int, normalization: str,
                              channels: int = 3) -> list[str]:
    """What a target configuration changes in a source model's preprocessing contract.

    Stages are compared in their canonical form (``Pipeline.to_config``), so spelling
    differences that build the same stage do not count.

    Returns
    -------
    list of str
        One line per difference (empty when the target keeps the contract).

    Examples
    --------
    >>> c = ModelContract("efficientnet_lite0", "binary", ["a", "b"], [64, 64],
    ...                   "efficientnet_lite",
    ...                   preprocessing={"stages": [{"name": "resize", "size": 64}]})
    >>> preprocessing_differences(c, [{"name": "resize", "size": 96}], 96,
    ...                           "efficientnet_lite")[0]
    'input size: source 64x64, target 96x96'
    """
    from imaging_tl.stages import Pipeline

    out = []
    if list(contract.input_size) != [input_size, input_size]:
        out.append(f"input size: source {'x'.join(map(str, contract.input_size))}, "
                   f"target {input_size}x{input_size}")
    if int(contract.channels) != int(channels):
        out.append(f"channels: source {contract.channels}, target {channels}")
    if contract.normalization != normalization:
        out.append(f"normalisation: source {contract.normalization!r}, target "
                   f"{normalization!r}")
    src_stages = (contract.preprocessing or {}).get("stages")
    if src_stages is None:
        return out
    a = Pipeline.from_config(src_stages).to_config()
    b = Pipeline.from_config(stages).to_config()
    for i in range(max(len(a), len(b))):
        sa = _stage_text(a[i]) if i < len(a) else "(none)"
        sb = _stage_text(b[i]) if i < len(b) else "(none)"
        if sa != sb:
            out.append(f"preprocessing stage {i}: source {sa}, target {sb}")
    return out



def find_source_runs(folder: str | os.PathLike, depth: int = 3) -> tuple[list[dict[str, Any]],
                                                                         list[Path]]:
    """Finished runs under ``folder`` usable as ``model.source``, and unfinished ones.

    Parameters
    ----------
    folder : path
        Searched for run directories (a ``config.yaml``) down to ``depth`` levels.
    depth : int
        How deep to look below ``folder``.

    Returns
    -------
    runs : list of dict
        One per finished run, newest first: ``path``, ``name`` (folder name),
        ``backbone``, ``task``, ``labels``, ``input_size``, ``finished``.
    unfinished : list of Path
        Run directories without ``model.keras`` or ``run.json``.

    Examples
    --------
    >>> find_source_runs("runs/none-here")
    ([], [])
    """
    root = Path(folder)
    if not root.is_dir():
        return [], []
    found, unfinished = [], []
    candidates = [root, *(p.parent for i in range(1, depth + 1)
                          for p in root.glob("/".join(["*"] * i) + "/config.yaml"))]
    for run_dir in sorted(set(candidates)):
        if not (run_dir / "config.yaml").is_file():
            continue
        if not all((run_dir / f).is_file() for f in RUN_FILES):
            unfinished.append(run_dir)
            continue
        try:
            c = read_contract(run_dir / "model.keras")
            record = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            unfinished.append(run_dir)
            continue
        found.append({"path": run_dir, "name": run_dir.name, "backbone": c.backbone,
                      "task": c.task, "labels": list(c.label_names),
                      "input_size": int(c.input_size[0]),
                      "finished": str(record.get("finished") or "")})
    found.sort(key=lambda r: r["finished"], reverse=True)
    return found, unfinished
