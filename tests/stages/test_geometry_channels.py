"""Resize, PadToSquare, CenterCrop, CropForeground, CLAHE, ToRGB, ToGrey."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize as sk_resize

from imaging_tl.io import Scan
from imaging_tl.stages import (
    CLAHE,
    CenterCrop,
    CropForeground,
    PadToSquare,
    Resize,
    ToGrey,
    ToRGB,
    stage_from_config,
)


def test_resize_bare_number_is_square_and_keeps_aspect_with_padding():
    img = np.ones((200, 100), np.float32)
    out = Resize(50)(img)
    assert out.shape == (50, 50) and out.dtype == np.float32
    # 200 x 100 -> 50 x 25, centred: columns 12..36 hold the image, the rest is padding
    np.testing.assert_array_equal(out[:, 12:37], 1.0)
    np.testing.assert_array_equal(out[:, :12], 0.0)
    np.testing.assert_array_equal(out[:, 37:], 0.0)


def test_resize_stretch_and_pad_value_and_channels():
    img = np.full((30, 60, 3), 0.5, np.float32)
    assert Resize((20, 10), mode="stretch")(img).shape == (20, 10, 3)
    out = Resize(60, pad_value=1.0)(img)
    assert out.shape == (60, 60, 3)
    assert out[0, 0, 0] == 1.0 and out[30, 30, 0] == pytest.approx(0.5)
    single = Resize(8)(np.ones((16, 16, 1), np.float32))
    assert single.shape == (8, 8, 1)
    wide = Resize(8, mode="stretch")(np.random.default_rng(0).random((16, 16, 6), np.float32))
    assert wide.shape == (8, 8, 6)


def test_resize_downsampling_is_anti_aliased():
    # A one-pixel checkerboard shrunk 2.56x must become flat grey (aliasing gives
    # blotches of 0 and 1). Plain bilinear sampling without a filter fails this.
    board = (np.indices((256, 256)).sum(axis=0) % 2).astype(np.float32)
    out = Resize(100)(board)
    assert np.abs(out - 0.5).max() < 0.05
    aliased = sk_resize(board, (100, 100), order=1, anti_aliasing=False)
    assert np.abs(aliased - 0.5).max() > 0.4


def test_resize_agrees_with_skimage_on_smooth_images():
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32) / 511
    img = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy)
    ours = Resize(224)(img)
    ref = sk_resize(img, (224, 224), order=1, anti_aliasing=True, preserve_range=True)
    assert np.abs(ours - ref).max() < 0.01


def test_resize_updates_scan_geometry():
    scan = Scan(
        np.zeros((200, 100), np.float32),
        {"Rows": 200, "Columns": 100, "PixelSpacing": [0.5, 0.5]},
        [],
    )
    out = Resize(50)(scan)
    assert out.meta["Rows"] == 50 and out.meta["Columns"] == 50
    # the image content was scaled by 1/4 on both axes (padding does not change spacing)
    assert out.meta["PixelSpacing"] == [2.0, 2.0]
    assert out.provenance == ["resize: size=50"]


def test_pad_to_square_and_center_crop_exact_values():
    img = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    sq = PadToSquare()(img)
    assert sq.shape == (4, 4)
    # one row of padding; an odd difference puts the extra row at the bottom
    np.testing.assert_array_equal(sq[:3], img)
    np.testing.assert_array_equal(sq[3], 0.0)
    assert PadToSquare()(np.ones((2, 6), np.float32))[:, 0].tolist() == [0, 0, 1, 1, 0, 0]
    crop = CenterCrop((2, 2))(img)
    np.testing.assert_array_equal(crop, [[2, 3], [6, 7]])
    with pytest.raises(ValueError, match=r"CenterCrop: size \[5, 5\] does not fit in an image"):
        CenterCrop(5)(img)


def _radiograph_with_borders():
    rng = np.random.default_rng(1)
    img = np.zeros((120, 100), np.float32)  # black border everywhere
    img[10:110, 5:95] = 1.0  # white collimation (unexposed) inside the border
    img[25:100, 20:80] = rng.uniform(0.2, 0.9, (75, 60))  # anatomy
    return img


def test_crop_foreground_removes_black_border_and_collimation():
    img = _radiograph_with_borders()
    out = CropForeground()(img)
    assert out.shape == (75, 60)
    np.testing.assert_array_equal(out, img[25:100, 20:80])
    # without the uniform-band rule only the black border goes
    assert CropForeground(remove_uniform=False)(img).shape == (100, 90)
    assert CropForeground(margin=3)(img).shape == (81, 66)
    scan = CropForeground()(Scan(img, {"Rows": 120, "Columns": 100}, []))
    assert scan.provenance == ["crop_foreground: box=[25,100,20,80]"]
    assert scan.meta["Rows"] == 75


def test_crop_foreground_leaves_empty_image_alone():
    img = np.zeros((10, 10), np.float32)
    np.testing.assert_array_equal(CropForeground()(img), img)


def test_clahe_raises_local_contrast_and_refuses_bad_input():
    rng = np.random.default_rng(0)
    img = (0.45 + 0.1 * rng.random((64, 64))).astype(np.float32)
    out = CLAHE(clip_limit=0.03)(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert out.std() > 2 * img.std()
    assert 0.0 <= out.min() and out.max() <= 1.0
    with pytest.raises(ValueError, match=r"CLAHE: image must be in \[0, 1\]"):
        CLAHE()(img * 100)
    with pytest.raises(ValueError, match=r"CLAHE: image must be grey"):
        CLAHE()(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"CLAHE: clip_limit must be > 0"):
        CLAHE(clip_limit=0)


def test_to_rgb_and_to_grey():
    g = np.random.default_rng(0).random((5, 6), np.float32)
    rgb = ToRGB()(g)
    assert rgb.shape == (5, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], g)
    assert ToRGB()(rgb) is rgb  # 3 channels pass through
    np.testing.assert_array_equal(ToRGB()(g[..., None]), rgb)
    np.testing.assert_allclose(ToGrey()(rgb), g, atol=1e-6)  # weights sum to 1
    with pytest.raises(ValueError, match=r"ToRGB: image must be grey .* allowed channel counts"):
        ToRGB()(np.zeros((4, 4, 2), np.float32))
    scan = ToRGB()(Scan(g, {"SamplesPerPixel": 1}, []))
    assert scan.is_colour and scan.provenance == ["to_rgb"]


def test_float_stages_refuse_integer_images():
    with pytest.raises(ValueError, match=r"Resize: image must be floating point.*uint8"):
        Resize(4)(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "resize", "size": 0}, r"Resize: size must be >= 1"),
        ({"name": "resize", "size": [1, 2, 3]}, r"Resize: size must be an int or \[height, w"),
        ({"name": "resize", "size": 2.5}, r"Resize: size must be an integer"),
        ({"name": "resize", "size": 8, "mode": "crop"}, r"mode='crop' is not allowed.*pad, st"),
        ({"name": "resize", "size": 8, "interp": "area"}, r"unknown parameter 'interp'.*interpo"),
        ({"name": "center_crop", "size": -1}, r"CenterCrop: size must be >= 1"),
        ({"name": "crop_foreground", "margin": -2}, r"CropForeground: margin must be >= 0"),
        ({"name": "clahe", "kernel_size": 1}, r"CLAHE: kernel_size must be >= 2"),
    ],
)
def test_bad_parameters(config, match):
    with pytest.raises(ValueError, match=match):
        stage_from_config(config)


def test_config_round_trips():
    for stage in [
        Resize(224),
        Resize((300, 200), mode="stretch", interpolation="cubic"),
        PadToSquare(0.5),
        CenterCrop([10, 20]),
        CropForeground(threshold=0.1, margin=4, remove_uniform=False),
        CLAHE(0.02, kernel_size=[16, 16], nbins=128),
        ToRGB(),
        ToGrey(),
    ]:
        cfg = stage.to_config()
        assert stage_from_config(cfg) == stage
        assert stage_from_config(cfg).to_config() == cfg
