"""Patient variation, sites, visibility presets, geometry and markers of the generator."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pydicom
import pytest

from imaging_tl.data.audit import audit_splits
from imaging_tl.data.hashing import dhash, hamming
from imaging_tl.synthetic import (
    DIFFICULTIES,
    FINDINGS,
    SITES,
    SiteProfile,
    chest_radiograph,
    finding_cnr,
    generate_dataset,
    make_radiograph,
)
from imaging_tl.synthetic.findings import add_findings
from imaging_tl.synthetic.images import random_streams


def test_same_seed_same_pixels_bit_for_bit():
    for site in SITES:
        a = make_radiograph([5, 1], ["nodule", "consolidation"], size=96, site=site,
                            anatomy_seed=[5, 9])
        b = make_radiograph([5, 1], ["nodule", "consolidation"], size=96, site=site,
                            anatomy_seed=[5, 9])
        assert a.pixels.tobytes() == b.pixels.tobytes() and a.marker == b.marker


def test_different_patients_are_far_apart_on_the_audit_hash():
    # The audit flags <= 10 of 256 bits; real chest films of different patients: min 34.
    hashes = [dhash(make_radiograph([p, 0], size=96, anatomy_seed=[p]).pixels)
              for p in range(16)]
    d = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(d) > 12 and np.median(d) > 45
    # Two films of one patient are closer than films of different patients, on average.
    same = [hamming(dhash(make_radiograph([p, 0], size=96, anatomy_seed=[p]).pixels),
                    dhash(make_radiograph([p, 1], size=96, anatomy_seed=[p]).pixels))
            for p in range(6)]
    assert np.mean(same) < np.mean(d)


@pytest.mark.parametrize("preset", sorted(DIFFICULTIES))
def test_presets_findings_are_in_the_masks_with_cnr_in_range(preset):
    diff = DIFFICULTIES[preset]
    lo, hi = diff.cnr
    for seed in range(3):
        base, frngs, _ = random_streams(seed)
        ph = chest_radiograph(base, (128, 128))
        img, masks, params = add_findings(
            ph.density, FINDINGS, frngs, lung_side=ph.lung_side,
            pixel_spacing=ph.pixel_spacing, difficulty=preset, air=ph.lung_air)
        assert set(masks) == set(FINDINGS) and all(m.any() for m in masks.values())
        nod = params["nodule"]
        # Recomputed independently: the nodule alone on the finding-free phantom.
        alone, m, _ = add_findings(ph.density, ["nodule"], frngs[:1] and
                                   random_streams(seed)[1], lung_side=ph.lung_side,
                                   pixel_spacing=ph.pixel_spacing, difficulty=preset)
        cnr = finding_cnr(alone, ph.density, m["nodule"], ph.lung_side > 0)
        assert lo - 1e-6 <= cnr <= hi + 1e-6
        assert lo - 1e-6 <= nod["cnr"] <= hi + 1e-6
        for kind in ("consolidation", "effusion"):  # capped where the lung is filled
            assert params[kind]["cnr"] <= hi + 1e-6


def test_presets_order_the_visibility_measured_on_the_pixels():
    def mean_cnr(preset):
        out = []
        for seed in range(4):
            a = make_radiograph(seed, [], size=128, difficulty=preset)
            b = make_radiograph(seed, ["nodule"], size=128, difficulty=preset)
            out.append(finding_cnr(b.pixels, a.pixels, b.masks["nodule"], a.lung_side > 0))
        return float(np.mean(out))

    easy, medium, hard = mean_cnr("easy"), mean_cnr("medium"), mean_cnr("hard")
    assert easy > medium > hard > 0


def test_geometry_matches_the_drawn_anatomy():
    for size in (96, 192):
        img = make_radiograph([3, 0], size=size, anatomy_seed=[3], view="PA")
        ph = img.params["phantom"]
        assert img.pixel_spacing == pytest.approx(ph["fov_mm"] / size)
        cols = np.nonzero((img.lung_side > 0).any(axis=0))[0]
        lungs_mm = (cols.max() - cols.min() + 1) * img.pixel_spacing
        # The lung fields span most of the thorax, never more than it.
        assert 0.7 * ph["thorax_width_mm"] < lungs_mm <= 1.05 * ph["thorax_width_mm"]
        assert 200 < ph["thorax_width_mm"] < 380
        assert ph["heart_width_mm"] == pytest.approx(ph["ctr"] * ph["thorax_width_mm"])


def test_sites_differ_measurably():
    def stats(site):
        noise, contrast = [], []
        for s in range(6):
            img = make_radiograph([s, 2], size=128, site=site, anatomy_seed=[s])
            lung = img.lung_side > 0
            px = img.pixels
            contrast.append(px[img.lung_side == 0].mean() - px[lung].mean())
            noise.append(np.std(px[lung] - np.roll(px, 1, axis=1)[lung]))
        return np.mean(noise), np.mean(contrast)

    local, public = stats("local"), stats("public")
    assert public[0] > 1.1 * local[0]  # lower dose, stronger edge enhancement
    with pytest.raises(ValueError, match="site"):
        make_radiograph(0, size=64, site="nowhere")
    with pytest.raises(ValueError, match="dose"):
        SiteProfile(dose=(5.0, 1.0))


def test_burned_in_annotation_is_set_exactly_when_a_marker_is_drawn(tmp_path):
    df = generate_dataset(tmp_path, n_patients=6, images_per_patient=3, seed=2, size=64,
                          png_fraction=0.0, site="public")
    assert (df.marker != "").any() and (df.marker == "").any()
    for path, marker in zip(df.path, df.marker, strict=True):
        ds = pydicom.dcmread(tmp_path / path, stop_before_pixels=True)
        assert ds.BurnedInAnnotation == ("YES" if marker else "NO")
    assert df.visibility_cnr.notna().sum() == (df[list(FINDINGS)].sum(axis=1) > 0).sum()


def test_audit_finds_no_near_duplicates_between_200_patients(tmp_path):
    rows = []
    for p in range(200):
        img = make_radiograph([p, 0], size=64, anatomy_seed=[p])
        rows.append({"path": f"p{p}", "group": f"pid:{p}", "split": ("train", "test")[p % 2],
                     "content_hash": str(p), "dhash": dhash(img.pixels)})
    report = audit_splits(pd.DataFrame(rows), raise_on_leak=False)
    assert report.near_duplicates == []
