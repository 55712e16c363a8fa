"""PNG / JPEG / TIFF files -> float32 pixels with the same ``meta`` keys as DICOM.

Pillow reads most files, but it silently truncates 16-bit colour PNG and TIFF to 8 bits,
so those go through pypng (PNG) and tifffile (all TIFF). Values stay in the file's own
scale (0..255 or 0..65535, recorded in ``meta["value_range"]``); the windowing stage maps
them to [0, 1].
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from imaging_tl.io.dicom_header import empty_meta
from imaging_tl.io.errors import (
    CorruptPixelDataError,
    DecompressionBombError,
    FrameOutOfRangeError,
    MissingDecoderError,
    UnsupportedImageError,
)
from imaging_tl.io.limits import check_pixel_count, pixel_count
from imaging_tl.io.scan import Scan

if TYPE_CHECKING:
    import tifffile

    from imaging_tl.io.decode_plan import DecodeTarget

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff_raster(head: bytes) -> str | None:
    """Name the raster format from the first bytes: "png", "jpeg", "tiff" or None.

    Examples
    --------
    >>> sniff_raster(b"\\x89PNG\\r\\n\\x1a\\n....")
    'png'
    >>> sniff_raster(b"DICM") is None
    True
    """
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head[:4] in TIFF_MAGICS:
        return "tiff"
    return None


def _png_is_16bit_colour(data: bytes) -> bool:
    # IHDR is always the first chunk: bit depth at byte 24, colour type at byte 25.
    return len(data) > 25 and data[24] == 16 and data[25] in (2, 4, 6)


def _read_png16(data: bytes, path: str) -> tuple[np.ndarray, list[str]]:
    import png  # pypng: Pillow would truncate 16-bit colour PNG to 8 bits

    try:
        width, height, rows, info = png.Reader(bytes=data).asDirect()
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    except png.Error as exc:
        raise CorruptPixelDataError(path, f"the PNG data could not be decoded: {exc}") from exc
    planes = int(info["planes"])
    arr = arr.reshape(height, width, planes)
    steps = []
    if info.get("alpha"):
        arr = arr[..., :-1]
        steps.append("alpha: dropped")
    return (arr[..., 0] if arr.shape[-1] == 1 else arr), steps


def _read_pillow(data: bytes, path: str, fmt: str) -> tuple[np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    steps: list[str] = []
    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        im.load()
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(path, f"Pillow refused it: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptPixelDataError(
            path, f"the {fmt.upper()} data could not be decoded: {exc}"
        ) from exc
    mode = im.mode
    if mode == "P" or mode == "PA":
        palette = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        grey = palette.size and bool(np.all(palette == palette[:, :1]))
        im = im.convert("L" if grey else "RGB")
        steps.append(f"palette: expanded to {'grey' if grey else 'RGB'}")
    elif mode in ("RGBA", "RGBa", "RGBX"):
        im = im.convert("RGB")
        steps.append("alpha: dropped")
    elif mode in ("LA", "La"):
        im = im.convert("L")
        steps.append("alpha: dropped")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        steps.append(f"colour: {mode} -> RGB")
    elif mode == "1":
        im = im.convert("L")
        steps.append("bilevel: 0/1 -> 0/255")
    elif mode == "F":
        raise UnsupportedImageError(path, "floating-point images are not read; save as 16-bit")
    arr = np.asarray(im)
    if arr.dtype == np.int32:  # Pillow's "I" mode: 16-bit PNG data in 32-bit ints
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise UnsupportedImageError(path, "32-bit integer images are not read")
        arr = arr.astype(np.uint16)
    return arr, steps


def _tiff_page(tif: tifffile.TiffFile, index: int) -> tifffile.TiffPage:
    """Page ``index`` as a full ``TiffPage`` (a ``TiffFrame`` only with ``useframes``)."""
    import tifffile

    page = tif.pages[index]
    return page if isinstance(page, tifffile.TiffPage) else page.aspage()


def _read_tiff(data: bytes, path: str, frame: int | None) -> tuple[np.ndarray, list[str]]:
    import tifffile

    steps: list[str] = []
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            n_pages = len(tif.pages)
            index = frame or 0
            if frame is not None and not 0 <= frame < n_pages:
                raise FrameOutOfRangeError(
                    path, f"frame={frame!r} is out of range: the TIFF has {n_pages} page(s)"
                )
            page = _tiff_page(tif, index)
            arr = page.asarray()
            photometric = getattr(page.photometric, "name", str(page.photometric))
            extra = len(getattr(page, "extrasamples", None) or ())
            colormap = page.colormap
    except FrameOutOfRangeError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        msg = str(exc)
        if "imagecodecs" in msg:
            raise MissingDecoderError(
                path, f"the TIFF compression needs a codec: pip install imagecodecs ({msg})"
            ) from exc
        raise CorruptPixelDataError(path, f"the TIFF data could not be decoded: {msg}") from exc
    if n_pages > 1 and frame is None:
        steps.append(f"tiff: page 0 of {n_pages}")
    if photometric == "PALETTE" and colormap is not None:
        cmap = np.asarray(colormap)  # 3 x N, 16-bit entries
        arr = np.moveaxis(cmap[:, arr], 0, -1)
        steps.append("palette: expanded to RGB (16-bit colormap)")
    elif photometric == "MINISWHITE":
        raise UnsupportedImageError(path, "TIFF 'min-is-white' images are not read")
    if arr.ndim == 3 and arr.shape[-1] in (2, 4) and extra:
        arr = arr[..., :-1]
        steps.append("alpha: dropped")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    return arr, steps


def read_raster(
    source: str | os.PathLike | BinaryIO,
    path: str,
    fmt: str,
    *,
    frame: int | None = None,
    provenance: list[str] | None = None,
    max_pixels: int | None = None,
    target: DecodeTarget | None = None,
) -> Scan:
    """Read a PNG, JPEG or TIFF image into a :class:`Scan`.

    Use :func:`imaging_tl.read_scan`, which detects the format; this is the raster branch.

    Parameters
    ----------
    source : path or binary file
        The image.
    path : str
        The file's name, for messages and ``Scan.path``.
    fmt : {"png", "jpeg", "tiff"}
        The format, as named by :func:`sniff_raster`.
    frame : int, optional
        TIFF page; other formats hold one image (``frame`` must be None or 0).
    provenance : list of str, optional
        Steps already applied.
    max_pixels : int, optional
        The most values to decode, checked from the image header before decoding
        (:func:`imaging_tl.io.limits.max_pixels` by default).
    target : imaging_tl.io.decode_plan.DecodeTarget, optional
        What the stages need: a baseline JPEG at least twice as large is decoded by DCT
        scaling (:func:`read_jpeg_planned`); None decodes in full.

    Returns
    -------
    Scan
        float32 ``H x W`` (grey) or ``H x W x 3`` (RGB), values in the file's scale.

    Examples
    --------
    >>> import numpy as np, skimage.io, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> skimage.io.imsave(p, np.array([[0, 65535]], np.uint16), check_contrast=False)
    >>> s = read_raster(p, p, "png")
    >>> s.pixels.tolist(), s.meta["value_range"]
    ([[0.0, 65535.0]], [0, 65535])
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data = f.read()
    else:
        data = source.read()
    steps = list(provenance or [])
    if fmt != "tiff" and frame not in (None, 0):
        raise FrameOutOfRangeError(path, f"frame={frame!r}: a {fmt.upper()} holds one image")
    head = read_raster_header(io.BytesIO(data), path, fmt)
    check_pixel_count(
        path, pixel_count(rows=head["Rows"], columns=head["Columns"],
                          samples=head["SamplesPerPixel"]),
        max_pixels, f"the {fmt.upper()} header declares {head['Rows']} x {head['Columns']}",
    )
    if fmt == "tiff":
        arr, extra = _read_tiff(data, path, frame)
    elif fmt == "png" and _png_is_16bit_colour(data):
        arr, extra = _read_png16(data, path)
    else:
        planned = read_jpeg_planned(data, head, target) if fmt == "jpeg" else None
        arr, extra = planned or _read_pillow(data, path, fmt)
    if arr.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError(
            path, f"{arr.dtype} samples are not read (only 8- and 16-bit images)"
        )
    if arr.ndim == 3 and arr.shape[-1] != 3 or arr.ndim not in (2, 3):
        raise UnsupportedImageError(path, f"an image of shape {arr.shape} is not grey or RGB")
    bits = 8 if arr.dtype == np.uint8 else 16
    colour = arr.ndim == 3
    steps.append(f"read: {fmt} {bits}-bit {'RGB' if colour else 'grey'}")
    steps.extend(extra)
    meta: dict[str, Any] = empty_meta()
    meta.update(
        format=fmt,
        SamplesPerPixel=3 if colour else 1,
        Rows=int(arr.shape[0]),
        Columns=int(arr.shape[1]),
        NumberOfFrames=1,
        BitsAllocated=bits,
        BitsStored=bits,
        PixelRepresentation=0,
        PhotometricInterpretation="RGB" if colour else "MONOCHROME2",
        invert=False,
        windows=[],
        value_range=[0, (1 << bits) - 1],
    )
    return Scan(pixels=arr.astype(np.float32), meta=meta, provenance=steps, path=path)


