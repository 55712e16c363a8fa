"""One tiny pretraining run per session (real synthetic DICOM/PNG files, real ImageNet
weights, real SimSiam training at 32 px), shared by the tests of ``imaging_tl.pretrain``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ssl_images(tmp_path_factory) -> Path:
    """24 synthetic radiographs of 12 patients (SYN0001-SYN0012) with a labels.csv."""
    from imaging_tl.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("ssl_images")
    generate_dataset(root, n_patients=12, images_per_patient=2, seed=5, size=64,
                     difficulty="easy")
    return root


TEMPLATE = Path(__file__).resolve().parents[2] / "pipelines" / "pretrain.yaml"


def ssl_overrides(images: Path, runs: Path, cache: Path) -> list[str]:
    """``pipelines/pretrain.yaml`` at a tiny size: 32 px, batch 8, 2 epochs, a narrow
    projector, the probe every 2 epochs on the images' own labels."""
    return [f"data.folder={images}", f"output={runs}", f"cache_dir={cache}", "workers=1",
            "model.input_size=32", "pretrain.epochs=2", "pretrain.batch_size=8",
            "pretrain.learning_rate=0.1", "pretrain.projection_dim=32",
            "pretrain.predictor_dim=16", "pretrain.collapse_sample=16",
            "pretrain.mixed_precision=none", f"monitor.csv={images / 'labels.csv'}",
            "monitor.every=2", "monitor.test=0.5"]


@pytest.fixture(scope="session")
def ssl_config(ssl_images, tmp_path_factory) -> dict[str, Any]:
    """The tiny template, resolved, as a dict (what the session's run ran)."""
    from imaging_tl.config import load_pretrain_config

    over = ssl_overrides(ssl_images, tmp_path_factory.mktemp("ssl_runs"),
                         tmp_path_factory.mktemp("ssl_cache"))
    return load_pretrain_config(TEMPLATE, over).to_dict()


@pytest.fixture(scope="session")
def ssl_run(ssl_config, tmp_path_factory):
    """``pipelines/pretrain.yaml`` run end to end at the tiny size, once per session."""
    from imaging_tl.pretrain import pretrain

    return pretrain(copy.deepcopy(ssl_config),
                    out=tmp_path_factory.mktemp("ssl_finished") / "run", verbose=False)
