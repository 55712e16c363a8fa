"""Fixtures shared by the whole suite.

Heavy objects (the pretrained backbone) are built once per session; TensorFlow is only
imported by the fixtures that need it, so io/stages tests stay light.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def pydicom_test_dir() -> Path:
    """pydicom's bundled test files (real DICOM written by others)."""
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """The extra files of the ``pydicom-data`` package (imports as ``data_store``)."""
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data"


@pytest.fixture(scope="session")
def lite0_backbone():
    """efficientnet_lite0 with real ImageNet weights, built once per test session."""
    from imaging_tl.models import build_backbone

    return build_backbone("efficientnet_lite0", weights="imagenet", include_top=False)


@pytest.fixture(scope="session")
def lite0_classifier():
    """efficientnet_lite0 with its ImageNet 1000-class top, built once per session."""
    from imaging_tl.models import build_backbone

    return build_backbone("efficientnet_lite0", weights="imagenet", include_top=True)
