"""The domain gate of a run and of ``predict``: header facts and a feature reference fitted
on the training split (see :mod:`imaging_tl.evaluate.domain`), stored with the model
(``contract.json`` field ``domain``, ``domain.npz`` beside ``model.keras``) and applied to
every file predicted.

Examples
--------
>>> gate = DomainGate(None, None)
>>> gate.check([{"Modality": "MR"}], None)
(['unknown'], ['the model has no domain reference'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.evaluate.domain import (
    DOMAIN_FILE,
    FeatureReference,
    domain_facts,
    fit_reference,
    gate_summary,
    header_mismatch,
    load_reference,
)

__all__ = ["DomainGate", "domain_step", "load_gate", "train_header_facts"]


@dataclass
class DomainGate:
    """Header facts and feature reference of a model; :meth:`check` flags inputs."""

    facts: dict[str, Any] | None
    reference: FeatureReference | None

    @property
    def needs_features(self) -> bool:
        """Whether :meth:`check` uses features (a reference exists)."""
        return self.reference is not None

    def check(self, metas: list[dict[str, Any]], features: np.ndarray | None
              ) -> tuple[list[str], list[str]]:
        """``(domain, domain_reason)`` per input: ``ok`` / ``out_of_domain`` and why (the
        header field that differs, else the feature distance against its threshold)."""
        if self.facts is None and self.reference is None:
            return (["unknown"] * len(metas),
                    ["the model has no domain reference"] * len(metas))
        dist = (self.reference.distance(features)
                if self.reference is not None and features is not None else None)
        status, reasons = [], []
        for i, meta in enumerate(metas):
            why = header_mismatch(self.facts, meta)
            if why is None and dist is not None and dist[i] > self.reference.threshold:
                why = (f"feature distance {dist[i]:.1f} above the threshold "
                       f"{self.reference.threshold:.1f}")
            status.append("ok" if why is None else "out_of_domain")
            reasons.append(why or "")
        return status, reasons


def load_gate(model_path: str | os.PathLike, contract: Any) -> DomainGate:
    """The gate stored with a model (``None`` parts where the model predates the gate).

    Raises
    ------
    ValueError
        ``domain.npz`` exists but is malformed (named).
    """
    npz = Path(model_path).with_name(DOMAIN_FILE)
    reference = load_reference(npz) if npz.is_file() else None
    return DomainGate(getattr(contract, "domain", None), reference)


def train_header_facts(paths: list[str], limit: int = 2000) -> dict[str, Any]:
    """:func:`~imaging_tl.evaluate.domain.domain_facts` of (up to ``limit``, evenly
    spread) training files, read from their headers."""
    from imaging_tl.io import ScanReadError
    from imaging_tl.io.reader import read_header

    paths = list(dict.fromkeys(paths))
    if len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit)]
    metas = []
    for p in paths:
        try:
            metas.append(read_header(p))
        except (ScanReadError, OSError, ValueError):
            continue
    return domain_facts(metas)


def domain_step(state: Any) -> None:
    """Fit the gate on the training split (threshold on validation), write ``domain.npz``,
    keep the header facts for the contract, and count the test images it would flag
    (``metrics["domain_gate"]``, also in ``metrics.json`` and the report)."""
    from imaging_tl.pipeline.provenance import write_plain_json
    from imaging_tl.train.features import extract_features

    rate = state.cfg.evaluate.domain_false_flag_rate
    # cross-validation: the training split holds every image of the folds (the
    # validation images among them), so it alone is the reference
    parts = ("train", "test") if getattr(state, "crossval", None) is not None \
        else ("train", "val", "test")
    feats = {p: extract_features(state.model, state.splits[p].x)[0] for p in parts}
    ref = fit_reference(feats["train"], feats.get("val", feats["train"][:0]), rate,
                        seed=state.cfg.seed)
    ref.save(state.run_dir / DOMAIN_FILE)
    state.domain = train_header_facts(list(state.splits["train"].rows["path"]))
    gate = DomainGate(state.domain, ref)
    te = state.splits["test"].rows
    from imaging_tl.io.reader import read_header

    status, _ = gate.check([read_header(p) for p in te["path"]], feats["test"])
    flagged = int(sum(s == "out_of_domain" for s in status))
    state.metrics["domain_gate"] = {
        "test_flagged": flagged, "test_images": len(status),
        "false_flag_rate": rate, "threshold": ref.threshold, "train_images": ref.n_train}
    state.paths["domain"] = state.run_dir / DOMAIN_FILE
    if "metrics" in state.paths:
        write_plain_json(state.paths["metrics"], state.metrics)
    state.log(f"domain gate: {gate_summary(state.metrics['domain_gate'])}")
