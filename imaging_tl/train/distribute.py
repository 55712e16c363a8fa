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

Batch size and learning rate (:func:`plan_distribution`, used by ``imaging-tl run``): the
configured ``train.batch_size`` is the batch of ONE replica; the global batch is that times
the number of replicas (devices x workers), and each phase's learning rate is scaled by
``train.scale_learning_rate`` (:func:`scale_learning_rate`: ``linear``, the rule of Goyal
et al. 2017, by default; ``sqrt``; or ``none``). One device: nothing changes. The functions
that train (:func:`imaging_tl.train.train`, :func:`distributed_fit`) take the GLOBAL batch.

Mixed precision (:func:`set_mixed_precision`): ``mixed_float16`` on GPUs (with loss
scaling: :func:`imaging_tl.train.train` wraps the optimiser in Keras'
``LossScaleOptimizer``), ``mixed_bfloat16`` on CPUs/TPUs that support it; ``auto`` picks
``mixed_float16`` on a GPU and ``none`` (float32) on CPU. The transfer model's head output
is float32 in every policy (``dtype="float32"`` on ``head_output``), so losses and
probabilities keep full precision.

Examples
--------
>>> from imaging_tl.train.distribute import resolve_mode, scale_learning_rate
>>> resolve_mode("none")
'none'
>>> scale_learning_rate(1e-3, global_batch=256, base_batch=32)
0.008
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MODES", "PRECISIONS", "ClusterInfo", "DistributionPlan", "cluster_info", "distributed_fit",
    "make_strategy", "n_gpus", "plan_distribution", "resolve_mode", "resolve_precision",
    "scale_learning_rate", "set_mixed_precision", "shard_by_data",
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


def n_gpus() -> int:
    """The number of GPUs TensorFlow sees."""
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
    return "mirrored" if n_gpus() > 1 else "none"


def make_strategy(mode: str = "auto", *, devices: list[str] | None = None) -> Any:
    """The ``tf.distribute.Strategy`` for ``mode`` (see the module notes).

    Parameters
    ----------
    mode : {"auto", "none", "mirrored", "multi_worker"}
    devices : list of str, optional
        Devices of a mirrored strategy (default: all local GPUs, else all logical CPU
        devices, normally one).

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
        if devices is None and not tf.config.list_physical_devices("GPU"):
            # no GPU: every logical CPU device (several only where a user configured them)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
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


def resolve_precision(policy: str = "none") -> str:
    """A Keras policy name for ``train.mixed_precision``: ``none`` -> ``float32``, ``auto`` ->
    ``mixed_float16`` when a GPU is visible, else ``float32``.

    Examples
    --------
    >>> resolve_precision("none"), resolve_precision("mixed_bfloat16")
    ('float32', 'mixed_bfloat16')
    """
    if policy == "none":
        return "float32"
    if policy == "auto":
        return "mixed_float16" if n_gpus() > 0 else "float32"
    if policy not in PRECISIONS:
        raise ValueError(f"mixed_precision={policy!r}: choose none, auto, "
                         f"{', '.join(PRECISIONS[1:])}")
    return policy


def set_mixed_precision(policy: str = "float32") -> str:
    """Set Keras' global dtype policy; returns the policy now in force.

    ``mixed_float16`` needs a GPU (on CPU it runs, slowly, so it is refused);
    ``mixed_bfloat16`` works on CPUs and TPUs. ``none`` and ``auto`` as in
    :func:`resolve_precision`. Build the model AFTER this call.

    Examples
    --------
    >>> set_mixed_precision("float32")
    'float32'
    """
    import keras

    if policy in ("none", "auto"):
        policy = resolve_precision(policy)
    if policy not in PRECISIONS:
        raise ValueError(f"mixed_precision={policy!r}: choose {', '.join(PRECISIONS)}")
    if policy == "mixed_float16" and n_gpus() == 0:
        raise ValueError("mixed_precision=mixed_float16 needs a GPU (none is visible); use "
                         "mixed_bfloat16 on CPU")
    keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy().name


@dataclass(frozen=True)
class DistributionPlan:
    """How one run trains: strategy, replicas, batches, learning-rate factor, precision.

    Attributes
    ----------
    mode : {"none", "mirrored", "multi_worker"}
    strategy : tf.distribute.Strategy
    replicas : int
        Replicas in sync over all workers.
    workers : int
    is_chief : bool
        Whether this process writes the run directory.
    task_index : int
    per_replica_batch, global_batch : int
    lr_rule : {"linear", "sqrt", "none"}
    lr_factor : float
        Every phase's learning rate is multiplied by this.
    precision : str
        Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``).

    Examples
    --------
    >>> p = plan_distribution("none", per_replica_batch=8)
    >>> p.global_batch, p.lr_factor, p.is_chief
    (8, 1.0, True)
    """

    mode: str
    strategy: Any
    replicas: int
    workers: int
    is_chief: bool
    task_index: int
    per_replica_batch: int
    global_batch: int
    lr_rule: str
    lr_factor: float
    precision: str

    @property
    def distributed(self) -> bool:
        """True under a strategy other than TensorFlow's default (one device)."""
        return self.mode != "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``run.json`` (the strategy by its class name)."""
        return {"mode": self.mode, "strategy": type(self.strategy).__name__,
                "replicas": self.replicas, "workers": self.workers,
                "task_index": self.task_index, "per_replica_batch": self.per_replica_batch,
                "global_batch": self.global_batch, "learning_rate_rule": self.lr_rule,
                "learning_rate_factor": self.lr_factor, "mixed_precision": self.precision}

    def describe(self) -> str:
        """One log line: the rule applied and its numbers."""
        where = f"{self.replicas} replica(s)" + (f" on {self.workers} workers"
                                                 if self.workers > 1 else "")
        return (f"training: {self.mode} ({type(self.strategy).__name__}), {where}; batch "
                f"{self.per_replica_batch} per replica x {self.replicas} = global batch "
                f"{self.global_batch}; learning rates x {self.lr_factor:g} ({self.lr_rule} "
                f"rule); precision {self.precision}")


