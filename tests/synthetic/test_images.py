"""Phantoms, findings and their difficulty: shapes, units, masks, counterfactual pairs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imaging_tl.synthetic import (
    FINDINGS,
    Difficulty,
    add_effusion,
    add_nodule,
    chest_radiograph,
    get_difficulty,
    make_ct,
    make_radiograph,
)
from imaging_tl.synthetic.acquisition import processing_reach
from imaging_tl.synthetic.phantom import smooth_noise


def test_radiograph_is_reproducible_and_varies_with_seed():
    a = make_radiograph(11, ["nodule", "effusion"], size=96)
    b = make_radiograph(11, ["nodule", "effusion"], size=96)
    c = make_radiograph(12, ["nodule", "effusion"], size=96)
    assert a.pixels.dtype == np.float32 and a.pixels.shape == (96, 96)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    for k in a.masks:
        np.testing.assert_array_equal(a.masks[k], b.masks[k])
    assert not np.array_equal(a.pixels, c.pixels)
    assert 0.0 <= a.pixels.min() and a.pixels.max() <= 1.0


def test_chest_phantom_anatomy():
    p = chest_radiograph(np.random.default_rng(5), (128, 160))
    assert p.density.shape == (128, 160)
    # Lungs lie inside the body, one on each side of the midline, and are less dense.
    assert p.lung_mask.any() and not (p.lung_mask & ~p.body_mask).any()
    left = np.nonzero(p.lung_side == 1)[1].mean()
    right = np.nonzero(p.lung_side == 2)[1].mean()
    assert left < 80 < right
    soft = p.body_mask & ~p.lung_mask & ~p.collimation
    assert p.density[p.lung_mask].mean() < p.density[soft].mean()
    assert 0.5 < p.pixel_spacing < 3.0


def test_patient_anatomy_is_shared_between_images():
    a = chest_radiograph(np.random.default_rng(1), (64, 64), anatomy_seed=[7, 7])
    b = chest_radiograph(np.random.default_rng(2), (64, 64), anatomy_seed=[7, 7])
    c = chest_radiograph(np.random.default_rng(1), (64, 64), anatomy_seed=[7, 8])
    assert a.params["lung_density"] == b.params["lung_density"]
    assert a.params["lung_density"] != c.params["lung_density"]
    assert a.params["angle_deg"] != b.params["angle_deg"]  # pose differs per image


def test_ct_slice_hounsfield_units():
    ct = make_ct(3, [], size=128, noise_hu=0.0)
    hu = ct.pixels
    assert hu.min() == pytest.approx(-1000.0)  # air around the patient
    assert -900 < hu[ct.lung_side > 0].mean() < -750
    assert (hu > 500).any()  # cortical bone
    assert ((hu > -150) & (hu < -50)).any()  # fat


@pytest.mark.parametrize("kind", FINDINGS)
def test_masks_are_nonempty_exactly_for_drawn_findings(kind):
    for seed in range(4):
        img = make_radiograph(seed, [kind], size=96)
        assert img.labels == {k: int(k == kind) for k in FINDINGS}
        assert img.masks[kind].any()
        ct = make_ct(seed, [kind], size=96)
        assert ct.labels[kind] == 1 and ct.masks[kind].any()
    assert make_radiograph(0, [], size=64).labels == dict.fromkeys(FINDINGS, 0)


@pytest.mark.parametrize("kind", FINDINGS)
def test_a_finding_changes_only_its_own_region(kind):
    # Same seed with and without the finding: a counterfactual pair.
    base = make_radiograph(21, [], size=128)
    with_f = make_radiograph(21, [kind], size=128)
    # (float32 rounding in the filters leaves differences of ~1e-7 elsewhere)
    changed = np.abs(with_f.pixels - base.pixels) > 1e-5
    assert changed.any()
    if kind == "nodule":
        region = with_f.masks[kind]
    else:  # diffuse findings fade out beyond their mask, but stay in their lung
        region = with_f.lung_side == with_f.params[kind]["side"]
    # The detector blur and the site's unsharp mask carry a change this far, no further.
    reach = processing_reach("local", with_f.pixel_spacing)
    allowed = ndimage.binary_dilation(region, iterations=reach)
    assert not (changed & ~allowed).any()
    # It is an opacity: brighter (denser) where it is.
    m = with_f.masks[kind]
    assert with_f.pixels[m].mean() > base.pixels[m].mean()


def test_nodules_fall_in_the_lungs():
    for seed in range(6):
        p = chest_radiograph(np.random.default_rng(seed), (128, 128))
        f = add_nodule(p.density, p.lung_mask, np.random.default_rng(seed), pixel_spacing=1.5)
        cy, cx = f.params["centre"]
        assert p.lung_mask[int(cy), int(cx)]


def test_effusion_sits_at_the_lung_base():
    p = chest_radiograph(np.random.default_rng(2), (128, 128))
    f = add_effusion(p.density, p.lung_side, np.random.default_rng(0), side=1, air=p.lung_air)
    lung_rows = np.nonzero(p.lung_side == 1)[0]
    fluid_rows = np.nonzero(f.mask)[0]
    assert fluid_rows.mean() > np.percentile(lung_rows, 75)
    assert not (f.mask & (p.lung_side != 1)).any()


def _measured_nodule_contrast(difficulty, n=8):
    """Mean display-value increase inside the nodule mask (counterfactual pairs)."""
    out = []
    for seed in range(n):
        base = make_radiograph(seed, [], size=128, difficulty=difficulty)
        nod = make_radiograph(seed, ["nodule"], size=128, difficulty=difficulty)
        m = nod.masks["nodule"]
        out.append(float((nod.pixels[m] - base.pixels[m]).mean()))
    return float(np.mean(out)), float(
        np.mean(
            [
                make_radiograph(s, ["nodule"], size=128, difficulty=difficulty)
                .masks["nodule"]
                .sum()
                for s in range(n)
            ]
        )
    )


def test_difficulty_controls_measurable_contrast_and_size():
    easy_c, easy_a = _measured_nodule_contrast("easy")
    med_c, med_a = _measured_nodule_contrast("medium")
    hard_c, hard_a = _measured_nodule_contrast("hard")
    assert easy_c > med_c > hard_c > 0
    assert easy_a > med_a > hard_a > 0


def test_difficulty_errors_name_the_parameter():
    with pytest.raises(ValueError, match="difficulty"):
        get_difficulty("impossible")
    with pytest.raises(ValueError, match="nodule_radius_mm"):
        Difficulty(nodule_radius_mm=(5.0, 1.0))
    with pytest.raises(ValueError, match="findings"):
        make_radiograph(0, ["fracture"])
    with pytest.raises(ValueError, match="pixel_spacing"):
        add_nodule(
            np.zeros((8, 8)), np.ones((8, 8), bool), np.random.default_rng(0), pixel_spacing=0
        )
    with pytest.raises(ValueError, match="empty"):
        add_nodule(
            np.zeros((8, 8)), np.zeros((8, 8), bool), np.random.default_rng(0), pixel_spacing=1
        )


def test_smooth_noise_is_band_limited():
    n = smooth_noise(np.random.default_rng(0), (128, 128), 16)
    assert abs(float(n.mean())) < 1e-5 and float(n.std()) == pytest.approx(1.0, abs=1e-4)
    # Neighbouring pixels of 16-px features are strongly correlated; white noise is not.
    assert np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1] > 0.95


def test_check_findings_rejects_unknown_names():
    from imaging_tl.synthetic.findings import check_findings

    assert check_findings(["effusion", "nodule", "nodule"]) == {"effusion", "nodule"}
    with pytest.raises(ValueError, match="unknown.*'mass'"):
        check_findings(["nodule", "mass"])


def test_random_streams_are_reproducible_and_independent():
    from imaging_tl.synthetic.images import random_streams

    base, finds, noise = random_streams(7)
    again = random_streams(np.random.SeedSequence(7))
    assert len(finds) == len(FINDINGS)
    assert base.random() == again[0].random() and noise.random() == again[2].random()
    draws = [f.random() for f in finds]
    assert len(set(draws)) == len(draws)


def test_add_findings_leaves_the_other_findings_unchanged():
    # Each finding has its own stream: drawing the effusion too changes nothing in the
    # nodule's parameters or mask (the counterfactual pairs rely on it).
    from imaging_tl.synthetic.findings import add_findings

    p = chest_radiograph(np.random.default_rng(3), (96, 96))

    def draw(findings):
        rngs = [np.random.default_rng([3, k]) for k in range(len(FINDINGS))]
        return add_findings(p.density, findings, rngs, lung_side=p.lung_side,
                            pixel_spacing=p.pixel_spacing, air=p.lung_air)

    _, alone, params_alone = draw(["nodule"])
    image, both, params_both = draw(["effusion", "nodule"])
    assert list(both) == ["nodule", "effusion"]
    np.testing.assert_array_equal(alone["nodule"], both["nodule"])
    assert params_alone["nodule"] == params_both["nodule"]
    assert image.dtype == p.density.dtype and (image >= p.density - 1e-6).all()
