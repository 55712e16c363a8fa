"""Bad input: every failure is a ScanReadError subclass naming the file and the reason."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import skimage.io
from pydicom.data import get_testdata_file

from imaging_tl import ScanReadError, read_scan
from imaging_tl.io import (
    CorruptPixelDataError,
    FileUnreadableError,
    InconsistentHeaderError,
    MissingDecoderError,
    NoPixelDataError,
    NotAnImageError,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _file(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


@pytest.mark.parametrize(
    "content",
    [b"patient notes, not an image\n" * 20, b"", b"{\"a\": 1}", bytes(range(256)) * 4],
    ids=["text", "empty", "json", "binary"],
)
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(content)
    with pytest.raises(NotAnImageError) as info:
        read_scan(path)
    assert str(path) in str(info.value)
    assert "not a DICOM" in info.value.reason


def test_force_read_garbage_is_rejected(tmp_path: Path) -> None:
    """pydicom's force=True "reads" a text file; the loader must not accept that."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\x08\x00 this is only text that starts like a tag" * 10)
    pydicom.dcmread(path, force=True)  # no error from pydicom itself
    with pytest.raises(NotAnImageError):
        read_scan(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FileUnreadableError, match="no such file") as info:
        read_scan(tmp_path / "nope.dcm")
    assert isinstance(info.value, OSError) and isinstance(info.value, ScanReadError)
    with pytest.raises(FileUnreadableError, match="folder"):
        read_scan(tmp_path)


def test_no_pixel_data_names_the_kind() -> None:
    with pytest.raises(NoPixelDataError, match="RT Plan Storage"):
        read_scan(_file("rtplan.dcm"))
    with pytest.raises(NoPixelDataError, match="SR Storage"):
        read_scan(_file("test-SR.dcm"))


def test_truncated_native_pixel_data(tmp_path: Path) -> None:
    data = _file("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-1000])
    with pytest.raises(CorruptPixelDataError, match="truncated"):
        read_scan(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm.gz"
    path.write_bytes(gzip.compress(_file("CT_small.dcm").read_bytes())[:5000])
    with pytest.raises(CorruptPixelDataError, match="gzip"):
        read_scan(path)


def test_corrupt_compressed_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("JPEG2000.dcm"))
    frames = list(pydicom.encaps.generate_frames(ds.PixelData))
    broken = frames[0][:40] + bytes(len(frames[0]) - 40)  # header kept, codestream zeroed
    ds.PixelData = pydicom.encaps.encapsulate([broken])
    path = tmp_path / "j2k.dcm"
    ds.save_as(path)
    with pytest.raises(CorruptPixelDataError, match="JPEG 2000") as info:
        read_scan(path)
    assert str(path) in str(info.value)


def test_inconsistent_header(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.BitsStored = 20  # more than the 16 allocated
    path = tmp_path / "bits.dcm"
    ds.save_as(path)
    with pytest.raises(InconsistentHeaderError, match=r"BitsStored \(20\).*BitsAllocated \(16\)"):
        read_scan(path)
    del ds.Rows
    ds.BitsStored = 16
    ds.save_as(path)
    with pytest.raises(InconsistentHeaderError, match="lacks Rows"):
        read_scan(path)


def test_corrupt_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    skimage.io.imsave(path, np.arange(10000, dtype=np.uint8).reshape(100, 100) % 251,
                      check_contrast=False)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(CorruptPixelDataError, match="PNG"):
        read_scan(path)


def test_missing_decoder_names_the_package() -> None:
    """Run where the JPEG 2000 decoders cannot be imported (as on a bare install)."""
    code = (
        "import sys\n"
        "for m in ('openjpeg', 'PIL', 'gdcm', 'pylibjpeg'):\n"
        "    sys.modules[m] = None  # makes the import fail, as if not installed\n"
        "from imaging_tl import read_scan\n"
        "from imaging_tl.io.census import census_row\n"
        f"p = {str(_file('JPEG2000.dcm'))!r}\n"
        "try:\n"
        "    read_scan(p)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, '|', e.reason)\n"
        "row = census_row(p)\n"
        "print(row['error'], '|', row['decoder'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.strip().splitlines()
    assert first.startswith(MissingDecoderError.__name__)
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in first
    assert second == "MissingDecoderError | pip install pylibjpeg pylibjpeg-openjpeg"


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("JPEG2000.dcm"))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # no decoder exists
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MissingDecoderError, match="MPEG2"):
        read_scan(path)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "OBXXXX1A.dcm", "zipMR.gz"]
)
def test_damaged_files_raise_scan_read_errors_only(tmp_path: Path, name: str) -> None:
    """Truncated or byte-flipped copies of real files: a ScanReadError or a correct read,
    never another exception (pydicom converts values lazily and raises many types; a Rust
    decoder may even panic), and the census records every one as a row."""
    from imaging_tl.io.census import census_row

    rng = np.random.default_rng(7)
    data = _file(name).read_bytes()
    path = tmp_path / "damaged"
    for i in range(16):
        damaged = bytearray(data)
        if i % 2 == 0:
            damaged = damaged[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, min(len(data), 3000), size=int(rng.integers(1, 20))):
                damaged[int(pos)] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        try:
            scan = read_scan(path)
        except ScanReadError as exc:
            assert exc.path == str(path) and exc.reason
        else:
            assert scan.pixels.dtype == np.float32
        row = census_row(path)
        assert row["status"] == "ok" or row["error"].endswith("Error")
        assert row["error"] in (None, "NotAnImageError", "NoPixelDataError",
                                "CorruptPixelDataError", "InconsistentHeaderError",
                                "UnsupportedImageError", "MissingDecoderError")
