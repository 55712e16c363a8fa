"""Seeded mutants of real image files, and a worker that checks the loader's invariant on them.

Invariant: :func:`imaging_tl.io.read_scan` returns finite float32 pixels whose shape agrees
with its ``meta`` (Rows, Columns, frames, samples), or raises a ``ScanReadError``, within a
time and a memory bound per file. The worker runs in a subprocess under ``RLIMIT_AS`` so a
bomb that escaped the limits shows up as a failure instead of swapping the machine, and a
hang or a crash (segfault) names the file being read.

Run as ``python tests/fuzz/fuzzlib.py worker LISTFILE`` (one path per line, as bytes in
hex); the test modules drive it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

#: Virtual memory of the worker process (bytes); its imports take about 1 GiB.
MEMORY_LIMIT = 6 << 30
#: Seconds one file may take.
TIME_LIMIT = 10.0
#: ``max_pixels`` the worker reads with (small, so that bombs are refused fast).
FUZZ_MAX_PIXELS = 1 << 26

ABSURD = {
    "Rows": [0, 1, 65535, 40000],
    "Columns": [0, 1, 65535, 40000],
    "NumberOfFrames": ["0", "999999999", "-3", "2", "x"],
    "BitsAllocated": [0, 1, 7, 12, 64, 255],
    "BitsStored": [0, 1, 33, 255],
    "HighBit": [0, 200],
    "PixelRepresentation": [0, 1, 5, 65535],
    "SamplesPerPixel": [0, 2, 3, 4, 65535],
    "RescaleSlope": ["NaN", "inf", "-inf", "1e308", "0", "-1", "1e-30"],
    "RescaleIntercept": ["NaN", "-inf", "1e300", "-1024"],
    "WindowCenter": ["NaN", "inf", "1e308", "40"],
    "WindowWidth": ["NaN", "0", "-5", "1e308", "0.5"],
    "PhotometricInterpretation": ["GARBAGE", "PALETTE COLOR", "RGB", "MONOCHROME1", "",
                                  "YBR_FULL_422", "HSV"],
}


def seed_files(sample_dir: Path | None = None) -> list[Path]:
    """The real files mutated: small pydicom test files, the project's samples."""
    from pydicom.data import get_testdata_file

    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
             "JPEG2000.dcm", "rtplan.dcm", "OBXXXX1A_2frame.dcm", "SC_rgb.dcm",
             "SC_rgb_rle.dcm", "US1_J2KR.dcm", "MR_small_jpeg_ls_lossless.dcm",
             "OT-PAL-8-face.dcm", "SC_ybr_full_uncompressed.dcm", "JPEG-lossy.dcm",
             "emri_small.dcm", "MR_small_bigendian.dcm", "no_meta.dcm", "ExplVR_BigEnd.dcm"]
    out = []
    for n in names:
        try:
            p = get_testdata_file(n, download=False)
        except Exception:  # noqa: BLE001 - a missing test file is skipped
            p = None
        if p and os.path.getsize(p) < 400_000:
            out.append(Path(p))
    if sample_dir is not None and sample_dir.is_dir():
        out += sorted(p for p in sample_dir.rglob("*") if p.is_file()
                      and p.suffix.lower() in (".dcm", ".png", ".jpg", ".jpeg"))[:12]
    return out


def raster_seeds(folder: Path) -> list[Path]:
    """Small PNG (8/16-bit, grey/colour), JPEG and TIFF files written with Pillow/tifffile."""
    import numpy as np
    import skimage.io
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    made = []
    for name, arr in [("g8.png", rng.integers(0, 255, (24, 20), dtype=np.uint8)),
                      ("g16.png", rng.integers(0, 65535, (16, 18), dtype=np.uint16)),
                      ("c8.tif", rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))]:
        skimage.io.imsave(folder / name, arr, check_contrast=False)
        made.append(folder / name)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "c.jpg")
    made.append(folder / "c.jpg")
    import png  # pypng: 16-bit colour PNG, which Pillow cannot write

    rgb16 = rng.integers(0, 65535, (12, 30), dtype=np.uint16)  # 12 rows of 10 RGB pixels
    with open(folder / "c16.png", "wb") as f:
        png.Writer(10, 12, greyscale=False, bitdepth=16).write(f, rgb16.tolist())
    made.append(folder / "c16.png")
    return made


# -- mutations: each takes (data, rng, path) and returns new bytes --------------------------
def truncate(data: bytes, rng: random.Random, _: Path) -> bytes:
    return data[: rng.randrange(0, max(len(data), 1))]


