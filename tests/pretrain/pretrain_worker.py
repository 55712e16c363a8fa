"""One ``imaging_tl.pretrain`` process for the device tests (logical CPU devices must be set
before TensorFlow starts). Usage: python pretrain_worker.py CONFIG.json OUT N_LOGICAL_CPUS.
Prints ``RESULT {...}``: the run.json ``distribute`` record, the losses and the dtypes of
the saved model's weights."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def main() -> None:
    cfg_path, out, n_cpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import tensorflow as tf

    if n_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpus)
    from imaging_tl.models import load_transfer_model
    from imaging_tl.pretrain import pretrain

    result = pretrain(json.loads(open(cfg_path).read()), out=out, verbose=False)
    model = load_transfer_model(result.run_dir / "model.keras", compile=False)
    print("RESULT " + json.dumps({
        "distribute": result.record["distribute"],
        "loss": result.history["loss"].tolist(),
        "dtypes": sorted({str(w.dtype) for w in model.weights})}), flush=True)


if __name__ == "__main__":
    main()
