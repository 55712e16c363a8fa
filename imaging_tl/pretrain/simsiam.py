"""SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021).

Two views of an image go through one encoder (the transfer model's backbone and pooling:
:func:`imaging_tl.models.transfer.feature_extractor`), a projector MLP ``f -> z`` and a
predictor MLP ``z -> p``. The loss is the symmetric negative cosine similarity between one
view's prediction and the other view's projection, the projection under a stop-gradient:

    L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2,   D(p, z) = -<p / |p|, z / |z|>

No negative pairs and no momentum encoder: the stop-gradient alone prevents the collapse
to a constant (which :func:`imaging_tl.pretrain.quality.collapse_stats` watches for), so it
is stable at the small batches one CPU or GPU allows. Layer names of the projector and
predictor start with ``ssl_``; the backbone keeps the transfer model's layer names, so a
target task copies them by name (:func:`imaging_tl.models.transfer.copy_shared_layers`).

Examples
--------
>>> m = build_simsiam("efficientnet_lite0", source="none", input_size=32,
...                   projection_dim=16, predictor_dim=8)
>>> [tuple(t.shape) for t in m.joint.outputs]
[(None, 16), (None, 16)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from imaging_tl.models.transfer import build_transfer_model, feature_extractor

__all__ = ["SimSiam", "build_simsiam", "make_optimizer", "make_train_step",
           "negative_cosine", "simsiam_learning_rate"]


@dataclass
class SimSiam:
    """The parts of a SimSiam model.

    Attributes
    ----------
    transfer : keras.Model
        The transfer model whose backbone is pretrained (its head is not used).
    encoder : keras.Model
        Image -> pooled backbone features (layers shared with ``transfer``).
    joint : keras.Model
        Image -> ``[z, p]`` (projection and prediction, float32): what is trained.
    """

    transfer: keras.Model
    encoder: keras.Model
    joint: keras.Model


def _mlp(x: Any, dims: list[int], name: str, last_bn: bool, seed: int) -> Any:
    for i, d in enumerate(dims):
        last = i == len(dims) - 1
        # an explicit seed per layer: Keras' global draws differ between the first model a
        # process builds and later ones, and the same seed must give the same model
        init = keras.initializers.GlorotUniform(seed=int(seed) * 101 + i)
        x = layers.Dense(d, use_bias=last and not last_bn, kernel_initializer=init,
                         name=f"{name}_dense_{i + 1}")(x)
        if not last or last_bn:
            x = layers.BatchNormalization(name=f"{name}_bn_{i + 1}")(x)
        if not last:
            x = layers.ReLU(name=f"{name}_relu_{i + 1}")(x)
    return layers.Activation("linear", dtype="float32", name=f"{name}_out")(x)


def build_simsiam(backbone: str = "efficientnet_lite0", *, source: str = "imagenet",
                  input_size: int | None = None, projection_dim: int = 512,
                  predictor_dim: int = 128, seed: int = 0,
                  train_batchnorm: bool | None = None) -> SimSiam:
    """A SimSiam model on a registered backbone.

    Parameters
    ----------
    backbone : str
        Registry name (:func:`imaging_tl.models.list_backbones`).
    source : {"imagenet", "none"}
        Start from the backbone's ImageNet weights or from random initialisation.
    input_size : int, optional
        Square input size (default the backbone's).
    projection_dim, predictor_dim : int
        Width of the projector (3 layers, BatchNorm after each) and of the predictor's
        hidden layer (the bottleneck of the paper).
    seed : int
        Seeds the initialisation.
    train_batchnorm : bool, optional
        Train the backbone's BatchNorm layers; default: from a random start yes, on
        ImageNet weights no (they stay in inference mode, the safe choice at small batch).

    Returns
    -------
    SimSiam

    Examples
    --------
    >>> m = build_simsiam("efficientnet_lite0", source="none", input_size=32,
    ...                   projection_dim=16, predictor_dim=8)
    >>> m.encoder.output_shape
    (None, 1280)
    """
    if source not in ("imagenet", "none"):
        raise ValueError(f"source={source!r}: pretraining starts from 'imagenet' or 'none'")
    tb = source == "none" if train_batchnorm is None else bool(train_batchnorm)
    transfer = build_transfer_model(backbone, "binary", 2, freeze="none",
                                    weights="imagenet" if source == "imagenet" else None,
                                    input_size=input_size, seed=seed, train_batchnorm=tb)
    encoder = feature_extractor(transfer)
    z = _mlp(encoder.output, [projection_dim] * 3, "ssl_projector", last_bn=True, seed=seed)
    p = _mlp(z, [predictor_dim, projection_dim], "ssl_predictor", last_bn=False,
             seed=seed + 50)
    joint = keras.Model(encoder.input, [z, p], name=f"{transfer.name}_simsiam")
    return SimSiam(transfer, encoder, joint)


def negative_cosine(p: Any, z: Any) -> Any:
    """``-cos(p, stop_gradient(z))`` per sample (the SimSiam distance ``D``).

    Examples
    --------
    >>> import numpy as np
    >>> d = negative_cosine(np.ones((1, 3), "float32"), np.full((1, 3), 2.0, "float32"))
    >>> round(float(d[0]), 5)
    -1.0
    """
    import tensorflow as tf

    z = tf.stop_gradient(z)
    p = tf.math.l2_normalize(tf.cast(p, tf.float32), axis=-1)
    z = tf.math.l2_normalize(tf.cast(z, tf.float32), axis=-1)
    return -tf.reduce_sum(p * z, axis=-1)


def simsiam_learning_rate(global_batch: int, base: float = 0.05) -> float:
    """SimSiam's learning-rate rule: ``base x global batch / 256`` (Chen & He 2021, 4.1).

    Measured here: at batch 64 from ImageNet weights, 0.05 (four times the rule) killed the
    backbone's pooled features within three epochs; the rule's 0.0125 kept them and
    raised the linear probe (BENCHMARKS.md).

    Examples
    --------
    >>> simsiam_learning_rate(64), simsiam_learning_rate(512)
    (0.0125, 0.1)
    """
    return float(base) * int(global_batch) / 256


def make_optimizer(learning_rate: float, *, momentum: float = 0.9, weight_decay: float = 1e-4,
                   schedule: str = "cosine", total_steps: int = 1,
                   loss_scale: bool = False) -> Any:
    """SGD with momentum and weight decay, its rate constant or cosine-decayed to zero
    over ``total_steps`` (SimSiam's schedule); wrapped for float16 loss scaling if asked.

    Examples
    --------
    >>> make_optimizer(0.05, total_steps=10).__class__.__name__
    'SGD'
    """
    lr: Any = float(learning_rate)
    if schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(float(learning_rate),
                                                    decay_steps=max(1, int(total_steps)))
    opt = keras.optimizers.SGD(learning_rate=lr, momentum=momentum,
                               weight_decay=weight_decay or None)
    return keras.mixed_precision.LossScaleOptimizer(opt) if loss_scale else opt


def make_train_step(model: SimSiam, optimizer: Any, strategy: Any, global_batch: int, *,
                    backbone: bool = True) -> Any:
    """The compiled step ``step(view_1, view_2) -> (loss, z_1)`` of one GLOBAL batch
    (``z_1``: the first view's projections, gathered from every replica, for the collapse
    statistics of the embedding as it trains).

    Each replica's loss is its samples' share of the global mean, and the optimiser sums
    the gradients over the replicas: the same update as one device. Works under the
    default strategy (one device) and ``MirroredStrategy``. ``backbone=False`` trains the
    projector and predictor only (the warm-up: random heads must not send their first,
    meaningless gradients into pretrained backbone weights).

    Examples
    --------
    >>> import numpy as np, tensorflow as tf
    >>> m = build_simsiam("efficientnet_lite0", source="none", input_size=32,
    ...                   projection_dim=16, predictor_dim=8)
    >>> step = make_train_step(m, make_optimizer(0.01), tf.distribute.get_strategy(), 2)
    >>> x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    >>> loss, z = step(x, x[::-1])
    >>> -1.0 <= float(loss) <= 1.0, tuple(z.shape)
    (True, (2, 16))
    """
    import tensorflow as tf

    joint = model.joint
    with strategy.scope():
        optimizer.build(joint.trainable_variables)
    variables = joint.trainable_variables if backbone else [
        v for la in joint.layers if la.name.startswith("ssl_") for v in la.trainable_variables]

    def replica_step(v1, v2):
        with tf.GradientTape() as tape:
            z1, p1 = joint(v1, training=True)
            z2, p2 = joint(v2, training=True)
            per = 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
            loss = tf.reduce_sum(per) / float(global_batch)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, tf.cast(z1, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(v1, v2):
        loss, z1 = strategy.run(replica_step, args=(v1, v2))
        return strategy.reduce("SUM", loss, axis=None), strategy.gather(z1, axis=0)

    return step