def read_raster_header(
    source: str | os.PathLike | BinaryIO, path: str, fmt: str
) -> dict[str, Any]:
    """The ``meta`` of a PNG, JPEG or TIFF file without decoding its pixels (for the census).

    Parameters
    ----------
    source : path or binary file
        The image.
    path : str
        The file's name, for messages.
    fmt : {"png", "jpeg", "tiff"}
        The format, as named by :func:`sniff_raster`.

    Returns
    -------
    dict
        The same keys as :attr:`Scan.meta` from :func:`read_raster`.

    Examples
    --------
    >>> import numpy as np, skimage.io, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> skimage.io.imsave(p, np.zeros((4, 5, 3), np.uint8))
    >>> m = read_raster_header(p, p, "png")
    >>> m["Rows"], m["Columns"], m["SamplesPerPixel"], m["BitsStored"]
    (4, 5, 3, 8)
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data = f.read() if fmt == "tiff" else f.read(1 << 16)
    else:
        data = source.read()
    if fmt == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = _tiff_page(tif, 0)
                shape, dtype = page.shape, page.dtype
                palette = getattr(page.photometric, "name", "") == "PALETTE"
        except (ValueError, KeyError, IndexError) as exc:
            raise CorruptPixelDataError(path, f"the TIFF header could not be read: {exc}") from exc
        rows, cols = int(shape[0]), int(shape[1])
        samples = 3 if palette or (len(shape) == 3 and shape[-1] >= 3) else 1
        bits = 16 if palette or (dtype is not None and dtype.itemsize > 1) else 8
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise DecompressionBombError(path, f"Pillow refused it: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise CorruptPixelDataError(
                path, f"the {fmt.upper()} header could not be read: {exc}"
            ) from exc
        cols, rows = im.size
        mode = im.mode
        bits = 16 if mode.startswith("I") or (fmt == "png" and data[24:25] == b"\x10") else 8
        if mode == "P":
            palette = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
            samples = 1 if palette.size and np.all(palette == palette[:, :1]) else 3
        else:
            samples = 1 if mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L") else 3
    meta = empty_meta()
    meta.update(
        format=fmt, SamplesPerPixel=samples, Rows=rows, Columns=cols, NumberOfFrames=1,
        BitsAllocated=bits, BitsStored=bits, PixelRepresentation=0,
        PhotometricInterpretation="RGB" if samples == 3 else "MONOCHROME2",
        invert=False, windows=[], value_range=[0, (1 << bits) - 1],
    )
    return meta


def channels_agree(image: np.ndarray, value_range: Any = None,
                   tolerance: float = 0.03, max_fraction: float = 0.002) -> bool:
    """True when a 3-channel image is grey in content: at most ``max_fraction`` of its
    pixels have channels further apart than ``tolerance`` of the value range (JPEG
    compression leaves grey pixels a few levels apart, so exact equality is too strict).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.full((8, 8, 3), 100.0, np.float32); x[0, 0, 0] = 104
    >>> channels_agree(x, [0, 255]), channels_agree(x + [[[40, 0, 0]]], [0, 255])
    (True, False)
    """
    x = np.asarray(image, dtype=np.float32)
    if value_range is not None and len(value_range) == 2 and value_range[1] > value_range[0]:
        span = float(value_range[1]) - float(value_range[0])
    else:
        span = float(x.max() - x.min()) or 1.0
    spread = x.max(axis=-1) - x.min(axis=-1)
    return bool(np.count_nonzero(spread > tolerance * span) <= max_fraction * spread.size)


def read_jpeg_planned(
    data: bytes, head: dict[str, Any], target: DecodeTarget | None
) -> tuple[np.ndarray, list[str]] | None:
    """A JPEG file decoded by DCT scaling to what ``target`` needs, or None (full decode).

    Only 8-bit grey or RGB baseline JPEG qualifies; any failure means None, and the
    full decode then reports a damaged file with its own error.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from imaging_tl.io.decode_plan import DecodeTarget
    >>> buf = io.BytesIO(); Image.fromarray(np.zeros((2400, 2400), np.uint8)).save(buf, "JPEG")
    >>> arr, steps = read_jpeg_planned(buf.getvalue(), {"Rows": 2400, "Columns": 2400},
    ...                                DecodeTarget((224, 224)))
    >>> arr.shape, steps[0]
    ((600, 600), 'decode: reduced 1/4 (JPEG DCT scaling) from 2400 x 2400 to 600 x 600')
    """
    if target is None:
        return None
    from imaging_tl.io.decode_plan import decode_jpeg_reduced, describe_reduction

    rows, cols = int(head["Rows"]), int(head["Columns"])
    try:
        got = decode_jpeg_reduced(data, target.needed(rows, cols))
    except (OSError, ValueError, SyntaxError):
        return None
    if got is None:
        return None
    arr, level = got
    return arr, [describe_reduction(level, rows, cols, "JPEG DCT scaling")]
