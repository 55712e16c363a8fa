"""benchmarks/transfer_vs_scratch.py: data, statistics and the harness end to end (tiny)."""

import csv

import numpy as np
import pytest

TINY = ["--sizes", "12", "--seeds", "1", "--test", "24", "--val", "12", "--image-size", "32",
        "--gen-size", "64", "--epochs", "2", "1", "--workers", "1"]


def test_difficulty_ladder_passes_through_its_anchors(tvs):
    from imaging_tl.synthetic import Difficulty

    anchors = {k: Difficulty(*v[:4], cnr=v[4]) for k, v in tvs.LADDER.items()}
    assert tvs.difficulty_at(1.0) == anchors["hard"]
    assert tvs.difficulty_at(0.5) == anchors["medium"]
    assert tvs.difficulty_at(0.0) == anchors["easy"]
    assert tvs.difficulty_at(0.25).cnr == pytest.approx((2.75, 5.5))  # halfway easy-medium
    big = tvs.difficulty_at(-1.0)
    assert big.nodule_radius_mm[0] > anchors["easy"].nodule_radius_mm[0]
    assert big.nodule_contrast[0] > anchors["easy"].nodule_contrast[0]
    with pytest.raises(ValueError, match="difficulty t=1.5"):
        tvs.difficulty_at(1.5)


def test_synthetic_splits_are_grouped_and_disjoint(tvs):
    kw = dict(base_seed=0, t=-1.0, gen_size=64, image_size=32)
    x, y, g = tvs.make_split("synthetic", "train", 10, **kw)
    xt, yt, gt = tvs.make_split("synthetic", "test", 6, **kw)
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(y)) <= {0, 1}
    assert np.allclose(x[..., 0], x[..., 2])  # grey through ToRGB
    assert not set(g) & set(gt)  # test patients are used nowhere else
    assert list(g[:4]) == ["train-0", "train-0", "train-1", "train-1"]
    # same seed, same data; another role, other images
    x2, y2, _ = tvs.make_split("synthetic", "train", 10, **kw)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.allclose(x[:6], xt)
    # nested subsets of whole patients
    small, big = tvs.training_subset(g, 4, 3), tvs.training_subset(g, 8, 3)
    assert set(small) <= set(big)
    assert all(np.sum(g[small] == p) == 2 for p in set(g[small]))


def test_composite_on_the_real_chest_radiograph(tvs, pydicom_data_dir):
    kw = dict(base_seed=0, t=-1.0, gen_size=64, image_size=32)
    x, y, g = tvs.make_split("composite", "train", 4, **kw)
    xt, _, gt = tvs.make_split("composite", "test", 4, **kw)
    assert set(g) == {"RG1"} and set(gt) == {"RG1"}  # the one chest CR that ships
    assert x.shape == (4, 32, 32, 3) and 0 <= x.min() and x.max() <= 1
    assert not np.allclose(x, xt)  # other crops, exposures and findings
    assert len(set(tvs.training_subset(g, 3, 0))) == 3


def test_paired_difference(tvs):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    good = y + rng.normal(0, 0.5, 60)
    noise = rng.normal(0, 1, 60)
    groups = np.repeat(np.arange(30), 2).astype(str)
    same = tvs.paired_difference(y, groups, [good, good], [good, good], n_boot=200)
    assert same["mean"] == 0 and same["ci"] == (0.0, 0.0)
    d = tvs.paired_difference(y, groups, [good, good], [noise, -noise], n_boot=200)
    assert d["wins"] == 2 and d["ci"][0] > 0
    assert d["mean"] == pytest.approx(tvs.auc(y, good) - (tvs.auc(y, noise)
                                                          + tvs.auc(y, -noise)) / 2)


@pytest.mark.slow  # the harness end to end; its parts are tested above, in the default run
def test_end_to_end_fast_arms(tvs, tmp_path, capsys, lite0_backbone):
    rc = tvs.main(["--quick", "--tasks", "synthetic", "--arms",
                   "tl_frozen,tl_finetune,small_cnn,logreg_pixels", "--difficulty", "-1",
                   "--out", str(tmp_path), *TINY])
    out = capsys.readouterr().out
    assert rc == 0
    path = tmp_path / "transfer_vs_scratch_quick_synthetic.csv"
    rows = list(csv.DictReader(open(path)))
    assert [r["arm"] for r in rows] == ["tl_frozen", "tl_finetune", "small_cnn",
                                        "logreg_pixels"]
    assert all(0 <= float(r["auc"]) <= 1 and float(r["train_seconds"]) > 0 for r in rows)
    assert all(len(r["scores"].split()) == 24 for r in rows)
    # the task's first row carries the test set (labels, patient groups) for --summarize
    assert len(rows[0]["test_labels"]) == 24 and not rows[1]["test_labels"]
    assert (tmp_path / "transfer_vs_scratch_quick_synthetic.png").stat().st_size > 1000
    assert "| tl_frozen | " in out and "(1.00x)" in out
    assert "AUC gain over the pixel floor, small_cnn" in out
    assert "[1/1 cells," in out

    # re-summarised from the CSV alone: the same table
    png = path.with_suffix(".png")
    png.unlink()
    assert tvs.main(["--summarize", str(path)]) == 0
    again = capsys.readouterr().out
    table = out[out.index("## synthetic"):out.index("\nwrote")]
    assert table in again and png.stat().st_size > 1000


