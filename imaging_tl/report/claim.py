"""The items of the CLAIM checklist that a run can answer from its own records.

CLAIM, the Checklist for Artificial Intelligence in Medical Imaging (Mongan, Moy and Kahn,
Radiology: Artificial Intelligence 2020), has 42 items. A run knows its data sources, its
preprocessing, de-identification, missing-data handling, partitions, model, software,
initialisation, training, model selection, metrics and their uncertainty, robustness and
explainability analyses; the ground truth, the study design, the registration and the
funding are for the authors, and the card says so.

Examples
--------
>>> rows = claim_items({"seed": 0}, {}, {}, {})
>>> rows[0][:2]
[7, 'Data sources']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["AUTHOR_ITEMS", "claim_items"]

#: items only the authors can fill (number, topic)
AUTHOR_ITEMS: tuple[tuple[int, str], ...] = (
    (5, "Study design (prospective or retrospective)"), (8, "Eligibility criteria"),
    (14, "Ground truth: definition of the reference standard"),
    (16, "Source of ground-truth annotations, annotators' qualifications"),
    (18, "Inter- and intrarater variability"), (40, "Registration"),
    (42, "Funding"))


def _phases(config: Mapping[str, Any]) -> str:
    phases = (config.get("train") or {}).get("phases") or []
    return "; ".join(f"{p.get('name')}: {p.get('epochs')} epochs, lr {p.get('learning_rate')}"
                     f", freeze {p.get('freeze')}" for p in phases) or "not recorded"


def claim_items(config: Mapping[str, Any], record: Mapping[str, Any],
                metrics: Mapping[str, Any], contract: Mapping[str, Any]) -> list[list[Any]]:
    """Rows ``[item, topic, answer]`` of the CLAIM items the run answers, then the items left
    to the authors (answer: ``for the authors``).

    Parameters
    ----------
    config, record, metrics, contract : dict
        ``config.yaml``, ``run.json``, ``metrics.json`` and ``contract.json`` of the run.

    Examples
    --------
    >>> rows = claim_items({"split": {"val": 0.2, "test": 0.2}}, {}, {}, {})
    >>> [r for r in rows if r[0] == 20][0][2]
    'validation 0.2, test 0.2 of the patients, stratified by label'
    """
    data, split = config.get("data") or {}, config.get("split") or {}
    model, aug = config.get("model") or {}, config.get("augment") or {}
    ev, boot = config.get("evaluate") or {}, metrics.get("bootstrap") or {}
    versions = record.get("versions") or {}
    pre = contract.get("preprocessing") or {}
    chain = " -> ".join(str(link.get("run_id") or link.get("kind"))
                        for link in record.get("chain") or []) or str(model.get("source"))
    robust = [x for x, on in (("subgroup analysis", bool(ev.get("subgroups"))),
                              ("test-time augmentation", bool(ev.get("tta"))),
                              ("domain gate", bool(metrics.get("domain_gate")))) if on]
    answered: list[list[Any]] = [
        [7, "Data sources", f"data.csv / data.folder; {record.get('samples') or '?'} "
                            "images per split; see Training data"],
        [9, "Data pre-processing", ", ".join(s.get("name", "?") for s in pre.get("stages", []))
         or "see the preprocessing contract"],
        [12, "De-identification", "patient keys, SOPInstanceUIDs and sites written as keyed "
                                  "pseudonyms; names and birth dates never read"],
        [13, "Missing data", f"{len(record.get('quarantined') or [])} unreadable file(s) "
                             "quarantined; missing labels masked in loss and metrics"],
        [20, "Assignment to partitions",
         f"validation {split.get('val')}, test {split.get('test')} of the patients, "
         "stratified by label"],
        [21, "Level of disjoint partitions",
         f"patient ({data.get('group_column') or 'PatientID'}); leakage audit: "
         f"{record.get('audit') or 'not recorded'}"],
        [22, "Model description", f"{model.get('backbone')} with a new head "
                                  f"{model.get('head') or ''}; input {contract.get('input_size')}"],
        [23, "Software", ", ".join(f"{k} {v}" for k, v in versions.items()) or "see run.json"],
        [24, "Initialisation of parameters", f"transfer learning: {chain}"],
        [25, "Training details", f"{_phases(config)}; augmentation {aug.get('preset')}; "
                                 f"seed {config.get('seed')}"],
        [26, "Selection of the final model", "best validation epoch of each phase "
                                             f"({len(record.get('best_epochs') or [])} phases)"],
        [28, "Performance metrics", "ROC AUC, PR AUC, sensitivity, specificity, PPV, NPV, "
                                    "calibration (see Metrics)"],
        [29, "Uncertainty", f"{boot.get('method', 'percentile')} bootstrap "
                            f"({boot.get('n_bootstraps', '?')} resamples of "
                            f"{boot.get('resampling', 'image')}s), "
                            f"{round(100 * float(boot.get('confidence', 0.95)))}% CIs"],
        [30, "Robustness analysis", ", ".join(robust) or "none"],
        [31, "Explainability", f"Grad-CAM on {ev.get('gradcam', 0)} test images per "
                               "category (not validated against annotations)"],
        [35, "Performance on the partitions", "test split (see Metrics); validation per "
                                              "epoch in history.csv"],
        [36, "Diagnostic accuracy with precision", "see Metrics (values with CIs)"],
        [38, "Limitations", "see Limitations"],
    ]
    return answered + [[n, topic, "for the authors"] for n, topic in AUTHOR_ITEMS]
