"""Grad-CAM works for every backbone in the registry (random weights, small inputs)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from imaging_tl.explain import GradCAM, find_target_layer  # noqa: E402
from imaging_tl.models import get_spec, list_backbones  # noqa: E402

FAST = {"efficientnet_lite0", "mobilenet_v2"}


@pytest.mark.parametrize("name", [
    n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_backbones()
])
@pytest.mark.parametrize("task,classes", [("multiclass", ["a", "b", "c"])])
def test_gradcam_on_every_registered_backbone(name, task, classes):
    from imaging_tl.models import build_transfer_model

    model = build_transfer_model(name, task, classes, weights=None, input_size=64, seed=0)
    layer = find_target_layer(model)
    # the layer Grad-CAM picks is the backbone's last feature map, as the registry names it
    assert layer == get_spec(name).freeze_points[-1]
    x = np.random.default_rng(0).random((3, 64, 64, 3)).astype(np.float32)
    maps = GradCAM(model)(x, class_index=[0, 1, 2], batch_size=2)
    assert maps.shape == (3, 64, 64)
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1
