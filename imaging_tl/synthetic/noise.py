"""Random fields and filters the phantoms are built from (vectorised numpy, OpenCV filters).

:func:`smooth_noise` gives band-limited noise of one feature size; :func:`power_law_noise`
gives texture with a 1/f^beta power spectrum, as anatomical background in real
radiographs has (beta about 2.5-3), instead of white noise; :func:`blur` is a Gaussian
filter that works on a downsampled copy for wide kernels (the wide blurs of scatter and
unsharp masking cost little that way); :func:`stamp_curves` rasterises thin curved
structures (vessels, wires, lines) by splatting points and blurring.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["blur", "gaussian", "power_law_noise", "resize", "smooth_noise", "stamp_curves"]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Band-limited Gaussian noise with features about ``scale`` pixels wide.

    Drawn on a coarse grid and upsampled with cubic splines, which is much cheaper than
    filtering full-resolution noise. Output has zero mean and unit standard deviation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        Output (H, W).
    scale : float
        Feature size in pixels (>= 1).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.

    Examples
    --------
    >>> n = smooth_noise(np.random.default_rng(0), (64, 64), 8)
    >>> n.shape, round(float(n.std()), 1)
    ((64, 64), 1.0)
    """
    h, w = shape
    ch, cw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    coarse = rng.standard_normal((ch, cw)).astype(np.float32)
    # Cubic-spline upsampling is linear and separable: two small matrix products are ~20x
    # faster than ndimage.zoom on the 2-D array.
    fine = _upsampler(h, ch) @ coarse @ _upsampler(w, cw).T
    fine -= fine.mean()
    sd = fine.std()
    return (fine / sd if sd > 0 else fine).astype(np.float32)


@lru_cache(maxsize=64)
def _upsampler(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of cubic-spline upsampling of n_in - 3 intervals to n_out samples."""
    eye = np.eye(n_in, dtype=np.float32)
    m = ndimage.zoom(eye, (n_out / (n_in - 3), 1), order=3, mode="nearest")[:n_out]
    # The spline weights decay geometrically; tiny ones are float32 denormals, which make
    # the matrix products ~10x slower. They change nothing visible.
    m[np.abs(m) < 1e-6] = 0.0
    m.setflags(write=False)
    return m


@lru_cache(maxsize=16)
def _spectral_filter(h: int, w: int, beta: float) -> np.ndarray:
    """Amplitude filter f^(-beta/2) on the rfft2 grid, normalised to unit output variance."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    amp = f ** np.float32(-beta / 2.0)
    amp[0, 0] = 0.0
    # Unit variance of the real output for unit-variance complex coefficients.
    amp /= np.float32(np.sqrt(2.0 * (amp**2).sum()) / (h * w))
    amp.setflags(write=False)
    return amp.astype(np.float32)


def power_law_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.8
) -> np.ndarray:
    """Gaussian texture whose power spectrum falls as 1/f^beta (zero mean, unit sd).

    Complex Gaussian coefficients shaped by ``f^(-beta/2)`` and one inverse real FFT: the
    noise power spectrum of anatomical background (beta 2.5-3 in chest radiographs), not
    the flat spectrum of white noise.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        Output (H, W).
    beta : float
        Spectral exponent (0 = white noise). Rounded to 0.05 so filters can be cached.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.

    Examples
    --------
    >>> n = power_law_noise(np.random.default_rng(0), (64, 64), 2.8)
    >>> n.shape, round(float(n.std()), 0)
    ((64, 64), 1.0)
    """
    h, w = shape
    amp = _spectral_filter(h, w, round(float(beta) * 20) / 20)
    re = rng.standard_normal(amp.shape, dtype=np.float32)
    im = rng.standard_normal(amp.shape, dtype=np.float32)
    out = np.fft.irfft2((re + 1j * im) * amp, s=(h, w)).astype(np.float32)
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def gaussian(image: np.ndarray, sigma: float, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Gaussian filter (OpenCV, float32) with ``sigma`` in pixels, kernel to +-4 sigma.

    Examples
    --------
    >>> img = np.zeros((9, 9), np.float32); img[4, 4] = 1
    >>> round(float(gaussian(img, 1.0).sum()), 3)
    1.0
    """
    img = np.ascontiguousarray(image, np.float32)
    k = 2 * int(np.ceil(4 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigma, sigmaY=sigma, borderType=border)


def resize(image: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize a 2-D array to ``shape`` (H, W) with OpenCV: bilinear, or nearest for labels.

    Examples
    --------
    >>> resize(np.eye(4, dtype=np.float32), (8, 8)).shape
    (8, 8)
    """
    h, w = shape
    if image.shape == (h, w):
        return image
    if nearest:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
    if image.shape[0] > h:  # shrinking: average the pixels covered
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with ``sigma`` in pixels; wide kernels run on a downsampled copy.

    Below 4 pixels this is :func:`gaussian`. Wider, the image is area-averaged by about
    sigma/2, filtered there and upsampled bilinearly: the result is as smooth and costs a
    fraction.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float image.
    sigma : float
        Standard deviation of the kernel in pixels.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32); img[32, 32] = 1
    >>> out = blur(img, 10)
    >>> out.shape, bool(out[32, 32] < 0.01), round(float(out.sum()), 1)
    ((64, 64), True, 1.0)
    """
    img = np.ascontiguousarray(image, np.float32)
    if sigma < 4:
        return gaussian(img, sigma)
    f = max(1, int(sigma // 2))
    h, w = img.shape
    small = resize(img, (max(1, -(-h // f)), max(1, -(-w // f))))
    return resize(gaussian(small, sigma / f), (h, w))


def stamp_curves(
    shape: tuple[int, int], points: np.ndarray, weights: np.ndarray, sigma: float
) -> np.ndarray:
    """Rasterise curves given as dense points: splat ``weights`` at ``points``, then blur.

    Parameters
    ----------
    shape : tuple of int
        Output (H, W).
    points : numpy.ndarray
        N x 2 (row, column) positions, spaced at most about a pixel apart along each curve.
    weights : numpy.ndarray
        N weights (e.g. the projected thickness of a vessel at that point).
    sigma : float
        Blur in pixels (about the curve's half-width).

    Returns
    -------
    numpy.ndarray
        float32 H x W.

    Examples
    --------
    >>> pts = np.stack([np.full(50, 10.0), np.linspace(5, 55, 50)], axis=1)
    >>> img = stamp_curves((20, 64), pts, np.ones(50), 1.0)
    >>> bool(img[10, 30] > img[2, 30])
    True
    """
    h, w = shape
    canvas = np.zeros(h * w, np.float64)
    if len(points):
        r = np.rint(points[:, 0]).astype(np.int64)
        c = np.rint(points[:, 1]).astype(np.int64)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        canvas = np.bincount(r[ok] * w + c[ok], weights=weights[ok], minlength=h * w)
    img = canvas.reshape(h, w).astype(np.float32)
    return gaussian(img, max(sigma, 0.5), border=cv2.BORDER_CONSTANT)
