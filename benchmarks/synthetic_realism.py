"""How much the synthetic chest radiographs look and vary like real ones, measured.

Real films: pydicom-data's chest CR (``RG1_UNCI.dcm``; ``RG1_J2KR.dcm`` is the same film
JPEG 2000-encoded, so it counts once) and every DICOM/PNG under ``--real DIR``. With one real
film offline, the spread between real patients cannot be measured here: the reference for it
is 16 real chest films of different patients measured elsewhere (dHash median 64, minimum 34
of 256 bits).

Figures (synthetic: ``make_radiograph``, one film per patient, sites cycled over ``SITES``):

- dHash (the audit's 256-bit hash) distances between films of different patients: median,
  1st percentile, minimum; the same figures between the real films when there are >= 2;
- the audit's near-duplicate check (``audit_splits``, <= 10 bits, across splits) on
  ``--audit-images`` films of different patients at ``--audit-size`` px, split alternately
  train/test; and the count of all pairs <= 10 bits (any split);
- radial noise power spectrum slope of the lung fields (Hann-windowed patches at the lung
  centres, log-log fit between 1/64 and 1/4 cycles per pixel at 512 px);
- grey-level histogram after the default window (``Window.from_header()``):
  Wasserstein-1 distance of each image's histogram to the real film's, and moments;
- Lite0 pooled features (``efficientnet_lite0``, ImageNet weights, 224 px, the default
  backbone): cosine distances of each synthetic film to the real chest film and to natural
  photos (scikit-image's bundled photographs, as ImageNet-like images), beside the real
  chest film's own distance to the photos and to a real radiograph of another body part
  (pydicom-data's ``RG3_UNCI``), for scale;
- a contact sheet: 16 synthetic films next to the real one (PNG).

Run: ``.venv/bin/python benchmarks/synthetic_realism.py [--real DIR] [--audit-images 2000]``
(``--parts features`` reruns one part and merges it into the existing results file).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from imaging_tl.data.audit import audit_splits
from imaging_tl.data.hashing import dhash, hash_words
from imaging_tl.io import read_scan
from imaging_tl.stages.window import Window
from imaging_tl.synthetic import SITES, generate_dataset, make_radiograph
from imaging_tl.synthetic.composite import estimate_lung_fields

RESULTS = Path(__file__).parent / "results"
REAL_SPREAD_REFERENCE = {"films": 16, "median": 64, "min": 34}


def windowed(path: Path) -> np.ndarray:
    """A file read and windowed as the pipelines do by default (float32 [0, 1])."""
    scan = Window.from_header()(read_scan(path))
    px = np.asarray(scan.pixels, np.float32)
    return px.mean(axis=-1) if px.ndim == 3 else px


def real_films(extra: Path | None) -> dict[str, np.ndarray]:
    """The real chest films: pydicom-data's CR and the files under ``extra``."""
    from pydicom.data import get_testdata_file

    films = {"pydicom-data RG1_UNCI": windowed(Path(get_testdata_file("RG1_UNCI.dcm")))}
    if extra is not None:
        for p in sorted(extra.rglob("*")):
            if p.is_file() and p.suffix.lower() in {".dcm", ".png", ".jpg", ".jpeg", ""}:
                try:
                    films[str(p.relative_to(extra))] = windowed(p)
                except Exception as exc:  # a bad file is reported and skipped
                    print(f"skipped {p.name}: {exc}")
    return films


def distances(hashes: list[str]) -> np.ndarray:
    """All pairwise Hamming distances (i < j) of hex dHashes."""
    w = hash_words(hashes)
    n = len(hashes)
    d = np.zeros((n, n), np.int32)
    for k in range(w.shape[1]):
        d += np.bitwise_count(w[:, k, None] ^ w[None, :, k]).astype(np.int32)
    return d[np.triu_indices(n, 1)]


def synthetic(n: int, size: int, offset: int = 0) -> list:
    """n films of n different patients (sites cycled), as SyntheticImage objects."""
    sites = list(SITES)
    return [make_radiograph([p, 0], size=size, anatomy_seed=[p], site=sites[p % len(sites)])
            for p in range(offset, offset + n)]


def spectrum_slope(img: np.ndarray, centres: list[tuple[float, float]], patch: int = 96
                   ) -> float:
    """Mean log-log slope of the radial power spectrum of patches at ``centres`` (row, col)."""
    h, w = img.shape
    hann = np.outer(np.hanning(patch), np.hanning(patch)).astype(np.float32)
    f = np.fft.fftfreq(patch)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    bins = np.geomspace(1 / 64, 1 / 4, 13)
    slopes = []
    for cy, cx in centres:
        y0 = int(np.clip(cy - patch / 2, 0, h - patch))
        x0 = int(np.clip(cx - patch / 2, 0, w - patch))
        p = img[y0:y0 + patch, x0:x0 + patch].astype(np.float32)
        power = np.abs(np.fft.fft2((p - p.mean()) * hann)) ** 2
        which = np.digitize(radius, bins)
        fr, pw = [], []
        for b in range(1, len(bins)):
            sel = which == b
            if sel.any():
                fr.append(radius[sel].mean())
                pw.append(power[sel].mean())
        slopes.append(np.polyfit(np.log(fr), np.log(np.maximum(pw, 1e-20)), 1)[0])
    return float(np.mean(slopes))


