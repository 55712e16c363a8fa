"""Hostile and broken inputs: each defect found by probing gets its regression test.

Non-finite rescale values, zero header values, FIFOs, gzip bombs, decoder bombs, absurd
sizes and header-only census findings: always a typed ScanReadError naming the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from imaging_tl.io import (
    CorruptPixelDataError,
    DecompressionBombError,
    ImageTooLargeError,
    InconsistentHeaderError,
    InvalidHeaderValueError,
    NoPixelDataError,
    NotARegularFileError,
    ScanReadError,
    read_header,
    read_scan,
)
from imaging_tl.io.census import census_row, run_census

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CT = get_testdata_file("CT_small.dcm", download=False)
J2K = get_testdata_file("MR_small_jp2klossless.dcm", download=False)


def _ct(tmp_path: Path, name: str = "ct.dcm", **values: object) -> Path:
    ds = pydicom.dcmread(CT)
    for k, v in values.items():
        if v is None:
            del ds[k]
        else:
            setattr(ds, k, v)
    out = tmp_path / name
    ds.save_as(out)
    return out


# -- class 3: finite data ------------------------------------------------------------------
@pytest.mark.parametrize("tag,value", [
    ("RescaleSlope", "NaN"), ("RescaleSlope", "inf"), ("RescaleIntercept", "-inf"),
    ("RescaleSlope", "1e308"), ("RescaleIntercept", "1e300"), ("RescaleSlope", "0"),
])
def test_non_finite_or_absurd_rescale_is_refused_naming_the_tag(tmp_path, tag, value):
    path = _ct(tmp_path, **{tag: value})
    for read in (read_scan, read_header):
        with pytest.raises(InvalidHeaderValueError) as info:
            read(path)
        assert info.value.tag == tag and tag in info.value.reason
        assert str(path) in str(info.value)
    row = census_row(path)  # header-only census agrees
    assert row["status"] == "error" and row["error"] == "InvalidHeaderValueError"


@pytest.mark.parametrize("width", ["NaN", "inf", "0", "-5", "1e300"])
def test_invalid_window_is_dropped_not_used(tmp_path, width):
    path = _ct(tmp_path, WindowCenter="40", WindowWidth=width)
    scan = read_scan(path)
    assert scan.meta["windows"] == []  # the standard requires width >= 1: no window
    assert np.isfinite(scan.pixels).all()


def test_nan_float_pixel_data_is_refused(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    values = np.ones((64, 64), np.float32)
    values[3, 3] = np.nan
    del ds.PixelData
    for kw in ("BitsStored", "HighBit", "PixelRepresentation", "SmallestImagePixelValue",
               "LargestImagePixelValue"):
        if kw in ds:
            delattr(ds, kw)
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    out = tmp_path / "float.dcm"
    ds.save_as(out)
    with pytest.raises(CorruptPixelDataError, match="NaN or infinite"):
        read_scan(out)


# -- class 5: hangs and bombs --------------------------------------------------------------
def _in_thread(fn, timeout=20.0):
    box: dict[str, object] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "hung"
    return box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_directly_is_a_typed_error_and_never_hangs(tmp_path):
    fifo = tmp_path / "scan.dcm"
    os.mkfifo(fifo)
    box = _in_thread(lambda: read_scan(fifo))
    assert isinstance(box["error"], NotARegularFileError)
    assert "FIFO" in str(box["error"]) and str(fifo) in str(box["error"])
    box = _in_thread(lambda: read_header(fifo))
    assert isinstance(box["error"], NotARegularFileError)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_in_a_folder_is_reported_by_census_not_hung(tmp_path):
    _ct(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    box = _in_thread(lambda: run_census(tmp_path, tmp_path / "c.csv", progress=False))
    rows = {r["path"]: r for r in box["value"].rows}
    assert rows["pipe"]["error"] == "NotARegularFileError"
    assert rows["ct.dcm"]["status"] == "ok"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_table_helpers_skip_fifos(tmp_path):
    from imaging_tl.data.files import file_kind
    from imaging_tl.data.files import read_header as table_header

    fifo = tmp_path / "1.2.3"
    os.mkfifo(fifo)
    box = _in_thread(lambda: (file_kind(fifo), table_header(str(fifo))))
    assert box["value"] == (None, {})


def test_gzip_bomb_is_refused_quickly(tmp_path, monkeypatch):
    path = tmp_path / "bomb.dcm.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(bytes(128) + b"DICM")
        for _ in range(64):
            f.write(bytes(1 << 20))  # 64 MiB of zeros in ~64 KB
    assert path.stat().st_size < 200_000
    with pytest.raises(DecompressionBombError, match="gzip") as info:
        read_scan(path)
    assert isinstance(info.value, ImageTooLargeError) and str(path) in str(info.value)
    monkeypatch.setenv("IMAGING_TL_MAX_INFLATED_BYTES", str(1 << 20))
    with pytest.raises(DecompressionBombError, match="IMAGING_TL_MAX_INFLATED_BYTES"):
        read_scan(path)


def test_zero_filled_dicom_is_not_called_an_rt_plan(tmp_path):
    path = tmp_path / "zeros.dcm"
    path.write_bytes(bytes(128) + b"DICM" + bytes(4096))
    with pytest.raises(ScanReadError) as info:
        read_scan(path)
    assert "RT plan" not in str(info.value) and "structured report" not in str(info.value)
    assert isinstance(info.value, CorruptPixelDataError)


def test_rt_plan_message_names_its_sop_class():
    rtplan = get_testdata_file("rtplan.dcm", download=False)
    with pytest.raises(NoPixelDataError, match="RT Plan Storage"):
        read_scan(rtplan)


# -- class 6: typed errors, allocation limits ----------------------------------------------
def test_huge_frame_count_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(J2K)
    ds.NumberOfFrames = 999999999
    out = tmp_path / "frames.dcm"
    ds.save_as(out)
    from imaging_tl.io.series import read_slice_headers

    for read in (read_scan, read_header, read_slice_headers):
        with pytest.raises(ImageTooLargeError, match="max_pixels"):
            read(out)
    assert census_row(out)["error"] == "ImageTooLargeError"


def test_max_pixels_is_configurable(tmp_path, monkeypatch):
    assert read_scan(CT, max_pixels=128 * 128).pixels.shape == (128, 128)
    with pytest.raises(ImageTooLargeError):
        read_scan(CT, max_pixels=128 * 128 - 1)
    monkeypatch.setenv("IMAGING_TL_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="IMAGING_TL_MAX_PIXELS"):
        read_header(CT)
    assert census_row(CT)["error"] == "ImageTooLargeError"


def _with_declared_size(src, out: Path, at: int, packed: bytes) -> Path:
    """``src`` saved to ``out`` with ``packed`` written into its pixel data at ``at``."""
    ds = pydicom.dcmread(src)
    data = bytearray(ds.PixelData)
    data[at: at + len(packed)] = packed
    ds.PixelData = bytes(data)
    ds.save_as(out)
    return out


def test_jpeg2000_codestream_larger_than_header_is_refused(tmp_path):
    at = pydicom.dcmread(J2K).PixelData.find(b"\xff\x4f\xff\x51")
    out = _with_declared_size(J2K, tmp_path / "j2k.dcm", at + 8,
                              struct.pack(">II", 20000, 20000))  # Xsiz, Ysiz
    with pytest.raises(CorruptPixelDataError, match="20000 x 20000"):
        read_scan(out)
    assert census_row(out)["error"] == "CorruptPixelDataError"  # header-only agrees


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "JPEG-LL.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm"])
def test_jpeg_frame_larger_than_header_is_refused(tmp_path, name):
    # baseline, lossless and JPEG-LS: the frame header (SOF) is read before decoding
    src = get_testdata_file(name, download=False)
    data = pydicom.dcmread(src).PixelData
    at = next(i for i in range(len(data) - 1)
              if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC3, 0xF7))
    out = _with_declared_size(src, tmp_path / "jpeg.dcm", at + 5,
                              struct.pack(">HH", 20000, 20000))  # Y, X
    with pytest.raises(CorruptPixelDataError, match="JPEG frame header declares 20000 x 20000"):
        read_scan(out)
    assert census_row(out)["error"] == "CorruptPixelDataError"  # header-only agrees


def _png(path: Path, width: int, height: int, depth: int = 8, colour: int = 0) -> Path:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("depth,colour", [(8, 0), (16, 2)])
def test_png_declaring_huge_size_is_refused_from_its_header(tmp_path, depth, colour):
    path = _png(tmp_path / "big.png", 30000, 30000, depth, colour)
    with pytest.raises(ImageTooLargeError) as info:
        read_scan(path)
    assert str(path) in str(info.value)
    assert census_row(path)["error"] in ("ImageTooLargeError", "DecompressionBombError")


def test_pillow_decompression_bomb_is_typed(tmp_path):
    from PIL import Image

    path = tmp_path / "bomb.jpg"
    Image.new("L", (64, 64)).save(path)
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageTooLargeError):  # ours or Pillow's bomb check, typed either way
        read_scan(path, max_pixels=1 << 40)


def test_memory_error_becomes_typed():
    from imaging_tl.io.reader import typed_errors

    with pytest.raises(ImageTooLargeError, match="ran out of memory"):
        with typed_errors("x.dcm"):
            np.empty(1 << 62, np.uint8)


@pytest.mark.parametrize("values,error", [
    ({"BitsStored": 0}, InvalidHeaderValueError),
    ({"BitsStored": 20}, InconsistentHeaderError),
    ({"PixelRepresentation": 5}, InvalidHeaderValueError),
    ({"PhotometricInterpretation": "GARBAGE"}, InvalidHeaderValueError),
    ({"PhotometricInterpretation": "PALETTE COLOR"}, InconsistentHeaderError),
    ({"NumberOfFrames": 0}, InvalidHeaderValueError),
    ({"SamplesPerPixel": 0}, InvalidHeaderValueError),
    ({"BitsAllocated": 12}, InvalidHeaderValueError),
])
def test_header_only_census_flags_what_read_scan_refuses(tmp_path, values, error):
    path = _ct(tmp_path, **values)
    with pytest.raises(error):
        read_scan(path)
    row = census_row(path)
    assert row["status"] == "error" and row["error"] == error.__name__, row


def test_missing_pad_byte_is_not_called_truncated(tmp_path):
    ds = pydicom.dcmread(CT)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 9, 8, 8, 7
    ds.PixelRepresentation = 0
    del ds.RescaleSlope
    del ds.RescaleIntercept
    ds.PixelData = bytes(range(27)) + b"\x00"  # 27 bytes + pad
    out = tmp_path / "odd.dcm"
    ds.save_as(out)
    out.write_bytes(out.read_bytes()[:-1])  # the pad byte lost: every pixel still there
    assert read_scan(out).pixels.shape == (3, 9)
    row = census_row(out)
    assert row["status"] == "ok", row["reason"]


# -- class 7: 0 is a value -----------------------------------------------------------------
def test_zero_header_values_are_not_defaults(tmp_path):
    from imaging_tl.io.dicom_header import header_int, stored_range

    ds = pydicom.Dataset()
    ds.NumberOfFrames, ds.BitsStored, ds.BitsAllocated = 0, 0, 16
    assert header_int(ds, "NumberOfFrames", 1) == 0
    assert header_int(ds, "SamplesPerPixel", 1) == 1  # absent is absent
    assert stored_range(ds) is None  # BitsStored 0 is not BitsAllocated


def test_surplus_pixel_data_is_not_read_as_extra_frames(tmp_path):
    """Found by the fuzz harness: Columns 1 on a 128 x 128 file gave 128 'frames'."""
    path = _ct(tmp_path, Columns=1)
    with pytest.raises(CorruptPixelDataError, match="header declares"):
        read_scan(path)
