"""Image hashes for the leakage audit: an exact content hash and a difference hash.

:func:`content_hash` is equal for pixel-identical images; :func:`dhash` stays within a few
bits for re-encoded or re-windowed copies (near-duplicates), compared with :func:`hamming`.
Both are taken while the cache is built (:mod:`imaging_tl.data.prepare`) and by the audit
(:mod:`imaging_tl.data.audit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash

__all__ = ["DHASH_SIZE", "content_hash", "dhash", "hamming", "hash_words"]

DHASH_SIZE = 16  # 16 x 16 gradient signs = 256 bits


def content_hash(pixels: np.ndarray) -> str:
    """128-bit xxHash (XXH3) of an image's values and shape: equal for pixel-identical images.

    A fast non-cryptographic hash: the audit needs equality of pixel arrays, not resistance
    to tampering, and every sample is hashed while the cache is built (measured 0.24 ms
    against SHA-256's 7.6 ms for a 1900 x 1800 radiograph, a quarter of the work besides
    decoding).

    Parameters
    ----------
    pixels : numpy.ndarray
        The image as read (e.g. ``read_scan(path).pixels``).

    Returns
    -------
    str
        32 hex digits.

    Examples
    --------
    >>> import numpy as np
    >>> content_hash(np.zeros((2, 2))) == content_hash(np.zeros((2, 2), np.float32))
    True
    """
    a = np.ascontiguousarray(pixels, dtype=np.float32)
    h = xxhash.xxh3_128(str(a.shape).encode())
    # the buffer itself: tobytes() copied megabytes per radiograph. (numpy's stubs declare
    # ndarray's buffer protocol for Python >= 3.12 only.)
    h.update(a)  # type: ignore[arg-type]
    return h.hexdigest()


def dhash(pixels: np.ndarray, size: int = DHASH_SIZE) -> str:
    """Difference hash: signs of horizontal gradients of a ``size x (size+1)`` thumbnail.

    Unchanged by brightness/contrast changes and small noise, so re-encoded or re-windowed
    copies of an image stay within a few bits.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``H x W`` or ``H x W x C`` image (colour is averaged to grey).
    size : int
        Thumbnail height; the hash has ``size * size`` bits.

    Returns
    -------
    str
        The bits as hex.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.tile(np.arange(64, dtype=np.float32), (64, 1))
    >>> hamming(dhash(img), dhash(img * 3 + 7))
    0
    """
    a = np.asarray(pixels, dtype=np.float32)
    if a.ndim == 3:
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"dhash: expected a 2-D or 3-D image, got shape {a.shape}")
    small = _area_mean(a, size, size + 1)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return np.packbits(bits).tobytes().hex()


def _area_mean(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Mean of each cell of an ``out_h x out_w`` grid over the image (area downsampling).

    One pass of sums: ~100x faster than an anti-aliased
    ``skimage.transform.resize`` on a 2000 x 2000 radiograph, where the Gaussian dominates.
    """
    if a.shape[0] < out_h or a.shape[1] < out_w:  # tiny images: enlarge first (cheap)
        from skimage.transform import resize

        a = resize(a, (max(out_h, a.shape[0]), max(out_w, a.shape[1])), order=0,
                   preserve_range=True, anti_aliasing=False)
    rows = np.linspace(0, a.shape[0], out_h + 1).astype(np.int64)
    cols = np.linspace(0, a.shape[1], out_w + 1).astype(np.int64)
    # Row bands with sum(axis=0) (contiguous, vectorised) beat reduceat along axis 0 by 5x.
    sums = np.stack([a[r0:r1].sum(axis=0, dtype=np.float64)
                     for r0, r1 in zip(rows[:-1], rows[1:], strict=True)])
    sums = np.add.reduceat(sums, cols[:-1], axis=1)
    return sums / (np.diff(rows)[:, None] * np.diff(cols)[None, :])


def hash_words(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes of equal length as rows of big-endian 64-bit words (for XOR popcounts).

    Examples
    --------
    >>> hash_words(["00" * 7 + "01", "ff" * 8]).tolist()
    [[1], [18446744073709551615]]
    """
    raw = b"".join(bytes.fromhex(h) for h in hashes)
    return np.frombuffer(raw, dtype=">u8").reshape(len(hashes), -1).astype(np.uint64)


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hashes from :func:`dhash`.

    Examples
    --------
    >>> hamming("ff00", "ff01")
    1
    """
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))
