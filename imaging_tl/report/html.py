"""The run report: PNG plots in ``plots/`` and one self-contained ``report.html``.

The page embeds every image as a base64 data URI and holds no script, stylesheet link or
font from outside, so it opens the same from a run folder, an e-mail attachment or an
offline workstation: open ``runs/<name>/report.html`` in any browser.

Patient data: the page shows counts, never rows of the census or the splits table, and
drops header fields that identify a patient (names, IDs, birth dates) from summaries.
Does not import TensorFlow.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl._version import __version__
from imaging_tl.evaluate.domain import gate_summary
from imaging_tl.evaluate.samplesize import format_ci
from imaging_tl.report import plots
from imaging_tl.report.caution import small_sample_html
from imaging_tl.report.chain import chain_section
from imaging_tl.report.crossval import crossval_section
from imaging_tl.report.embed import PAGE_CSS, figure, img_tag
from imaging_tl.report.gallery import gallery_from_dir, gallery_items
from imaging_tl.report.labels import label_reading_section
from imaging_tl.report.subgroups import plot_forest, subgroup_section
from imaging_tl.report.tta import plot_referral, tta_section

# Header fields that must never reach the page (DICOM keywords and their snake_case forms).
_IDENTIFYING = {
    "patientname", "patient_name", "patientid", "patient_id", "patientbirthdate",
    "patient_birth_date", "patientaddress", "otherpatientids", "otherpatientnames",
    "accessionnumber", "referringphysicianname", "institutionname",
}

# ------------------------------------------------------------------ page pieces


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if np.isfinite(v) else "n/a"
    return _esc(v)


def _ci_cells(est: Mapping[str, Any] | None, bootstrapped: bool = True) -> str:
    if not est:
        return "<td>n/a</td><td></td>"
    ci = format_ci(est.get("ci"), sep=" \u2013 ") if bootstrapped and \
        est.get("value") is not None else ""
    return f"<td>{_num(est.get('value'))}</td><td>{_esc(ci)}</td>"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def _is_identifying(key: str) -> bool:
    return key.rsplit(".", 1)[-1].lower().replace(" ", "") in _IDENTIFYING


def _kv_table(pairs: Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    rows = []
    for k, v in pairs:
        if _is_identifying(k):
            continue
        text = json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else str(v)
        if len(text) > 200:
            text = text[:197] + "..."
        rows.append(f"<tr><th>{_esc(k)}</th><td>{_esc(text)}</td></tr>")
    return f'<table class="{cls}">' + "".join(rows) + "</table>" if rows else "<p>none</p>"


def _config_section(config: Any) -> str:
    if config is None:
        return "<p>No configuration given.</p>"
    if isinstance(config, str):
        return f"<pre>{_esc(config)}</pre>"
    import yaml

    flat = _flatten(config)
    full = yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False)
    return (_kv_table(flat) + "<details><summary>Full configuration (YAML)</summary>"
            f"<pre>{_esc(full)}</pre></details>")


def _census_section(census: Any) -> str:
    if census is None:
        return "<p>No census given.</p>"
    if hasattr(census, "format") and not isinstance(census, str) and callable(census.format):
        census = census.format()
    if isinstance(census, str):
        return f"<pre>{_esc(census)}</pre>"
    if isinstance(census, Mapping):
        return _kv_table(_flatten(census))
    import pandas as pd

    if not isinstance(census, pd.DataFrame):
        census = pd.read_csv(census, low_memory=False)
    parts = [f"<p>{len(census)} files.</p>"]
    for col in ("status", "error", "format", "Modality", "PhotometricInterpretation",
                "transfer_syntax", "TransferSyntaxUID", "decoder", "BitsStored"):
        if col in census.columns:
            counts = census[col].astype(object).fillna("(none)").astype(str).value_counts().head(10)
            parts.append(f"<h4>{_esc(col)}</h4>" + _kv_table(counts.items(), "counts"))
    return "".join(parts)


def split_audit(
    splits: Any, *, split_col: str = "split", label_col: str = "label",
    group_col: str = "group",
) -> dict[str, Any]:
    """Counts per split and a patient-leakage check, without naming any patient.

    Parameters
    ----------
    splits : pandas.DataFrame or path
        One row per image with the split, and optionally the label and the group key.
    split_col, label_col, group_col : str
        Column names.

    Returns
    -------
    dict
        ``splits``: ``{split: {"images", "groups", "classes": {label: n}}}``;
        ``groups_in_several_splits``: how many group keys occur in more than one split
        (0 means no patient leaks between splits; None without a group column).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"split": ["train", "train", "test"], "group": ["a", "b", "a"],
    ...                   "label": [0, 1, 0]})
    >>> split_audit(t)["groups_in_several_splits"]
    1
    """
    import pandas as pd

    df = splits if isinstance(splits, pd.DataFrame) else pd.read_csv(splits)
    if split_col not in df.columns:
        raise ValueError(f"splits: missing column {split_col!r} (has {list(df.columns)})")
    out: dict[str, Any] = {"splits": {}}
    for name, part in df.groupby(df[split_col].astype(str), sort=False):
        entry: dict[str, Any] = {"images": int(len(part))}
        if group_col in df.columns:
            entry["groups"] = int(part[group_col].nunique())
        if label_col in df.columns:
            entry["classes"] = {str(k): int(v) for k, v in
                                part[label_col].astype(str).value_counts().sort_index().items()}
        out["splits"][name] = entry
    # how multi-label cells were read (policy, counts per label), when the table says
    if (df.attrs.get("label_summary") or {}).get("labels"):
        out["labels"] = df.attrs["label_summary"]
    if group_col in df.columns:
        per_group = df.groupby(df[group_col].astype(str))[split_col].nunique()
        out["groups_in_several_splits"] = int((per_group > 1).sum())
    else:
        out["groups_in_several_splits"] = None
    return out


def _splits_section(audit: Mapping[str, Any] | None) -> str:
    if audit is None:
        return "<p>No splits table given.</p>"
    classes = sorted({c for e in audit["splits"].values() for c in e.get("classes", {})})
    has_groups = any("groups" in e for e in audit["splits"].values())
    head = "<tr><th>split</th><th>images</th>" + ("<th>patients</th>" if has_groups else "")
    head += "".join(f"<th>{_esc(c)}</th>" for c in classes) + "</tr>"
    rows = []
    for name, e in audit["splits"].items():
        cells = f"<td>{_esc(name)}</td><td>{e['images']}</td>"
        if has_groups:
            cells += f"<td>{e.get('groups', '')}</td>"
        cells += "".join(f"<td>{e.get('classes', {}).get(c, 0)}</td>" for c in classes)
        rows.append(f"<tr>{cells}</tr>")
    leak = audit.get("groups_in_several_splits")
    if leak is None:
        note = '<p class="warn">No group column: patient leakage between splits not checked.</p>'
    elif leak == 0:
        note = '<p class="ok">No patient appears in more than one split.</p>'
    else:
        note = (f'<p class="warn">{leak} patient(s) appear in more than one split: '
                "test figures are optimistic.</p>")
    return f'<table class="grid">{head}{"".join(rows)}</table>{note}' + \
        label_reading_section(audit.get("labels"))


_BINARY_ROWS = (
    ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC (average precision)"),
    ("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("ppv", "PPV"),
    ("npv", "NPV"), ("f1", "F1"), ("accuracy", "Accuracy"),
)


def _metrics_section(m: Mapping[str, Any] | None) -> str:
    if not m:
        return "<p>No metrics given.</p>"
    boot = m.get("bootstrap") or {}
    conf = int(round(100 * float(boot.get("confidence", 0.95))))
    rows: list[str] = []

    def row(label: str, est: Any) -> None:
        rows.append(f"<tr><th>{_esc(label)}</th>"
                    f"{_ci_cells(est, bool(boot.get('n_bootstraps', 1)))}</tr>")

    task = m.get("task")
    if task == "binary":
        for key, label in _BINARY_ROWS:
            row(label, m.get(key))
    elif task == "multiclass":
        row("ROC AUC, macro", m.get("roc_auc_macro"))
        row("ROC AUC, micro", m.get("roc_auc_micro"))
        row("Balanced accuracy", m.get("balanced_accuracy"))
        row("Accuracy", m.get("accuracy"))
        for name, est in (m.get("roc_auc_per_class") or {}).items():
            row(f"ROC AUC, {name} vs rest", est)
    elif task == "multilabel":
        row("ROC AUC, macro", m.get("roc_auc_macro"))
        for name, est in (m.get("roc_auc_per_label") or {}).items():
            row(f"ROC AUC, {name}", est)
    table = (f'<table class="grid"><tr><th>metric</th><th>value</th><th>{conf}% CI</th></tr>'
             + "".join(rows) + "</table>" + small_sample_html(m))
    notes = []
    level = m.get("level", "image")
    resampling = boot.get("resampling", "image")
    notes.append(
        f"Evaluated per {_esc(level)} on {_esc(m.get('n', m.get('n_images', '?')))} "
        f"{ {'patient': 'patients', 'series': 'series'}.get(level, 'images')}"
        + (f" from {_esc(m['n_patients'])} patients" if m.get("n_patients") and
           level in ("image", "series") else "")
        + f". CIs: {_esc(boot.get('method', 'percentile'))} bootstrap, "
        f"{_esc(boot.get('n_bootstraps', '?'))} resamples of {_esc(resampling)}s."
    )
    op = m.get("operating_point")
    if op:
        how = {"youden": "Youden's J", "sensitivity":
               f"target sensitivity {op.get('target_sensitivity')}",
               "fixed": "fixed threshold"}.get(op.get("method"), op.get("method"))
        notes.append(f"Operating point: threshold {_num(op.get('threshold'), 4)} "
                     f"({_esc(how)}, chosen on {_esc(op.get('chosen_on'))}).")
    cal = m.get("calibration") or {}
    if cal.get("ece") is not None:
        txt = f"Expected calibration error {_num(cal['ece'])}"
        if cal.get("temperature"):
            txt += (f"; after temperature scaling (T = {_num(cal['temperature'])}, fitted on "
                    f"validation) {_num(cal.get('ece_calibrated'))}")
        notes.append(txt + ".")
    return table + "".join(f"<p>{n}</p>" for n in notes)


def _figure(path: Path, caption: str) -> str:
    return figure(path, caption)


# ------------------------------------------------------------------------ report


def make_plots(
    plots_dir: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    history: Any = None,
    splits: Any = None,
    predictions: Any = None,
    gradcam: Any = None,
    split_col: str = "split",
    label_col: str = "label",
) -> dict[str, Path]:
    """Write every plot the inputs allow into ``plots_dir``; returns name -> PNG path.

    A plot whose input is missing is skipped; a plot that fails on bad input is reported
    with a warning and the others are still written.
    """
    import warnings

    plots_dir = Path(plots_dir)
    out: dict[str, Path] = {}

    def attempt(name: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            out[name] = fn(*args, **kwargs)
        except (ValueError, KeyError, OSError) as err:
            warnings.warn(f"report: plot {name!r} skipped: {err}", stacklevel=3)

    m = metrics or {}
    task = m.get("task")
    if task == "binary" and m.get("curves"):
        attempt("roc", plots.plot_roc, m, plots_dir / "roc.png")
        attempt("pr", plots.plot_pr, m, plots_dir / "pr.png")
    elif task in ("multiclass", "multilabel") and predictions is not None:
        attempt("roc", _roc_from_predictions, predictions, m, plots_dir / "roc.png")
    if m.get("confusion_matrix") is not None:
        labels = m.get("class_names") or [str(i) for i in range(len(m["confusion_matrix"]))]
        attempt("confusion_matrix", plots.plot_confusion_matrix, m["confusion_matrix"],
                labels, plots_dir / "confusion_matrix.png")
    cal = m.get("calibration") or {}
    if cal.get("reliability"):
        attempt("reliability", plots.plot_reliability, cal["reliability"],
                plots_dir / "reliability.png", calibrated=cal.get("reliability_calibrated"))
    if (m.get("tta") or {}).get("referral"):
        attempt("referral", plot_referral, m["tta"]["referral"], plots_dir / "referral.png")
    if (m.get("crossval") or {}).get("referral"):
        attempt("cv_referral", plot_referral, m["crossval"]["referral"],
                plots_dir / "referral_ensemble.png", by="members' spread")
    if (m.get("subgroups") or {}).get("attributes"):
        attempt("forest", plot_forest, m["subgroups"], plots_dir / "subgroups_forest.png")
    if history is not None:
        attempt("history", plots.plot_history, history, plots_dir / "training_curves.png")
    if splits is not None:
        attempt("class_balance", plots.plot_class_balance, splits,
                plots_dir / "class_balance.png", split_col=split_col, label_col=label_col)
    items = [it for it in gallery_items(gradcam) if Path(it["path"]).is_file()]
    if items:
        attempt("gallery", plots.plot_gallery, items, plots_dir / "gradcam_gallery.png")
    return out


def _roc_from_predictions(predictions: Any, m: Mapping[str, Any], path: Path) -> Path:
    import pandas as pd

    df = predictions if isinstance(predictions, pd.DataFrame) else pd.read_csv(predictions)
    if "split" in df.columns:
        df = df[df["split"].astype(str) == "test"]
    names = list(m.get("class_names") or [])
    cols = [f"prob_{n}" for n in names]
    missing = [c for c in cols if c not in df.columns]
    if missing or not names:
        raise ValueError(f"predictions: missing column(s) {missing or ['prob_<class>']}")
    scores = df[cols].to_numpy(float)
    if m.get("task") == "multilabel":
        y = df[[f"label_{n}" for n in names]].to_numpy(float)
    else:
        index = {n: i for i, n in enumerate(names)}
        y = df["label"].astype(str).map(index).to_numpy(float)
    return plots.plot_roc_per_class(y, scores, names, path, task=str(m.get("task")))


def write_report(
    out_dir: str | Path,
    *,
    config: Mapping[str, Any] | str | None = None,
    census: Any = None,
    splits: Any = None,
    metrics: Mapping[str, Any] | None = None,
    history: Any = None,
    predictions: Any = None,
    gradcam: Any = None,
    audit: Any = None,
    title: str | None = None,
    split_col: str = "split",
    label_col: str = "label",
    group_col: str = "group",
    chain: list[Mapping[str, Any]] | None = None,
    model_card: str | None = None,
) -> Path:
    """Write ``plots/*.png`` and a self-contained ``report.html`` into a run folder.

    Parameters
    ----------
    out_dir : path
        The run directory; ``plots/`` and ``report.html`` are written there.
    config : dict or str, optional
        The resolved run configuration (shown as a key table plus the full YAML).
    census : str, dict, DataFrame, pathlib.Path or object with ``format()``, optional
        Data census: a summary text (str) or dict, an object whose ``format()`` gives the
        text, or the census table / a ``pathlib.Path`` of ``census.csv`` (only counts
        are shown).
    splits : DataFrame or path, optional
        One row per image: ``split``, ``label``, ``group`` (patient key) columns (names
        configurable). Gives the split audit and the class-balance plot.
    metrics : dict, optional
        Output of :func:`imaging_tl.evaluate.evaluate` (``metrics.json``).
    history : DataFrame or path, optional
        ``history.csv``: columns ``phase``, ``epoch`` and metrics (``val_`` prefixed for
        validation).
    predictions : DataFrame or path, optional
        ``predictions.csv`` (see :func:`imaging_tl.evaluate.evaluate_predictions`); used for
        the per-class ROC of multiclass/multilabel runs and the prediction count.
    gradcam : optional
        Overlay PNGs: a list of paths, a list of ``{"path", "category", "caption"}``
        dicts (category TP/FP/TN/FN or any text), or ``{category: [paths]}``. Captions are
        shown as given: keep patient identifiers out of them. Missing files are listed
        and skipped.
    audit : str or object with ``format()``, optional
        The leakage audit of the splits (e.g. ``imaging_tl.data.audit_splits``'s report),
        shown under the split table.
    title : str, optional
        Page title (default: ``config["name"]`` or "imaging_tl run report").
    split_col, label_col, group_col : str
        Column names in ``splits``.
    chain : list of dict, optional
        Where the model's shared layers came from, origin first (``run.json``'s
        ``chain``): ImageNet or a weights file, each source run, this run.
    model_card : str, optional
        The model card as an HTML fragment
        (:func:`imaging_tl.report.model_card.model_card_html`), shown as a section.

    Returns
    -------
    pathlib.Path
        The ``report.html`` path.

    Examples
    --------
    >>> import tempfile
    >>> p = write_report(tempfile.mkdtemp(), config={"name": "demo", "seed": 0})
    >>> p.name, "demo" in p.read_text()
    ('report.html', True)
    """
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(metrics, (str, Path)):
        metrics = json.loads(Path(metrics).read_text())
    splits, history, predictions = (
        x if x is None or isinstance(x, pd.DataFrame) else pd.read_csv(x)
        for x in (splits, history, predictions))
    made = make_plots(out_dir / "plots", metrics=metrics, history=history, splits=splits,
                      predictions=predictions, gradcam=gradcam, split_col=split_col,
                      label_col=label_col)
    if title is None:
        title = (config.get("name") if isinstance(config, Mapping) else None) or \
            "imaging_tl run report"
    counts = (split_audit(splits, split_col=split_col, label_col=label_col,
                          group_col=group_col) if splits is not None else None)
    if audit is not None and not isinstance(audit, str) and callable(
            getattr(audit, "format", None)):
        audit = audit.format()
    sections = _page_sections(title, made, metrics, predictions, gradcam, counts, audit,
                              census, config)
    if chain:
        sections.insert(len(sections) - 1, "<h2>Transfer chain</h2>" + chain_section(chain))
    if model_card:
        sections.insert(len(sections) - 1, "<h2>Model card</h2>" + model_card)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{PAGE_CSS}</style></head><body>"
        + "\n".join(f"<section>{s}</section>" for s in sections)
        + "</body></html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _domain_gate(metrics: Any) -> str:
    g = (metrics or {}).get("domain_gate")
    return f"<p>Domain gate: {_esc(gate_summary(g))}.</p>" if g else ""


def _page_sections(title: str, made: Mapping[str, Path], metrics: Any, predictions: Any,
                   gradcam: Any, counts: Any, audit: Any, census: Any,
                   config: Any) -> list[str]:
    """The page's sections: evidence first (what a reader opens the page for), then the
    data, then the set-up."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    binary = (metrics or {}).get("task") == "binary"
    captions = {
        "roc": "ROC curve with bootstrap CI band; dot: operating point" if binary
        else "ROC curve of each class against the rest",
        "pr": "Precision-recall curve with bootstrap CI band; dot: operating point",
        "confusion_matrix": "Confusion matrix at the operating point",
        "reliability": "Reliability diagram (calibration)",
    }
    figs = [_figure(made[k], c) for k, c in captions.items() if k in made]
    return [
        f"<h1>{_esc(title)}</h1><p class='sub'>imaging_tl {__version__} &middot; {now}</p>",
        "<h2>Test metrics</h2>" + _metrics_section(metrics) + tta_section(metrics, _figure(
            made["referral"], "Referral curve") if "referral" in made else "")
        + crossval_section(metrics, _figure(made["cv_referral"], "Referral curve, fold "
                                            "ensemble") if "cv_referral" in made else "")
        + _domain_gate(metrics)
        + (f"<p>{len(predictions)} predictions.</p>" if predictions is not None else ""),
        *(["<h2>Subgroups</h2>" + subgroup_section(metrics["subgroups"], _figure(
            made["forest"], "ROC AUC per subgroup with 95% CIs") if "forest" in made else "")]
          if (metrics or {}).get("subgroups") else []),
        "<h2>Plots</h2>" + (f'<div class="plots">{"".join(figs)}</div>'
                            if figs else "<p>No plots.</p>"),
        "<h2>Grad-CAM gallery</h2>" + _gallery_section(gradcam),
        "<h2>Training curves</h2>" + (
            _figure(made["history"], "Loss and metrics of every training phase")
            if "history" in made else "<p>No training history given.</p>"),
        "<h2>Splits</h2>" + _splits_section(counts)
        + (f"<h4>Leakage audit</h4><pre>{_esc(audit)}</pre>" if audit else "")
        + (_figure(made["class_balance"], "Class balance per split")
           if "class_balance" in made else ""),
        "<h2>Data census</h2>" + _census_section(census),
        "<h2>Configuration</h2>" + _config_section(config),
    ]


def _gallery_section(gradcam: Any) -> str:
    items = gallery_items(gradcam)
    if not items:
        return "<p>No Grad-CAM overlays given.</p>"
    missing = [it for it in items if not Path(it["path"]).is_file()]
    items = [it for it in items if Path(it["path"]).is_file()]
    groups: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        groups.setdefault(str(it["category"] or "examples"), []).append(it)
    order = [c for c in plots.CATEGORIES if c in groups] + \
        [c for c in groups if c not in plots.CATEGORIES]
    parts = []
    for cat in order:
        title = plots._CAT_TITLE.get(cat, cat)
        figs = "".join(
            f"<figure>{img_tag(Path(it['path']), f'{title} {i + 1}', 'cam')}"
            f"<figcaption>{_esc(it['caption'])}</figcaption></figure>"
            for i, it in enumerate(groups[cat])
        )
        parts.append(f"<h3>{_esc(title)}</h3><div class='gallery'>{figs}</div>")
    if missing:
        # the file name alone: folders may carry identifiers
        names = ", ".join(_esc(Path(it["path"]).name) for it in missing[:10])
        parts.append(f"<p class='warn'>{len(missing)} overlay file(s) missing: {names}</p>")
    return "".join(parts)


def write_run_report(run_dir: str | Path, **overrides: Any) -> Path:
    """(Re)write ``plots/`` and ``report.html`` of a run directory from its files.

    Reads what is there of ``config.yaml``, ``census.csv``, ``splits.csv``,
    ``metrics.json``, ``history.csv``, ``predictions.csv`` and ``gradcam/`` (see
    :func:`gallery_from_dir`); keyword arguments replace any of them (names as in
    :func:`write_report`).

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "config.yaml").write_text("name: rerun\\nseed: 3\\n")
    >>> "rerun" in write_run_report(d).read_text()
    True
    """
    import yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir}: not a folder")

    def file(name: str) -> Path | None:
        p = run_dir / name
        return p if p.is_file() else None

    parts: dict[str, Any] = {}
    if file("config.yaml"):
        parts["config"] = yaml.safe_load(file("config.yaml").read_text()) or {}
    for key, name in (("census", "census.csv"), ("splits", "splits.csv"),
                      ("history", "history.csv"), ("predictions", "predictions.csv")):
        if file(name):
            parts[key] = file(name)
    if file("metrics.json"):
        parts["metrics"] = json.loads(file("metrics.json").read_text())
    if (run_dir / "gradcam").is_dir():
        parts["gradcam"] = gallery_from_dir(run_dir / "gradcam")
    if file("run.json"):
        parts["chain"] = json.loads(file("run.json").read_text()).get("chain")
    parts.update(overrides)
    return write_report(run_dir, **parts)
