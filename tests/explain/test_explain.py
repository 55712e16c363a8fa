"""Grad-CAM: layer discovery, shapes, sanity checks on trained models, real EfficientNet-Lite."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from imaging_tl.explain import (  # noqa: E402
    GradCAM,
    find_target_layer,
    gradcam,
    model_randomization_check,
    overlay,
    save_overlay,
    save_overlays,
)

SIZE = 48
RADIUS = 4


def _disk(size: int, cy: int, cx: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _lesion_images(n: int, seed: int, *, two_kinds: bool = False):
    """Noisy backgrounds; class decided by a lesion at a random, known place.

    Binary: half the images hold a bright disk (positive). ``two_kinds``: multi-label,
    a bright disk (label 0) and/or a dark disk (label 1), each at its own place.
    Returns images (n, S, S, 3) in [0, 1], labels, and the masks of every lesion kind.
    """
    rng = np.random.default_rng(seed)
    x = np.clip(0.35 + 0.08 * rng.standard_normal((n, SIZE, SIZE)), 0, 1)
    kinds = 2 if two_kinds else 1
    y = np.zeros((n, kinds), np.int64)
    masks = np.zeros((n, kinds, SIZE, SIZE), bool)
    for i in range(n):
        taken = np.zeros((SIZE, SIZE), bool)
        for k in range(kinds):
            if rng.random() < 0.5:
                continue
            while True:
                cy, cx = rng.integers(RADIUS + 2, SIZE - RADIUS - 2, 2)
                m = _disk(SIZE, cy, cx, RADIUS)
                if not (_disk(SIZE, cy, cx, 2 * RADIUS + 2) & taken).any():
                    break
            taken |= m
            x[i][m] = 0.9 if k == 0 else 0.0  # label 0 bright, label 1 dark
            y[i, k] = 1
            masks[i, k] = m
    imgs = np.repeat(x[..., None], 3, axis=3).astype(np.float32)
    return imgs, (y[:, 0] if not two_kinds else y), masks


def _small_cnn(outputs: int, activation: str) -> keras.Model:
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    # standardise like a real model's input normalisation: unscaled [0, 1] inputs stall
    # this tiny net at chance level
    h = keras.layers.Rescaling(10.0, offset=-3.5, name="input_normalization")(inp)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(h)
    h = keras.layers.MaxPooling2D(name="pool1")(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(h)
    h = keras.layers.GlobalAveragePooling2D(name="head_pool")(h)
    out = keras.layers.Dense(outputs, activation=activation, name="head_output")(h)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def lesion_model():
    keras.utils.set_random_seed(0)
    x, y, _ = _lesion_images(400, seed=0)
    m = _small_cnn(1, "sigmoid")
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy",
              metrics=["accuracy"])
    m.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return m


@pytest.fixture(scope="module")
def two_label_model():
    keras.utils.set_random_seed(1)
    x, y, _ = _lesion_images(600, seed=1, two_kinds=True)
    m = _small_cnn(2, "sigmoid")
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    m.fit(x, y, epochs=10, batch_size=32, verbose=0)
    return m


def _mass_in(cams: np.ndarray, masks: np.ndarray, margin: int = 3) -> np.ndarray:
    """Fraction of each heat map's mass within its lesion, grown by ``margin`` pixels."""
    from scipy.ndimage import binary_dilation

    out = []
    for c, m in zip(cams, masks, strict=True):
        grown = binary_dilation(m, iterations=margin)
        out.append(c[grown].sum() / max(c.sum(), 1e-12))
    return np.array(out)


def test_find_target_layer_small_cnn_and_override(lesion_model):
    assert find_target_layer(lesion_model) == "conv3"
    cam = GradCAM(lesion_model, layer="conv2")
    assert cam.layer_name == "conv2"
    with pytest.raises(ValueError, match="no such layer"):
        GradCAM(lesion_model, layer="nope")
    with pytest.raises(ValueError, match="not \\(batch, H, W, C\\)"):
        GradCAM(lesion_model, layer="head_output")
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="no layer with a 4-D"):
        find_target_layer(dense_only)


def test_heat_map_mass_concentrates_on_the_lesion(lesion_model):
    x, y, masks = _lesion_images(60, seed=123)
    p = lesion_model.predict(x, verbose=0)[:, 0]
    assert np.mean((p > 0.5) == y) > 0.9, "the toy model did not learn the lesion"
    pos = np.flatnonzero(y == 1)
    cams = gradcam(lesion_model, x[pos], batch_size=7)  # batches of uneven size
    assert cams.shape == (len(pos), SIZE, SIZE) and cams.dtype == np.float32
    assert cams.min() >= 0 and cams.max() <= 1
    frac = _mass_in(cams, masks[pos, 0])
    area = np.mean([np.mean(m) for m in masks[pos, 0]])
    # the grown lesion covers ~8% of the image; the map puts most of its mass there
    assert np.median(frac) > 0.6 and np.median(frac) > 5 * area, (frac, area)
    peaks = [np.unravel_index(np.argmax(c), c.shape) for c in cams]
    hits = [m[py, px] for (py, px), m in zip(peaks, _grow(masks[pos, 0], 3), strict=True)]
    assert np.mean(hits) >= 0.8


