"""The stack stage: neighbouring slices as channels, edges repeated, parameters checked."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.stages import MultiWindow, Pipeline, Resize, Stack, Window, stage_from_config


def test_channels_are_the_given_slices_in_offset_order():
    slices = [np.random.default_rng(i).random((5, 4), dtype=np.float32) for i in range(3)]
    out = Stack().combine(slices)
    assert out.shape == (5, 4, 3) and out.dtype == np.float32
    for c in range(3):
        assert np.array_equal(out[..., c], slices[c])
    colour = [np.stack([s] * 3, axis=-1) for s in slices[:2]]  # three windows per slice
    assert Stack([0, 1]).combine(colour).shape == (5, 4, 6)


def test_neighbours_repeat_the_nearest_slice_past_the_ends():
    s = Stack([-2, 0, 2])
    assert [s.neighbours(k, 4) for k in range(4)] == [[0, 0, 2], [0, 1, 3], [0, 2, 3],
                                                      [1, 3, 3]]
    assert Stack([-5, 0, 5], unit="mm").neighbours(0, 10, spacing=2.5) == [0, 0, 2]
    with pytest.raises(ValueError, match="unit mm needs the series' slice spacing"):
        Stack([-5, 0, 5], unit="mm").neighbours(0, 10, spacing=None)


def test_a_single_image_is_its_own_neighbour_and_windows_compose():
    hu = np.linspace(-1000, 1000, 64, dtype=np.float32).reshape(8, 8)
    one = Pipeline([Window(preset="lung"), Resize(4), Stack()])(hu)
    assert one.shape == (4, 4, 3) and np.array_equal(one[..., 0], one[..., 2])
    three = Pipeline([MultiWindow(["brain", "subdural", "bone"]), Resize(4), Stack([0])])(hu)
    assert three.shape == (4, 4, 3) and not np.array_equal(three[..., 0], three[..., 2])


@pytest.mark.parametrize("params, match", [
    ({"offsets": []}, "1 to 8 values"),
    ({"offsets": [0.5]}, "whole numbers"),
    ({"offsets": "-1,0,1"}, "list of numbers"),
    ({"offsets": [-100, 0]}, "too far"),
    ({"unit": "cm"}, "unit"),
])
def test_bad_parameters_name_the_stage_and_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        Stack(**params)


def test_config_round_trip():
    s = Stack([-3, 0, 3], unit="mm")
    assert stage_from_config(s.to_config()) == s
    assert Stack().to_config() == {"name": "stack"}
    with pytest.raises(ValueError, match="different shapes|differ in shape"):
        Stack([0, 1]).combine([np.zeros((2, 2), np.float32), np.zeros((3, 2), np.float32)])