def flip_bytes(data: bytes, rng: random.Random, _: Path) -> bytes:
    buf = bytearray(data)
    for _i in range(rng.choice([1, 2, 4, 16, 64])):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def flip_header_bytes(data: bytes, rng: random.Random, path: Path) -> bytes:
    head = data[:2048]
    return flip_bytes(head, rng, path) + data[2048:]


def absurd_header(data: bytes, rng: random.Random, _: Path) -> bytes:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            for _i in range(rng.choice([1, 1, 2, 3])):
                kw = rng.choice(sorted(ABSURD))
                setattr(ds, kw, rng.choice(ABSURD[kw]))
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
            return out.getvalue()
        except Exception:  # noqa: BLE001 - a seed pydicom cannot rewrite: flip instead
            return flip_bytes(data, rng, _)


def gzip_wrap(data: bytes, rng: random.Random, path: Path) -> bytes:
    if rng.random() < 0.3:
        data = truncate(data, rng, path)
    return gzip.compress(data, compresslevel=rng.choice([1, 6, 9]))


def gzip_bomb(data: bytes, rng: random.Random, _: Path) -> bytes:
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=9) as f:
        f.write(data[:132] if data[128:132] == b"DICM" else bytes(128) + b"DICM")
        for _i in range(rng.choice([8, 32, 64])):
            f.write(bytes(1 << 20))
    return stream.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def raster_bomb(data: bytes, rng: random.Random, _: Path) -> bytes:
    """Huge sizes declared in a PNG's IHDR or a JPEG's SOF."""
    size = rng.choice([20000, 65535, 100000, 1 << 30])
    if data.startswith(b"\x89PNG"):
        depth, colour = rng.choice([(8, 0), (16, 0), (16, 2), (8, 6), (16, 6)])
        ihdr = struct.pack(">IIBBBBB", size, rng.choice([size, 3]), depth, colour, 0, 0, 0)
        idat = zlib.compress(bytes(rng.choice([64, 1 << 16])))
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                + _png_chunk(b"IEND", b""))
    sof = data.find(b"\xff\xc0")
    if data.startswith(b"\xff\xd8") and sof > 0:
        buf = bytearray(data)
        buf[sof + 5: sof + 9] = struct.pack(">HH", min(size, 65535), min(size, 65535))
        return bytes(buf)
    at = data.find(b"\xff\x4f\xff\x51")  # a JPEG 2000 codestream in DICOM
    if at > 0:
        buf = bytearray(data)
        buf[at + 8: at + 16] = struct.pack(">II", size, size)
        return bytes(buf)
    return flip_bytes(data, rng, _)


MUTATIONS: list[tuple[str, Callable[[bytes, random.Random, Path], bytes], float]] = [
    ("truncate", truncate, 3),
    ("flip", flip_bytes, 3),
    ("flip_header", flip_header_bytes, 3),
    ("absurd_header", absurd_header, 5),
    ("gzip", gzip_wrap, 1),
    ("gzip_bomb", gzip_bomb, 0.3),
    ("raster_bomb", raster_bomb, 1),
]

ODD_NAMES = [b"odd\xff\xfe", b"=HYPERLINK(1)", b"-rf", b"with space", b"\xe9t\xe9", b"@x"]


