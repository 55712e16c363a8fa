"""Training on several devices or machines with ``tf.distribute``, and mixed precision.

Modes (``train.distribute``):

- ``none``: the default strategy (one device);
- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the local GPUs (or, for tests,
  several logical CPU devices);
- ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` across machines,
  configured by the standard ``TF_CONFIG`` environment variable of each worker::

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Every worker runs the same command; worker 0 is the chief and the only one that writes
  the run directory (the others write into a scratch folder that is deleted).
- ``auto``: ``mirrored`` when several GPUs are visible, ``multi_worker`` when ``TF_CONFIG``
  names more than one worker, else ``none``.

Batch size and learning rate: ``batch_size`` is the GLOBAL batch (split over the replicas),
so a run gives the same updates whatever the number of devices. To use more devices for a
bigger batch, scale it yourself and scale the learning rate with it
(:func:`scale_learning_rate`: linear rule of Goyal et al. 2017, or square root).

Mixed precision (:func:`set_mixed_precision`): ``mixed_float16`` on GPUs,
``mixed_bfloat16`` on CPUs/TPUs that support it; the transfer model's head output is
float32 in every policy (``dtype="float32"`` on ``head_output``), so losses and
probabilities keep full precision.

Examples
--------
>>> from imaging_tl.distribute import resolve_mode, scale_learning_rate
>>> resolve_mode("none")
'none'
>>> scale_learning_rate(1e-3, global_batch=256, base_batch=32)
0.008
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MODES", "PRECISIONS", "ClusterInfo", "cluster_info", "fit_distributed", "make_strategy",
    "resolve_mode", "scale_learning_rate", "set_mixed_precision",
]

MODES = ("none", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class ClusterInfo:
    """This process's place in a ``TF_CONFIG`` cluster.

    Examples
    --------
    >>> cluster_info('{"cluster": {"worker": ["a:1", "b:2"]}, '
    ...              '"task": {"type": "worker", "index": 1}}')
    ClusterInfo(task_type='worker', task_index=1, n_workers=2, is_chief=False)
    """

    task_type: str
    task_index: int
    n_workers: int
    is_chief: bool


def cluster_info(tf_config: str | dict | None = None) -> ClusterInfo:
    """Parse ``TF_CONFIG`` (default: the environment). No ``TF_CONFIG``: a single chief.

    The chief is the ``chief`` task if the cluster has one, else worker 0 (TensorFlow's
    convention).

    Raises
    ------
    ValueError
        ``TF_CONFIG`` is not valid JSON or lacks ``cluster`` / ``task``.

    Examples
    --------
    >>> cluster_info({}).is_chief
    True
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG", "")
    if isinstance(tf_config, str):
        if not tf_config.strip():
            return ClusterInfo("worker", 0, 1, True)
        try:
            tf_config = json.loads(tf_config)
        except ValueError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not tf_config:
        return ClusterInfo("worker", 0, 1, True)
    try:
        cluster, task = tf_config["cluster"], tf_config["task"]
        ttype, index = str(task["type"]), int(task["index"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"TF_CONFIG needs cluster and task.type/index: {exc!r}") from None
    n = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    chief = ttype == "chief" or (ttype == "worker" and index == 0 and "chief" not in cluster)
    return ClusterInfo(ttype, index, n, chief)


def _n_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_mode(mode: str = "auto") -> str:
    """``auto`` -> ``mirrored`` (several GPUs), ``multi_worker`` (TF_CONFIG cluster) or ``none``.

    Examples
    --------
    >>> resolve_mode("mirrored")
    'mirrored'
    """
    if mode in MODES:
        return mode
    if mode != "auto":
        raise ValueError(f"train.distribute={mode!r}: choose auto, {', '.join(MODES)}")
    if cluster_info().n_workers > 1:
        return "multi_worker"
    return "mirrored" if _n_gpus() > 1 else "none"


def make_strategy(mode: str = "auto", *, devices: list[str] | None = None) -> Any:
    """The ``tf.distribute.Strategy`` for ``mode`` (see the module notes).

    Parameters
    ----------
    mode : {"auto", "none", "mirrored", "multi_worker"}
    devices : list of str, optional
        Devices of a mirrored strategy (default: all local GPUs, else the CPU).

    Examples
    --------
    >>> make_strategy("none").num_replicas_in_sync
    1
    """
    import tensorflow as tf

    mode = resolve_mode(mode)
    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    info = cluster_info()
    if info.n_workers < 1:
        raise ValueError("train.distribute=multi_worker needs TF_CONFIG with a cluster")
    return tf.distribute.MultiWorkerMirroredStrategy()


def scale_learning_rate(base_lr: float, global_batch: int, base_batch: int,
                        rule: str = "linear") -> float:
    """Learning rate for ``global_batch`` when ``base_lr`` was tuned at ``base_batch``.

    ``linear`` (Goyal et al. 2017; use a warm-up for large factors), ``sqrt`` (Adam-style
    optimisers often prefer it) or ``none``.

    Examples
    --------
    >>> round(scale_learning_rate(0.1, 64, 32, "sqrt"), 4)
    0.1414
    """
    if global_batch < 1 or base_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got {global_batch} and {base_batch}")
    factor = global_batch / base_batch
    if rule == "linear":
        return base_lr * factor
    if rule == "sqrt":
        return base_lr * math.sqrt(factor)
    if rule == "none":
        return base_lr
    raise ValueError(f"rule={rule!r}: choose linear, sqrt or none")


def set_mixed_precision(policy: str = "float32") -> str:
    """Set Keras' global dtype policy; returns the policy now in force.

    ``mixed_float16`` needs a GPU (on CPU it runs, slowly, so it is refused);
    ``mixed_bfloat16`` works on CPUs and TPUs. Build the model AFTER this call.

    Examples
    --------
    >>> set_mixed_precision("float32")
    'float32'
    """
    import keras

    if policy not in PRECISIONS:
        raise ValueError(f"mixed_precision={policy!r}: choose {', '.join(PRECISIONS)}")
    if policy == "mixed_float16" and _n_gpus() == 0:
        raise ValueError("mixed_precision=mixed_float16 needs a GPU (none is visible); use "
                         "mixed_bfloat16 on CPU")
    keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy().name


def fit_distributed(
    build_model: Callable[[], Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    strategy: Any,
    global_batch: int,
    epochs: int = 1,
    loss: str = "binary_crossentropy",
    learning_rate: float = 0.01,
) -> tuple[Any, dict[str, list[float]]]:
    """Build and train a model under ``strategy`` on arrays, with a fixed batch order.

    The model and its optimiser (SGD) are created inside ``strategy.scope()``; the data go
    in as a ``tf.data`` pipeline of GLOBAL batches in array order (no shuffle), split over
    the replicas (and, multi-worker, sharded by element over the workers); each replica's
    loss is averaged over the global batch (``tf.nn.compute_average_loss``) and the
    gradients are summed across replicas, so one device and N devices make the same updates
    and reach the same weights within float tolerance.

    A custom step (``strategy.run``) rather than ``model.fit``: Keras 3.15's ``fit`` fails
    under ``MultiWorkerMirroredStrategy`` (its symbolic build reduces a per-replica batch).

    Parameters
    ----------
    build_model : callable
        Returns an uncompiled Keras model; called inside the strategy's scope.
    x, y : numpy.ndarray
    strategy : tf.distribute.Strategy
    global_batch : int
        Batch over all replicas and workers.
    epochs : int
    loss : str
        A Keras loss name giving per-sample losses.
    learning_rate : float

    Returns
    -------
    (keras.Model, dict)
        The trained model and ``{"loss": [mean loss per epoch]}``.

    Examples
    --------
    >>> import keras
    >>> s = make_strategy("none")
    >>> m, h = fit_distributed(lambda: keras.Sequential([keras.Input((2,)),
    ...                        keras.layers.Dense(1, activation="sigmoid")]),
    ...                        np.zeros((4, 2), "float32"), np.zeros(4, "float32"),
    ...                        strategy=s, global_batch=2)
    >>> len(h["loss"])
    1
    """
    import keras
    import tensorflow as tf

    y = np.asarray(y, np.float32).reshape(len(y), -1)
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), y)).batch(global_batch)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = strategy.experimental_distribute_dataset(ds.with_options(opts))
    loss_fn = keras.losses.get(loss)
    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.SGD(learning_rate)
        optimizer.build(model.trainable_variables)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            pred = tf.cast(model(xb, training=True), tf.float32)
            per_sample = loss_fn(yb, pred)
            step_loss = tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch)
        grads = tape.gradient(step_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return step_loss

    @tf.function
    def train_step(xb, yb):
        per_replica = strategy.run(replica_step, args=(xb, yb))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    history: dict[str, list[float]] = {"loss": []}
    for _ in range(int(epochs)):
        losses = [float(train_step(xb, yb)) for xb, yb in ds]
        history["loss"].append(float(np.mean(losses)))
    return model, history