def test_summarize_partial_csv_with_paired_comparison(tvs, tmp_path, capsys):
    """A run stopped after some cells: the rows written so far summarise on their own."""
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    groups = np.repeat(np.arange(20), 2).astype(str)
    path = tmp_path / "partial.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, tvs.CSV_FIELDS)
        w.writeheader()
        first = True
        for n in (10, 20):
            for seed in range(2):
                for arm, sd in (("tl_frozen", 0.5), ("lite0_scratch", 3.0)):
                    s = y + rng.normal(0, sd, 40)
                    row = dict(task="synthetic", setting="default", difficulty=0.5, size=n,
                               seed=seed, arm=arm, auc=tvs.auc(y, s), train_seconds=1.0,
                               scores=s)
                    w.writerow(tvs.csv_row(row, (y, groups) if first else None))
                    first = False
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")  # interrupted: the last cell is cut
    rows, tests = tvs.read_results(path)
    assert len(rows) == 6 and np.array_equal(tests["synthetic"][0], y)
    assert tvs.main(["--summarize", str(path)]) == 0
    out = capsys.readouterr().out
    assert "paired tl_frozen - lite0_scratch, n=10:" in out
    assert "2/2 wins" in out.split("n=10:")[1].split("\n")[0]
    assert "| lite0_scratch | " in out and path.with_suffix(".png").is_file()
    # a CSV without its test labels is refused with the reason
    path.write_text("\n".join([lines[0]] + lines[2:4]) + "\n")
    assert tvs.main(["--summarize", str(path)]) == 2
    assert "no test labels for task(s) ['synthetic']" in capsys.readouterr().err
    path.write_text("task,size,arm,auc\nsynthetic,10,tl_frozen,0.7\n")  # an older CSV
    assert tvs.main(["--summarize", str(path)]) == 2
    assert "not a results CSV of this harness" in capsys.readouterr().err


def _tiny_cell(tvs):
    kw = dict(base_seed=0, t=-1.0, gen_size=64, image_size=32)
    return {"train": tvs.make_split("synthetic", "train", 24, **kw)[:2],
            "val": tvs.make_split("synthetic", "val", 12, **kw)[:2],
            "test": tvs.make_split("synthetic", "test", 16, **kw)[:2]}


def _pool_matches_fresh(tvs, arms):
    """Seed 1 on a pooled model that first trained seed 0 == seed 1 on fresh models."""
    cfg = dict(tvs.SETTINGS["quick"], image_size=32, head_epochs=2, finetune_epochs=1)
    data = _tiny_cell(tvs)
    fresh = tvs.run_arms(data, 1, cfg, arms)
    pool = tvs.ModelPool(32)
    first = tvs.run_arms(data, 0, cfg, arms, pool=pool)
    traced = {k: m.train_function for k, m in pool._models.items()}
    again = tvs.run_arms(data, 1, cfg, arms, pool=pool)
    for arm in arms:
        np.testing.assert_allclose(again[arm][0], fresh[arm][0], rtol=0, atol=1e-6)
        assert not np.allclose(first[arm][0], fresh[arm][0])  # the seed matters
    # the reset kept the compiled train function (not retraced)
    for key, fn in traced.items():
        if fn is not None:
            assert pool._models[key].train_function is fn


@pytest.mark.slow  # a check of the benchmark's speed-up, not of the product
def test_pooled_model_trains_exactly_like_a_fresh_one(tvs, lite0_backbone):
    _pool_matches_fresh(tvs, ("tl_frozen", "small_cnn"))


@pytest.mark.slow
def test_pooled_lite0_end_to_end_trains_exactly_like_a_fresh_one(tvs, lite0_backbone):
    _pool_matches_fresh(tvs, ("tl_finetune", "lite0_scratch"))


def test_bad_arguments(tvs, capsys):
    assert tvs.main(["--arms", "tl_frozen,resnet_magic"]) == 2
    assert "resnet_magic" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_all_arms_both_tasks_with_tuning(tvs, tmp_path, capsys, lite0_backbone,
                                                    pydicom_data_dir):
    tiny = [a for a in TINY] + ["--target-auc", "0.0"]
    tiny[tiny.index("--seeds") + 1] = "2"
    rc = tvs.main(["--quick", "--out", str(tmp_path), *tiny])
    out = capsys.readouterr().out
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "transfer_vs_scratch_quick.csv")))
    assert len(rows) == 2 * 2 * len(tvs.ARMS)
    # target 0 is met by the first rung of the quick ladder
    assert {float(r["difficulty"]) for r in rows} == {tvs.SETTINGS["quick"]["ladder"][0]}
    assert out.count("paired tl_finetune - lite0_scratch, n=12") == 2
    assert "## composite" in out
