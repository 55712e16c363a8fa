"""What a run shows a reader: PNG plots, the Grad-CAM gallery, and one self-contained page.

- :mod:`~imaging_tl.report.plots`: ROC, PR, confusion matrix, reliability, training curves;
- :mod:`~imaging_tl.report.gallery`: which test images to explain, and their overlays;
- :mod:`~imaging_tl.report.html`: ``report.html`` with every image embedded;
- :mod:`~imaging_tl.report.model_card`: ``model_card.md`` and the report's model-card
  section (with :mod:`~imaging_tl.report.claim`, the CLAIM checklist items a run answers).

Nothing here imports TensorFlow except the gallery's overlays (through
:mod:`imaging_tl.explain`, on first use).

Examples
--------
>>> from imaging_tl.report import select_gallery
>>> select_gallery([1, 0], [0.9, 0.2], 0.5, n_per_category=1)["TP"]
[0]
"""

from imaging_tl.report.gallery import (
    gallery_from_dir,
    gallery_items,
    save_gallery,
    select_gallery,
    task_gallery,
)
from imaging_tl.report.html import make_plots, split_audit, write_report, write_run_report

__all__ = ["gallery_from_dir", "gallery_items", "make_plots", "save_gallery", "select_gallery",
           "split_audit", "task_gallery", "write_report", "write_run_report"]