def make_mutants(seeds: list[Path], out: Path, n: int, seed: int,
                 fifos: int = 2) -> list[tuple[bytes, str]]:
    """Write ``n`` mutants (and ``fifos`` FIFOs) under ``out``; return (path bytes, recipe)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    datas = [(p, p.read_bytes()) for p in seeds]
    weights = [w for _, _, w in MUTATIONS]
    made: list[tuple[bytes, str]] = []
    for i in range(n):
        src, data = rng.choice(datas)
        name, fn, _ = rng.choices(MUTATIONS, weights)[0]
        mutant = fn(data, rng, src)
        stem = rng.choice(ODD_NAMES) if rng.random() < 0.1 else b"m"
        path = os.fsencode(out) + b"/" + stem + f"{i:05d}".encode() + b".bin"
        try:
            with open(path, "wb") as f:
                f.write(mutant)
        except OSError:  # a file system that refuses the name: a plain one then
            path = os.fsencode(out) + f"/m{i:05d}.bin".encode()
            with open(path, "wb") as f:
                f.write(mutant)
        made.append((path, f"{name} of {src.name}"))
    if hasattr(os, "mkfifo"):
        for j in range(fifos):
            path = os.fsencode(out) + f"/fifo{j}.dcm".encode()
            os.mkfifo(path)
            made.append((path, "fifo"))
    return made


# -- the worker: runs in a subprocess under RLIMIT_AS --------------------------------------
def _consistent(scan: object) -> str | None:
    """Why a successful read breaks the invariant, or None."""
    import numpy as np

    px, meta = scan.pixels, scan.meta  # type: ignore[attr-defined]
    if px.dtype != np.float32:
        return f"dtype {px.dtype}"
    if px.size == 0:
        return "no pixels"
    if not np.isfinite(px).all():
        return "non-finite pixels"
    colour = meta.get("SamplesPerPixel") == 3
    shape = px.shape[:-1] if colour else px.shape
    if colour and px.shape[-1] != 3:
        return f"colour meta but shape {px.shape}"
    if shape[-2:] != (meta.get("Rows"), meta.get("Columns")):
        return f"shape {px.shape} vs Rows/Columns {meta.get('Rows')}x{meta.get('Columns')}"
    frames = meta.get("NumberOfFrames")
    if len(shape) == 3 and shape[0] != frames:
        return f"{shape[0]} frames read, meta says {frames}"
    if len(shape) == 2 and frames not in (1, None):
        return f"one frame read, meta says {frames}"
    return None


def worker(list_file: str) -> None:
    import resource
    import warnings

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    warnings.simplefilter("ignore")
    from imaging_tl.io import ScanReadError, read_scan

    for line in Path(list_file).read_text().split():
        path = os.fsdecode(bytes.fromhex(line))
        print(json.dumps({"start": line}), flush=True)
        t0 = time.perf_counter()
        verdict: dict[str, object] = {"path": line}
        try:
            scan = read_scan(path, max_pixels=FUZZ_MAX_PIXELS)
            why = _consistent(scan)
            verdict.update(result="ok" if why is None else "bad", why=why)
        except ScanReadError as exc:
            verdict.update(result="error", error=type(exc).__name__)
        except BaseException as exc:  # noqa: BLE001 - exactly what the invariant forbids
            verdict.update(result="bad", why=f"{type(exc).__name__}: {exc}"[:300])
        verdict["seconds"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(verdict), flush=True)


def run_worker(paths: list[bytes], list_file: Path, repo: Path,
               timeout: float) -> tuple[list[dict[str, object]], str | None]:
    """Run the worker over ``paths``; return its verdicts and, if it died or hung, why."""
    list_file.write_text("\n".join(p.hex() for p in paths))
    env = {**os.environ, "PYTHONPATH": str(repo)}
    try:
        proc = subprocess.run([sys.executable, __file__, "worker", str(list_file)],
                              capture_output=True, text=True, timeout=timeout, env=env)
        out, died = proc.stdout, (f"worker exit {proc.returncode}: {proc.stderr[-2000:]}"
                                  if proc.returncode else None)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        died = f"worker hung past {timeout:.0f} s"
    verdicts, started = [], None
    for line in out.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            started = rec["start"]
        else:
            verdicts.append(rec)
            started = None
    if died and started is not None:
        died += f" while reading {os.fsdecode(bytes.fromhex(started))!r}"
    return verdicts, died


def check(made: list[tuple[bytes, str]], work: Path, repo: Path) -> tuple[dict, list[str]]:
    """Run the invariant over the mutants; return counts and the failures (one line each)."""
    recipe = {p.hex(): r for p, r in made}
    verdicts, died = run_worker([p for p, _ in made], work / "list.txt", repo,
                                timeout=60 + TIME_LIMIT * len(made) / 4)
    failures = [f"{os.fsdecode(bytes.fromhex(v['path']))!r} ({recipe[v['path']]}): {v['why']}"
                for v in verdicts if v["result"] == "bad"]
    failures += [f"{os.fsdecode(bytes.fromhex(v['path']))!r} ({recipe[v['path']]}) took "
                 f"{v['seconds']} s" for v in verdicts if v["seconds"] > TIME_LIMIT]
    if died:
        failures.append(died)
    if len(verdicts) != len(made) and not died:
        failures.append(f"{len(made) - len(verdicts)} mutant(s) without a verdict")
    counts: dict[str, int] = {}
    for v in verdicts:
        key = v.get("error") or v["result"]
        counts[key] = counts.get(key, 0) + 1
    return counts, failures


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])
