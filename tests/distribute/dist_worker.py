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

    from imaging_tl.distribute import cluster_info, fit_distributed, make_strategy

    devices = [f"/cpu:{i}" for i in range(n_cpus)] if mode == "mirrored" else None
    strategy = make_strategy(mode, devices=devices)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")

    def build():
        init = keras.initializers.GlorotUniform(seed=1)
        return keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init),
            keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init),
        ])

    model, hist = fit_distributed(build, x, y, strategy=strategy, global_batch=16, epochs=3,
                                  learning_rate=0.1)
    if cluster_info().is_chief:  # only the chief writes results
        np.savez(out, *[np.asarray(w) for w in model.get_weights()],
                 loss=np.asarray(hist["loss"]), replicas=strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main()
