"""The outputs of a pretraining run: the backbone as ``model.keras``, ``history.csv``, its
plot, ``run.json`` with the chain, and the :class:`PretrainResult` returned to the caller.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imaging_tl._atomic import atomic_dir, write_csv
from imaging_tl.pipeline.output_steps import settle_modes
from imaging_tl.pipeline.provenance import write_plain_json

__all__ = ["CollapseError", "PretrainResult", "save_backbone", "write_history"]


class CollapseError(RuntimeError):
    """The embedding collapsed during pretraining (the message gives the statistic, the
    threshold and what to change).

    Examples
    --------
    >>> raise CollapseError("pretraining collapsed at epoch 3 ...")
    Traceback (most recent call last):
    ...
    imaging_tl.pretrain.result.CollapseError: pretraining collapsed at epoch 3 ...
    """


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> Path:
    """``history.csv``: a row per finished epoch (loss, collapse statistics, probe AUC).

    Examples
    --------
    >>> import tempfile
    >>> write_history(Path(tempfile.mkdtemp()), [{"epoch": 1, "loss": -0.4}]).name
    'history.csv'
    """
    return write_csv(Path(run_dir) / "history.csv", pd.DataFrame(history))


def save_backbone(model: Any, cfg: Any, pipe: Any, run_dir: Path) -> Path:
    """The pretrained backbone as ``model.keras`` (image -> pooled features) with its
    contract (task ``self_supervised``, the preprocessing, the origin of its weights).

    Saved in float32 from a fresh transfer model whose shared layers are copied from the
    trained one, whatever precision or strategy trained it.

    Examples
    --------
    >>> save_backbone(model, cfg, pipe, Path("runs/ssl"))  # doctest: +SKIP
    """
    from imaging_tl.models import ModelContract, build_transfer_model, save_transfer_model
    from imaging_tl.models.registry import get_spec
    from imaging_tl.models.source import origin_link
    from imaging_tl.models.transfer import copy_shared_layers, feature_extractor

    m = cfg.model
    size = int(m.input_size)
    plain = build_transfer_model(m.backbone, "binary", 2, freeze="all", weights=None,
                                 input_size=size, seed=cfg.seed)
    copy_shared_layers(model.transfer, plain)
    backbone = feature_extractor(plain)
    contract = ModelContract(
        m.backbone, "self_supervised", ["features"], [size, size],
        get_spec(m.backbone).normalization,
        preprocessing={"stages": pipe.to_config(), "fingerprint": pipe.fingerprint(),
                       "frames": cfg.data.frames},
        lineage=[origin_link(m.source, m.backbone)])
    with atomic_dir(run_dir / ".model") as tmp:
        save_transfer_model(backbone, tmp / "model.keras", contract)
        os.replace(tmp / "model.keras", run_dir / "model.keras")
        os.replace(tmp / "contract.json", run_dir / "contract.json")
    shutil.rmtree(run_dir / ".model", ignore_errors=True)
    return run_dir / "model.keras"


@dataclass
class PretrainResult:
    """What :func:`imaging_tl.pretrain` returns.

    Attributes
    ----------
    run_dir : Path
    history : pandas.DataFrame
        ``history.csv``.
    record : dict
        ``run.json``.
    quarantined : pandas.DataFrame
        ``path, frame, reason`` of the unreadable files.
    """

    run_dir: Path
    history: pd.DataFrame
    record: dict[str, Any] = field(default_factory=dict)
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def finish(cls, run_dir: Path, cfg: Any, record: dict[str, Any],
               quarantined: pd.DataFrame, log: Any = None) -> PretrainResult:
        """Plot the history, add the chain, write ``run.json`` last (the run is done)."""
        from imaging_tl.models.source import origin_link, run_link
        from imaging_tl.report.plots import plot_history

        history = pd.read_csv(run_dir / "history.csv")
        plot_history(history.drop(columns=["embedding_std"], errors="ignore"),
                     run_dir / "plots" / "history.png")
        record["chain"] = [origin_link(cfg.model.source, cfg.model.backbone)]
        record["chain"].append(run_link(run_dir, record))
        settle_modes(run_dir)
        write_plain_json(run_dir / "run.json", record)
        if log is not None:
            log(f"finished {run_dir}: usable as model.source of imaging-tl run")
        return cls(run_dir, history, record, quarantined)

    def summary(self) -> str:
        """A few lines: loss and collapse statistic of the last epoch, probe AUC, where.

        Examples
        --------
        >>> h = pd.DataFrame({"epoch": [1, 2], "loss": [-0.2, -0.6],
        ...                   "embedding_std_ratio": [0.8, 0.7], "probe_auc": [0.6, 0.7]})
        >>> print(PretrainResult(Path("runs/ssl"), h).summary())
        pretrained 2 epoch(s): loss -0.2000 -> -0.6000, embedding std x sqrt(d) 0.700
        linear probe AUC: 0.700 (last measured)
        run directory: runs/ssl (use it as model.source)
        """
        h = self.history
        lines = [f"pretrained {len(h)} epoch(s): loss {h['loss'].iloc[0]:.4f} -> "
                 f"{h['loss'].iloc[-1]:.4f}, embedding std x sqrt(d) "
                 f"{h['embedding_std_ratio'].iloc[-1]:.3f}"]
        if "probe_auc" in h and h["probe_auc"].notna().any():
            lines.append(f"linear probe AUC: {h['probe_auc'].dropna().iloc[-1]:.3f} "
                         "(last measured)")
        kept = self.record.get("kept")
        if kept:
            lines.append(f"model.keras: the backbone of epoch {kept['epoch']} ("
                         + ("best probe AUC" if kept["rule"] == "best_probe" else "the last")
                         + (f"; stopped early, {kept['stopped']}" if kept.get("stopped")
                            else "") + ")")
        if len(self.quarantined):
            lines.append(f"{len(self.quarantined)} unreadable file(s) quarantined (run.json)")
        lines.append(f"run directory: {self.run_dir} (use it as model.source)")
        return "\n".join(lines)