def lung_centres(side: np.ndarray) -> list[tuple[float, float]]:
    """Centroid of each lung field (labels 1 and 2)."""
    out = []
    for s in (1, 2):
        ys, xs = np.nonzero(side == s)
        if len(ys):
            out.append((float(ys.mean()), float(xs.mean())))
    return out


def histogram(img: np.ndarray, bins: int = 64) -> np.ndarray:
    """Normalised grey-level histogram of a [0, 1] image."""
    h = np.histogram(np.clip(img, 0, 1), bins=bins, range=(0, 1))[0].astype(np.float64)
    return h / h.sum()


def wasserstein(p: np.ndarray, q: np.ndarray) -> float:
    """Earth mover's distance between two histograms on [0, 1] (grey-level units)."""
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum() / len(p))


def moments(img: np.ndarray) -> dict:
    x = img.astype(np.float64).ravel()
    sd = x.std()
    return {"mean": float(x.mean()), "sd": float(sd),
            "skew": float(((x - x.mean()) ** 3).mean() / max(sd, 1e-9) ** 3)}


def resized(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape
    f = side / max(h, w)
    return cv2.resize(img.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def hash_spread(real: dict[str, np.ndarray], n: int) -> dict:
    syn = [dhash(im.pixels) for im in synthetic(n, 256)]
    d = distances(syn)
    out = {"synthetic_patients": n, "synthetic_median": float(np.median(d)),
           "synthetic_p1": float(np.percentile(d, 1)), "synthetic_min": int(d.min()),
           "real_reference": REAL_SPREAD_REFERENCE}
    rh = [dhash(resized(v, 256)) for v in real.values()]
    if len(rh) >= 2:
        dr = distances(rh)
        out.update(real_films=len(rh), real_median=float(np.median(dr)), real_min=int(dr.min()))
    # How far the real film(s) are from the synthetic ones (real vs synthetic pairs).
    cross = [np.bitwise_count(hash_words([a])[0] ^ hash_words([b])[0]).sum()
             for a in rh for b in syn]
    out["real_to_synthetic_median"] = float(np.median(cross))
    return out


def near_duplicates(n: int, size: int) -> dict:
    t = time.perf_counter()
    rows = []
    for p, im in enumerate(synthetic(n, size, offset=100_000)):
        rows.append({"path": f"p{p}", "group": f"pid:{p}", "split": ("train", "test")[p % 2],
                     "content_hash": str(p), "dhash": dhash(im.pixels)})
    df = pd.DataFrame(rows)
    report = audit_splits(df, raise_on_leak=False)
    d = distances(list(df["dhash"]))
    return {"images": n, "size": size, "audit_near_duplicates_across_splits":
            len(report.near_duplicates), "pairs_within_10_bits_any_split": int((d <= 10).sum()),
            "min_distance": int(d.min()), "median": float(np.median(d)),
            "seconds": round(time.perf_counter() - t, 1)}


def spectra(real: dict[str, np.ndarray], n: int) -> dict:
    syn = []
    for im in synthetic(n, 512, offset=200_000):
        syn.append(spectrum_slope(im.pixels, lung_centres(im.lung_side)))
    out = {"synthetic_mean": float(np.mean(syn)), "synthetic_sd": float(np.std(syn)),
           "synthetic_range": [float(min(syn)), float(max(syn))], "real": {}}
    for name, img in real.items():
        small = resized(img, 512)
        out["real"][name] = spectrum_slope(small, lung_centres(estimate_lung_fields(small)))
    return out


def histograms(real: dict[str, np.ndarray], n: int) -> dict:
    """Histograms after the default window: synthetic DICOMs written and read back."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp) / "ds", n_patients=n, images_per_patient=1, size=512,
                         seed=7, png_fraction=0.0)
        files = sorted((Path(tmp) / "ds").rglob("*.dcm"))
        syn = [windowed(p) for p in files]
    hs = [histogram(x) for x in syn]
    out: dict = {"synthetic_files": len(syn), "synthetic_moments": {
        k: float(np.mean([moments(x)[k] for x in syn])) for k in ("mean", "sd", "skew")}}
    out["real"] = {}
    for name, img in real.items():
        hr = histogram(img)
        w = [wasserstein(h, hr) for h in hs]
        out["real"][name] = {"moments": moments(img), "w1_median": float(np.median(w)),
                             "w1_mean_histogram": wasserstein(np.mean(hs, axis=0), hr)}
    # Spread among the synthetic films themselves, for scale.
    w_syn = [wasserstein(hs[i], hs[j]) for i in range(len(hs)) for j in range(i + 1, len(hs))]
    out["synthetic_pairwise_w1_median"] = float(np.median(w_syn))
    return out


#: scikit-image's bundled natural photographs (no download): the ImageNet-like reference.
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon",
          "hubble_deep_field", "grass", "gravel", "brick", "clock")


def photos(side: int) -> np.ndarray:
    """The reference photographs as float32 [0, 1] RGB at ``side`` x ``side``."""
    import skimage.data

    out = []
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)(), np.float32) / 255.0
        img = np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]
        out.append(cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def as_input(grey: np.ndarray, side: int) -> np.ndarray:
    """A grey film as the model's input: resized (aspect not kept, as the pipelines' resize)."""
    small = cv2.resize(grey.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    return np.repeat(np.clip(small, 0, 1)[..., None], 3, axis=-1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distances between the rows of ``a`` and ``b``."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - a @ b.T


def features(real: dict[str, np.ndarray], n: int, side: int = 224) -> dict:
    """Where the synthetic films sit in Lite0's ImageNet feature space (cosine distances)."""
    from pydicom.data import get_testdata_file

    from imaging_tl.models import build_transfer_model
    from imaging_tl.train.features import extract_features

    model = build_transfer_model("efficientnet_lite0", "binary", 2, weights="imagenet",
                                 input_size=side)
    syn = np.stack([as_input(im.pixels, side) for im in synthetic(n, 512, offset=400_000)])
    chest = np.stack([as_input(v, side) for v in real.values()])
    other = as_input(windowed(Path(get_testdata_file("RG3_UNCI.dcm"))), side)[None]
    f_syn, f_chest, f_other, f_photo = (extract_features(model, x)[0]
                                        for x in (syn, chest, other, photos(side)))
    d_chest = cosine(f_syn, f_chest).min(axis=1)
    d_photo = cosine(f_syn, f_photo)
    pair = cosine(f_syn, f_syn)[np.triu_indices(n, 1)]
    return {
        "synthetic_films": n, "photos": len(PHOTOS), "input_size": side,
        "synthetic_to_real_chest_median": float(np.median(d_chest)),
        "synthetic_to_real_chest_range": [float(d_chest.min()), float(d_chest.max())],
        "synthetic_to_photos_median": float(np.median(d_photo)),
        "synthetic_to_nearest_photo_median": float(np.median(d_photo.min(axis=1))),
        "synthetic_nearer_real_chest_than_any_photo": float(
            np.mean(d_chest < d_photo.min(axis=1))),
        "synthetic_pairwise_median": float(np.median(pair)),
        "real_chest_to_photos_median": float(np.median(cosine(f_chest, f_photo))),
        "real_chest_to_other_radiograph": float(cosine(f_chest, f_other).min()),
        "photos_pairwise_median": float(np.median(
            cosine(f_photo, f_photo)[np.triu_indices(len(PHOTOS), 1)])),
    }


def contact_sheet(real: dict[str, np.ndarray], path: Path, tile: int = 160) -> Path:
    """4 x 4 synthetic films (one per patient, sites cycled) and the real film, side by side."""
    ims = [resized(im.pixels, tile) for im in synthetic(16, tile * 2, offset=300_000)]
    ims = [cv2.copyMakeBorder(x, 0, tile - x.shape[0], 0, tile - x.shape[1],
                              cv2.BORDER_CONSTANT, value=0) for x in ims]
    grid = np.vstack([np.hstack(ims[r * 4:(r + 1) * 4]) for r in range(4)])
    first = next(iter(real.values()))
    rl = resized(first, 4 * tile)
    rl = cv2.copyMakeBorder(rl, 0, 4 * tile - rl.shape[0], 0, 4 * tile - rl.shape[1],
                            cv2.BORDER_CONSTANT, value=0)
    gap = np.ones((4 * tile, 8), np.float32)
    sheet = (np.clip(np.hstack([grid, gap, rl]), 0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


#: part name -> (results key, measurement)
PARTS = {
    "dhash": ("dhash_spread", lambda real, a: hash_spread(real, a.patients)),
    "audit": ("near_duplicates", lambda real, a: near_duplicates(a.audit_images, a.audit_size)),
    "spectra": ("lung_spectrum_slope", lambda real, a: spectra(real, a.spectra)),
    "histograms": ("histogram_after_window", lambda real, a: histograms(real, a.histograms)),
    "features": ("lite0_features", lambda real, a: features(real, a.features)),
    "sheet": ("contact_sheet", lambda real, a: str(contact_sheet(real, a.sheet))),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, help="folder of more real chest films")
    ap.add_argument("--patients", type=int, default=300, help="for the dHash spread")
    ap.add_argument("--audit-images", type=int, default=2000)
    ap.add_argument("--audit-size", type=int, default=224)
    ap.add_argument("--spectra", type=int, default=40)
    ap.add_argument("--histograms", type=int, default=40)
    ap.add_argument("--features", type=int, default=100, help="films for the Lite0 features")
    ap.add_argument("--out", type=Path, default=RESULTS / "synthetic_realism.json")
    ap.add_argument("--sheet", type=Path, default=RESULTS / "synthetic_contact_sheet.png")
    ap.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=sorted(PARTS),
                    help="measure only these (merged into an existing --out file)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    real = real_films(args.real)
    res = json.loads(args.out.read_text()) if args.out.is_file() else {}
    res["real_films"] = list(real)
    for part in args.parts:
        res[PARTS[part][0]] = PARTS[part][1](real, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=float))
    print(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
