"""Helpers for the stages tests."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut


def _pydicom_normalised(ds, index=0, prefer_lut=True):
    """pydicom's VOI output scaled to [0, 1] by the output range pydicom uses."""
    arr = ds.pixel_array
    mod = apply_modality_lut(arr, ds)
    voi = apply_voi_lut(mod, ds, index=index, prefer_lut=prefer_lut).astype(np.float64)
    if prefer_lut and "VOILUTSequence" in ds:
        bits = ds.VOILUTSequence[index].LUTDescriptor[2]
        return voi / (2**bits - 1)
    if ds.PixelRepresentation == 0:
        y_min, y_max = 0, 2**ds.BitsStored - 1
    else:
        y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min = y_min * ds.RescaleSlope + ds.RescaleIntercept
        y_max = y_max * ds.RescaleSlope + ds.RescaleIntercept
    return (voi - y_min) / (y_max - y_min)


@pytest.fixture(scope="session")
def pydicom_voi():
    """pydicom's reference VOI output, scaled to [0, 1] (see ``_pydicom_normalised``)."""
    return _pydicom_normalised
