"""A small saved transfer model (real ImageNet weights) and real DICOM inputs for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE = 64
FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm",
         "MR_small_RLE.dcm"]


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory) -> Path:
    """efficientnet_lite0 (ImageNet weights) + a seeded binary head, with its contract."""
    import keras

    from imaging_tl.models import build_transfer_model, save_transfer_model
    from imaging_tl.stages import Pipeline, Resize, ToRGB, Window

    keras.utils.set_random_seed(0)
    model = build_transfer_model("efficientnet_lite0", "binary", ["normal", "finding"],
                                 input_size=SIZE)
    # a head with large weights: outputs spread over (0, 1), so disagreements would show
    dense = model.layers[-1]
    w, b = dense.get_weights()
    dense.set_weights([w * 40.0, b])
    pipe = Pipeline([Window(mode="range"), Resize(SIZE), ToRGB()])
    contract = model.imaging_tl_contract
    contract.preprocessing = {"stages": pipe.to_config(), "fingerprint": pipe.fingerprint()}
    path = tmp_path_factory.mktemp("engine_model") / "model.keras"
    save_transfer_model(model, path, contract)
    return path


@pytest.fixture(scope="session")
def real_files(pydicom_test_dir) -> list[Path]:
    return [pydicom_test_dir / f for f in FILES]


@pytest.fixture(scope="session")
def real_batch(saved_model, real_files) -> np.ndarray:
    """The real scans preprocessed with the model's own contract: (N, 64, 64, 3) in [0, 1]."""
    from imaging_tl.io import read_scan
    from imaging_tl.models import read_contract
    from imaging_tl.stages import Pipeline

    pipe = Pipeline.from_config(read_contract(saved_model).preprocessing["stages"])
    return np.stack([pipe(read_scan(f)).pixels for f in real_files]).astype(np.float32)
