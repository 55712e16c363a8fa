"""Plots, the self-contained report page, and its rendering in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imaging_tl import evaluate as ev
from imaging_tl.explain import save_overlay
from imaging_tl.report import plots, select_gallery, split_audit, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _binary_run(tmp_path_factory, n_patients: int = 60):
    rng = np.random.default_rng(0)
    rows = []
    for split, count in (("train", n_patients), ("val", n_patients // 3),
                         ("test", n_patients // 3)):
        for p in range(count):
            lab = int(rng.random() < 0.4)
            for i in range(2):
                rows.append({
                    "path": f"/data/{split}/P{split}{p:03d}_{i}.dcm",
                    "split": split,
                    "group": f"{split}-{p}",
                    "label": "nodule" if lab else "normal",
                    "prob_nodule": float(1 / (1 + np.exp(-(1.6 * lab - 0.8
                                                          + rng.normal(0, 1))))),
                })
    table = pd.DataFrame(rows)
    preds = table[table.split != "train"].reset_index(drop=True)
    metrics = ev.evaluate_predictions(preds, task="binary", class_names=["normal", "nodule"],
                                      n_bootstraps=200, temperature_scaling=True)
    history = pd.DataFrame({
        "phase": ["head"] * 4 + ["finetune"] * 3,
        "epoch": [0, 1, 2, 3, 0, 1, 2],
        "loss": [0.69, 0.6, 0.55, 0.52, 0.5, 0.47, 0.45],
        "val_loss": [0.68, 0.62, 0.6, 0.58, 0.57, 0.56, 0.56],
        "auc": [0.6, 0.7, 0.75, 0.78, 0.8, 0.83, 0.85],
        "val_auc": [0.58, 0.68, 0.72, 0.74, 0.76, 0.77, 0.77],
        "lr": [1e-3] * 4 + [1e-4] * 3,
    })
    out = tmp_path_factory.mktemp("run")
    test = preds[preds.split == "test"].reset_index(drop=True)
    # a subgroup section with its forest plot (sex alternating by patient)
    metrics["subgroups"] = ev.subgroup_metrics(
        (test.label == "nodule").astype(int), test.prob_nodule,
        {"sex": np.where(test.group.str.split("-").str[1].astype(int) % 2, "F", "M")},
        threshold=metrics["operating_point"]["threshold"], groups=test.group,
        n_bootstraps=100)
    # a cross-validation section with its referral curve (the validation rows as 3 folds)
    val = preds[preds.split == "val"].reset_index(drop=True)
    folds = [val[val.index % 3 == k] for k in range(3)]
    metrics["crossval"] = ev.crossval_metrics(
        [(f.label == "nodule").astype(int) for f in folds], [f.prob_nodule for f in folds],
        [f.group for f in folds], threshold=metrics["operating_point"]["threshold"],
        n_bootstraps=50)
    metrics["crossval"]["referral"] = ev.referral_curve(
        (test.label == "nodule").astype(int), test.prob_nodule,
        np.abs(test.prob_nodule - 0.5), threshold=metrics["operating_point"]["threshold"])
    pick = select_gallery((test.label == "nodule").to_numpy(), test.prob_nodule.to_numpy(),
                          metrics["threshold"], n_per_category=3)
    cams = []
    yy, xx = np.mgrid[:96, :96]
    for cat, idx in pick.items():
        for i in idx:
            scan = np.clip(0.4 + 0.1 * rng.standard_normal((96, 96)), 0, 1)
            heat = np.exp(-((yy - rng.integers(20, 76)) ** 2 + (xx - 48) ** 2) / 200.0)
            p = save_overlay(out / "gradcam" / f"{cat}_{i}.png", scan, heat)
            cams.append({"path": p, "category": cat,
                         "caption": f"p={test.prob_nodule[i]:.2f}"})
    config = {"name": "demo-binary", "seed": 0,
              "data": {"root": "sample_dicoms/", "task": "binary",
                       "classes": ["normal", "nodule"]},
              "model": {"backbone": "efficientnet_lite0", "freeze": "all"},
              "evaluate": {"operating_point": "youden", "n_bootstraps": 200}}
    census = pd.DataFrame({
        "path": table.path, "format": "dicom", "Modality": "CR",
        "PatientID": table.group, "PatientName": "DOE^JANE",
        "PhotometricInterpretation": np.where(np.arange(len(table)) % 3, "MONOCHROME1",
                                              "MONOCHROME2"),
    })
    return out, dict(config=config, census=census, splits=table, metrics=metrics,
                     history=history, predictions=preds, gradcam=cams)


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory):
    out, parts = _binary_run(tmp_path_factory)
    path = write_report(out, **parts)
    return path, parts


def test_all_plots_written(binary_report):
    path, _ = binary_report
    names = {p.name for p in (path.parent / "plots").glob("*.png")}
    assert names == {"roc.png", "pr.png", "confusion_matrix.png", "reliability.png",
                     "training_curves.png", "class_balance.png", "gradcam_gallery.png",
                     "subgroups_forest.png", "referral_ensemble.png"}
    for p in (path.parent / "plots").glob("*.png"):
        with Image.open(p) as im:
            assert im.format == "PNG" and min(im.size) > 100


def test_page_is_self_contained_and_complete(binary_report):
    path, parts = binary_report
    page = path.read_text()
    # no external resources of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "<link" not in page
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    n_cams = len(parts["gradcam"])
    # roc, pr, cm, reliability, referral, forest, curves, balance + cams
    assert len(srcs) == 8 + n_cams
    assert "<h2>Subgroups</h2>" in page and "Worst-group AUC" in page
    assert "Cross-validation (3 folds)" in page and "pooled out of fold" in page
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()
    m = parts["metrics"]
    # the metrics table shows the values and CIs as in metrics.json
    auc = m["roc_auc"]
    assert f"{auc['value']:.3f}" in page and f"{auc['ci'][0]:.3f}" in page
    assert "Operating point" in page and "Youden" in page and "temperature" in page
    assert "demo-binary" in page and "efficientnet_lite0" in page
    # the split audit: patients counted, no leakage
    assert "No patient appears in more than one split" in page
    # patient identifiers never reach the page
    assert "DOE^JANE" not in page and "Ptest" not in page and "test-1" not in page
    for cat in ("true positives", "false positives", "true negatives", "false negatives"):
        if cat.split()[0][0].upper() + cat.split()[1][0].upper() in {
                c["category"] for c in parts["gradcam"]}:
            assert cat in page


def test_split_audit_counts_leakage_without_names():
    t = pd.DataFrame({"split": ["train", "train", "val", "test", "test"],
                      "group": ["a", "b", "b", "c", "a"], "label": [0, 1, 1, 0, 0]})
    a = split_audit(t)
    assert a["groups_in_several_splits"] == 2
    assert a["splits"]["train"] == {"images": 2, "groups": 2, "classes": {"0": 1, "1": 1}}
    page = write_report_to_text(t)
    assert "2 patient(s) appear in more than one split" in page
    from imaging_tl.data.audit import audit_splits

    report = audit_splits(t.assign(path=[f"/x/{i}.dcm" for i in range(5)]), pixels=False,
                          raise_on_leak=False)
    import tempfile

    page = write_report(tempfile.mkdtemp(), splits=t, audit=report).read_text()
    assert "Leakage audit" in page and report.format().splitlines()[0][:30] in page


def write_report_to_text(splits: pd.DataFrame) -> str:
    import tempfile

    return write_report(tempfile.mkdtemp(), splits=splits).read_text()


def test_select_gallery_most_confident_errors():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 1])
    s = np.array([.95, .6, .9, .55, .1, .05, .3, .45])
    g = select_gallery(y, s, 0.5, n_per_category=2)
    assert g == {"TP": [0, 1], "FP": [2, 3], "TN": [5, 6], "FN": [4, 7]}
    mc = select_gallery([0, 1, 2], np.array([[.9, .1, 0], [.8, .2, 0], [0, .3, .7]]))
    assert mc == {"correct": [0, 2], "wrong": [1]}
    # multilabel: label 1 has most positives; the row where it is missing is never picked
    yl = np.array([[0, 1], [1, -1], [0, 1], [np.nan, 0], [1, 0], [0, 1]])
    sl = np.array([[.1, .9], [.8, .99], [.2, .3], [.5, .6], [.7, .2], [.1, .7]])
    ml = select_gallery(yl, sl, 0.5, n_per_category=2)
    assert ml == {"TP": [0, 5], "FP": [3], "TN": [4], "FN": [2]}
    assert select_gallery(yl, sl, 0.5, label=0)["TP"] == [1, 4]
    with pytest.raises(ValueError, match="label=5"):
        select_gallery(yl, sl, label=5)


def test_multiclass_report_and_missing_gallery_file(tmp_path):
    rng = np.random.default_rng(1)
    names = ["normal", "effusion", "nodule"]
    n = 90
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3)) + 2 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = pd.DataFrame({"split": np.where(np.arange(n) < 45, "val", "test"),
                          "label": np.array(names)[y],
                          **{f"prob_{c}": p[:, k] for k, c in enumerate(names)}})
    m = ev.evaluate_predictions(preds, task="multiclass", class_names=names, n_bootstraps=100)
    cam = save_overlay(tmp_path / "cam0.png", np.zeros((32, 32)), np.eye(32))
    out = write_report(tmp_path / "run", metrics=m, predictions=preds,
                       gradcam=[cam, tmp_path / "gone.png"], config="name: mc\nseed: 1\n",
                       census="120 files read, 2 failed (MissingDecoderError)")
    page = out.read_text()
    assert (tmp_path / "run" / "plots" / "roc.png").is_file()
    assert "ROC AUC, effusion vs rest" in page and "Balanced accuracy" in page
    assert "1 overlay file(s) missing: gone.png" in page
    assert "MissingDecoderError" in page and "seed: 1" in page


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="history: missing column 'phase'"):
        plots.plot_history(pd.DataFrame({"epoch": [0], "loss": [1.0]}), tmp_path / "h.png")
    with pytest.raises(ValueError, match="matrix"):
        plots.plot_confusion_matrix([[1, 2]], ["a", "b"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="curves"):
        plots.plot_roc({"task": "binary"}, tmp_path / "r.png")
    with pytest.raises(ValueError, match="gradcam"):
        write_report(tmp_path, gradcam=[42])
    # a broken plot input is reported and the rest of the page is still written
    with pytest.warns(UserWarning, match="history"):
        page = write_report(tmp_path, history=pd.DataFrame({"x": [1]}),
                            config={"name": "still here"})
    assert "still here" in page.read_text()


def test_report_module_does_not_import_tensorflow():
    code = ("import sys, imaging_tl.report, imaging_tl.report.plots, imaging_tl.evaluate; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- real browser check

_CHECK = """
<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const vw = window.innerWidth;
  const wide = Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > vw + 1)
    .map(e => e.tagName + '.' + e.className).slice(0, 5);
  const out = {
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    scrollWidth: document.documentElement.scrollWidth,
    viewport: vw,
    wide: wide,
    height: document.documentElement.scrollHeight,
    sections: document.querySelectorAll('section').length,
  };
  const pre = document.createElement('pre');
  pre.id = 'render-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH "
                    "(Debian: apt-get install -y chromium); the browser check needs it")
