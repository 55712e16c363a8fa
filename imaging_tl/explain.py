"""Grad-CAM heat maps for Keras classifiers, overlays on the windowed scan, sanity checks.

Grad-CAM (Selvaraju et al. 2017): the feature maps ``A_k`` of a convolutional layer are
weighted by the spatial mean of the gradient of the class score with respect to them,
summed, and passed through a ReLU. The layer is found automatically (the last layer with
a 4-D output before the global pooling; for the transfer models of
:mod:`imaging_tl.models` that is the backbone's last activation), and can be named. For a
fold ensemble (:mod:`imaging_tl.models.ensemble`) the map is the mean of its members'
maps, each explaining the ensemble's class.

The class score is the logit: when the model ends in a Dense layer with a sigmoid or
softmax, the score is taken before that activation, because a saturated sigmoid/softmax
has vanishing gradients (and softmax gradients mix in the other classes).

Keras (and TensorFlow) are imported on first use of :class:`GradCAM`; :func:`overlay` and
:func:`save_overlay` work on numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten")


def _keras():
    import keras

    return keras


def _rank(shape: Any) -> int:
    try:
        return len(shape)
    except TypeError:
        return -1


def _output_shape(layer: Any) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer never called, or called several times
        return None


def find_target_layer(model: Any) -> str:
    """Name of the layer Grad-CAM should use: the last 4-D output before global pooling.

    The head's pooling is the layer named ``head_pool`` (transfer models), else the last
    ``GlobalAveragePooling2D``/``GlobalMaxPooling2D``/``Flatten``.

    Parameters
    ----------
    model : keras.Model
        A functional model. A nested backbone (a model used as a layer) counts as one
        layer whose output is its last feature map.

    Returns
    -------
    str
        The layer name.

    Raises
    ------
    ValueError
        When no layer before the pooling has a ``(batch, H, W, C)`` output.

    Examples
    --------
    >>> import keras
    >>> x = keras.Input((32, 32, 3))
    >>> h = keras.layers.Conv2D(4, 3, name="conv_a")(x)
    >>> h = keras.layers.Conv2D(4, 3, name="conv_b")(h)
    >>> y = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h))
    >>> find_target_layer(keras.Model(x, y))
    'conv_b'
    """
    layers = list(model.layers)
    names = [layer.name for layer in layers]
    # the head's pooling: "head_pool" in transfer models, else the LAST global pooling
    # (squeeze-excite blocks, as in EfficientNetB0, pool inside the backbone too)
    pools = [i for i, layer in enumerate(layers) if type(layer).__name__ in _POOLING]
    stop = names.index("head_pool") if "head_pool" in names else (
        pools[-1] if pools else len(layers))
    for layer in reversed(layers[:stop]):
        if type(layer).__name__ == "InputLayer":
            continue
        if _rank(_output_shape(layer)) == 4:
            return layer.name
    raise ValueError(
        f"model {model.name!r}: no layer with a 4-D (batch, H, W, C) output before the "
        "global pooling; pass layer= with the name of a convolutional layer"
    )


class GradCAM:
    """Grad-CAM for one Keras model and layer; reuse it for many batches.

    Parameters
    ----------
    model : keras.Model
        Functional model, input ``(H, W, 3)`` float32 (for :mod:`imaging_tl` transfer
        models: RGB in [0, 1]); binary (one sigmoid unit), multiclass (softmax) or
        multilabel (one sigmoid per label) output.
    layer : str, optional
        Layer whose feature maps are used; default :func:`find_target_layer`.
    use_logits : bool
        Take the class score before a final sigmoid/softmax (recommended).

    Examples
    --------
    >>> import keras
    >>> x = keras.Input((16, 16, 3))
    >>> h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(x)
    >>> y = keras.layers.Dense(1, activation="sigmoid")(
    ...     keras.layers.GlobalAveragePooling2D()(h))
    >>> cam = GradCAM(keras.Model(x, y))
    >>> cam.layer_name, cam(np.random.rand(2, 16, 16, 3).astype("float32")).shape
    ('c', (2, 16, 16))
    """

    def __init__(self, model: Any, layer: str | None = None, *, use_logits: bool = True):
        keras = _keras()
        from imaging_tl.models.ensemble import ensemble_members

        self.model = model
        members = ensemble_members(model)
        # a fold ensemble: the mean of its members' maps (each member's own last layer)
        self._members = [GradCAM(m, layer, use_logits=use_logits) for m in members] \
            if len(members) > 1 else []
        if self._members:
            self.layer_name = self._members[0].layer_name
            self.input_shape = self._members[0].input_shape
            return
        self.layer_name = layer or find_target_layer(model)
        try:
            target = model.get_layer(self.layer_name)
        except ValueError:
            raise ValueError(
                f"layer={self.layer_name!r}: no such layer in model {model.name!r}"
            ) from None
        if _rank(_output_shape(target)) != 4:
            raise ValueError(
                f"layer={self.layer_name!r}: output shape {_output_shape(target)} is not "
                "(batch, H, W, C); Grad-CAM needs a convolutional feature map"
            )
        last = model.layers[-1]
        act = getattr(getattr(last, "activation", None), "__name__", None)
        squashing = use_logits and act in ("sigmoid", "softmax")
        # score from the logits: Dense(..., activation=sigmoid|softmax) -> input @ kernel;
        # a separate Activation layer -> its input
        self._dense = last if squashing and hasattr(last, "kernel") else None
        if self._dense is not None or (squashing and type(last).__name__ == "Activation"):
            head_in = last.input
        else:
            head_in = model.outputs[0]
        self._grad_model = keras.Model(model.inputs, [target.output, head_in])
        shape = tuple(model.inputs[0].shape)
        self.input_shape = shape[1:]

    def _ensemble_maps(self, images: np.ndarray, class_index: Any, batch_size: int,
                       resize: bool) -> np.ndarray:
        """The mean of the members' maps, each explaining the ensemble's class (its most
        probable one where none is given), divided by its maximum again."""
        x = np.asarray(images, dtype=np.float32)
        if class_index is None and int(self.model.outputs[0].shape[-1]) > 1:
            batch = x[None] if x.ndim == 3 else x
            class_index = np.asarray(self.model.predict_on_batch(batch)).argmax(-1)
        maps = np.mean([m(x, class_index, batch_size=batch_size, resize=resize)
                        for m in self._members], axis=0)
        top = maps.reshape(-1, *maps.shape[-2:]).max(axis=(1, 2)).reshape(
            maps.shape[:-2] + (1, 1))
        return np.where(top > 0, maps / np.where(top > 0, top, 1), 0).astype(np.float32)

    def _scores(self, feats: Any) -> Any:
        from keras import ops

        if self._dense is None:
            return feats
        z = ops.matmul(feats, self._dense.kernel)
        if self._dense.use_bias:
            z = z + self._dense.bias
        return z

    def __call__(
        self,
        images: np.ndarray,
        class_index: int | Sequence[int] | np.ndarray | None = None,
        *,
        batch_size: int = 16,
        resize: bool = True,
    ) -> np.ndarray:
        """Heat maps in [0, 1], one per image.

        Parameters
        ----------
        images : numpy.ndarray
            ``(N, H, W, 3)`` or one ``(H, W, 3)`` image, float32 in the model's input
            range.
        class_index : int or sequence of int, optional
            Output unit to explain, one for all images or one per image. Default: the
            only unit of a binary model, else each image's most probable class/label.
        batch_size : int
            Images per gradient computation.
        resize : bool
            Resize the maps (bilinear) to the input size; else the layer's grid.

        Returns
        -------
        numpy.ndarray
            float32 ``(N, H, W)`` (``(H, W)`` for one image); each map divided by its
            maximum, all zeros where no location has positive evidence.
        """
        import tensorflow as tf

        if self._members:
            return self._ensemble_maps(images, class_index, batch_size, resize)
        x = np.asarray(images, dtype=np.float32)
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or (None not in self.input_shape
                           and tuple(x.shape[1:]) != tuple(self.input_shape)):
            raise ValueError(
                f"images: shape {np.shape(images)} does not match the model input "
                f"(N, {', '.join(str(d) for d in self.input_shape)})"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        contract = getattr(self.model, "imaging_tl_contract", None)
        if contract is not None:  # a transfer model: wrong input range = silently wrong maps
            try:
                contract.check_batch(x)
            except ValueError as err:
                raise ValueError(f"images: {err}") from None
        n = x.shape[0]
        if class_index is not None:
            idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
            units = int(self.model.outputs[0].shape[-1])
            if np.any((idx < 0) | (idx >= units)):
                raise ValueError(f"class_index={class_index!r}: the model has {units} outputs")
        else:
            idx = None
        maps = []
        for start in range(0, n, batch_size):
            xb = tf.convert_to_tensor(x[start:start + batch_size])
            with tf.GradientTape() as tape:
                fmap, feats = self._grad_model(xb, training=False)
                scores = self._scores(feats)
                if idx is None:
                    chosen = tf.argmax(scores, axis=-1, output_type=tf.int32)
                else:
                    chosen = tf.constant(idx[start:start + batch_size], dtype=tf.int32)
                target = tf.gather(scores, chosen, axis=1, batch_dims=1)
            grads = tape.gradient(target, fmap)
            alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(alpha * fmap, axis=-1))
            if resize:
                cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0]
            maps.append(cam.numpy())
        cams = np.concatenate(maps, axis=0).astype(np.float32)
        peak = cams.reshape(n, -1).max(axis=1)
        cams = np.where(peak[:, None, None] > 0,
                        cams / np.where(peak > 0, peak, 1.0)[:, None, None], 0.0)
        cams = np.clip(cams, 0.0, 1.0).astype(np.float32)
        return cams[0] if single else cams


def gradcam(
    model: Any,
    images: np.ndarray,
    class_index: int | Sequence[int] | np.ndarray | None = None,
    *,
    layer: str | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """Grad-CAM heat maps (one-shot form of :class:`GradCAM`).

    Examples
    --------
    >>> import keras
    >>> x = keras.Input((16, 16, 3))
    >>> h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    >>> y = keras.layers.Dense(3, activation="softmax")(
    ...     keras.layers.GlobalAveragePooling2D()(h))
    >>> gradcam(keras.Model(x, y), np.random.rand(16, 16, 3).astype("float32"), 2).shape
    (16, 16)
    """
    return GradCAM(model, layer)(images, class_index, batch_size=batch_size)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend a heat map over an image; cold regions leave the scan untouched.

    Parameters
    ----------
    image : numpy.ndarray
        The (windowed) scan, ``(H, W)`` grey or ``(H, W, 3)`` RGB, float in [0, 1]
        (uint8 is accepted and scaled).
    heatmap : numpy.ndarray
        ``(h, w)`` in [0, 1]; resized to the image when the sizes differ.
    alpha : float
        Opacity of the hottest colour.
    cmap : str
        Matplotlib colormap name.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``.

    Examples
    --------
    >>> out = overlay(np.zeros((8, 8)), np.eye(4))
    >>> out.shape, out.dtype, int(out[0, 0].sum()) > 0, int(out[0, 7].sum())
    ((8, 8, 3), dtype('uint8'), True, 0)
    """
    from matplotlib import colormaps
    from skimage.transform import resize

    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image: expected (H, W) or (H, W, 3), got {np.shape(image)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha}: must be in [0, 1]")
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2:
        raise ValueError(f"heatmap: expected (h, w), got {h.shape}")
    if h.shape != img.shape[:2]:
        h = resize(h, img.shape[:2], order=1, preserve_range=True, anti_aliasing=False)
    h = np.clip(np.nan_to_num(h), 0.0, 1.0)
    colour = colormaps[cmap](h)[..., :3].astype(np.float32)
    a = alpha * h[..., None]
    out = np.clip(img, 0.0, 1.0) * (1.0 - a) + colour * a
    return np.round(out * 255.0).astype(np.uint8)


