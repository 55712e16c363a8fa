"""What :func:`imaging_tl.run` returns: where everything is and the headline numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imaging_tl.config import RunConfig

__all__ = ["HEADLINE_METRIC", "RunResult"]

# the metric a run is summarised by, per task (keys of imaging_tl.evaluate.evaluate's output)
HEADLINE_METRIC = {"binary": "roc_auc", "multiclass": "roc_auc_macro",
                   "multilabel": "roc_auc_macro"}


@dataclass
class RunResult:
    """What :func:`imaging_tl.run` returns: where everything is and the headline numbers.

    Attributes
    ----------
    run_dir : pathlib.Path
    config : RunConfig
        The resolved configuration (as written to ``config.yaml``).
    metrics : dict
        Contents of ``metrics.json``.
    paths : dict of str to Path
        Every artefact by name (``"model"``, ``"report"``, ``"metrics"``, ...).
    durations : dict of str to float
        Seconds per step.
    quarantined : pandas.DataFrame
        ``path, frame, reason`` of the files left out.

    Examples
    --------
    >>> r = RunResult(Path("runs/x"), None, {"task": "binary", "roc_auc": {"value": 0.9,
    ...               "ci": [0.8, 0.95]}})
    >>> r.headline()
    ('roc_auc', 0.9, [0.8, 0.95])
    """

    run_dir: Path
    config: RunConfig | None
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame)
    task: str = "binary"
    class_names: list[str] = field(default_factory=list)
    split_counts: dict[str, int] = field(default_factory=dict)
    resumed_from: dict[str, Any] | None = None
    role: str = "chief"

    def headline(self) -> tuple[str, float | None, list | None]:
        """The main test metric: ``(name, value, 95% CI)``.

        ROC AUC for a binary task, the macro-averaged ROC AUC for multiclass and
        multilabel tasks (the keys :func:`imaging_tl.evaluate.evaluate` writes), accuracy
        when the AUC is missing (e.g. one class in the test split).
        """
        m = self.metrics
        key = HEADLINE_METRIC.get(m.get("task", self.task), "roc_auc")
        if not isinstance(m.get(key), dict):
            key = "accuracy"
        est = m.get(key) or {}
        return key, est.get("value"), est.get("ci")

    def headline_text(self) -> str:
        """The headline metric with its interval, as printed: ``0.900 (95% CI
        0.712-1.000)``, or ``1.000 (too few cases for an interval)`` when the interval's ends
        coincide (:func:`imaging_tl.evaluate.format_estimate`).

        Examples
        --------
        >>> RunResult(Path("r"), None, {"task": "binary", "roc_auc": {"value": 1.0,
        ...           "ci": [1.0, 1.0]}}).headline_text()
        '1.000 (too few cases for an interval)'
        """
        from imaging_tl.evaluate.samplesize import format_estimate

        _, value, ci = self.headline()
        boot = self.metrics.get("bootstrap") or {}
        return format_estimate({"value": value, "ci": ci},
                               confidence=float(boot.get("confidence", 0.95)),
                               bootstrapped=bool(boot.get("n_bootstraps", 1)))

    def summary(self) -> str:
        """One screen: data, splits, the test metric with its CI, where the report is."""
        if self.role != "chief":
            return (f"{self.role}: training done as part of a multi-worker cluster; the chief "
                    "(worker 0) evaluates and writes the run directory")
        from imaging_tl.evaluate.samplesize import format_estimate

        name, value, ci = self.headline()
        lines = [f"run {self.run_dir.name}: {self.task} task, classes "
                 f"{', '.join(self.class_names)}"]
        if self.split_counts:
            lines.append("  samples: " + ", ".join(f"{k} {v}" for k, v in
                                                   self.split_counts.items()))
        if len(self.quarantined):
            lines.append(f"  {len(self.quarantined)} file(s) left out as unreadable "
                         "(see run.json)")
        if value is not None:
            lines.append(f"  test {name}: {self.headline_text()}")
        lines += [f"  caution, small sample: {n}" for n in self.metrics.get("small_sample", [])]
        cv = self.metrics.get("crossval")
        if isinstance(cv, dict):
            s, key = cv["summary"].get(cv["headline"]) or {}, cv["headline"]
            spread = f"{s['mean']:.3f} ± {s['sd']:.3f}" if s.get("sd") is not None else "n/a"
            lines.append(f"  cross-validation, {cv['folds']} folds: {key} per fold {spread}, "
                         f"pooled out of fold {format_estimate(cv['oof'].get(key))}; the "
                         "test figure is the fold ensemble's, its threshold chosen out of fold")
        tta = self.metrics.get("tta")
        if isinstance(tta, dict) and isinstance(tta.get(name), dict):
            lines.append(f"  test {name} with test-time augmentation ({tta['copies']} copies, "
                         f"{tta['preset']}): " + format_estimate(tta[name]))
        worst = (self.metrics.get("subgroups") or {}).get("worst_group_auc")
        if worst:
            lines.append(f"  worst-group roc_auc: {worst['attribute']} {worst['group']} "
                         + format_estimate(worst))
        op = self.metrics.get("operating_point")
        if isinstance(op, dict) and op.get("threshold") is not None:
            sens = self.metrics.get("sensitivity", {}).get("value")
            spec = self.metrics.get("specificity", {}).get("value")
            extra = ""
            if sens is not None and spec is not None:
                extra = f": test sensitivity {sens:.3f}, specificity {spec:.3f}"
            lines.append(f"  threshold {op['threshold']:.3f} ({op.get('method')}, chosen on "
                         f"{op.get('chosen_on')}){extra}")
        total = sum(self.durations.values())
        lines.append(f"  time: {total:.0f} s (" + ", ".join(
            f"{k} {v:.0f}" for k, v in self.durations.items() if v >= 0.5) + ")")
        for key in ("report", "model", "metrics"):
            if key in self.paths:
                lines.append(f"  {key}: {self.paths[key]}")
        if self.resumed_from:
            lines.append(f"  resumed from phase {self.resumed_from['phase'] + 1}, epoch "
                         f"{self.resumed_from['epoch']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the run, its headline with the CI, the metrics table, the main
        plots of ``plots/`` (ROC, PR, training curves) embedded, and where the report is."""
        from html import escape

        from imaging_tl.evaluate.metrics_view import Metrics
        from imaging_tl.report.embed import img_tag

        name, value, _ = self.headline()
        parts = [f"<h4>Run {escape(self.run_dir.name)}: {escape(self.task)}, classes "
                 f"{escape(', '.join(self.class_names))}</h4>"]
        if value is not None:
            parts.append(f"<p>test {escape(name)}: <b>{escape(self.headline_text())}</b></p>")
        if self.metrics:  # its figures; the curves are the plots below
            parts.append(Metrics({k: v for k, v in self.metrics.items() if k != "curves"}
                                 )._repr_html_())
        plots = self.run_dir / "plots"
        figs = [img_tag(plots / f, alt, "plot").replace("<img ", '<img style="max-width:100%" ')
                for f, alt in (
            ("roc.png", "ROC curve"), ("pr.png", "precision-recall curve"),
                    ("training_curves.png", "training curves")) if (plots / f).is_file()]
        if figs:
            parts.append("<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(
                f"<div style='width:300px'>{f}</div>" for f in figs) + "</div>")
        parts += [f"<p>{escape(k)}: <code>{escape(str(self.paths[k]))}</code></p>"
                  for k in ("report", "model_card") if k in self.paths]
        return "".join(parts)
