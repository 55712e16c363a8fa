"""One training process for the distribute tests (run as a subprocess: TF's devices and
TF_CONFIG must be set before TensorFlow starts).

Usage: python dist_worker.py MODE OUT.npz [N_LOGICAL_CPUS]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    n_cpus = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    import numpy as np
    import tensorflow as tf

    if n_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpus)
    import keras

    from imaging_tl.train.distribute import cluster_info, distributed_fit, make_strategy

    devices = [f"/cpu:{i}" for i in range(n_cpus)] if mode == "mirrored" else None
    strategy = make_strategy(mode, devices=devices)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32").reshape(-1, 1)
    init = keras.initializers.GlorotUniform(seed=1)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init),
            keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    losses: list[float] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(logs["loss"])

    # the product's distributed step (as imaging_tl.train.train runs it under a strategy),
    # on global batches of 16 in array order
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    distributed_fit(model, strategy, data, None, first=0, epochs=3, steps=None, task="binary",
                    sparse=True, callbacks=[Record()])
    hist = {"loss": losses}
    if cluster_info().is_chief:  # only the chief writes results
        np.savez(out, *[np.asarray(w) for w in model.get_weights()],
                 loss=np.asarray(hist["loss"]), replicas=strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main()