def save_overlay(
    path: str | Path, image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5,
    cmap: str = "jet",
) -> Path:
    """Write :func:`overlay` as a PNG (parent folders are created).

    Examples
    --------
    >>> import tempfile, os
    >>> p = save_overlay(os.path.join(tempfile.mkdtemp(), "a", "cam.png"),
    ...                  np.zeros((8, 8)), np.eye(8))
    >>> p.suffix, p.stat().st_size > 0
    ('.png', True)
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image, heatmap, alpha=alpha, cmap=cmap)).save(path, format="PNG")
    return path


def save_overlays(
    model: Any,
    images: np.ndarray,
    paths: Sequence[str | Path],
    class_index: int | Sequence[int] | np.ndarray | None = None,
    *,
    layer: str | None = None,
    backgrounds: np.ndarray | Sequence[np.ndarray] | None = None,
    batch_size: int = 16,
    alpha: float = 0.5,
) -> np.ndarray:
    """Grad-CAM for a batch and one overlay PNG per image.

    Parameters
    ----------
    model, images, class_index, layer, batch_size :
        As in :class:`GradCAM`.
    paths : sequence of path
        One output PNG per image.
    backgrounds : array or sequence of arrays, optional
        What to draw the maps on (e.g. the windowed scan at full resolution); default
        the model inputs, which for a transfer model are the windowed scans in [0, 1].
    alpha : float
        Overlay opacity.

    Returns
    -------
    numpy.ndarray
        The heat maps, ``(N, H, W)``.
    """
    if len(paths) != len(images):
        raise ValueError(f"paths: {len(paths)} paths for {len(images)} images")
    cams = GradCAM(model, layer)(images, class_index, batch_size=batch_size)
    bgs = images if backgrounds is None else backgrounds
    for p, bg, cam in zip(paths, bgs, cams, strict=True):
        save_overlay(p, bg, cam, alpha=alpha)
    return cams


def model_randomization_check(
    model: Any,
    images: np.ndarray,
    class_index: int | Sequence[int] | np.ndarray | None = None,
    *,
    layers: Sequence[str] | None = None,
    layer: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Adebayo et al.'s model-randomisation sanity check for Grad-CAM.

    Re-draws the weights of ``layers`` (default: every layer whose name starts with
    ``head_``, else the last layer) from a normal distribution with each weight tensor's
    own standard deviation, recomputes the maps, and restores the weights. A faithful
    explanation changes: the rank correlation with the original maps is low.

    Parameters
    ----------
    model, images, class_index, layer :
        As in :class:`GradCAM`.
    layers : sequence of str, optional
        Layers to randomise.
    seed : int
        Seed of the random weights.

    Returns
    -------
    dict
        ``spearman`` (per image), ``mean_spearman``, ``randomized_layers``, and the
        ``original`` and ``randomized`` maps as arrays.
    """
    from scipy.stats import spearmanr

    names = list(layers) if layers else [
        lyr.name for lyr in model.layers if lyr.name.startswith("head_") and lyr.weights
    ] or [model.layers[-1].name]
    cam = GradCAM(model, layer)
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    before = cam(x, class_index)
    rng = np.random.default_rng(seed)
    saved = {n: model.get_layer(n).get_weights() for n in names}
    try:
        for n, ws in saved.items():
            model.get_layer(n).set_weights(
                [rng.normal(0.0, float(w.std()) or 0.05, w.shape).astype(w.dtype) for w in ws]
            )
        after = cam(x, class_index)
    finally:
        for n, ws in saved.items():
            model.get_layer(n).set_weights(ws)
    rho = []
    for a, b in zip(before, after, strict=True):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            rho.append(0.0 if np.ptp(a) != np.ptp(b) else 1.0)
        else:
            rho.append(float(spearmanr(a.ravel(), b.ravel()).statistic))
    return {
        "randomized_layers": names,
        "spearman": rho,
        "mean_spearman": float(np.mean(rho)),
        "original": before,
        "randomized": after,
    }


