"""Prepare once: decode + preprocess every sample in worker processes into the array cache.

Why processes: decoding (pydicom, pylibjpeg) and the stages are Python/numpy code that holds
the GIL for much of its time; inside ``tf.data`` (``py_function``) or a thread pool they run
one at a time. Measured on 2 cores (``benchmarks/input_pipeline.py``): see BENCHMARKS.md.
The workers write each array straight into the cache (atomic), and send back only a small
record (shape, hashes), so no image crosses a pipe. Later epochs and later runs read the
cache; an unchanged re-run decodes nothing.

Bad files (unreadable, or a stage that refuses them) are quarantined: listed with their
reason in :attr:`Prepared.quarantined`, remembered in the cache, and left out of the run,
unless ``strict=True``, which raises on the first one.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from imaging_tl.data.cache import ArrayCache, load_entry
from imaging_tl.data.hashing import content_hash, dhash
from imaging_tl.data.stacking import STACK_COLUMN, load_stacked, split_stack, stack_columns
from imaging_tl.data.workers import boot_forkserver, mp_context

__all__ = [
    "BadFileError", "CacheWriteError", "Prepared", "failure_reason", "mp_context", "prepare",
    "process_one", "quarantine_verdict",
]


class BadFileError(RuntimeError):
    """Raised in strict mode for the first file that cannot be prepared (named with why)."""


class CacheWriteError(RuntimeError):
    """The cache folder cannot be written (disk full, read-only): a problem of the run, not
    of an input file, so nothing is quarantined."""


@dataclass
class Prepared:
    """The cached, ready-to-stream form of a dataset table.

    Attributes
    ----------
    table : pandas.DataFrame
        The input rows that prepared fine, with ``cache_file``, ``offset`` (bytes before the
        data), ``shape``, ``tiled`` (channels stored once), ``content_hash`` and ``dhash``
        columns added.
    quarantined : pandas.DataFrame
        ``path, frame, reason`` of each bad sample (left out of ``table``).
    namespace : str
        The cache namespace (pipeline fingerprint + format).
    cache : ArrayCache
        Where the arrays are.
    stats : dict
        ``samples``, ``hits``, ``decoded``, ``quarantined``, ``seconds``.

    Examples
    --------
    >>> import tempfile
    >>> from imaging_tl.data.table import from_csv
    >>> from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
    >>> table = from_csv("sample_dicoms/labels.csv").head(3)
    >>> pipe = Pipeline([Window.percentile(), Resize(64), ToRGB()])
    >>> prepared = prepare(table, pipe, cache=tempfile.mkdtemp(), executor="serial")
    >>> prepared.shape, prepared.stats["decoded"]
    ((64, 64, 3), 3)
    """

    table: pd.DataFrame
    quarantined: pd.DataFrame
    namespace: str
    cache: ArrayCache
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """The common array shape (raises when the pipeline gives several sizes)."""
        shapes = set(map(tuple, self.table["shape"]))
        if len(shapes) != 1:
            raise ValueError(
                f"prepared arrays have {len(shapes)} shapes ({sorted(shapes)[:4]}...): add a "
                "Resize (and ToRGB) stage so every sample has the model's input size"
            )
        return tuple(int(s) for s in shapes.pop())

    def load(self, i: int) -> np.ndarray:
        """Array of row ``i`` of :attr:`table`, checked against the entry's checksum (a 2.5-D
        sample: its neighbouring slices, :mod:`imaging_tl.data.stacking`)."""
        if STACK_COLUMN in self.table.columns:
            return load_stacked(self.table[STACK_COLUMN].iloc[i])
        checksum = self.table["checksum"].iloc[i] if "checksum" in self.table else None
        return load_entry(self.table["cache_file"].iloc[i], self.table["tiled"].iloc[i],
                          checksum)

    def streaming(self) -> Prepared:
        """The same samples with only what reading their arrays needs: the cache file,
        offset, tiling, checksum and shape of each (a 2.5-D sample: its neighbours' entries).

        For a long stream over a big archive: the full table holds paths, hashes and
        provenance of every sample, and the cache the look-up index of every file (a few KB
        a sample together), that nothing reads while training. The columns are new objects
        (one shared shape tuple) and the cache a new handle on the same folder, so once the
        original is released none of its objects stays alive; ~200 bytes a sample remain.
        Row ``i`` is row ``i`` of :attr:`table`.

        Examples
        --------
        >>> import tempfile
        >>> from imaging_tl.data.table import from_csv
        >>> from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
        >>> table = from_csv("sample_dicoms/labels.csv").head(3)
        >>> pipe = Pipeline([Window.percentile(), Resize(32), ToRGB()])
        >>> full = prepare(table, pipe, cache=tempfile.mkdtemp(), executor="serial")
        >>> slim = full.streaming()
        >>> sorted(slim.table.columns), slim.shape
        (['cache_file', 'checksum', 'offset', 'shape', 'tiled'], (32, 32, 3))
        >>> bool(np.array_equal(slim.load(2), full.load(2)))
        True
        """
        t = self.table
        columns: dict[str, Any] = {"offset": t["offset"].to_numpy(np.int64)}
        columns["tiled"] = t["tiled"].to_numpy(np.int8) if "tiled" in t else np.zeros(len(t),
                                                                                     np.int8)
        for name in ("cache_file", "checksum"):
            if name in t:  # new strings, packed together, not the full table's own
                columns[name] = [None if v is None or pd.isna(v)
                                 else os.fsdecode(os.fsencode(v)) for v in t[name]]
        shapes = list(dict.fromkeys(map(tuple, t["shape"])))
        # one shape (the usual case): one tuple object shared by every row
        columns["shape"] = [shapes[0]] * len(t) if len(shapes) == 1 else list(
            map(tuple, t["shape"]))
        if STACK_COLUMN in t:
            columns[STACK_COLUMN] = t[STACK_COLUMN].tolist()
        slim = pd.DataFrame(columns)
        slim.attrs = dict(t.attrs)
        # a new handle on the cache folder: not the look-up index the preparation loaded
        cache = ArrayCache(self.cache.root, hash=self.cache.hash)
        return Prepared(slim, self.quarantined, self.namespace, cache, dict(self.stats))

    def summary(self) -> str:
        """One line, plus one per quarantined file."""
        s = self.stats
        lines = [f"prepared {s.get('samples', 0)} samples: {s.get('hits', 0)} from cache, "
                 f"{s.get('decoded', 0)} decoded, {s.get('quarantined', 0)} quarantined "
                 f"in {s.get('seconds', 0):.1f} s"]
        q = self.quarantined
        lines += [f"  quarantined {path}" + (f" [frame {frame}]" if pd.notna(frame) else "")
                  + f": {reason}" for path, frame, reason in zip(q["path"], q["frame"],
                                                                    q["reason"], strict=True)]
        return "\n".join(lines)


#: quarantine reasons with a known cause, and what to do about it
_KNOWN_CAUSES = (("must be grey", "colour images reached a grey-only stage; set data.color "
                  "or add to_grey"),)


def quarantine_verdict(prepared: Prepared, share: float = 0.5) -> str | None:
    """One line naming the common reason when at least ``share`` of the samples were
    quarantined (``"17 of 17 files quarantined: <reason>"``), else None.

    A run stops with this line rather than with a later symptom (no shapes, empty splits).

    Examples
    --------
    >>> q = pd.DataFrame({"path": ["a", "b"], "frame": [None, None],
    ...                   "reason": ["ValueError: Window: image must be grey (H x W)"] * 2})
    >>> p = Prepared(pd.DataFrame(), q, "ns", None, {"samples": 2})  # type: ignore[arg-type]
    >>> quarantine_verdict(p)
    '2 of 2 files quarantined: colour images reached a grey-only stage; set data.color or add to_grey'
    """  # noqa: E501
    q = prepared.quarantined
    total = int(prepared.stats.get("samples", len(prepared.table) + len(q)))
    if total == 0 or len(q) < share * total:
        return None
    causes = [next((cause for key, cause in _KNOWN_CAUSES if key in str(r)), str(r))
              for r in q["reason"]]
    cause, n = Counter(causes).most_common(1)[0]
    if n < share * total:
        return None
    files = q["path"].nunique()
    return f"{n if files == len(q) else files} of {total} files quarantined: {cause}"


# -- worker side -------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(pipeline: Callable | None, cache: ArrayCache, namespace: str,
                 decode: str = "auto") -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process per core, not threads within
    try:
        import cv2  # Resize's backend: its own thread pool would oversubscribe the cores

        cv2.setNumThreads(1)
    except ImportError:
        pass
    _WORKER.update(pipeline=pipeline, cache=cache, namespace=namespace, decode=decode)


def process_one(
    path: str, frame: int | None, pipeline: Callable | None, decode: str = "full"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one sample and run the pipeline: ``(array, record)``.

    The record holds ``content_hash`` and ``dhash`` of the pixels *as read* (for the leakage
    audit) and the provenance. Errors propagate (the caller quarantines them).
    ``decode="auto"`` lets the reader decode a compressed image at the reduced resolution
    the pipeline's first resize needs (:func:`decode_plan`); ``"full"`` never does.

    Examples
    --------
    >>> from imaging_tl.stages import Pipeline, Resize, Window
    >>> arr, rec = process_one("sample_dicoms/SYN0001/st2_im04.dcm", None,
    ...                        Pipeline([Window.from_header(), Resize(64)]))
    >>> arr.shape, len(rec["content_hash"])
    ((64, 64), 32)
    """
    from imaging_tl.io.reader import read_scan

    scan = read_scan(path, frame=frame, target=decode_plan(pipeline, decode))
    px = scan.pixels
    hash_px = px
    if px.ndim == 4 or (px.ndim == 3 and not scan.is_colour):
        hash_px = px[px.shape[0] // 2]
    record: dict[str, Any] = {"path": path, "frame": frame, "content_hash": content_hash(hash_px),
              "dhash": dhash(hash_px)}
    if pipeline is not None:
        scan = pipeline(scan)
    out = scan.pixels
    if not np.all(np.isfinite(out)):
        raise ValueError("the pipeline produced NaN or infinite values")
    record["provenance"] = list(scan.provenance)
    return out, record


def decode_plan(pipeline: Callable | None, decode: str = "auto") -> Any:
    """The reader's target for ``pipeline`` under ``decode`` (``"auto"`` or ``"full"``).

    None (decode in full) for ``"full"``, without a pipeline, or when the pipeline's
    stages see the stored pixels before a resize (:func:`imaging_tl.stages.decode_target`).

    Examples
    --------
    >>> from imaging_tl.stages import Pipeline, Resize, Window
    >>> decode_plan(Pipeline([Window.from_header(), Resize(224)])).describe()
    '224x224 pad'
    >>> decode_plan(Pipeline([Resize(224)]), "full") is None
    True
    """
    if decode not in ("auto", "full"):
        raise ValueError(f"decode={decode!r}: expected 'auto' or 'full'")
    if decode == "full" or pipeline is None:
        return None
    from imaging_tl.stages.geometry import decode_target

    stages = getattr(pipeline, "stages", None)
    return decode_target(stages) if stages is not None else None


def decode_counts(records: Iterable[dict[str, Any] | None]) -> dict[str, int]:
    """How many decoded samples the decode plan reduced, and how many fell back to a
    full decode after a reduced one failed (from each record's provenance).

    Examples
    --------
    >>> decode_counts([{"provenance": ["decode: reduced 1/4 (x) from 8 x 8 to 2 x 2"]},
    ...                {"provenance": ["decode: full (reduced JPEG decode failed)"]}, None])
    {'decode_reduced': 1, 'decode_fallback': 1}
    """
    reduced = fallback = 0
    for rec in records:
        steps = (rec or {}).get("provenance") or []
        reduced += any(str(s).startswith("decode: reduced") for s in steps)
        fallback += any(str(s).startswith("decode: full (") for s in steps)
    return {"decode_reduced": reduced, "decode_fallback": fallback}


def failure_reason(exc: BaseException) -> str:
    """Why a sample could not be prepared, as recorded in quarantine: ``"<Error>: <why>"``.

    Examples
    --------
    >>> failure_reason(ValueError("the pipeline produced NaN or infinite values"))
    'ValueError: the pipeline produced NaN or infinite values'
    """
    from imaging_tl.io.errors import ScanReadError

    if isinstance(exc, ScanReadError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"




def _work(task: tuple[str, int | None, str]) -> tuple[str, dict[str, Any] | None, str | None]:
    path, frame, key = task
    try:
        arr, record = process_one(path, frame, _WORKER["pipeline"], _WORKER["decode"])
    except Exception as exc:  # noqa: BLE001 - a bad file is reported, the batch goes on
        return key, None, failure_reason(exc)
    try:
        meta = _WORKER["cache"].put(_WORKER["namespace"], key, arr, record)
    except OSError as exc:
        # The input is fine; the cache disk is not (full, read-only): fail the run.
        raise CacheWriteError(f"{_WORKER['cache'].root}: cannot write the cache entry for "
                              f"{path}: {exc}") from None
    return key, meta, None


# -- main side ---------------------------------------------------------------------------------
def _executor(kind: str, workers: int, init_args: tuple) -> Executor | None:
    if kind == "serial" or workers <= 1:
        _init_worker(*init_args)
        return None
    if kind == "thread":
        _init_worker(*init_args)
        return ThreadPoolExecutor(workers)
    if kind == "process":
        return ProcessPoolExecutor(workers, mp_context=mp_context(), initializer=_init_worker,
                                   initargs=init_args)
    raise ValueError(f"executor={kind!r}: expected 'process', 'thread' or 'serial'")


def prepare(
    table: pd.DataFrame,
    pipeline: Callable | None,
    *,
    cache: ArrayCache | str | os.PathLike | None = None,
    workers: int | None = None,
    executor: Literal["process", "thread", "serial"] = "process",
    strict: bool = False,
    retry_quarantined: bool = False,
    audit: bool = True,
    progress: bool = False,
    index: bool = True,
    decode: Literal["auto", "full"] = "auto",
) -> Prepared:
    """Decode and preprocess every sample once, into the cache; reuse what is there.

    Parameters
    ----------
    table : pandas.DataFrame
        A dataset table (``path``, optional ``frame``; a ``split`` or ``fold`` column turns on
        the full leakage audit, pixel hashes included).
    pipeline : imaging_tl.stages.Pipeline or callable, optional
        Applied to each :class:`~imaging_tl.io.Scan`. Must have ``fingerprint()``; ``None``
        caches the pixels as read. A pipeline ending with ``stack`` caches each slice
        through the stages before it, once, and gives each row its neighbouring slices
        (:func:`imaging_tl.data.stacking.stack_columns`).
    cache : ArrayCache or path, optional
        The cache (default folder: :func:`imaging_tl.data.cache.default_cache_dir`).
    workers : int, optional
        Worker count (default: CPU count).
    executor : {"process", "thread", "serial"}
        Processes by default (not throttled by the GIL); threads and serial for comparison.
    strict : bool
        Raise :class:`BadFileError` on the first bad file instead of quarantining it.
    retry_quarantined : bool
        Try files quarantined by an earlier run again (e.g. after installing a decoder).
    audit : bool
        Run the leakage audit when the table has a split column.
    progress : bool
        Show a progress bar.
    index : bool
        Use and update the cache namespace's look-up index (see
        :mod:`imaging_tl.data.cache`): a warm re-run then stats each input instead of
        hashing it and reading its entry's JSON. ``False`` for many concurrent small runs
        on one cache (e.g. a cluster's workers), where each save would rewrite the index.
    decode : {"auto", "full"}
        ``"auto"``: a JPEG 2000 or baseline JPEG image at least twice the size of the
        pipeline's first resize is decoded at a reduced resolution (:func:`decode_plan`);
        ``"full"`` decodes every image in full. The plan is part of the cache namespace,
        so arrays of the two modes never mix.

    Returns
    -------
    Prepared
        The table of prepared samples, the quarantined ones and timings.

    Examples
    --------
    >>> from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
    >>> prepared = prepare(split_table(from_folder("scans")),
    ...                    Pipeline([Window("lung"), Resize(224), ToRGB()]))  # doctest: +SKIP
    >>> print(prepared.summary())  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    pipeline, stack = split_stack(pipeline)  # slices are cached once, stacked when read
    cache = cache if isinstance(cache, ArrayCache) else ArrayCache(cache)
    namespace = _namespace(cache, pipeline, decode_plan(pipeline, decode))
    df = table.reset_index(drop=True)
    frames = [None if pd.isna(f) else int(f)
              for f in (df["frame"] if "frame" in df.columns else [pd.NA] * len(df))]
    boot = executor == "process" and (workers or os.cpu_count() or 1) > 1
    plan = _look_up(df["path"], frames, cache, namespace, index=index,
                    retry_quarantined=retry_quarantined, boot=boot)
    hits = sum(m is not None for m in plan.metas)
    if plan.tasks:
        workers = max(1, min(workers or os.cpu_count() or 1, len(plan.tasks)))
        _build(plan, df, (pipeline, cache, namespace, decode), executor=executor,
               workers=workers, strict=strict, progress=progress, index=index)
    elif index:
        cache.save_index(namespace)
    bad = [(p, r) for p, r in zip(df["path"], plan.reasons, strict=True) if r is not None]
    if strict and bad:
        raise BadFileError(f"{bad[0][0]}: {bad[0][1]}")
    out, quarantined = _tables(df, frames, plan)
    if stack is not None:
        out = stack_columns(out, stack)
    out.attrs = dict(table.attrs)
    stats = {"samples": len(df), "hits": hits, "decoded": len(plan.tasks),
             "quarantined": len(quarantined), "seconds": time.perf_counter() - t0,
             **decode_counts(plan.metas[rows[0]] for rows in plan.todo.values())}
    prepared = Prepared(out, quarantined, namespace, cache, stats)
    if audit:
        _audit(prepared)
    return prepared


def _audit(prepared: Prepared) -> None:
    """The full leakage audit (pixel hashes included) when the table has a split column."""
    out = prepared.table
    split_col = next((c for c in ("split", "fold") if c in out.columns), None)
    if split_col and len(out):
        from imaging_tl.data.audit import audit_splits

        prepared.stats["audit"] = audit_splits(out, split_column=split_col)


def _namespace(cache: ArrayCache, pipeline: Callable | None, target: Any = None) -> str:
    """The cache namespace of a pipeline (``"raw"`` pixels without one); a reduced-decode
    plan (``target``) joins the fingerprint, so ``auto`` and ``full`` arrays never mix."""
    if pipeline is None:
        return cache.namespace("raw", None)
    fingerprint = getattr(pipeline, "fingerprint", None)
    if fingerprint is None:
        raise TypeError("pipeline: needs a fingerprint() method (use "
                        "imaging_tl.stages.Pipeline) so the cache can tell versions apart")
    to_config = getattr(pipeline, "to_config", None)
    config = to_config() if to_config is not None else repr(pipeline)
    plan = f"|decode=auto {target.describe()}" if target is not None else ""
    return cache.namespace(str(fingerprint()) + plan, config)


@dataclass
class _Plan:
    """What the cache holds for each row, and what is left to decode.

    ``metas[i]``/``reasons[i]``: row ``i``'s cache record or why it is left out;
    ``tasks``: one ``(path, frame, key)`` per entry to build; ``todo[key]``: its rows.
    """

    metas: list[dict[str, Any] | None]
    reasons: list[str | None]
    tasks: list[tuple[str, int | None, str]] = field(default_factory=list)
    todo: dict[str, list[int]] = field(default_factory=dict)


def _look_up(
    paths: Iterable[str], frames: list[int | None], cache: ArrayCache, namespace: str, *,
    index: bool, retry_quarantined: bool, boot: bool,
) -> _Plan:
    """Look every row up in the cache: a hit, a quarantined file, or a task to run."""
    plan = _Plan([None] * len(frames), [None] * len(frames))
    file_keys: dict[str, str | None] = {}
    open_errors: dict[str, str] = {}
    for i, (path, frame) in enumerate(zip(paths, frames, strict=True)):
        if path not in file_keys:
            try:
                file_keys[path] = cache.file_key(path, namespace if index else None)
            except OSError as exc:
                file_keys[path] = None
                open_errors[path] = f"cannot open the file: {exc.strerror or exc}"
        fk = file_keys[path]
        if fk is None:
            plan.reasons[i] = open_errors[path]
            continue
        key = cache.entry_key(fk, frame, namespace)
        meta = cache.get(namespace, key)
        if meta is not None:
            plan.metas[i] = meta
            continue
        q = cache.quarantined(namespace, key)
        if q is not None and not retry_quarantined:
            plan.reasons[i] = q["reason"]
            continue
        if not plan.tasks and boot:
            boot_forkserver()  # it imports the readers while this loop goes on
        if key not in plan.todo:
            plan.tasks.append((path, frame, key))
        plan.todo.setdefault(key, []).append(i)
    return plan


def _build(
    plan: _Plan, df: pd.DataFrame, init: tuple[Callable | None, ArrayCache, str, str], *,
    executor: str, workers: int, strict: bool, progress: bool, index: bool,
) -> None:
    """Run the plan's tasks in the pool; record each entry, or quarantine its file.
    ``init``: the workers' ``(pipeline, cache, namespace, decode)``."""
    _, cache, namespace, _ = init
    pool = _executor(executor, workers, init)
    results: Iterable
    if pool is None:
        results = map(_work, plan.tasks)
    elif isinstance(pool, ProcessPoolExecutor):
        # One file per task: files differ ~1000x in cost (a 64 px MR against a 2000 px
        # JPEG 2000 radiograph), and chunks left one worker idle at the end of a run.
        results = pool.map(_work, plan.tasks, chunksize=1)
    else:
        results = pool.map(_work, plan.tasks)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(plan.tasks), desc="prepare", unit="img")
    try:
        for key, meta, reason in results:
            if reason is not None:
                path = df["path"].iloc[plan.todo[key][0]]
                if strict:
                    raise BadFileError(f"{path}: {reason}")
                cache.quarantine(namespace, key, {"path": path, "reason": reason})
            elif index:
                cache.remember(namespace, key, meta)
            for i in plan.todo[key]:
                plan.metas[i], plan.reasons[i] = meta, reason
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if index:
            cache.save_index(namespace)


def _tables(
    df: pd.DataFrame, frames: list[int | None], plan: _Plan
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prepared rows with their cache columns, and the quarantined rows with why."""
    ok = np.array([m is not None for m in plan.metas], dtype=bool)
    out = df[ok].copy()
    good = [m for m in plan.metas if m is not None]
    out["cache_file"] = [m["file"] for m in good]
    out["offset"] = [int(m["offset"]) for m in good]
    out["shape"] = [tuple(m["shape"]) for m in good]
    out["tiled"] = [int(m.get("tiled", 0)) for m in good]
    out["checksum"] = [m.get("checksum") for m in good]
    out["content_hash"] = [m.get("content_hash") for m in good]
    out["dhash"] = [m.get("dhash") for m in good]
    quarantined = pd.DataFrame({
        "path": df["path"][~ok].tolist(),
        "frame": pd.array([frames[i] for i in np.flatnonzero(~ok)], dtype="Int64"),
        "reason": [plan.reasons[i] for i in np.flatnonzero(~ok)],
    })
    return out.reset_index(drop=True), quarantined
