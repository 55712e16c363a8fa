"""Leakage audit: no patient, SOPInstanceUID, file or pixel-identical image in two splits.

Leaks fail with :class:`LeakageError`, whose message lists every leak with the files involved
(group keys are shown as short digests, never as patient identifiers). Near-duplicates (a
difference hash of the image within a few bits) across splits only warn: a follow-up scan
of the same patient can look alike and still be a different image.

Works on any table with ``path`` and a split column (``split`` or ``fold``), including a
user's own split file read with :func:`imaging_tl.data.splits.read_splits`. Pixel hashes
are taken from the ``content_hash`` / ``dhash`` columns that
:func:`imaging_tl.data.prepare.prepare` fills in, or computed by reading the files.
Across tasks (a model trained on a source task, then transferred to a target task):
:func:`data_index` keeps, per sample, only pseudonymised patient keys, a hashed
SOPInstanceUID and the pixel hash, so that a later task can check with
:func:`source_overlap` that its validation and test patients were not seen by the source.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from imaging_tl.data.files import file_kind, read_header
from imaging_tl.data.hashing import content_hash, dhash, hamming, hash_words
from imaging_tl.data.splitfile import read_splits
from imaging_tl.data.workers import mp_context
from imaging_tl.io.pseudonyms import pseudonym

__all__ = [
    "INDEX_COLUMNS",
    "AuditReport",
    "LeakageError",
    "LeakageWarning",
    "SourceOverlap",
    "audit_splits",
    "content_hash",
    "data_index",
    "dhash",
    "hamming",
    "source_overlap",
]

class LeakageError(ValueError):
    """The same patient, instance, file or image is in more than one split.

    Attributes
    ----------
    report : AuditReport
        Everything the audit found.
    """

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__(report.format())


class LeakageWarning(UserWarning):
    """Near-duplicate images across splits (a possible, not a certain, leak)."""


@dataclass
class AuditReport:
    """What the leakage audit found.

    Attributes
    ----------
    leaks : list of str
        One line per leak (kind, key and the files in each split).
    near_duplicates : list of str
        One line per near-duplicate pair across splits.
    checked : list of str
        The checks that ran (``"group"``, ``"path"``, ``"SOPInstanceUID"``, ``"pixels"``,
        ``"near_duplicates"``).
    unreadable : list of str
        Files the pixel checks could not read (with the reason).

    Examples
    --------
    >>> AuditReport().ok
    True
    """

    leaks: list[str] = field(default_factory=list)
    near_duplicates: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no leak was found (near-duplicates do not count)."""
        return not self.leaks

    def format(self) -> str:
        """A readable summary, leaks first."""
        lines = [f"leakage audit ({', '.join(self.checked)}): "
                 + (f"{len(self.leaks)} LEAK(S) between splits" if self.leaks else "no leak")]
        lines += [f"  LEAK {x}" for x in self.leaks[:100]]
        if len(self.leaks) > 100:
            lines.append(f"  ... and {len(self.leaks) - 100} more leaks")
        if self.near_duplicates:
            lines.append(f"  {len(self.near_duplicates)} near-duplicate pair(s) across splits:")
            lines += [f"  near-duplicate {x}" for x in self.near_duplicates[:20]]
        if self.unreadable:
            lines.append(f"  {len(self.unreadable)} file(s) not pixel-checked (unreadable)")
        return "\n".join(lines)


def _hash_one(item: tuple[str, int | None]) -> tuple[str | None, str | None, str | None]:
    from imaging_tl.io.errors import ScanReadError
    from imaging_tl.io.reader import read_scan

    path, frame = item
    try:
        px = read_scan(path, frame=frame).pixels
    except ScanReadError as exc:
        return None, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - reported, the audit goes on
        return None, None, f"{type(exc).__name__}: {exc}"
    if px.ndim >= 3 and not (px.ndim == 3 and px.shape[-1] in (3, 4)):
        px = px[px.shape[0] // 2]  # a whole multi-frame file: hash its middle frame
    return content_hash(px), dhash(px), None


def _compute_hashes(df: pd.DataFrame, workers: int | None) -> tuple[list, list, list]:
    frames = df["frame"] if "frame" in df.columns else pd.Series([pd.NA] * len(df))
    items = [(p, None if pd.isna(f) else int(f)) for p, f in zip(df["path"], frames, strict=True)]
    workers = workers if workers is not None else min(len(items), os.cpu_count() or 1)
    if workers > 1 and len(items) > 8:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp_context()) as pool:
            results = list(pool.map(_hash_one, items, chunksize=8))
    else:
        results = [_hash_one(i) for i in items]
    return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]