def plan_distribution(mode: str = "auto", *, per_replica_batch: int = 32,
                      lr_rule: str = "linear", precision: str = "none",
                      devices: list[str] | None = None) -> DistributionPlan:
    """Create the strategy and apply the batch / learning-rate rule (see the module notes).

    Call it before the model is built (``multi_worker``: before any other TensorFlow
    work). The precision is resolved here, not set: set it with :func:`set_mixed_precision`
    just before building the model.

    Raises
    ------
    ValueError
        An unknown mode, rule or precision, or ``multi_worker`` without a ``TF_CONFIG``
        cluster.

    Examples
    --------
    >>> plan_distribution("none", per_replica_batch=16, lr_rule="none").describe()[:24]
    'training: none (_Default'
    """
    if lr_rule not in ("linear", "sqrt", "none"):
        raise ValueError(f"scale_learning_rate={lr_rule!r}: choose linear, sqrt or none")
    if per_replica_batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {per_replica_batch}")
    resolved = resolve_mode(mode)
    policy = resolve_precision(precision)
    if resolved == "multi_worker" and not os.environ.get("TF_CONFIG", "").strip():
        raise ValueError("train.distribute=multi_worker needs the TF_CONFIG environment "
                         "variable with a cluster of workers (see imaging_tl.distribute)")
    strategy = make_strategy(resolved, devices=devices)
    replicas = int(strategy.num_replicas_in_sync)
    info = cluster_info() if resolved == "multi_worker" else ClusterInfo("worker", 0, 1, True)
    global_batch = per_replica_batch * replicas
    factor = scale_learning_rate(1.0, global_batch, per_replica_batch, lr_rule)
    return DistributionPlan(resolved, strategy, replicas, max(info.n_workers, 1),
                            info.is_chief, info.task_index, per_replica_batch, global_batch,
                            lr_rule, float(factor), policy)


def distributed_fit(fit_model: Any, strategy: Any, data: Any, val: Any, *, first: int,
                    epochs: int, steps: int | None, task: str, sparse: bool,
                    callbacks: list[Any]) -> None:
    """``fit`` for a ``tf.distribute`` strategy: one custom step for every strategy.

    Keras 3.15's ``fit`` fails under ``MultiWorkerMirroredStrategy`` (it reduces scalar
    logs along axis 0); this loop works under it and under ``MirroredStrategy`` alike.
    ``data`` yields GLOBAL batches; each replica's loss is its share of the global mean
    (the sum over its samples / the global count, so uneven last batches weigh right) and
    the optimiser sums the gradients over the replicas: the same updates as one device.
    Training metrics see the gathered global batch, validation runs on every worker on its
    own (no collectives), and the early-stopping decision is shared (any worker stops: all
    stop). ``fit_model`` is compiled (its optimiser is used); ``callbacks`` get Keras'
    epoch hooks with the same log names as ``fit``.
    """
    import keras

    from imaging_tl.train.compile import loss_and_metrics

    train_metrics = loss_and_metrics(task, sparse)[1]
    with strategy.scope():
        fit_model.optimizer.build(fit_model.trainable_variables)
    dist = strategy.experimental_distribute_dataset(shard_by_data(_as_dataset(data)))
    loss_mean = keras.metrics.Mean()
    train_step = _train_step(fit_model, strategy, task, sparse, loss_mean, train_metrics)
    evaluate_step = _evaluate_step(fit_model, task, sparse)
    cbs = keras.callbacks.CallbackList(callbacks, model=fit_model)
    fit_model.stop_training = False
    it = iter(dist) if steps is not None else None
    cbs.on_train_begin()
    for epoch in range(first, epochs):
        cbs.on_epoch_begin(epoch)
        for m in (loss_mean, *train_metrics):
            m.reset_state()
        for batch in ((next(it) for _ in range(steps)) if it is not None else dist):
            train_step(tuple(batch))
        logs = {"loss": float(loss_mean.result())}
        logs |= {m.name: float(m.result()) for m in train_metrics}
        if val is not None:
            logs |= local_evaluate(evaluate_step, val, task, sparse)
        cbs.on_epoch_end(epoch, logs)
        if _stop_anywhere(strategy, fit_model.stop_training):
            break
    cbs.on_train_end()


