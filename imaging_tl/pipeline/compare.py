"""Compare finished runs: one table of name, date, the configuration keys that differ, the
data-manifest hash, the headline test metrics with their CIs and the time, sorted by a
metric; runs on other data (another data-manifest hash) are marked as not comparable.

Every run directory is read defensively: a folder without ``run.json``, a garbled or
oversized ``run.json``, a ``config.yaml`` that is not a mapping or a ``metrics.json`` whose
figures are not numbers gives a message naming the folder, the file and the reason, and the
other runs are still compared. Text read from the files reaches the console without control
characters, the HTML page escaped, and the CSV through the package's one CSV writer
(formula injection neutralised).

Examples
--------
>>> c = compare_runs([])
>>> c.rows, c.problems
([], [])
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging_tl._atomic import readable_text, write_csv, write_text
from imaging_tl.evaluate.samplesize import format_ci
from imaging_tl.pipeline.result import HEADLINE_METRIC

__all__ = ["HISTORY_BOOKKEEPING", "SORT_KEYS", "Comparison", "RunReadError", "compare_runs",
           "epoch_scalars", "flatten_config", "metric_scalars", "read_run_summary"]

#: history.csv columns that are bookkeeping, not per-epoch figures
HISTORY_BOOKKEEPING = ("phase", "phase_name", "epoch", "seconds", "cached_features")

#: metrics shown per task (keys of metrics.json), headline first
_METRICS = {"binary": ("roc_auc", "pr_auc", "sensitivity", "specificity"),
            "multiclass": ("roc_auc_macro", "balanced_accuracy", "accuracy"),
            "multilabel": ("roc_auc_macro",)}
#: configuration keys that say where files go, not what is computed
_IGNORED_KEYS = ("name", "output", "cache_dir", "workers", "output_paths")
#: sort keys besides the metrics
SORT_KEYS = ("date", "time", "name")
_MAX_BYTES = 20 * 2**20  # a run.json / metrics.json / config.yaml larger than this is refused


class RunReadError(ValueError):
    """A run directory that cannot be compared (the message names the file and why)."""


def _text(x: Any, limit: int = 200) -> str:
    """One printable line: control characters (terminal escapes among them) dropped."""
    s = readable_text(str(x))
    s = "".join(c if c.isprintable() else " " for c in s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _load(path: Path, kind: str) -> Any:
    if not path.exists():
        why = " (not a finished run)" if path.name == "run.json" else ""
        raise RunReadError(f"{path}: missing{why}")
    if not path.is_file():
        raise RunReadError(f"{path}: not a regular file")
    if path.stat().st_size > _MAX_BYTES:
        raise RunReadError(f"{path}: {path.stat().st_size} bytes, more than a run writes")
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text) if kind == "yaml" else json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunReadError(f"{path}: not valid {kind.upper()} ({_text(first, 120)})") from None
    except OSError as exc:
        raise RunReadError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def epoch_scalars(history: Any) -> list[tuple[int, Any, str, float]]:
    """Every numeric figure of a ``history.csv`` table: ``(step, row, tag, value)``, the step
    counted from 1 over all phases, ``lr`` tagged ``learning_rate`` (TensorBoard and MLflow
    log these).

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"phase": [0], "epoch": [1], "lr": [0.1], "loss": ["n/a"]})
    >>> [(step, tag, value) for step, _, tag, value in epoch_scalars(h)]
    [(1, 'learning_rate', 0.1)]
    """
    out = []
    cols = [c for c in history.columns if c not in HISTORY_BOOKKEEPING]
    for step, (_, row) in enumerate(history.iterrows(), start=1):
        for col in cols:
            try:
                value = float(row[col])
            except (TypeError, ValueError):
                continue
            out.append((step, row, "learning_rate" if col == "lr" else str(col), value))
    return out


def metric_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Each figure of ``metrics.json`` with a value, and its CI ends: ``{key, key_ci_low,
    key_ci_high}`` (TensorBoard and MLflow log these).

    Examples
    --------
    >>> metric_scalars({"roc_auc": {"value": 0.9, "ci": [0.8, 0.95]}, "n": 3})
    {'roc_auc': 0.9, 'roc_auc_ci_low': 0.8, 'roc_auc_ci_high': 0.95}
    """
    out: dict[str, float] = {}
    for key, est in metrics.items():
        if not isinstance(est, Mapping) or not isinstance(est.get("value"), (int, float)):
            continue
        out[key] = float(est["value"])
        ci = est.get("ci")
        if isinstance(ci, list) and len(ci) == 2 and None not in ci:
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(ci[0]), float(ci[1])
    return out


