"""The one typed state that the steps of a run fill in, in order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.config import RunConfig
from imaging_tl.pipeline.progress import ProgressLog

__all__ = ["RunState", "SplitArrays"]


@dataclass
class SplitArrays:
    """The preprocessed images, encoded labels and table rows of one split."""

    x: np.ndarray
    y: np.ndarray
    rows: pd.DataFrame


@dataclass
class RunState:
    """Everything one run knows, step by step (each step reads what earlier ones wrote).

    ``run_dir`` is where this process writes: the run directory on the chief, a scratch
    folder on other workers. ``resume`` is the interrupted run directory being continued.
    """

    cfg: RunConfig
    run_dir: Path
    plan: Any  # imaging_tl.train.distribute.DistributionPlan
    log: ProgressLog
    resume: Path | None = None
    callbacks: list[Any] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    # data
    table: pd.DataFrame | None = None
    task: str = "binary"
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pipe: Any = None  # imaging_tl.stages.Pipeline
    prepared: Any = None  # imaging_tl.data.Prepared
    manifest: str = ""
    splits: dict[str, SplitArrays] = field(default_factory=dict)
    # model and training
    source: Any = None  # imaging_tl.models.source.Source (model.source, resolved)
    chain: list[dict[str, Any]] = field(default_factory=list)  # origin ... this run
    source_audit: dict[str, Any] | None = None  # cross-task overlap with the source's data
    model: Any = None
    history: pd.DataFrame | None = None
    best: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: dict[str, Any] | None = None
    # evaluation and outputs
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    gallery: list[dict[str, Any]] = field(default_factory=list)
    domain: dict[str, Any] | None = None  # the training files' header facts (domain gate)
    # cross-validation (split.method kfold, every fold): the fold being trained, and the
    # folds' results (imaging_tl.pipeline.crossval.CrossVal)
    fold: int | None = None
    crossval: Any = None
    fold_features: tuple[np.ndarray, np.ndarray] | None = None  # (train, val) of the fold
    # (layer, train views, val) of the fold: a fine-tuning phase's frozen part, run once
    fold_boundary: tuple[str, np.ndarray, np.ndarray] | None = None

    @property
    def fold_dir(self) -> Path:
        """Where the fold being trained writes (``folds/fold-K/``); the run directory
        outside cross-validation."""
        if self.fold is None:
            return self.run_dir
        return self.run_dir / "folds" / f"fold-{self.fold}"

    @property
    def checkpoints(self) -> Path:
        """Per-phase training state (of the fold being trained), kept until it has
        finished."""
        return self.fold_dir / "checkpoints"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the enclosed step into ``durations[name]``."""
        t0 = time.perf_counter()
        yield
        self.durations[name] = round(time.perf_counter() - t0, 3)
