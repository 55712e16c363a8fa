"""One ``imaging_tl.pretrain`` process for the device and multi-worker tests (logical CPU
devices and TF_CONFIG must be set before TensorFlow starts).

Usage: python pretrain_worker.py CONFIG.json OUT N_LOGICAL_CPUS [INTERRUPT_AFTER [RESUME]]

With INTERRUPT_AFTER (epochs, 0: none), the run is interrupted (KeyboardInterrupt, as a
Ctrl-C) after that many epochs and the process ends, as a user's would; with RESUME, the
run directory RESUME is resumed instead (on every worker of a multi-worker run: the
chief's). Prints ``RESULT {...}``: the role, the run directory, the distribute record, the
losses and (the chief) the dtypes of the saved model's weights; or ``{"interrupted":
true}``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def main() -> None:
    cfg_path, out, n_cpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
    interrupt = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    resume = sys.argv[5] if len(sys.argv) > 5 else None
    import tensorflow as tf

    if n_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpus)
    from imaging_tl.models import load_transfer_model
    from imaging_tl.pretrain import pretrain

    def stop(epoch: int, row: dict) -> None:
        if epoch + 1 == interrupt:
            raise KeyboardInterrupt

    if resume:
        result = pretrain(resume=resume, verbose=False)
    else:
        try:
            result = pretrain(json.loads(open(cfg_path).read()), out=out, verbose=False,
                              on_epoch=[stop])
        except KeyboardInterrupt:
            print("RESULT " + json.dumps({"interrupted": True}), flush=True)
            return
    role = result.record.get("role", "chief")
    dtypes = []
    if role == "chief":
        model = load_transfer_model(result.run_dir / "model.keras", compile=False)
        dtypes = sorted({str(w.dtype) for w in model.weights})
    print("RESULT " + json.dumps({
        "role": role, "run_dir": str(result.run_dir),
        "distribute": result.record["distribute"],
        "loss": result.history["loss"].tolist(), "dtypes": dtypes}), flush=True)


if __name__ == "__main__":
    main()
