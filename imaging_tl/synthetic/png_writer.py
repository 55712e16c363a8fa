"""Writing synthetic images as 8- or 16-bit greyscale PNG files (with Pillow).

16-bit files keep the full precision (a common loss in other tools is truncating them to 8
bits on reading). A ``Comment`` text chunk says the image is synthetic. Pillow writes no
timestamp, so the same pixels give byte-identical files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imaging_tl.synthetic.dicom_writer import SYNTHETIC_COMMENT

__all__ = ["display_to_png_values", "write_png"]


def display_to_png_values(image: np.ndarray, bits: int) -> np.ndarray:
    """Quantise a display image in [0, 1] (dense = bright) to 8- or 16-bit integers.

    Parameters
    ----------
    image : numpy.ndarray
        Float values; clipped to [0, 1].
    bits : {8, 16}
        Bit depth.

    Returns
    -------
    numpy.ndarray
        uint8 or uint16.

    Examples
    --------
    >>> display_to_png_values(np.array([0.0, 0.5, 1.0]), 8)
    array([  0, 128, 255], dtype=uint8)
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    top = 2**bits - 1
    x = np.rint(np.clip(np.asarray(image, np.float64), 0.0, 1.0) * top)
    return x.astype(np.uint8 if bits == 8 else np.uint16)


def write_png(path: str | os.PathLike, image: np.ndarray, *, bits: int = 8) -> Path:
    """Write a display image (float in [0, 1], dense = bright) as a greyscale PNG.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (parent folders are created).
    image : numpy.ndarray
        H x W float in [0, 1].
    bits : {8, 16}
        Bit depth of the file.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> img = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_png(Path(d) / "x.png", img, bits=16)
    ...     Image.open(p).mode
    'I;16'
    """
    if np.asarray(image).ndim != 2:
        raise ValueError(f"image must be 2-D (H x W), got shape {np.asarray(image).shape}")
    values = display_to_png_values(image, bits)
    info = PngInfo()
    info.add_text("Comment", SYNTHETIC_COMMENT)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # uint16 arrays become mode "I;16" (16-bit greyscale PNG); uint8 arrays mode "L".
    Image.fromarray(values).save(out, format="PNG", pnginfo=info)
    return out