def _grow(masks: np.ndarray, margin: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return np.array([binary_dilation(m, iterations=margin) for m in masks])


def test_model_randomization_changes_the_map(lesion_model):
    x, y, _ = _lesion_images(40, seed=7)
    pos = x[y == 1][:8]
    before = lesion_model.get_layer("head_output").get_weights()
    check = model_randomization_check(lesion_model, pos, seed=3)
    assert check["randomized_layers"] == ["head_output"]
    assert check["mean_spearman"] < 0.5, check["spearman"]
    # the model is restored afterwards
    after = lesion_model.get_layer("head_output").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    again = gradcam(lesion_model, pos)
    assert np.allclose(again, check["original"], atol=1e-5)


def test_multilabel_class_index_selects_the_lesion(two_label_model):
    x, y, masks = _lesion_images(80, seed=99, two_kinds=True)
    p = two_label_model.predict(x, verbose=0)
    assert np.mean((p > 0.5) == y) > 0.9, "the toy model did not learn the lesions"
    both = np.flatnonzero((y[:, 0] == 1) & (y[:, 1] == 1))[:10]
    assert len(both) >= 5
    cam = GradCAM(two_label_model)
    for k in (0, 1):
        maps = cam(x[both], class_index=k)
        own = _mass_in(maps, masks[both, k])
        other = _mass_in(maps, masks[both, 1 - k])
        assert np.median(own) > 0.6 and np.median(other) < 0.1, (k, own, other)
    # one class index per image is accepted
    per_image = cam(x[both], class_index=[0, 1] * (len(both) // 2) + [0] * (len(both) % 2))
    assert per_image.shape == (len(both), SIZE, SIZE)
    with pytest.raises(ValueError, match="class_index"):
        cam(x[both], class_index=2)


def test_multiclass_default_is_predicted_class():
    keras.utils.set_random_seed(0)
    m = _small_cnn(3, "softmax")
    x = np.random.default_rng(0).random((4, SIZE, SIZE, 3)).astype(np.float32)
    pred = m.predict(x, verbose=0).argmax(1)
    cam = GradCAM(m)
    assert np.allclose(cam(x), cam(x, class_index=pred), atol=1e-6)
    one = cam(x[0])
    assert one.shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="does not match the model input"):
        cam(np.zeros((2, 20, 20, 3), np.float32))


def test_overlay_and_png(tmp_path, lesion_model):
    grey = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    heat = np.zeros((16, 16), np.float32)
    heat[4:8, 4:8] = 1.0
    out = overlay(grey, heat, alpha=0.6)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # cold places keep the scan's grey value; hot places are coloured
    assert np.all(out[60, 60] == np.round(grey[60, 60] * 255))
    assert np.ptp(out[24, 24].astype(int)) > 50
    p = save_overlay(tmp_path / "sub" / "cam.png", grey, heat)
    assert Image.open(p).size == (64, 64)
    with pytest.raises(ValueError, match="image"):
        overlay(np.zeros((4, 4, 2)), heat)
    x, _, _ = _lesion_images(3, seed=5)
    paths = [tmp_path / f"g{i}.png" for i in range(3)]
    cams = save_overlays(lesion_model, x, paths)
    assert cams.shape == (3, SIZE, SIZE) and all(q.stat().st_size > 0 for q in paths)


def _half_and_half():
    """Cat (chelsea) on the left half, espresso (coffee) on the right: 224 x 224 RGB [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    cat = data.chelsea()[:, 80:380]   # 300 x 300, the cat's head
    cup = data.coffee()[:, 100:500]   # 400 x 400, the cup
    left = resize(cat, (224, 112), anti_aliasing=True)
    right = resize(cup, (224, 112), anti_aliasing=True)
    return np.concatenate([left, right], axis=1).astype(np.float32)


def test_real_lite0_localises_imagenet_classes(lite0_classifier):
    """Real ImageNet weights: the cat map lies on the cat half, the espresso map on the cup."""
    from imaging_tl.models import get_spec
    from imaging_tl.stages.normalize import get_scheme

    scheme = get_scheme(get_spec("efficientnet_lite0").normalization)
    img = _half_and_half()
    x = ((img - np.asarray(scheme.mean, np.float32)) / np.asarray(scheme.std, np.float32))[None]
    assert find_target_layer(lite0_classifier) == "top_activation"
    logits = lite0_classifier.predict(x, verbose=0)[0]
    cat = max((281, 282, 285), key=lambda k: logits[k])
    cam = GradCAM(lite0_classifier)
    maps = cam(np.concatenate([x, x]), class_index=[cat, 967])
    left_cat = maps[0][:, :112].sum() / maps[0].sum()
    right_cup = maps[1][:, 112:].sum() / maps[1].sum()
    assert left_cat > 0.65 and right_cup > 0.65, (left_cat, right_cup)


@pytest.fixture(scope="module")
def lite0_transfer():
    from imaging_tl.models import build_transfer_model

    return build_transfer_model("efficientnet_lite0", "binary", ["normal", "lesion"],
                                weights="imagenet", input_size=128, seed=0)


def test_real_transfer_model_gradcam_and_randomization(lite0_transfer, tmp_path):
    m = lite0_transfer
    assert find_target_layer(m) == "top_activation"
    x, _, _ = _lesion_images(2, seed=11)
    from skimage.transform import resize

    x = np.stack([resize(i, (128, 128, 3)) for i in x]).astype(np.float32)
    cams = save_overlays(m, x, [tmp_path / "a.png", tmp_path / "b.png"], batch_size=1)
    assert cams.shape == (2, 128, 128) and np.all(np.isfinite(cams))
    assert cams.max() > 0
    check = model_randomization_check(m, x, seed=0)
    assert check["randomized_layers"] == ["head_output"]
    assert check["mean_spearman"] < 0.9, check["spearman"]
    # the input contract is enforced: 0..255 images are refused with the reason
    with pytest.raises(ValueError, match=r"images: input values span"):
        gradcam(m, x * 255)


def test_scores_are_taken_before_the_final_activation():
    """Dense+softmax, Dense+Activation(softmax) and plain logits give the same maps."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(inp)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    dense = keras.layers.Dense(3, name="logits")
    logits = dense(pooled)
    m_logits = keras.Model(inp, logits)
    m_act = keras.Model(inp, keras.layers.Activation("softmax")(logits))
    soft = keras.layers.Dense(3, activation="softmax")
    m_soft = keras.Model(inp, soft(pooled))
    soft.set_weights(dense.get_weights())
    x = np.random.default_rng(1).random((3, SIZE, SIZE, 3)).astype(np.float32)
    ref = GradCAM(m_logits)(x, class_index=[0, 1, 2])
    assert np.allclose(GradCAM(m_act)(x, class_index=[0, 1, 2]), ref, atol=1e-5)
    assert np.allclose(GradCAM(m_soft)(x, class_index=[0, 1, 2]), ref, atol=1e-5)
    # through the softmax the maps differ (gradients mix in the other classes)
    through = GradCAM(m_soft, use_logits=False)(x, class_index=[0, 1, 2])
    assert not np.allclose(through, ref, atol=1e-3)


def test_save_gallery_feeds_the_report(lesion_model, tmp_path):
    from imaging_tl.report import gallery_from_dir, save_gallery, write_report

    x, y, _ = _lesion_images(30, seed=21)
    p = lesion_model.predict(x, verbose=0)[:, 0]
    p[:2] = 1 - p[:2]  # make sure there are errors to show
    items = save_gallery(lesion_model, x, y, p, tmp_path / "gradcam", threshold=0.5,
                         n_per_category=2)
    cats = {it["category"] for it in items}
    assert {"FP", "FN"} & cats and "TP" in cats and "TN" in cats
    assert all(it["path"].is_file() for it in items)
    again = gallery_from_dir(tmp_path / "gradcam")
    assert [(a["category"], a["caption"]) for a in again] == \
        [(b["category"], b["caption"]) for b in items]
    page = write_report(tmp_path, gradcam=items).read_text()
    assert page.count("<img ") == len(items)
    assert (tmp_path / "plots" / "gradcam_gallery.png").is_file()


def test_save_gallery_multilabel_explains_the_chosen_label(two_label_model, tmp_path):
    from imaging_tl.report import save_gallery

    x, y, masks = _lesion_images(40, seed=31, two_kinds=True)
    y = y.astype(float)
    y[:3, 1] = np.nan  # missing labels are never shown
    p = two_label_model.predict(x, verbose=0)
    items = save_gallery(two_label_model, x, y, p, tmp_path, label=1, n_per_category=3)
    assert items and all(it["caption"].startswith("label 1:") for it in items)
    assert not {it["index"] for it in items} & {0, 1, 2}
    tp = [it["index"] for it in items if it["category"] == "TP"]
    assert tp and all(y[i, 1] == 1 for i in tp)
