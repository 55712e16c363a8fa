"""Does the domain gate tell a model's own kind of image from other modalities?

On a finished run (the demo: synthetic chest radiographs), score with the stored feature
reference (``domain.npz``) the run's own test images (in domain) and images of other
modalities: MR, CT, NM and ultrasound from pydicom's test files, and synthetic axial CT
slices (:func:`imaging_tl.synthetic.make_ct`, written as real CT DICOM). Reports the
AUROC of the feature distance (in vs out), the share of in-domain images flagged at the
stored threshold (the false-flag rate) and the share of other-modality images flagged, by
the features alone and by the whole gate (header facts + features).

    imaging-tl run pipelines/demo.yaml --out runs/demo
    python benchmarks/domain_gate.py runs/demo --ct 20 --json benchmarks/results/domain_gate.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OTHER = {  # distinct images (one encoding each) from pydicom's test files
    "MR": ["MR_small.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
           "examples_overlay.dcm", "emri_small.dcm"],
    "CT": ["CT_small.dcm", "693_UNCR.dcm", "eCT_Supplemental.dcm"],
    "NM": ["JPEG2000_UNC.dcm"],
    "US": ["US1_UNCR.dcm"],
}


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def synthetic_ct(folder: Path, n: int, seed: int = 0) -> list[str]:
    from imaging_tl.synthetic.dicom_writer import DicomIdentity, synthetic_uid, write_ct
    from imaging_tl.synthetic.images import make_ct

    out = []
    for i in range(n):
        img = make_ct(seed + i, size=256)
        ident = DicomIdentity(patient_number=900 + i, study_uid=synthetic_uid("s", i),
                              series_uid=synthetic_uid("se", i), sop_uid=synthetic_uid("i", i),
                              study_date="20260101", study_time="120000")
        out.append(str(write_ct(folder / f"ct{i:03d}.dcm", img.pixels, ident)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a finished run (with domain.npz)")
    ap.add_argument("--ct", type=int, default=20, help="synthetic CT slices (default 20)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    from pydicom.data import get_testdata_file

    run = Path(args.run_dir)
    s = pd.read_csv(run / "splits.csv")
    own = list(s.loc[s["split"] == "test", "path"])
    others = {m: [get_testdata_file(f, download=False) for f in fs] for m, fs in OTHER.items()}
    tmp = tempfile.mkdtemp()
    try:
        return _measure(run, own, others, Path(tmp), args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(run: Path, own: list[str], others: dict[str, list[str]], tmp: Path,
             args: argparse.Namespace) -> int:
    from imaging_tl.pipeline import predict_files

    others["synthetic CT"] = synthetic_ct(tmp, args.ct)
    files = own + [f for fs in others.values() for f in fs]
    kinds = ["in domain"] * len(own) + [m for m, fs in others.items() for _ in fs]
    df = predict_files(run / "model.keras", files)
    df["kind"] = kinds
    refused = {f"{r.kind}: {Path(r.path).name}": r.reason
               for r in df[df["status"] != "ok"].itertuples()}
    df = df[df["status"] == "ok"].copy()
    # every distance (the reason only names it for flagged files)
    from imaging_tl.evaluate.domain import load_reference
    from imaging_tl.pipeline.predict import _load_predictor  # noqa: PLC2701
    from imaging_tl.train.features import extract_features

    ref = load_reference(run / "domain.npz")
    pr = _load_predictor(run / "model.keras", "keras", True, None, None)
    x = np.stack([pr.prepare(p) for p in df["path"]])
    dist = ref.distance(extract_features(pr.model, x)[0])
    inside = (df["kind"] == "in domain").to_numpy()
    res = {
        "run": str(run), "in_domain_images": int(inside.sum()),
        "other_images": {k: int((df["kind"] == k).sum()) for k in others},
        "feature_auroc": auroc(dist[inside], dist[~inside]),
        "threshold": ref.threshold,
        "feature_false_flags_in_domain": float((dist[inside] > ref.threshold).mean()),
        "feature_flagged_other": float((dist[~inside] > ref.threshold).mean()),
        "gate_false_flags_in_domain": float((df["domain"][inside] == "out_of_domain").mean()),
        "gate_flagged_other": float((df["domain"][~inside] == "out_of_domain").mean()),
        "feature_flagged_by_kind": {k: float((dist[(df["kind"] == k).to_numpy()]
                                              > ref.threshold).mean())
                                    for k in others if (df["kind"] == k).any()},
        "not_predicted": refused,
    }
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