def _as_dataset(data: Any) -> Any:
    """A ``tf.data.Dataset`` of the batches ``data`` yields (a generator is wrapped)."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return data
    first_batch = next(iter(data))
    spec = tuple(tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype))
                 for a in first_batch)

    def again():
        yield first_batch
        yield from data

    return tf.data.Dataset.from_generator(again, output_signature=spec)


def shard_by_data(data: Any) -> Any:
    """``data`` (a dataset of GLOBAL batches) set to be split by element across workers.

    Every worker builds the same seeded batches and keeps its replicas' share of each
    (``AutoShardPolicy.DATA``; the default would look for input files to split, and there
    are none: the batches are read from the array cache), so the workers together train
    on the batches one device would.

    Examples
    --------
    >>> import tensorflow as tf
    >>> ds = shard_by_data(tf.data.Dataset.range(4).batch(2))
    >>> ds.options().experimental_distribute.auto_shard_policy.name
    'DATA'
    """
    import tensorflow as tf

    opts = tf.data.Options()
    # every worker builds the same seeded batches; each keeps its replicas' share
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(opts)


def _train_step(fit_model: Any, strategy: Any, task: str, sparse: bool, loss_mean: Any,
                train_metrics: list[Any]) -> Any:
    """The compiled step of one GLOBAL batch: replica losses, summed gradients, metrics."""
    import tensorflow as tf

    from imaging_tl.train.compile import loss_and_metrics

    loss_obj = loss_and_metrics(task, sparse, per_sample=True)[0]
    opt, variables = fit_model.optimizer, fit_model.trainable_variables
    n_replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        x, y = batch[0], batch[1]
        w = batch[2] if len(batch) > 2 else None
        n = tf.distribute.get_replica_context().all_reduce(
            "SUM", tf.cast(tf.shape(x)[0], tf.float32))
        with tf.GradientTape() as tape:
            pred = fit_model(x, training=True)
            loss = tf.reduce_sum(loss_obj(y, pred, sample_weight=w)) / tf.maximum(n, 1.0)
            if fit_model.losses:
                loss += tf.add_n(fit_model.losses) / n_replicas
            scaled = opt.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss, y, pred

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        loss, y, pred = strategy.run(replica_step, args=(batch,))
        # metrics of the global batch, updated in the graph (no host round trip per step)
        y, pred = strategy.gather(y, axis=0), strategy.gather(pred, axis=0)
        loss_mean.update_state(strategy.reduce("SUM", loss, axis=None),
                               sample_weight=tf.cast(tf.shape(y)[0], tf.float32))
        for m in train_metrics:
            m.update_state(y, pred)

    return train_step


def _evaluate_step(fit_model: Any, task: str, sparse: bool) -> Any:
    import tensorflow as tf

    from imaging_tl.train.compile import loss_and_metrics

    val_loss_obj = loss_and_metrics(task, sparse, per_sample=True)[0]

    def eval_fn(xb, yb):
        # the loss inside the same graph as the output, as Keras does: a sigmoid/softmax
        # output keeps its logits there, so the loss is not clipped at 1e-7
        pred = fit_model(xb, training=False)
        return pred, val_loss_obj(yb, pred)

    return tf.function(eval_fn, reduce_retracing=True)


def _stop_anywhere(strategy: Any, flag: bool) -> bool:
    """One early-stopping decision for all workers: any worker stops, all stop.

    Workers on other machines may round their validation metrics differently, and one
    worker leaving early would hang the rest in the next collective.
    """
    import tensorflow as tf

    votes = strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
        "SUM", tf.constant(float(flag))))
    return bool(strategy.experimental_local_results(votes)[0] > 0)


def local_evaluate(evaluate_step: Any, val: Any, task: str, sparse: bool) -> dict[str, float]:
    """``val_*`` logs of one process (Keras' names: loss as the mean per-sample loss)."""
    import tensorflow as tf

    from imaging_tl.train.compile import loss_and_metrics

    metrics = loss_and_metrics(task, sparse)[1]
    if isinstance(val, tf.data.Dataset):
        batches: Any = ((b[0], b[1]) for b in val)
    else:
        x, y = val
        batches = ((x[i:i + 256], y[i:i + 256]) for i in range(0, len(y), 256))
    total, count = 0.0, 0
    for xb, yb in batches:
        pred, per = evaluate_step(tf.convert_to_tensor(xb, tf.float32),
                                  tf.convert_to_tensor(yb))
        total, count = total + float(tf.reduce_sum(per)), count + int(tf.shape(per)[0])
        for m in metrics:
            m.update_state(yb, pred)
    return {"val_loss": total / max(count, 1)} | {f"val_{m.name}": float(m.result())
                                                  for m in metrics}