def _redact(group: str) -> str:
    # Library group keys are already digests ("pid:..."); users' own keys get digested here.
    text = str(group)
    if text.split(":", 1)[0] in ("pid", "study", "file"):
        return text
    return "group#" + hashlib.sha256(text.encode()).hexdigest()[:10]


def _cross_split(
    df: pd.DataFrame, key: str, split_column: str, kind: str, redact: bool
) -> list[str]:
    sub = df[list(dict.fromkeys([key, split_column, "path"]))].dropna(subset=[key])
    sub = sub[sub[key].astype(str).str.strip() != ""]
    n_splits = sub.groupby(key, sort=True)[split_column].nunique()
    leaks = []
    for value in n_splits.index[n_splits > 1]:
        rows = sub[sub[key] == value]
        where = "; ".join(
            f"{s}: {', '.join(map(str, sorted(set(g['path']))[:3]))}"
            + (f" (+{g['path'].nunique() - 3})" if g["path"].nunique() > 3 else "")
            for s, g in rows.groupby(split_column, sort=True)
        )
        shown = _redact(value) if redact else str(value)
        leaks.append(f"{kind} {shown} in {rows[split_column].nunique()} splits -> {where}")
    return leaks


def _near_duplicates(
    df: pd.DataFrame, split_column: str, max_distance: int, exact: set[str]
) -> list[str]:
    sub = df.dropna(subset=["dhash"]).reset_index(drop=True)
    if len(sub) < 2:
        return []
    words = hash_words(list(sub["dhash"]))
    split = sub[split_column].astype(str).to_numpy()
    chash = sub["content_hash"].astype(str).to_numpy() if "content_hash" in sub else None
    found = []
    chunk = max(1, 4_000_000 // max(1, len(sub) * words.shape[1]))
    for start in range(0, len(sub), chunk):
        block = words[start:start + chunk]
        # Pairwise popcount of XOR, only against later rows (each pair once).
        dist = np.zeros((len(block), len(sub)), dtype=np.int32)
        for w in range(words.shape[1]):
            dist += np.bitwise_count(block[:, w, None] ^ words[None, :, w]).astype(np.int32)
        ii, jj = np.nonzero(dist <= max_distance)
        for i, j in zip(ii + start, jj, strict=True):
            if j <= i or split[i] == split[j]:
                continue
            if chash is not None and chash[i] == chash[j] and chash[i] in exact:
                continue  # already reported as an exact leak
            found.append(
                f"{sub['path'][i]} ({split[i]}) ~ {sub['path'][j]} ({split[j]}): "
                f"{int(dist[i - start, j])} of {words.shape[1] * 64} bits differ"
            )
    return found


def audit_splits(
    splits: pd.DataFrame | str | os.PathLike,
    *,
    split_column: str | None = None,
    pixels: bool = True,
    near_duplicates: bool = True,
    max_distance: int = 10,
    raise_on_leak: bool = True,
    workers: int | None = None,
) -> AuditReport:
    """Check that no patient, instance, file or image appears in two splits.

    Parameters
    ----------
    splits : pandas.DataFrame or path
        A table with ``path`` and a split column, or a ``splits.csv`` (ours or a user's).
    split_column : str, optional
        ``"split"`` or ``"fold"`` when not given (the one present).
    pixels : bool
        Compare pixel content hashes (``content_hash`` column, else computed by reading
        every file: decoding costs time).
    near_duplicates : bool
        Warn (:class:`LeakageWarning`) about images within ``max_distance`` bits of
        difference hash across splits.
    max_distance : int
        Hamming distance (of 256 bits) up to which two images count as near-duplicates.
    raise_on_leak : bool
        Raise :class:`LeakageError` on a leak (default) or only return the report.
    workers : int, optional
        Processes used to read files for the pixel checks (default: CPU count).

    Returns
    -------
    AuditReport
        The findings (also when nothing leaked).

    Raises
    ------
    LeakageError
        When a group (patient), SOPInstanceUID, path or pixel-identical image is in two
        splits, naming each and its files.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"path": ["/a", "/b"], "group": ["p1", "p1"],
    ...                    "split": ["train", "test"]})
    >>> audit_splits(df, pixels=False, raise_on_leak=False).ok
    False
    """
    df, split_column = _audit_table(splits, split_column)
    report = AuditReport()
    _check_keys(df, split_column, report)
    if pixels or near_duplicates:
        if "content_hash" not in df.columns or (near_duplicates and "dhash" not in df.columns):
            ch, dh, why = _compute_hashes(df, workers)
            df["content_hash"], df["dhash"] = ch, dh
            report.unreadable = [f"{p}: {w}" for p, w in zip(df["path"], why, strict=True) if w]
    exact: set[str] = set()
    if pixels:
        exact = _check_pixels(df, split_column, report)
    if near_duplicates:
        report.checked.append("near_duplicates")
        report.near_duplicates = _near_duplicates(df, split_column, max_distance, exact)
        if report.near_duplicates:
            warnings.warn(
                f"{len(report.near_duplicates)} near-duplicate image pair(s) across splits, "
                f"e.g. {report.near_duplicates[0]}", LeakageWarning, stacklevel=2)
    if report.leaks and raise_on_leak:
        raise LeakageError(report)
    return report


def _audit_table(
    splits: pd.DataFrame | str | os.PathLike, split_column: str | None
) -> tuple[pd.DataFrame, str]:
    """The table to audit (read when a path) and its split column, both checked."""
    df = (splits if isinstance(splits, pd.DataFrame) else read_splits(splits))
    df = df.reset_index(drop=True)
    if split_column is None:
        split_column = next((c for c in ("split", "fold") if c in df.columns), None)
    if split_column is None or split_column not in df.columns:
        raise ValueError(f"no split column ({split_column or 'split/fold'}) in the table; "
                         f"columns: {list(df.columns)}")
    if "path" not in df.columns:
        raise ValueError(f"no 'path' column in the table; columns: {list(df.columns)}")
    return df, split_column


def _check_keys(df: pd.DataFrame, split_column: str, report: AuditReport) -> None:
    """Leaks by group (patient), path and SOPInstanceUID (read from headers when absent)."""
    if "group" in df.columns:
        report.checked.append("group")
        report.leaks += _cross_split(df, "group", split_column, "patient/group", redact=True)
    report.checked.append("path")
    report.leaks += _cross_split(df, "path", split_column, "file", redact=False)
    if "SOPInstanceUID" not in df.columns:
        sop = {p: (read_header(p).get("SOPInstanceUID") if file_kind(Path(p)) == "dicom" else None)
               for p in dict.fromkeys(df["path"]) if os.path.isfile(p)}
        df["SOPInstanceUID"] = df["path"].map(sop)
    report.checked.append("SOPInstanceUID")
    # Frames of one file share its SOPInstanceUID; the path check covers them.
    per_file = df.drop_duplicates(subset=["path", split_column])
    report.leaks += _cross_split(per_file, "SOPInstanceUID", split_column, "SOPInstanceUID",
                                 redact=False)


def _check_pixels(df: pd.DataFrame, split_column: str, report: AuditReport) -> set[str]:
    """Leaks of pixel-identical images; returns the content hashes found in two splits."""
    report.checked.append("pixels")
    report.leaks += _cross_split(df, "content_hash", split_column, "pixel-identical image",
                                 redact=False)
    n = df.dropna(subset=["content_hash"]).groupby("content_hash")[split_column].nunique()
    return set(n.index[n > 1])


#: The columns of a data index (``data_index.csv`` of a run): no raw identifier.
INDEX_COLUMNS = ("split", "group", "patient", "sop", "content_hash")


def _patient_key(group: object) -> str:
    """A group key as a patient pseudonym (``pid:...``); "" for file or study groups."""
    text = "" if group is None or group is pd.NA or group != group else str(group).strip()
    if not text or text.split(":", 1)[0] in ("file", "study"):
        return ""
    return text if text.startswith("pid:") else pseudonym(text)


def data_index(table: pd.DataFrame) -> pd.DataFrame:
    """The identifiers of a task's samples, pseudonymised, for cross-task leakage checks.

    Parameters
    ----------
    table : pandas.DataFrame
        ``path`` and ``split`` columns; ``group`` (patient key), ``content_hash`` and
        ``SOPInstanceUID`` are used when present (DICOM headers are read for the
        SOPInstanceUID and PatientID otherwise).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INDEX_COLUMNS`: ``group`` (the group key as a ``pid:``
        pseudonym), ``patient`` (the pseudonym of the header's PatientID), ``sop``
        (pseudonym of the SOPInstanceUID, prefix ``sop:``) and ``content_hash`` (pixels);
        "" where unknown. No path and no raw identifier.

    Examples
    --------
    >>> t = pd.DataFrame({"path": ["/nope/a.png"], "split": ["train"], "group": ["P1"],
    ...                   "content_hash": ["abc"]})
    >>> from imaging_tl.io.census import pseudonymize_patient_id
    >>> data_index(t).iloc[0]["group"] == pseudonymize_patient_id("P1")
    True
    """
    headers = {p: (read_header(p) if os.path.isfile(p) and file_kind(Path(p)) == "dicom"
                   else {}) for p in dict.fromkeys(table["path"])}
    sop = (table["SOPInstanceUID"] if "SOPInstanceUID" in table.columns
           else table["path"].map(lambda p: headers[p].get("SOPInstanceUID")))
    pid = table["path"].map(lambda p: headers[p].get("PatientID"))

    def hashed(values: pd.Series, prefix: str) -> list[str]:
        return ["" if v is None or pd.isna(v) or not str(v).strip()
                else pseudonym(str(v).strip(), prefix) for v in values]

    groups = table["group"] if "group" in table.columns else pd.Series([None] * len(table))
    chash = (table["content_hash"] if "content_hash" in table.columns
             else pd.Series([None] * len(table)))
    return pd.DataFrame({
        "split": table["split"].astype(str).to_numpy(),
        "group": [_patient_key(g) for g in groups],
        "patient": hashed(pid, "pid"),
        "sop": hashed(sop, "sop"),
        "content_hash": ["" if v is None or pd.isna(v) else str(v) for v in chash],
    })


@dataclass
class SourceOverlap:
    """What a target task's evaluation data shares with the data of its source task.

    Attributes
    ----------
    patients : int
        Target validation/test patients (groups) seen by the source.
    files : int
        Target validation/test samples whose SOPInstanceUID or pixels the source saw.
    by_kind : dict
        Samples matched per key: ``patient``, ``SOPInstanceUID``, ``pixels``.
    target_splits, source_splits : tuple of str
        The splits compared.

    Examples
    --------
    >>> SourceOverlap().ok
    True
    """

    patients: int = 0
    files: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    target_splits: tuple[str, ...] = ("val", "test")
    source_splits: tuple[str, ...] = ("train", "val")

    @property
    def ok(self) -> bool:
        """True when the source saw none of the target's evaluation data."""
        return not (self.patients or self.files)

    def format(self) -> str:
        """One line: counts and the keys that matched."""
        if self.ok:
            return (f"cross-task audit: no {'/'.join(self.target_splits)} patient or file "
                    "of the target was seen by the source")
        kinds = ", ".join(f"{k} {v}" for k, v in self.by_kind.items() if v)
        return (f"cross-task audit: {self.patients} patient(s) and {self.files} file(s) of "
                f"the target's {'/'.join(self.target_splits)} splits are in the source "
                f"task's {'/'.join(self.source_splits)} data (samples matched by {kinds})")

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``run.json``."""
        return {"patients": self.patients, "files": self.files, "by_kind": self.by_kind,
                "target_splits": list(self.target_splits),
                "source_splits": list(self.source_splits)}


def source_overlap(source: pd.DataFrame, target: pd.DataFrame, *,
                   target_splits: tuple[str, ...] = ("val", "test"),
                   source_splits: tuple[str, ...] = ("train", "val")) -> SourceOverlap:
    """Which evaluation samples of a target task the source task trained on.

    Parameters
    ----------
    source, target : pandas.DataFrame
        Data indexes (:func:`data_index`) of the source run and of the target.
    target_splits : tuple of str
        The target's splits that must be unseen (validation and test).
    source_splits : tuple of str
        The source's splits that count as seen (trained on, or used to choose its epochs).

    Returns
    -------
    SourceOverlap

    Examples
    --------
    >>> src = pd.DataFrame({"split": ["train"], "group": ["pid:1"], "patient": [""],
    ...                     "sop": ["sop:a"], "content_hash": ["h1"]})
    >>> tgt = pd.DataFrame({"split": ["test", "test"], "group": ["pid:1", "pid:2"],
    ...                     "patient": ["", ""], "sop": ["", ""], "content_hash": ["h9", "h1"]})
    >>> o = source_overlap(src, tgt)
    >>> o.patients, o.files
    (1, 1)
    """
    seen = source[source["split"].astype(str).isin(source_splits)].fillna("")
    ev = target[target["split"].astype(str).isin(target_splits)].fillna("").reset_index(
        drop=True)
    people = (set(seen["group"]) | set(seen["patient"])) - {""}
    sops = set(seen["sop"]) - {""}
    pixels = set(seen["content_hash"]) - {""}
    by_patient = ev["group"].isin(people) | ev["patient"].isin(people)
    by_sop = ev["sop"].isin(sops) & (ev["sop"] != "")
    by_pixels = ev["content_hash"].isin(pixels) & (ev["content_hash"] != "")
    key = ev["group"].where(ev["group"] != "", ev["patient"])
    return SourceOverlap(
        patients=int(key[by_patient].nunique()), files=int((by_sop | by_pixels).sum()),
        by_kind={"patient": int(by_patient.sum()), "SOPInstanceUID": int(by_sop.sum()),
                 "pixels": int(by_pixels.sum())},
        target_splits=tuple(target_splits), source_splits=tuple(source_splits))
