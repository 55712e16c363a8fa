"""The model card of a run: ``model_card.md`` and a section of ``report.html``.

One card says what the model is for and what not (the configuration's ``model_card``
section), what it was trained on (the census: modalities, manufacturers, years, labels;
counts only), how the data were split, how well it did (test metrics with their CIs,
subgroups), where its weights came from (the transfer chain), what it expects as input (the
preprocessing contract), what limits the figures (small samples, quarantined files, the
domain gate, the user's own notes) and which items of the CLAIM checklist (Mongan et al.,
Radiology: AI 2020) the run itself answers.

Everything is read from the run directory's files (``config.yaml``, ``run.json``,
``metrics.json``, ``contract.json``, ``census.csv``, ``splits.csv``), so a card can be
rewritten for an old run. Patient data: only counts and the census' non-identifying columns
(sex, age band, manufacturer, model, pseudonymous site, study year) are read; no path,
patient key, UID or header text that identifies anyone reaches the card.

Examples
--------
>>> sections = model_card_sections(config={"name": "demo", "task": {}}, record={},
...                                metrics={}, contract={})
>>> [title for title, _ in sections][:3]
['Model details', 'Intended use', 'Out-of-scope use']
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imaging_tl.evaluate.domain import gate_summary
from imaging_tl.evaluate.samplesize import format_estimate
from imaging_tl.report.claim import claim_items
from imaging_tl.report.html import split_audit

__all__ = ["REQUIRED_SECTIONS", "model_card_html", "model_card_markdown",
           "model_card_sections", "write_model_card"]

#: every card has these sections, in this order
REQUIRED_SECTIONS: tuple[str, ...] = (
    "Model details", "Intended use", "Out-of-scope use", "Training data", "Splits",
    "Metrics", "Subgroups", "Source chain", "Preprocessing contract", "Limitations",
    "CLAIM checklist")

# a block: ("p", text) | ("ul", [items]) | ("table", header, rows) | ("img", path, caption)
Block = tuple[Any, ...]

# census columns summarised (none identifies a patient), with the card's label
_CENSUS_COUNTS = (("Modality", "modalities"), ("Manufacturer", "manufacturers"),
                  ("ManufacturerModelName", "scanner models"), ("BodyPartExamined",
                  "body parts"), ("ViewPosition", "views"), ("PatientSex", "sex"),
                  ("age_band", "age bands"), ("site", "sites (pseudonymous codes)"),
                  ("colour", "colour"))
_BINARY = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("sensitivity", "sensitivity"),
           ("specificity", "specificity"), ("ppv", "PPV"), ("npv", "NPV"))


def _read(run_dir: Path | None, name: str) -> Any:
    if run_dir is None or not (run_dir / name).is_file():
        return None
    text = (run_dir / name).read_text(encoding="utf-8")
    if name.endswith(".yaml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _counts(values: Any, top: int = 8) -> str:
    import pandas as pd

    s = pd.Series(values).astype(object).where(pd.Series(values).notna(), "unknown")
    vc = s.astype(str).value_counts()
    shown = [f"{k} ({v})" for k, v in vc.head(top).items()]
    if len(vc) > top:
        shown.append(f"{len(vc) - top} more")
    return ", ".join(shown) if shown else "none"


def _training_data(census: Any, record: Mapping[str, Any]) -> list[Block]:
    import pandas as pd

    items: list[str] = []
    if census is not None:
        df = census if isinstance(census, pd.DataFrame) else pd.read_csv(census, low_memory=False)
        ok = df[df["status"].astype(str) == "ok"] if "status" in df.columns else df
        items.append(f"files: {len(df)} in the census, {len(ok)} readable")
        for col, label in _CENSUS_COUNTS:
            if col in ok.columns and ok[col].notna().any():
                items.append(f"{label}: {_counts(ok[col])}")
        years = pd.to_numeric(ok.get("study_year", pd.Series(dtype=float)), errors="coerce")
        items.append("study years: " + (f"{int(years.min())}-{int(years.max())}"
                                        if years.notna().any() else "not recorded"))
    else:
        items.append("no census in the run directory")
    classes = (record.get("labels") or {}).get("classes")
    if classes:
        items.append("labels: " + ", ".join(f"{k} ({v})" for k, v in classes.items()))
    quarantined = record.get("quarantined") or []
    items.append(f"quarantined (unreadable) files: {len(quarantined)}")
    return [("p", "Counts from the run's census (headers only; no identifier is read)."),
            ("ul", items)]


def _splits(splits: Any, config: Mapping[str, Any]) -> list[Block]:
    if splits is None:
        return [("p", "No splits table in the run directory.")]
    audit = split_audit(splits)
    classes = sorted({c for e in audit["splits"].values() for c in e.get("classes", {})})
    rows = [[name, e["images"], e.get("groups", ""), *[e.get("classes", {}).get(c, 0)
                                                       for c in classes]]
            for name, e in audit["splits"].items()]
    s = config.get("split") or {}
    how = (f"{s.get('method', 'holdout')} split by patient (group column "
           f"{(config.get('data') or {}).get('group_column') or 'PatientID / file'}), "
           f"stratified by label, seed {config.get('seed')}; validation {s.get('val')}, "
           f"test {s.get('test')}.")
    leak = audit.get("groups_in_several_splits")
    leak_text = ("No patient is in more than one split." if leak == 0 else
                 f"{leak} patient(s) in more than one split." if leak else
                 "Patient leakage not checked (no group column).")
    return [("p", how), ("table", ["split", "images", "patients", *classes], rows),
            ("p", leak_text)]


def _metrics(metrics: Mapping[str, Any]) -> list[Block]:
    if not metrics:
        return [("p", "No metrics (the run has not been evaluated).")]
    boot = metrics.get("bootstrap") or {}
    conf = float(boot.get("confidence", 0.95))
    keys: list[tuple[str, str]] = list(_BINARY) if metrics.get("task") == "binary" else [
        ("roc_auc_macro", "ROC AUC, macro"), ("roc_auc_micro", "ROC AUC, micro"),
        ("balanced_accuracy", "balanced accuracy")]
    keys.append(("accuracy", "accuracy"))
    rows = [[label, format_estimate(metrics[k], confidence=conf,
                                    bootstrapped=bool(boot.get("n_bootstraps", 1)))]
            for k, label in keys if isinstance(metrics.get(k), Mapping)]
    for group in ("roc_auc_per_class", "roc_auc_per_label"):
        for name, est in (metrics.get(group) or {}).items():
            rows.append([f"ROC AUC, {name}", format_estimate(est, confidence=conf)])
    op = metrics.get("operating_point") or {}
    notes = [f"Test split, per {metrics.get('level', 'image')}: "
             f"{metrics.get('n', metrics.get('n_images', '?'))} cases; CIs: "
             f"{boot.get('n_bootstraps', '?')} bootstrap resamples of "
             f"{boot.get('resampling', 'image')}s."]
    if op.get("threshold") is not None:
        notes.append(f"Threshold {float(op['threshold']):.4f} ({op.get('method')}, chosen on "
                     f"{op.get('chosen_on', 'validation')}).")
    return [("table", ["metric", "value"], rows), ("p", " ".join(notes))]


def _subgroups(metrics: Mapping[str, Any], run_dir: Path | None) -> list[Block]:
    sub = metrics.get("subgroups") or {}
    if not sub.get("attributes"):
        return [("p", "No subgroup analysis (set evaluate.subgroups).")]
    rows = []
    for attr, groups in sub["attributes"].items():
        for g in groups:
            rows.append([attr, g.get("group"), g.get("images"), g.get("patients"),
                         format_estimate(g.get("roc_auc")),
                         "too small" if g.get("too_small") else ""])
    blocks: list[Block] = [("table", ["attribute", "group", "images", "patients", "ROC AUC",
                                      ""], rows)]
    worst = sub.get("worst_group_auc")
    if worst:
        blocks.append(("p", f"Worst-group ROC AUC: {worst.get('attribute')} "
                            f"{worst.get('group')} {format_estimate(worst)}."))
    forest = run_dir / "plots" / "subgroups_forest.png" if run_dir else None
    if forest is not None and forest.is_file():
        blocks.append(("img", forest, "ROC AUC per subgroup with 95% CIs"))
    return blocks


def _chain(record: Mapping[str, Any]) -> list[Block]:
    chain = record.get("chain") or []
    if not chain:
        return [("p", "No transfer chain recorded.")]
    rows = [[i, link.get("kind"), link.get("run_id") or link.get("backbone") or
             Path(str(link.get("path", ""))).name, link.get("task", ""),
             ", ".join(map(str, link.get("labels") or [])),
             str(link.get("model_sha256") or link.get("sha256") or "")[:12]]
            for i, link in enumerate(chain)]
    return [("p", "Where the shared layers came from, origin first (model.source)."),
            ("table", ["#", "link", "name", "task", "labels", "model sha256"], rows)]


def _contract(contract: Mapping[str, Any]) -> list[Block]:
    if not contract:
        return [("p", "No contract.json (the model was not saved).")]
    pre = contract.get("preprocessing") or {}
    stages = [json.dumps(s, sort_keys=True) for s in pre.get("stages", [])]
    size = contract.get("input_size")
    items = [f"backbone: {contract.get('backbone')}; task: {contract.get('task')}; "
             f"labels: {', '.join(map(str, contract.get('label_names') or []))}",
             f"input: {size[0] if size else '?'} x {size[1] if size else '?'} x "
             f"{contract.get('channels')}, {contract.get('dtype')} in "
             f"{contract.get('input_range')}; normalisation {contract.get('normalization')} "
             "inside the model",
             f"threshold: {contract.get('threshold')}",
             f"preprocessing fingerprint: {str(pre.get('fingerprint', ''))[:16]}, frames: "
             f"{pre.get('frames')}"]
    domain = contract.get("domain") or {}
    if domain:
        items.append("training domain: " + "; ".join(
            f"{k} {v}" for k, v in sorted(domain.items())))
    return [("ul", items), ("p", "Stages, in order (contract.json):"), ("ul", stages)]


def _limitations(metrics: Mapping[str, Any], record: Mapping[str, Any],
                 card: Mapping[str, Any]) -> list[Block]:
    items = [f"small sample: {n}" for n in metrics.get("small_sample") or []]
    if record.get("quarantined"):
        items.append(f"{len(record['quarantined'])} file(s) could not be read and were left "
                     "out; the figures do not cover them")
    if metrics.get("domain_gate"):
        items.append(f"domain gate: {gate_summary(metrics['domain_gate'])}")
    if not (metrics.get("subgroups") or {}).get("attributes"):
        items.append("performance per sex, age, scanner or site was not measured")
    items.append("one test split of one data set: an external validation "
                 "(imaging-tl evaluate RUN --data ...) is needed before any claim of "
                 "generalisation")
    items.extend(str(x) for x in card.get("limitations") or [])
    return [("ul", items)]


def model_card_sections(
    run_dir: str | Path | None = None, *, config: Mapping[str, Any] | None = None,
    record: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
    contract: Mapping[str, Any] | None = None, census: Any = None, splits: Any = None,
) -> list[tuple[str, list[Block]]]:
    """The card's sections (:data:`REQUIRED_SECTIONS`, in order) as ``(title, blocks)``.

    Parameters
    ----------
    run_dir : path, optional
        The run directory; what is not given is read from its files.
    config, record, metrics, contract : dict, optional
        ``config.yaml``, ``run.json``, ``metrics.json``, ``contract.json`` as dicts.
    census, splits : DataFrame or path, optional
        ``census.csv`` and ``splits.csv`` (default: the run directory's).

    Returns
    -------
    list of (str, list)
        Each block is ``("p", text)``, ``("ul", items)``, ``("table", header, rows)`` or
        ``("img", path, caption)``.

    Examples
    --------
    >>> s = dict(model_card_sections(config={"model_card": {"intended_use": "Research"}}))
    >>> s["Intended use"]
    [('p', 'Research')]
    """
    rd = Path(run_dir).resolve() if run_dir is not None else None
    config = config if config is not None else _read(rd, "config.yaml") or {}
    record = record if record is not None else _read(rd, "run.json") or {}
    metrics = metrics if metrics is not None else _read(rd, "metrics.json") or {}
    contract = contract if contract is not None else _read(rd, "contract.json") or {}
    if census is None and rd is not None and (rd / "census.csv").is_file():
        census = rd / "census.csv"
    if splits is None and rd is not None and (rd / "splits.csv").is_file():
        splits = rd / "splits.csv"
    card = config.get("model_card") or {}
    model = config.get("model") or {}
    details = [f"run: {record.get('name', config.get('name'))} "
               f"({rd.name if rd else 'no directory'}), finished {record.get('finished', '?')}",
               f"task: {record.get('task', contract.get('task'))}; labels: "
               f"{', '.join(map(str, record.get('class_names') or []))}",
               f"backbone {model.get('backbone')}, source {model.get('source')}, seed "
               f"{config.get('seed')}; imaging_tl "
               f"{(record.get('versions') or {}).get('imaging-tl', '?')}",
               f"data manifest sha256: {record.get('data_manifest_sha256', '?')}"]
    return [
        ("Model details", [("ul", details)]),
        ("Intended use", [("p", card.get("intended_use") or
                           "Not stated: set model_card.intended_use in the configuration.")]),
        ("Out-of-scope use", [("p", card.get("out_of_scope_use") or "Not stated.")]),
        ("Training data", _training_data(census, record)),
        ("Splits", _splits(splits, config)),
        ("Metrics", _metrics(metrics)),
        ("Subgroups", _subgroups(metrics, rd)),
        ("Source chain", _chain(record)),
        ("Preprocessing contract", _contract(contract)),
        ("Limitations", _limitations(metrics, record, card)),
        ("CLAIM checklist", [
            ("p", "Items of the CLAIM checklist (Mongan et al., Radiology: Artificial "
                  "Intelligence 2020) that this run answers; the others are for the authors."),
            ("table", ["item", "topic", "from this run"],
             claim_items(config, record, metrics, contract))]),
    ]


def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def model_card_markdown(sections: list[tuple[str, list[Block]]], title: str = "Model card",
                        base: Path | None = None) -> str:
    """The card as Markdown (images linked relative to ``base``, the run directory).

    Examples
    --------
    >>> print(model_card_markdown([("Intended use", [("ul", ["research"])])]))
    # Model card
    <BLANKLINE>
    ## Intended use
    <BLANKLINE>
    - research
    <BLANKLINE>
    """
    out = [f"# {title}", ""]
    for name, blocks in sections:
        out += [f"## {name}", ""]
        for b in blocks:
            if b[0] == "p":
                out += [str(b[1]), ""]
            elif b[0] == "ul":
                out += [f"- {_md_cell(x)}" for x in b[1]] + [""]
            elif b[0] == "table":
                out += ["| " + " | ".join(map(_md_cell, b[1])) + " |",
                        "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b[2]] + [""]
            elif b[0] == "img":
                path = Path(b[1])
                rel = path.relative_to(base) if base and path.is_relative_to(base) else path
                out += [f"![{b[2]}]({rel.as_posix()})", ""]
    return "\n".join(out)


def model_card_html(sections: list[tuple[str, list[Block]]]) -> str:
    """The card as an HTML fragment for ``report.html`` (figures shown elsewhere on the page
    are referred to, not embedded twice).

    Examples
    --------
    >>> model_card_html([("Limitations", [("ul", ["<small> sample"])])])
    '<h3>Limitations</h3><ul><li>&lt;small&gt; sample</li></ul>'
    """
    def esc(x: Any) -> str:
        return html.escape(str(x), quote=True)

    out = []
    for name, blocks in sections:
        out.append(f"<h3>{esc(name)}</h3>")
        for b in blocks:
            if b[0] == "p":
                out.append(f"<p>{esc(b[1])}</p>")
            elif b[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                head = "".join(f"<th>{esc(h)}</th>" for h in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                               for r in b[2])
                out.append(f'<table class="grid"><tr>{head}</tr>{rows}</table>')
            elif b[0] == "img":
                out.append(f"<p>Figure: {esc(b[2])} (in the Subgroups section).</p>")
    return "".join(out)


def write_model_card(run_dir: str | Path, **parts: Any) -> Path:
    """Write ``model_card.md`` into a run directory (from its files, or ``parts`` as for
    :func:`model_card_sections`); returns its path.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "config.yaml").write_text("name: demo\\nmodel_card:\\n  intended_use: Teaching\\n")
    >>> "Teaching" in write_model_card(d).read_text()
    True
    """
    from imaging_tl._atomic import write_text

    rd = Path(run_dir).resolve()
    text = model_card_markdown(model_card_sections(rd, **parts), f"Model card: {rd.name}", rd)
    return write_text(rd / "model_card.md", text)
