"""PNG / JPEG / TIFF: 8- and 16-bit grey, RGB, RGBA, palette; 16 bits keep their range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png
import pytest
import skimage.io
from PIL import Image

from imaging_tl import read_scan
from imaging_tl.io import FrameOutOfRangeError
from imaging_tl.io.raster import read_raster_header

RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (12, 17), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (12, 17), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (12, 17, 3), dtype=np.uint16)


def _save(path: Path, arr: np.ndarray) -> Path:
    skimage.io.imsave(path, arr, check_contrast=False)
    return path


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize(
    "arr", [GREY8, GREY16, RGB8], ids=["grey8", "grey16", "rgb8"]
)
def test_lossless_round_trip(tmp_path: Path, ext: str, arr: np.ndarray) -> None:
    scan = read_scan(_save(tmp_path / f"a.{ext}", arr))
    assert scan.pixels.dtype == np.float32
    np.testing.assert_array_equal(scan.pixels, arr)
    bits = arr.dtype.itemsize * 8
    assert scan.meta["value_range"] == [0, 2**bits - 1]
    assert scan.meta["BitsStored"] == bits
    assert scan.is_colour == (arr.ndim == 3)
    assert scan.meta["PhotometricInterpretation"] == ("RGB" if arr.ndim == 3 else "MONOCHROME2")
    assert scan.meta["windows"] == [] and scan.meta["invert"] is False
    assert scan.meta["format"] == {"png": "png", "tif": "tiff"}[ext]
    assert scan.provenance[0] == f"read: {scan.meta['format']} {bits}-bit " + (
        "RGB" if arr.ndim == 3 else "grey"
    )


def test_16bit_grey_keeps_full_range(tmp_path: Path) -> None:
    arr = np.array([[0, 1, 255, 256, 65535]], np.uint16)
    scan = read_scan(_save(tmp_path / "a.png", arr))
    assert scan.pixels.tolist() == [[0, 1, 255, 256, 65535]]


def test_16bit_rgb_tiff(tmp_path: Path) -> None:
    # Pillow would silently give 8 bits here; tifffile keeps 16
    scan = read_scan(_save(tmp_path / "a.tif", RGB16))
    np.testing.assert_array_equal(scan.pixels, RGB16)
    assert scan.meta["value_range"] == [0, 65535]


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_rgb_png(tmp_path: Path, alpha: bool) -> None:
    # scikit-image/Pillow cannot write 16-bit colour PNG; pypng can (and reads it back)
    arr = np.concatenate([RGB16, GREY16[..., None]], axis=-1) if alpha else RGB16
    planes = arr.shape[-1]
    path = tmp_path / "a.png"
    with open(path, "wb") as f:
        png.Writer(17, 12, bitdepth=16, greyscale=False, alpha=alpha).write(
            f, arr.reshape(12, 17 * planes).tolist()
        )
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.pixels, RGB16)
    assert ("alpha: dropped" in scan.provenance) == alpha


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_rgba_alpha_dropped(tmp_path: Path, ext: str) -> None:
    rgba = np.concatenate([RGB8, GREY8[..., None]], axis=-1)
    scan = read_scan(_save(tmp_path / f"a.{ext}", rgba))
    np.testing.assert_array_equal(scan.pixels, RGB8)
    assert "alpha: dropped" in scan.provenance


def test_palette_png(tmp_path: Path) -> None:
    palette = RNG.integers(0, 256, (16, 3), dtype=np.uint8)
    index = RNG.integers(0, 16, (12, 17), dtype=np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(palette.ravel().tolist())
    im.save(tmp_path / "p.png")
    scan = read_scan(tmp_path / "p.png")
    np.testing.assert_array_equal(scan.pixels, palette[index])
    assert "palette: expanded to RGB" in scan.provenance
    # a grey palette stays grey
    grey = np.repeat(np.arange(16, dtype=np.uint8)[:, None] * 16, 3, axis=1)
    im.putpalette(grey.ravel().tolist())
    im.save(tmp_path / "g.png")
    scan = read_scan(tmp_path / "g.png")
    assert scan.pixels.shape == (12, 17) and not scan.is_colour
    np.testing.assert_array_equal(scan.pixels, index * 16)


@pytest.mark.parametrize("arr", [GREY8, RGB8], ids=["grey", "rgb"])
def test_jpeg(tmp_path: Path, arr: np.ndarray) -> None:
    smooth = np.repeat(np.repeat(arr[:4, :4], 8, axis=0), 8, axis=1)  # JPEG-friendly
    path = _save(tmp_path / "a.jpg", smooth)
    scan = read_scan(path)
    expected = np.asarray(Image.open(path))  # the decoder's own output
    np.testing.assert_array_equal(scan.pixels, expected)
    assert scan.pixels.shape == smooth.shape and scan.meta["format"] == "jpeg"
    assert np.abs(scan.pixels - smooth).mean() < 20  # and it is the picture we wrote


def test_extension_does_not_matter(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", GREY16)
    renamed = path.rename(tmp_path / "a.dcm")
    np.testing.assert_array_equal(read_scan(renamed).pixels, GREY16)


def test_frame_argument(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", GREY8)
    assert read_scan(path, frame=0).pixels.shape == (12, 17)
    with pytest.raises(FrameOutOfRangeError, match="one image"):
        read_scan(path, frame=1)


@pytest.mark.parametrize(
    "arr,ext", [(GREY16, "png"), (RGB8, "png"), (RGB16, "tif"), (GREY8, "jpg")]
)
def test_header_without_decode_agrees_with_read(tmp_path: Path, arr: np.ndarray,
                                                ext: str) -> None:
    path = _save(tmp_path / f"a.{ext}", arr)
    fmt = {"png": "png", "tif": "tiff", "jpg": "jpeg"}[ext]
    header = read_raster_header(path, str(path), fmt)
    meta = read_scan(path).meta
    for key in ("Rows", "Columns", "SamplesPerPixel", "BitsStored", "value_range",
                "PhotometricInterpretation"):
        assert header[key] == meta[key], key
