"""One ``imaging_tl.pipeline.run`` process for the distribute tests (a subprocess: logical
CPU devices and TF_CONFIG must be set before TensorFlow starts).

Usage: python run_worker.py CONFIG.json OUT_DIR N_LOGICAL_CPUS [INTERRUPT_AFTER_EPOCHS]

With INTERRUPT_AFTER_EPOCHS, the run is interrupted (KeyboardInterrupt) after that many
epochs of its first phase and then resumed in the same process with ``resume=OUT_DIR``.
Prints one JSON line ``RESULT {...}`` (role, run_dir, resumed_from, output dtype).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def main() -> None:
    cfg_path, out = sys.argv[1], sys.argv[2]
    n_cpus = int(sys.argv[3])
    interrupt = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    import tensorflow as tf

    if n_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpus)
    import keras

    from imaging_tl.pipeline import run

    cfg = json.loads(open(cfg_path).read())

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == interrupt:
                raise KeyboardInterrupt

    if interrupt:
        try:
            run(cfg, out=out, verbose=False, callbacks=[Stop()])
            raise SystemExit("the run was not interrupted")
        except KeyboardInterrupt:
            pass
        result = run(None, resume=out, verbose=False)
    else:
        result = run(cfg, out=out, verbose=False)
    print("RESULT " + json.dumps({"role": result.role, "run_dir": str(result.run_dir),
                                  "resumed_from": result.resumed_from}), flush=True)


if __name__ == "__main__":
    main()