def flatten_config(d: Any, prefix: str = "") -> dict[str, Any]:
    """A configuration as ``{"dotted.key": value}``: sections and lists of sections (the
    phases, the stages) opened, other lists as JSON text (what ``compare``, TensorBoard's
    hparams and MLflow's params show).

    Examples
    --------
    >>> flatten_config({"seed": 0, "train": {"phases": [{"epochs": 2}]}, "x": [1, 2]})
    {'seed': 0, 'train.phases.0.epochs': 2, 'x': '[1, 2]'}
    """
    out: dict[str, Any] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            out.update(flatten_config(v, f"{prefix}{k}."))
    elif isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        for i, v in enumerate(d):
            out.update(flatten_config(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = json.dumps(d, sort_keys=True, default=str) \
            if isinstance(d, (list, dict)) else d
    return out


def _estimate(m: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """``{"value", "ci"}`` of a metric when its figures are numbers, else None."""
    est = m.get(key)
    if not isinstance(est, Mapping) or not isinstance(est.get("value"), (int, float)):
        return None
    ci = est.get("ci")
    ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci)
    return {"value": float(est["value"]), "ci": [float(c) for c in ci] if ok else None}


def read_run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What :func:`compare_runs` shows of one run directory.

    Returns
    -------
    dict
        ``run``, ``name``, ``date``, ``status``, ``task``, ``manifest``, ``time_s``,
        ``config`` (flattened keys) and ``metrics`` (name -> ``{"value", "ci"}``).

    Raises
    ------
    RunReadError
        The folder is missing, or ``run.json`` is missing, not JSON or not an object.

    Examples
    --------
    >>> read_run_summary("no/such/run")
    Traceback (most recent call last):
    ...
    imaging_tl.pipeline.compare.RunReadError: no/such/run: not a folder
    """
    rd = Path(run_dir)
    if not rd.is_dir():
        raise RunReadError(f"{rd}: not a folder")
    record = _load(rd / "run.json", "json")
    if not isinstance(record, Mapping):
        raise RunReadError(f"{rd / 'run.json'}: not a JSON object")
    notes: list[str] = []
    try:
        config = _load(rd / "config.yaml", "yaml")
        if not isinstance(config, Mapping):
            raise RunReadError(f"{rd / 'config.yaml'}: not a mapping")
    except RunReadError as exc:
        config, notes = {}, [str(exc)]
    try:
        metrics = _load(rd / "metrics.json", "json")
        if not isinstance(metrics, Mapping):
            raise RunReadError(f"{rd / 'metrics.json'}: not a JSON object")
    except RunReadError as exc:
        metrics = {}
        if record.get("status") == "finished":
            notes.append(str(exc))
    task = str(metrics.get("task") or record.get("task") or "binary")
    total = (record.get("durations_s") or {}) if isinstance(record.get("durations_s"),
                                                           Mapping) else {}
    time_s = total.get("total")
    return {
        "run": _text(rd.resolve().name), "path": str(rd), "name": _text(record.get("name", "")),
        "date": _text(record.get("finished") or record.get("failed") or ""),
        "status": _text(record.get("status", "unknown")), "task": _text(task),
        "manifest": _text(record.get("data_manifest_sha256") or "", 64),
        "time_s": float(time_s) if isinstance(time_s, (int, float)) else None,
        "config": {k: v for k, v in flatten_config(config).items() if k not in _IGNORED_KEYS},
        "metrics": {str(k): e for k in metrics if (e := _estimate(metrics, k)) is not None},
        "notes": notes,
    }


def _cell(est: Mapping[str, Any] | None) -> str:
    if est is None:
        return "n/a"
    ci = format_ci(est.get("ci"))
    return f"{est['value']:.3f} ({ci})" if "too few" not in ci else f"{est['value']:.3f}"


@dataclass
class Comparison:
    """Runs side by side (see :func:`compare_runs`).

    Attributes
    ----------
    rows : list of dict
        One summary per readable run (:func:`read_run_summary`), sorted, with
        ``comparable`` (bool) and ``comparable_note``.
    differing : list of str
        Configuration keys whose values differ between the runs.
    metrics : list of str
        The metric columns, headline first.
    problems : list of str
        One message per run directory that could not be read.
    sort : str
        The key the rows are sorted by.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sort: str = ""

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per run, as the CSV holds it (metric value and CI ends apart).

        Examples
        --------
        >>> Comparison().records()
        []
        """
        out = []
        for r in self.rows:
            rec: dict[str, Any] = {
                "run": r["run"], "name": r["name"], "date": r["date"], "status": r["status"],
                "comparable": "yes" if r["comparable"] else "no", "note": r["comparable_note"],
                "data_manifest_sha256": r["manifest"], "time_s": r["time_s"]}
            for m in self.metrics:
                est = r["metrics"].get(m)
                ci = (est or {}).get("ci") or [None, None]
                rec.update({m: (est or {}).get("value"), f"{m}_ci_low": ci[0],
                            f"{m}_ci_high": ci[1]})
            rec.update({k: r["config"].get(k) for k in self.differing})
            out.append(rec)
        return out

    def _grid(self) -> tuple[list[str], list[list[str]]]:
        head = ["run", "name", "date", "data", *self.metrics, "time", *self.differing]
        rows = []
        for r in self.rows:
            mark = r["manifest"][:12] + ("" if r["comparable"] else " NOT COMPARABLE")
            time = f"{r['time_s']:.0f} s" if r["time_s"] is not None else "n/a"
            rows.append([r["run"], _text(r["name"], 40), r["date"][:16], mark,
                         *[_cell(r["metrics"].get(m)) for m in self.metrics], time,
                         *[_text(r["config"].get(k, "-"), 40) for k in self.differing]])
        return head, rows

    def format(self) -> str:
        """The table as console text, then the notes and problems.

        Examples
        --------
        >>> print(Comparison(problems=["runs/x/run.json: missing"]).format())
        no run to compare
        cannot compare runs/x/run.json: missing
        """
        lines = []
        if self.rows:
            head, rows = self._grid()
            widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
            for row in [head, *rows]:
                lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths,
                                                                        strict=True)).rstrip())
            lines.append(f"sorted by {self.sort}; metrics: value (95% CI) on each run's test "
                         "split")
            lines += [f"not comparable: {r['run']}: {r['comparable_note']}"
                      for r in self.rows if not r["comparable"]]
            lines += [f"note: {n}" for r in self.rows for n in r["notes"]]
        else:
            lines.append("no run to compare")
        lines += [f"cannot compare {p}" for p in self.problems]
        return "\n".join(lines)

    def to_html(self) -> str:
        """A small self-contained HTML page of the table (everything escaped).

        Examples
        --------
        >>> "<table" in Comparison().to_html()
        True
        """
        from imaging_tl.report.embed import PAGE_CSS

        def esc(x: Any) -> str:
            return html.escape(str(x), quote=True)

        head, rows = self._grid()
        body = "".join(
            f"<tr{' class=warn' if not r['comparable'] else ''}>"
            + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
            for r, cells in zip(self.rows, rows, strict=True))
        notes = [f"not comparable: {r['run']}: {r['comparable_note']}"
                 for r in self.rows if not r["comparable"]]
        notes += [f"cannot compare {p}" for p in self.problems]
        return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Run "
                f"comparison</title><style>{PAGE_CSS}</style></head><body><h1>Run comparison"
                f"</h1><p class='sub'>sorted by {esc(self.sort)}; metrics: value (95% CI) on "
                "each run's test split</p><table class='grid'><tr>"
                + "".join(f"<th>{esc(h)}</th>" for h in head) + f"</tr>{body}</table>"
                + "".join(f"<p class='warn'>{esc(n)}</p>" for n in notes)
                + "</body></html>\n")

    def write_csv(self, path: str | os.PathLike) -> Path:
        """The table as CSV (the package's one CSV writer)."""
        return write_csv(path, self.records())

    def write_html(self, path: str | os.PathLike) -> Path:
        """The HTML page (:meth:`to_html`)."""
        return write_text(path, self.to_html())


def _mark_comparable(rows: list[dict[str, Any]]) -> None:
    """The data most runs share is the reference (ties: the first run given); a run on
    other data is not comparable."""
    hashes = [r["manifest"] for r in rows if r["manifest"]]
    ref = Counter(hashes).most_common(1)[0][0] if hashes else ""  # ties: the first seen
    first = next((r["run"] for r in rows if r["manifest"] == ref), "")
    for r in rows:
        same = bool(ref) and r["manifest"] == ref
        r["comparable"] = same
        r["comparable_note"] = "" if same else (
            f"other data (data-manifest {r['manifest'][:12] or 'not recorded'}, "
            f"{first} has {ref[:12]})")


def _sort(rows: list[dict[str, Any]], key: str) -> None:
    if key == "name":
        rows.sort(key=lambda r: r["run"])
    elif key == "date":
        rows.sort(key=lambda r: r["date"], reverse=True)
    elif key == "time":
        rows.sort(key=lambda r: (r["time_s"] is None, r["time_s"] or 0.0))
    else:  # a metric: best first, runs without it last
        rows.sort(key=lambda r: (key not in r["metrics"],
                                 -(r["metrics"].get(key) or {}).get("value", 0.0)))


def compare_runs(run_dirs: Sequence[str | os.PathLike], sort: str | None = None
                 ) -> Comparison:
    """Compare run directories (see the module's description).

    Parameters
    ----------
    run_dirs : list of path
        Run directories; unreadable ones are listed in ``problems``.
    sort : str, optional
        A metric of ``metrics.json`` (best first), ``date`` (newest first), ``time``
        (fastest first) or ``name``. Default: the headline metric of the first run's task.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        ``sort`` is neither a metric of the runs nor one of :data:`SORT_KEYS`.

    Examples
    --------
    >>> compare_runs(["no/such/run"]).problems
    ['no/such/run: not a folder']
    """
    rows, problems = [], []
    for d in run_dirs:
        try:
            rows.append(read_run_summary(d))
        except RunReadError as exc:
            problems.append(_text(exc, 300))
        except OSError as exc:  # a folder that vanished or cannot be listed
            problems.append(_text(f"{d}: {exc.strerror or exc}", 300))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    metrics = list(dict.fromkeys(m for t in tasks for m in _METRICS.get(t, ("accuracy",))))
    key = sort or (HEADLINE_METRIC.get(tasks[0], "roc_auc") if tasks else "roc_auc")
    known = {m for r in rows for m in r["metrics"]} | set(metrics)
    if rows and key not in known and key not in SORT_KEYS:
        raise ValueError(f"--sort {key!r}: not a metric of these runs; choose one of "
                         f"{', '.join(sorted(known | set(SORT_KEYS)))}")
    if key not in metrics and key not in SORT_KEYS:
        metrics.insert(0, key)
    keys = sorted({k for r in rows for k in r["config"]})
    differing = [k for k in keys if len({json.dumps(r["config"].get(k, "-"), default=str)
                                         for r in rows}) > 1]
    _mark_comparable(rows)
    _sort(rows, key)
    return Comparison(rows, differing, metrics, problems, key)
