"""Benchmark: the typical preprocessing pipeline with stage objects vs direct code.

512 x 512 CT slice in HU -> window (soft tissue, 40/400) -> resize to 224 -> RGB ->
EfficientNet-Lite normalisation, in ms per image. Baselines, measured in the same run and
interleaved with the stage runs (the machine is shared and noisy):

* ``direct numpy + scikit-image``: the same steps as a researcher would write them with
  numpy and ``skimage.transform.resize(anti_aliasing=True)``;
* ``direct numpy + OpenCV``: the same numpy operations and OpenCV resampling call the
  stages run inside, inlined, so the ratio is the pure cost of the stage objects (input
  checks, the [0, 1] range check of Normalize, dispatch, Pipeline).

Also timed: the pipeline on a :class:`~imaging_tl.io.Scan` (provenance + meta updates),
and the "medium" augmentation transforms (each with p=1) through ``Augmenter`` on the
224 x 224 x 3 [0, 1] output against the same albumentations ``Compose`` called directly.
Every result is printed as a ratio against its baseline (the median of per-image ratios
of calls made back to back, alternating which goes first); the goal is <= 1.10x.

Run: ``.venv/bin/python benchmarks/stages.py [--images 40] [--rounds 9]``
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage.transform import resize as sk_resize

from imaging_tl.io import Scan
from imaging_tl.stages import Normalize, Pipeline, Resize, ToRGB, Window

CENTER, WIDTH = 40.0, 400.0


def ct_phantom(seed: int) -> np.ndarray:
    """A 512 x 512 axial CT slice in HU: air, body, lungs, spine, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    hu = np.full((512, 512), -1000.0, np.float32)
    body = ((xx - 256) / 220) ** 2 + ((yy - 256) / 170) ** 2 < 1
    hu[body] = 40.0
    for cx in (170, 342):
        hu[((xx - cx) / 70) ** 2 + ((yy - 240) / 100) ** 2 < 1] = -850.0
    hu[((xx - 256) / 30) ** 2 + ((yy - 380) / 30) ** 2 < 1] = 700.0
    hu += rng.normal(0, 15, hu.shape).astype(np.float32)
    return hu


def direct_skimage(hu: np.ndarray) -> np.ndarray:
    # DICOM LINEAR window, written out: (x - (c - 0.5)) / (w - 1) + 0.5, clipped
    y = np.clip((hu - (CENTER - 0.5)) / (WIDTH - 1) + 0.5, 0, 1)
    y = sk_resize(y, (224, 224), order=1, anti_aliasing=True, preserve_range=True)
    y = np.repeat(y[..., None], 3, axis=-1)
    return ((y * 255 - 127) / 128).astype(np.float32)


def direct_opencv(hu: np.ndarray) -> np.ndarray:
    # the operations the stages run inside, inlined: their difference is the stage overhead
    y = hu * np.float32(1 / (WIDTH - 1))
    y += np.float32(0.5 - (CENTER - 0.5) / (WIDTH - 1))
    np.clip(y, 0, 1, out=y)
    y = cv2.resize(y, (224, 224), interpolation=cv2.INTER_AREA)
    y = np.stack((y, y, y), axis=-1)
    out = y * np.float32(255 / 128)
    out += np.float32(-127 / 128)
    return out


def paired(run_a, run_b, n: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-call ms of ``run_a(k)`` and ``run_b(k)``, called back to back, alternating which
    goes first, so that load from other processes on this shared machine hits both alike."""
    run_a(0), run_b(0)  # warm-up
    a, b = [], []
    for r in range(rounds):
        for k in range(n):
            order = ((run_a, a), (run_b, b)) if (k + r) % 2 == 0 else ((run_b, b), (run_a, a))
            for run, out in order:
                t0 = time.perf_counter()
                run(k)
                out.append((time.perf_counter() - t0) * 1000)
    return np.asarray(a), np.asarray(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="images per timed batch")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # compare single-threaded work on a shared 2-core machine

    slices = [ct_phantom(s) for s in range(args.images)]
    scans = [Scan(s, {"Rows": 512, "Columns": 512, "PixelSpacing": [0.7, 0.7]}, []) for s in slices]
    pipeline = Pipeline(
        [Window(center=CENTER, width=WIDTH), Resize(224), ToRGB(), Normalize("efficientnet_lite0")]
    )

    out_stage = pipeline(slices[0])
    diff_cv = float(np.abs(out_stage - direct_opencv(slices[0])).max())
    diff_sk = float(np.abs(out_stage - direct_skimage(slices[0])).max())
    mean_sk = float(np.abs(out_stage - direct_skimage(slices[0])).mean())

    stage_arrays = lambda k: pipeline(slices[k])  # noqa: E731
    stage_scans = lambda k: pipeline(scans[k])  # noqa: E731
    cv_direct = lambda k: direct_opencv(slices[k])  # noqa: E731
    sk_direct = lambda k: direct_skimage(slices[k])  # noqa: E731
    comparisons = [
        ("stages Pipeline (arrays)", stage_arrays, "direct numpy + scikit-image", sk_direct),
        ("stages Pipeline (arrays)", stage_arrays, "direct numpy + OpenCV", cv_direct),
        ("stages Pipeline (Scan)", stage_scans, "direct numpy + OpenCV", cv_direct),
    ]
    print("512x512 HU -> Window(40/400) -> Resize(224) -> ToRGB -> Normalize(efficientnet_lite0)")
    print(f"{args.images} images x {args.rounds} rounds per comparison, ms/image (median)")
    print("ratio = median of per-image ratios of back-to-back calls; goal <= 1.10")
    for name_a, run_a, name_b, run_b in comparisons:
        a, b = paired(run_a, run_b, len(slices), args.rounds)
        print(
            f"  {name_a:26s} {np.median(a):7.3f} vs {name_b:28s} {np.median(b):7.3f}: "
            f"{np.median(a / b):.3f}x"
        )
    print(
        f"max |stages - direct OpenCV| = {diff_cv:.2e}; vs scikit-image: max {diff_sk:.3f}, "
        f"mean {mean_sk:.4f} (different anti-aliasing filters)"
    )

    augment_benchmark(slices, pipeline, args.rounds)


def augment_benchmark(slices: list[np.ndarray], pipeline: Pipeline, rounds: int) -> None:
    """The "medium" transforms (each with p=1, so both sides do the same work) through
    Augmenter vs the same albumentations Compose called directly on the RGB array."""
    import albumentations as A

    from imaging_tl.augment import PRESETS, Augmenter

    images = [pipeline[:-1](s) for s in slices]  # without Normalize: RGB in [0, 1]
    always = [{**t, "p": 1.0} for t in PRESETS["medium"]]
    ours = Augmenter("none", transforms=always, seed=0)
    direct = A.Compose(list(ours.compose.transforms), seed=0)
    a, b = paired(
        lambda k: ours(images[k]), lambda k: direct(image=images[k])["image"], len(images), rounds
    )
    print("augmentation of the 224 x 224 x 3 [0, 1] output (grey replicated), ms/image:")
    print(
        f"  Augmenter (medium, p=1) {np.median(a):7.3f} vs albumentations Compose on RGB "
        f"{np.median(b):7.3f}: {np.median(a / b):.3f}x"
    )


if __name__ == "__main__":
    main()
