"""Synthetic, clearly labelled radiology data: phantoms, findings, DICOM/PNG writers.

No labelled medical dataset can be downloaded on the machines this project runs on, so the
demo set (``sample_dicoms/``), the tests and the benchmarks use images generated here:
chest-radiograph phantoms and CT slices with nodules, consolidations and effusions of
controllable difficulty, written as real DICOM (CR, DX, CT) and PNG files with a
``labels.csv``, and CT series (chest or head, a file per slice, axial or oblique) with a
lesion across a few slices (:mod:`imaging_tl.synthetic.series`). Every file says in its
header that it is synthetic.

Examples
--------
>>> from imaging_tl.synthetic import make_radiograph
>>> img = make_radiograph(seed=0, findings=["nodule"], size=128, difficulty="easy")
>>> img.labels["nodule"], img.pixels.dtype
(1, dtype('float32'))
>>> sorted(SITES)  # named acquisition sites: make_radiograph(..., site="public")
['local', 'public']

Regenerate the demo set: ``python -m imaging_tl.synthetic --preset demo --out sample_dicoms``.
"""

from imaging_tl.synthetic.composite import composite_radiograph, estimate_lung_fields
from imaging_tl.synthetic.dataset import LABEL_COLUMNS, generate_dataset
from imaging_tl.synthetic.dicom_writer import (
    SYNTHETIC_COMMENT,
    DicomIdentity,
    synthetic_uid,
    write_ct,
    write_radiograph,
)
from imaging_tl.synthetic.findings import (
    DIFFICULTIES,
    FINDINGS,
    Difficulty,
    add_consolidation,
    add_effusion,
    add_nodule,
    finding_cnr,
    get_difficulty,
)
from imaging_tl.synthetic.images import SyntheticImage, make_ct, make_radiograph
from imaging_tl.synthetic.phantom import chest_radiograph, ct_slice, expose_radiograph
from imaging_tl.synthetic.png_writer import write_png
from imaging_tl.synthetic.population import Population, Shift, patient_tags
from imaging_tl.synthetic.series import (
    CTSeries,
    generate_series_dataset,
    make_ct_series,
    write_ct_series,
)
from imaging_tl.synthetic.sites import SITES, SiteProfile, get_site

__all__ = [
    "CTSeries",
    "DIFFICULTIES",
    "FINDINGS",
    "LABEL_COLUMNS",
    "SITES",
    "SYNTHETIC_COMMENT",
    "DicomIdentity",
    "Difficulty",
    "Population",
    "Shift",
    "SiteProfile",
    "SyntheticImage",
    "add_consolidation",
    "add_effusion",
    "add_nodule",
    "chest_radiograph",
    "composite_radiograph",
    "ct_slice",
    "estimate_lung_fields",
    "expose_radiograph",
    "finding_cnr",
    "generate_dataset",
    "generate_series_dataset",
    "get_difficulty",
    "get_site",
    "make_ct",
    "make_ct_series",
    "make_radiograph",
    "patient_tags",
    "synthetic_uid",
    "write_ct",
    "write_ct_series",
    "write_png",
    "write_radiograph",
]
