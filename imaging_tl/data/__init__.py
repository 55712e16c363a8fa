"""Datasets, patient-level splits, the leakage audit, the array cache and input preparation.

Importing this package does not import TensorFlow; only :mod:`imaging_tl.data.tfdata` does.

Examples
--------
>>> from imaging_tl.data import from_csv, split_table
>>> table = split_table(from_csv("sample_dicoms/labels.csv"), val=0.15, test=0.15, seed=0)
>>> sorted(table["split"].unique())
['test', 'train', 'val']
"""

from imaging_tl.data.audit import AuditReport, LeakageError, LeakageWarning, audit_splits
from imaging_tl.data.cache import ArrayCache, CacheInfo, default_cache_dir
from imaging_tl.data.errors import DatasetError
from imaging_tl.data.labels import (
    class_weights,
    encode_labels,
    label_columns,
    sample_weights,
    task_of,
)
from imaging_tl.data.prepare import BadFileError, Prepared, prepare
from imaging_tl.data.splitfile import read_splits, write_splits
from imaging_tl.data.splits import crossval_table, fold_split, kfold_table, split_table
from imaging_tl.data.table import from_csv, from_dicom_headers, from_folder, validate

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
    "class_weights",
    "crossval_table",
    "default_cache_dir",
    "encode_labels",
    "from_csv",
    "from_dicom_headers",
    "fold_split",
    "from_folder",
    "kfold_table",
    "label_columns",
    "prepare",
    "read_splits",
    "sample_weights",
    "split_table",
    "task_of",
    "validate",
    "write_splits",
]
