"""benchmarks/medmnist.py end to end on a tiny .npz in the official MedMNIST format."""

from pathlib import Path

import numpy as np
import pytest


def _tiny_npz(path: Path, n=(48, 16, 24), size=28, seed=0, classes=2) -> Path:
    """Official keys; class 1 images carry a bright disc, class 0 do not (learnable)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        y = np.arange(count) % classes
        rng.shuffle(y)
        x = rng.integers(0, 60, (count, size, size)).astype(np.uint8)
        for i in range(count):
            if y[i]:
                cy, cx = rng.integers(8, size - 8, 2)
                x[i][(yy - cy) ** 2 + (xx - cx) ** 2 < (2 + 2 * y[i]) ** 2] = 230
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.slow  # the harness end to end; the metric definitions stay in the default run
def test_end_to_end_binary_with_published_baselines(mm, tmp_path, capsys, lite0_backbone):
    npz = _tiny_npz(tmp_path / "pneumoniamnist.npz")
    out = tmp_path / "r.json"
    rc = mm.main([str(npz), "--input-size", "32", "--epochs", "3", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "imaging_tl lite0 frozen (28 px, 32 px input)" in text
    assert "imaging_tl lite0 finetune" in text
    # the published PneumoniaMNIST rows from the paper are printed beside ours
    assert "| ResNet-18 (28) (published) | 0.944 | 0.854 | 1.000 | 1.000 |" in text
    assert "| Google AutoML Vision (published) | 0.991 | 0.946 |" in text
    import json

    r = json.loads(out.read_text())["28 px"]
    assert r["task"] == "binary" and r["train"] == 48 and r["test"] == 24
    assert 0 <= r["frozen_auc"] <= 1 and 0 <= r["finetune_acc"] <= 1


@pytest.mark.slow
def test_224_release_and_multiclass(mm, tmp_path, capsys, lite0_backbone):
    small = _tiny_npz(tmp_path / "bloodmnist.npz", n=(30, 12, 15), classes=3)
    big = _tiny_npz(tmp_path / "bloodmnist_224.npz", n=(30, 12, 15), size=40, classes=3)
    rc = mm.main([str(small), "--npz224", str(big), "--input-size", "32",
                  "--epochs", "2", "0"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "(28 px, 32 px input)" in text and "(224 px, 40 px input)" in text
    assert "task ('multiclass', 3)" in text
    assert "ResNet-50 (224) (published) | 0.997 | 0.950" in text
    assert "finetune" not in text.split("MedMNIST bloodmnist")[1].split("published")[0]


def test_missing_file_says_where_to_get_it(mm, tmp_path, capsys):
    assert mm.main([]) == 2
    assert "zenodo.org/records/10519652" in capsys.readouterr().err
    assert mm.main([str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "nope.npz: no such file" in err and "pip install medmnist" in err


def test_bad_files_named(mm, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=np.zeros((2, 28, 28), np.uint8))
    assert mm.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.npz: not a MedMNIST file, missing keys" in err and "val_images" in err
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(mm.MedMNISTFileError, match="junk.npz: cannot read"):
        mm.load_npz(junk)
    arrays = {k: np.zeros((2, 28, 28), np.uint8) for k in mm.KEYS if k.endswith("images")}
    arrays |= {k: np.zeros((3, 1), np.uint8) for k in mm.KEYS if k.endswith("labels")}
    np.savez(tmp_path / "count.npz", **arrays)
    with pytest.raises(mm.MedMNISTFileError, match="train has 2 images and 3 labels"):
        mm.load_npz(tmp_path / "count.npz")


def test_metrics_match_sklearn_definitions(mm):
    y = np.array([0, 1, 2, 1, 0, 2]).reshape(-1, 1)
    p = np.eye(3)[[0, 1, 1, 1, 0, 2]] * 0.8 + 0.1
    auc, acc = mm.medmnist_metrics("multiclass", y, p)
    assert acc == pytest.approx(5 / 6)
    from sklearn.metrics import roc_auc_score

    assert auc == pytest.approx(roc_auc_score(y.ravel(), p / p.sum(1, keepdims=True),
                                              multi_class="ovr"))
    ym = np.array([[0, 1], [1, 1], [1, 0], [0, 0]])
    pm = np.array([[.1, .9], [.8, .6], [.7, .2], [.3, .4]])
    assert mm.medmnist_metrics("multilabel", ym, pm) == (1.0, 1.0)
    assert mm.task_of(ym) == ("multilabel", 2)
    assert mm.dataset_name("x/OrganAMNIST_128.npz") == "organamnist"
