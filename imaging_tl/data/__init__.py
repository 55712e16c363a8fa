"""Datasets, patient-level splits, the leakage audit, the array cache and input preparation.

Importing this package does not import TensorFlow; only :mod:`imaging_tl.data.tfdata` does.

Examples
--------
>>> from imaging_tl.data import from_folder, split_table, prepare  # doctest: +SKIP
>>> table = split_table(from_folder("scans/"), val=0.15, test=0.15, seed=0)  # doctest: +SKIP
"""

from imaging_tl.data.audit import AuditReport, LeakageError, LeakageWarning, audit_splits
from imaging_tl.data.cache import ArrayCache, CacheInfo, default_cache_dir
from imaging_tl.data.prepare import BadFileError, Prepared, prepare
from imaging_tl.data.splits import kfold_table, read_splits, split_table, write_splits
from imaging_tl.data.table import (
    DatasetError,
    encode_labels,
    from_csv,
    from_dicom_headers,
    from_folder,
    label_columns,
    task_of,
    validate,
)

__all__ = [
    "ArrayCache",
    "AuditReport",
    "BadFileError",
    "CacheInfo",
    "DatasetError",
    "LeakageError",
    "LeakageWarning",
    "Prepared",
    "audit_splits",
    "default_cache_dir",
    "encode_labels",
    "from_csv",
    "from_dicom_headers",
    "from_folder",
    "kfold_table",
    "label_columns",
    "prepare",
    "read_splits",
    "split_table",
    "task_of",
    "validate",
    "write_splits",
]
