"""TensorBoard event files of a run, read back with TensorFlow's own event reader."""

from __future__ import annotations

import collections
import importlib.util

import numpy as np
import pandas as pd
import pytest

from imaging_tl.pipeline.tensorboard import HPARAMS_TAG


def _events(folder):
    import tensorflow as tf

    files = sorted(folder.glob("events.out.tfevents.*"))
    assert len(files) == 1
    values = collections.defaultdict(list)
    for event in tf.compat.v1.train.summary_iterator(str(files[0])):
        for v in event.summary.value:
            values[v.tag].append((event.step, v.metadata.plugin_data.plugin_name,
                                  v.metadata.plugin_data.content, tf.make_ndarray(v.tensor)))
    return values


def test_every_run_writes_the_expected_tags(finished_run):
    tb = finished_run.run_dir / "tensorboard"
    values = _events(tb)
    history = pd.read_csv(finished_run.run_dir / "history.csv")
    # per epoch over all phases, and per phase with the phase's own epochs
    loss = values["epoch/loss"]
    assert [s for s, *_ in loss] == list(range(1, len(history) + 1))
    np.testing.assert_allclose([float(t) for *_, t in loss], history["loss"], rtol=1e-6)
    for name, part in history.groupby("phase_name"):
        steps = [s for s, *_ in values[f"{name}/val_auc"]]
        assert steps == part["epoch"].tolist()
        np.testing.assert_allclose([float(t) for *_, t in values[f"{name}/learning_rate"]],
                                   part["lr"], rtol=1e-6)
    assert {p for tag in ("epoch/loss", "head/loss", "test/roc_auc") for _, p, *_ in
            values[tag]} == {"scalars"}
    # the test figures with their CI ends
    assert {"test/roc_auc", "test/roc_auc_ci_low", "test/roc_auc_ci_high"} <= set(values)
    # the curves and the Grad-CAM overlays as PNG images
    cams = [t for t in values if t.startswith("gradcam/")]
    assert len(cams) >= 2 and "gradcam/gallery" in cams
    for tag in ("test/roc_curve", "test/pr_curve", *cams):
        (_, plugin, _, tensor), = values[tag]
        assert plugin == "images" and tensor[2][:8] == b"\x89PNG\r\n\x1a\n"
        assert int(tensor[0]) > 0 and int(tensor[1]) > 0  # width, height
    # the configuration: as text and as hparams
    assert values["config/yaml"][0][1] == "text"
    (_, plugin, content, _), = values[HPARAMS_TAG]
    assert plugin == "hparams"
    for key in (b"seed", b"train.phases.1.freeze", b"model.backbone", b"efficientnet_lite0"):
        assert key in content


def test_tensorboard_reads_the_hparams(finished_run):
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install 'imaging-tl[tensorboard]'); "
                    "the event files are checked with TensorFlow's reader above")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(finished_run.run_dir / "tensorboard"),
                           size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    assert "epoch/loss" in acc.Tags()["tensors"] and "test/roc_curve" in acc.Tags()["tensors"]
    content = acc.PluginTagToContent("hparams")[HPARAMS_TAG]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    hp = data.session_start_info.hparams
    assert hp["seed"].number_value == 0
    assert hp["model.backbone"].string_value == "efficientnet_lite0"
    assert data.session_start_info.group_name == finished_run.run_dir.name


def test_tracking_tensorboard_false_writes_none(short_run):
    assert not (short_run.run_dir / "tensorboard").exists()
    assert (short_run.run_dir / "model_card.md").is_file()


def test_hparams_content_is_what_tensorboards_own_api_writes():
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install 'imaging-tl[tensorboard]')")
    from tensorboard.plugins.hparams import plugin_data_pb2, summary_v2

    from imaging_tl.pipeline.tensorboard import hparams_plugin_content

    hp = {"seed": 0, "model.backbone": "efficientnet_lite0", "augment.hflip": False,
          "train.phases.0.learning_rate": 0.003, "split.file": "[1, 2]"}
    official = summary_v2.hparams_pb(hp, trial_id="run-1", start_time_secs=5.0)
    (value,) = official.value
    assert value.tag == HPARAMS_TAG
    parse = plugin_data_pb2.HParamsPluginData.FromString
    assert parse(hparams_plugin_content(hp, "run-1", 5.0)) == parse(
        value.metadata.plugin_data.content)
