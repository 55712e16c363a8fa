"""SimSiam's views, loss and collapse statistics on tiny inputs (no run directory)."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.pretrain.quality import (
    collapse_reason,
    collapse_stats,
    feature_spread,
    is_collapsed,
)
from imaging_tl.pretrain.views import ViewMaker, view_augmenter, view_seeds


def _images(ssl_images, n=16, size=32):
    from imaging_tl.data.prepare import prepare
    from imaging_tl.data.table import from_image_folder
    from imaging_tl.stages import Pipeline

    pipe = Pipeline.from_config([{"name": "window", "mode": "header"},
                                 {"name": "resize", "size": size}, {"name": "to_rgb"}])
    prepared = prepare(from_image_folder(ssl_images).head(n), pipe, executor="serial")
    return np.stack([prepared.load(i) for i in range(n)])


def test_two_views_differ_and_are_reproducible_under_the_seed(ssl_images):
    x = _images(ssl_images, n=4)
    maker = ViewMaker(None, 32)
    a1, b1 = maker(x, view_seeds(0, 0, 0, 4))
    a2, b2 = ViewMaker(None, 32)(x, view_seeds(0, 0, 0, 4))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert all(not np.array_equal(a1[i], b1[i]) for i in range(4))
    a3, _ = maker(x, view_seeds(0, 1, 0, 4))  # another epoch: other views
    assert not np.array_equal(a1, a3)
    assert a1.dtype == np.float32 and 0.0 <= a1.min() and a1.max() <= 1.0
    # grey stays grey; never a vertical flip; a horizontal flip only when allowed
    assert np.array_equal(a1[..., 0], a1[..., 2])
    names = [t["name"] for t in view_augmenter(None, 32).transforms]
    assert "VerticalFlip" not in names and not view_augmenter(None, 32).hflip
    assert view_augmenter({"hflip": True}, 32).hflip


def test_simsiam_loss_goes_down_on_a_tiny_set(ssl_images):
    import tensorflow as tf

    from imaging_tl.pretrain.simsiam import build_simsiam, make_optimizer, make_train_step

    x = _images(ssl_images)
    model = build_simsiam("efficientnet_lite0", source="imagenet", input_size=32,
                          projection_dim=64, predictor_dim=32, seed=0)
    step = make_train_step(model, make_optimizer(0.5, schedule="constant"),
                           tf.distribute.get_strategy(), len(x))
    maker = ViewMaker(None, 32)
    losses = [float(step(*maker(x, view_seeds(0, i, 0, len(x))))[0]) for i in range(40)]
    assert all(-1.0 <= v <= 1.0 for v in losses)
    # SimSiam's plateau near 0, then the drop (measured at lr 0.5 over 40 steps, mean of
    # the first / last five: seed 0 -0.005 / -0.86; seeds 1 and 2 end at -0.65, -0.79)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses


def test_collapse_detector_fires_on_a_collapsed_model_and_not_on_a_healthy_one(ssl_images):
    from imaging_tl.pretrain.simsiam import build_simsiam

    x = _images(ssl_images)
    model = build_simsiam("efficientnet_lite0", source="imagenet", input_size=32,
                          projection_dim=32, predictor_dim=16, seed=0)
    z, _ = model.joint(x, training=True)
    healthy = collapse_stats(np.asarray(z))
    assert healthy["std_ratio"] > 0.5 and not is_collapsed(healthy, 0.05)
    # deliberately collapsed: the projector's first layer sends every image to one point
    layer = model.joint.get_layer("ssl_projector_dense_1")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    z, _ = model.joint(x, training=True)
    collapsed = collapse_stats(np.asarray(z))
    assert collapsed["std_ratio"] < 1e-3 and is_collapsed(collapsed, 0.05)
    assert collapsed["effective_rank"] < 1.0 < healthy["effective_rank"]
    # the backbone collapsed in inference mode (what a target sees): its pooled features no
    # longer vary, whatever a projector's training-mode BatchNorm would rescale them to
    before = feature_spread(np.asarray(model.encoder(x, training=False)))
    top = model.transfer.get_layer("top_conv")
    top.set_weights([np.zeros_like(w) for w in top.get_weights()])
    after = feature_spread(np.asarray(model.encoder(x, training=False)))
    assert before > 0.01 and after < 1e-6 * before
    row = {"embedding_std_ratio": healthy["std_ratio"], "feature_std_ratio": after / before}
    assert "pooled backbone features" in collapse_reason(row, 0.05)


def test_collapse_stats_refuse_a_single_row():
    with pytest.raises(ValueError, match="at least 2 rows"):
        collapse_stats(np.ones((1, 8)))


def test_unlabelled_data_from_a_census_csv_keeps_scans_and_failed_reads(ssl_images, tmp_path):
    import pandas as pd

    from imaging_tl.config import load_pretrain_config
    from imaging_tl.io.census import census_row, walk_files, write_census_csv
    from imaging_tl.pretrain.data import unlabelled_table

    csv = tmp_path / "census.csv"  # as `imaging-tl census` writes it, paths made absolute
    write_census_csv([census_row(p) for p in walk_files(ssl_images)], csv)
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    cfg = load_pretrain_config({"data": {"csv": str(csv)}})
    out = unlabelled_table(cfg)
    scans = int((table["status"] != "not_image").sum())
    assert len(out) == scans == 24 and "labels.csv" not in " ".join(out["path"])
    assert out["group"].str.startswith(("pid:", "file:")).all()