@pytest.mark.parametrize("width", [1280, 760])
def test_report_renders_in_headless_chromium(binary_report, tmp_path, width):
    path, parts = binary_report
    # the page itself has no script: inject the check into a copy beside it
    page = path.read_text().replace("</body>", _CHECK + "</body>")
    probe = path.parent / f"render_check_{width}.html"
    probe.write_text(page)
    res = _chromium([f"--window-size={width},900", "--virtual-time-budget=10000",
                     "--dump-dom", probe.as_uri()], tmp_path / "profile")
    m = re.search(r'<pre id="render-check">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no render result; chromium said: {res.stderr[-2000:]}"
    check = json.loads(m.group(1).replace("&quot;", '"'))
    assert check["images"] == 8 + len(parts["gradcam"])  # forest and ensemble referral too
    assert check["broken"] == [], check
    assert check["viewport"] == width
    assert check["scrollWidth"] <= width and check["wide"] == [], check  # nothing cut off
    assert check["sections"] == 9 and check["height"] > 2000  # with Subgroups
    # and it paints: a screenshot that is not blank
    shot = tmp_path / "shot.png"
    _chromium([f"--window-size={width},1600", f"--screenshot={shot}",
               "--virtual-time-budget=10000", path.as_uri()], tmp_path / "profile2")
    with Image.open(shot) as im:
        a = np.asarray(im.convert("L"), dtype=float)
    assert a.shape[1] == width and a.std() > 10 and (a < 128).mean() > 0.005


def test_history_in_train_format(tmp_path):
    """imaging_tl.train's rows: int phase + phase_name, 1-based epochs, lr and seconds."""
    h = pd.DataFrame({"phase": [0, 0, 1, 1], "phase_name": ["head", "head", "ft", "ft"],
                      "epoch": [1, 2, 1, 2], "lr": [1e-3, 1e-3, 1e-4, 1e-4],
                      "seconds": [3.0, 3.1, 9.0, 9.2], "cached_features": [True] * 4,
                      "loss": [0.7, 0.6, 0.5, 0.45],
                      "val_loss": [0.7, 0.65, 0.6, 0.58]})
    assert plots.plot_history(h, tmp_path / "h.png").is_file()
    with pytest.raises(ValueError, match="no metric columns"):
        plots.plot_history(h[["phase", "epoch", "lr", "seconds", "cached_features"]],
                           tmp_path / "x.png")


def test_write_run_report_from_run_directory(tmp_path_factory):
    import yaml

    from imaging_tl.report import write_run_report

    out, parts = _binary_run(tmp_path_factory, n_patients=30)
    (out / "config.yaml").write_text(yaml.safe_dump(parts["config"]))
    (out / "metrics.json").write_text(json.dumps(parts["metrics"], allow_nan=False))
    parts["splits"].to_csv(out / "splits.csv", index=False)
    parts["history"].to_csv(out / "history.csv", index=False)
    parts["predictions"].to_csv(out / "predictions.csv", index=False)
    parts["census"].to_csv(out / "census.csv", index=False)
    page = write_run_report(out).read_text()
    n_cams = len(list((out / "gradcam").glob("*.png")))
    assert n_cams == len(parts["gradcam"])
    # the forest plot and the ensemble referral curve from metrics.json
    assert len(re.findall(r"<img ", page)) == 8 + n_cams
    assert "false positives" in page or "false negatives" in page
    assert "DOE^JANE" not in page and "demo-binary" in page
    with pytest.raises(FileNotFoundError, match="run directory"):
        write_run_report(out / "nope")


def test_multilabel_report(tmp_path):
    rng = np.random.default_rng(3)
    names = ["effusion", "nodule"]
    n = 80
    y = rng.integers(0, 2, (n, 2)).astype(float)
    y[rng.random((n, 2)) < 0.2] = np.nan  # missing labels
    p = np.clip(0.3 * np.nan_to_num(y) + 0.7 * rng.random((n, 2)), 0, 1)
    preds = pd.DataFrame({"split": np.where(np.arange(n) < 40, "val", "test"),
                          **{f"label_{c}": y[:, k] for k, c in enumerate(names)},
                          **{f"prob_{c}": p[:, k] for k, c in enumerate(names)}})
    m = ev.evaluate_predictions(preds, task="multilabel", class_names=names, n_bootstraps=50)
    page = write_report(tmp_path, metrics=m, predictions=preds).read_text()
    assert {q.name for q in (tmp_path / "plots").glob("*.png")} == {"roc.png",
                                                                     "reliability.png"}
    assert "ROC AUC, nodule" in page and "ROC curve of each class" in page
