"""Findings composited onto a real radiograph (pydicom-data's RG1 chest CR)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imaging_tl import read_scan
from imaging_tl.stages import Window
from imaging_tl.synthetic import composite_radiograph, estimate_lung_fields, make_radiograph


@pytest.fixture(scope="module")
def chest(pydicom_data_dir) -> np.ndarray:
    """A real PA chest CR (MONOCHROME1, 15 bits), windowed to dense = bright."""
    return Window(mode="header")(read_scan(pydicom_data_dir / "RG1_UNCR.dcm")).pixels


def test_nodule_on_a_real_radiograph(chest):
    base = composite_radiograph(3, chest, [], size=128)
    img = composite_radiograph(3, chest, ["nodule"], size=128)
    assert img.kind == "composite" and img.pixels.shape == (128, 128)
    assert img.labels == {"nodule": 1, "consolidation": 0, "effusion": 0}
    m = img.masks["nodule"]
    cy, cx = img.params["nodule"]["centre"]
    assert img.lung_side[int(cy), int(cx)] > 0  # placed inside an estimated lung
    changed = img.pixels != base.pixels
    assert changed.any() and not (changed & ~ndimage.binary_dilation(m, iterations=3)).any()
    assert img.pixels[m].mean() > base.pixels[m].mean()
    # Real pixel spacing (0.175 mm at 1841 px) carried through the crop and resize.
    assert 1.5 < img.pixel_spacing < 3.0


@pytest.mark.parametrize("kind", ["consolidation", "effusion"])
def test_diffuse_findings_on_a_real_radiograph(chest, kind):
    img = composite_radiograph(5, chest, [kind], size=96)
    assert img.masks[kind].any() and img.labels[kind] == 1
    assert not (img.masks[kind] & (img.lung_side == 0)).any()


def test_composite_is_reproducible(chest):
    a = composite_radiograph(9, chest, ["nodule"], size=64)
    b = composite_radiograph(9, chest, ["nodule"], size=64)
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_lung_estimate_finds_the_phantom_lungs():
    for seed in range(3):
        img = make_radiograph(seed, size=128)
        est = estimate_lung_fields(img.pixels)
        # Mostly inside the true lungs, each side on its own side.
        assert ((est > 0) & (img.lung_side > 0)).sum() > 0.8 * (est > 0).sum()
        assert np.nonzero(est == 1)[1].mean() < 64 < np.nonzero(est == 2)[1].mean()


def test_bad_background_is_refused(chest):
    with pytest.raises(ValueError, match="background"):
        composite_radiograph(0, chest * 100, ["nodule"])
    with pytest.raises(ValueError, match="background"):
        composite_radiograph(0, np.zeros((8, 8, 3)), ["nodule"])


def test_dataset_on_real_backgrounds(chest, tmp_path):
    from imaging_tl.synthetic import generate_dataset

    df = generate_dataset(
        tmp_path,
        n_patients=2,
        images_per_patient=2,
        size=64,
        seed=4,
        backgrounds=[chest],
        prevalence={"nodule": 1.0},
        persistence=1.0,
        png_fraction=0.0,
    )
    assert (df.nodule == 1).all()
    for p in df.path:
        assert read_scan(tmp_path / p).pixels.shape == (64, 64)
