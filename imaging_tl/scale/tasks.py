"""Census, cache build and prediction of big archives on a Dask cluster (``--workers N`` /
``--scheduler``).

The work is split into batches of files (:mod:`imaging_tl.scale.cluster`): a file that
fails is a row with its reason (as in the single-process run), and the output is the same
as the plain loop's, then written atomically (a temporary file renamed into place).

A local cluster (:class:`distributed.LocalCluster`, one process per worker, one thread
each: pydicom and the decoders hold the GIL) is started for ``workers=N``; ``scheduler``
connects to an existing cluster, whose workers must see the same file paths (a shared
file system) and have ``imaging-tl`` installed.

The cache build (:func:`build_cache_dask`) runs the public ``prepare()`` inside each task,
so whatever the cache's storage format, entries written on the cluster are the ones the
local path writes, and ``imaging-tl run`` then finds them warm.

Needs the ``scale`` extra: ``pip install 'imaging-tl[scale]'`` (``dask[distributed]``).

Examples
--------
>>> from imaging_tl.scale import census_dask
>>> result = census_dask("archive/", "census.csv", workers=4)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imaging_tl.scale.cluster import (
    dask_client,
    file_batches,
    map_batches,
    quiet_readers,
    run_batches,
)

__all__ = ["build_cache_dask", "census_dask", "predict_dask"]












def _census_batch(paths: list[str], root: str, decode: bool) -> list[dict[str, Any]]:
    from imaging_tl.io.census import census_row

    with quiet_readers():
        return [census_row(p, root=root, decode=decode) for p in paths]


def census_dask(directory: str | os.PathLike, out: str | os.PathLike | None = "census.csv", *,
                workers: int | None = None, scheduler: str | None = None,
                decode: bool = False, keep_patient_id: bool = False,
                batch_size: int = 64, retries: int = 2, progress: bool = True,
                client: Any = None) -> Any:
    """:func:`imaging_tl.io.census.run_census` with the files spread over a Dask cluster.

    Same rows, in the same order, as the single-process census.

    Parameters
    ----------
    directory, out, decode, keep_patient_id
        As for ``run_census``.
    workers : int, optional
        Start a local cluster of this many worker processes.
    scheduler : str, optional
        Address of an existing cluster (``tcp://host:8786``).
    batch_size : int
        Files per task.
    retries : int
        Extra attempts of a failed task.
    progress : bool
    client : distributed.Client, optional
        Use this client (instead of ``workers`` / ``scheduler``).

    Returns
    -------
    CensusResult

    Examples
    --------
    >>> census_dask("archive/", "census.csv", workers=8, batch_size=128)  # doctest: +SKIP
    """
    from functools import partial

    from imaging_tl._atomic import atomic_path
    from imaging_tl.io.census import (
        CensusResult,
        pseudonymize_patient_id,
        walk_files,
        write_census_csv,
    )

    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    files = [str(p) for p in walk_files(root)]
    ctx = contextlib.nullcontext(client) if client is not None else \
        dask_client(workers, scheduler)
    with ctx as client:
        rows = map_batches(client, partial(_census_batch, root=str(root), decode=decode),
                           files, batch_size=batch_size, retries=retries, progress=progress,
                           desc="census")
    from imaging_tl.io.series import add_series_columns

    series = add_series_columns(rows)
    if not keep_patient_id:
        for row in rows:
            row["PatientID"] = pseudonymize_patient_id(row.get("PatientID"))
    if out is not None:
        with atomic_path(out) as tmp:
            write_census_csv(rows, tmp)
    return CensusResult(root, Path(out) if out is not None else None, rows, series)


def _predict_batch(paths: list[str], model: str, engine: str, batch_size: int,
                   num_threads: int | None, domain: str) -> list[dict[str, Any]]:
    from imaging_tl.pipeline.predict import predict_files

    with quiet_readers():
        df = predict_files(model, paths, batch_size=batch_size, engine=engine,
                           num_threads=num_threads, domain=domain)
    return df.to_dict("records")


def predict_dask(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike], *,
                 workers: int | None = None, scheduler: str | None = None,
                 engine: str = "auto", batch_size: int = 16, files_per_task: int = 128,
                 num_threads: int | None = 1, domain: str = "flag", retries: int = 2,
                 progress: bool = True, client: Any = None) -> Any:
    """:func:`imaging_tl.pipeline.predict_files` with the files spread over a Dask cluster.

    The engine's export is made once here, before the tasks start (workers then load it
    from beside the model or from the shared cache), so workers never convert in parallel.

    Parameters
    ----------
    model_path : path
        ``model.keras`` or its run directory (a path the workers can read).
    inputs : paths
        Files and folders.
    workers, scheduler, retries, progress, client
        As for :func:`census_dask`.
    engine : {"auto", "keras", "onnxruntime", "tflite"}
    batch_size : int
        Model batch size inside a task.
    files_per_task : int
    num_threads : int, optional
        Threads per worker's engine (default 1: the workers are the parallelism).
    domain : {"flag", "strict", "off"}
        The domain gate, as for ``predict_files`` (each worker applies it to its files).

    Returns
    -------
    pandas.DataFrame
        The same rows as ``predict_files`` (probabilities equal within float rounding).

    Examples
    --------
    >>> predict_dask("runs/demo", ["archive/"], workers=4)  # doctest: +SKIP
    """
    from functools import partial

    import pandas as pd

    from imaging_tl.deploy.engines import default_engine, exported_model
    from imaging_tl.models import model_file
    from imaging_tl.pipeline.inputs import InputError, expand_inputs
    from imaging_tl.pipeline.predict import check_domain_mode

    try:
        mp = model_file(model_path)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    from imaging_tl.models import read_contract

    if (read_contract(mp).preprocessing or {}).get("unit") == "series":
        # the files of one series would be split between tasks
        raise InputError(f"{mp}: a model trained on series predicts per series; run "
                         "imaging-tl predict without --workers/--scheduler")
    files = expand_inputs(inputs)
    if not files:
        raise InputError("no input files found")
    if engine == "auto":
        engine = default_engine()
    if engine != "keras":
        exported_model(mp, engine)  # convert once, before the workers need it
    check_domain_mode(domain)  # before the cluster starts
    fn = partial(_predict_batch, model=str(mp.resolve()), engine=engine,
                 batch_size=batch_size, num_threads=num_threads, domain=domain)
    ctx = contextlib.nullcontext(client) if client is not None else \
        dask_client(workers, scheduler)
    with ctx as client:
        rows = map_batches(client, fn, [str(Path(f).resolve()) for f in files],
                           batch_size=files_per_task, retries=retries, progress=progress,
                           desc="predict")
    df = pd.DataFrame(rows)
    df["path"] = files  # the rows come back in input order: show the paths as given
    df.attrs["engine"] = engine
    return df


def _cache_batch(files: list[tuple[str, list[int | None]]], pipeline: Any, cache: Any,
                 retry_quarantined: bool, decode: str) -> dict[str, Any]:
    """Worker side of :func:`build_cache_dask`: the public ``prepare()`` on one batch of files.

    Reusing ``prepare`` (serial, in this worker) writes entries and quarantine records exactly
    as the local path does, whatever the cache's storage format.
    """
    import pandas as pd

    from imaging_tl.data.prepare import prepare

    rows = [(path, frame) for path, frames in files for frame in frames]
    table = pd.DataFrame({"path": [r[0] for r in rows],
                          "frame": pd.array([r[1] for r in rows], dtype="Int64")})
    with quiet_readers():
        # index=False: the caller writes the namespace's look-up index once, at the end,
        # instead of every task rewriting it
        done = prepare(table, pipeline, cache=cache, workers=1, executor="serial",
                       retry_quarantined=retry_quarantined, audit=False, progress=False,
                       index=False, decode=decode)
    stats = {k: done.stats[k] for k in ("samples", "hits", "decoded", "quarantined")}
    # one written file per batch: lets the caller check that it sees what the workers wrote
    stats["probe"] = str(done.table["cache_file"].iloc[0]) if "cache_file" in done.table \
        and len(done.table) else None
    return stats


def build_cache_dask(
    table: Any,
    pipeline: Any,
    *,
    cache: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    files_per_task: int = 8,
    retries: int = 2,
    strict: bool = False,
    retry_quarantined: bool = False,
    audit: bool = True,
    progress: bool = True,
    decode: str = "auto",
) -> Any:
    """:func:`imaging_tl.data.prepare` with the decoding spread over a Dask cluster.

    The files of ``table`` are cut into batches of ``files_per_task`` files (all frames of a
    file in one batch); each batch is one task that runs ``prepare`` on its rows inside the
    worker, writing the entries (and the quarantine records of bad files) into ``cache``.
    The entries are therefore byte-identical to those of the local path. A task whose worker
    dies or raises is retried (entries already written are hits then). Finally ``prepare``
    runs here on the whole table: it decodes nothing, only collects the entries, so the
    result is the one the local path returns (``Prepared.table`` in table order, the
    quarantined files with their reasons, the leakage audit when ``table`` has splits).

    Parameters
    ----------
    table : pandas.DataFrame
        A dataset table (``path``, optional ``frame``), e.g. from
        :func:`imaging_tl.pipeline.load_inputs`. The workers open the paths as given.
    pipeline : imaging_tl.stages.Pipeline, optional
        The preprocessing (``None``: pixels as read). Sent to the workers (pickled).
    cache : ArrayCache or path, optional
        The cache; with ``scheduler``, a folder the workers and this process both see
        (a shared file system).
    workers, scheduler, client, retries
        As for :func:`census_dask`.
    files_per_task : int
        Files per task: small enough to balance the load (files differ ~1000x in cost),
        large enough to hide the per-task overhead.
    strict : bool
        Raise :class:`imaging_tl.data.BadFileError` naming the first bad file (after the
        build: the other files are cached, the bad ones quarantined).
    retry_quarantined : bool
        Try files quarantined by an earlier build or run again.
    audit : bool
        Run the leakage audit when the table has a split column.
    progress : bool
        A progress bar on the terminal (stderr).
    decode : {"auto", "full"}
        ``data.decode``: the workers decode compressed files at the reduced resolution the
        pipeline needs (``auto``) or in full; the plan is part of the cache namespace, so
        it must be the one the run will use.

    Returns
    -------
    imaging_tl.data.Prepared
        ``stats`` counts the cluster's work: ``hits`` (already cached), ``decoded``,
        ``quarantined``, ``seconds`` (whole build), plus ``tasks``, ``files`` and
        ``collect_seconds`` (the final pass here, which hashes every input once).

    Raises
    ------
    imaging_tl.data.prepare.CacheWriteError
        A worker cannot write the cache (after ``retries``), or the entries the workers
        wrote are not visible here (the cache is not on a file system this process shares
        with the workers).

    Examples
    --------
    >>> from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
    >>> pipe = Pipeline([Window(mode="header"), Resize(224), ToRGB()])
    >>> prepared = build_cache_dask(table, pipe, cache="/shared/cache",
    ...                             workers=8)  # doctest: +SKIP
    >>> print(prepared.summary())  # doctest: +SKIP
    """
    import time
    from functools import partial

    from imaging_tl.data.cache import ArrayCache
    from imaging_tl.data.prepare import prepare

    t0 = time.perf_counter()
    if not isinstance(cache, ArrayCache):
        cache = ArrayCache(cache)
    if not cache.root.is_absolute():  # a worker's working directory is not ours
        cache = ArrayCache(cache.root.absolute(), hash=cache.hash)
    if "path" not in table.columns:
        raise ValueError("table: needs a 'path' column")
    files = _frames_by_file(table)
    batches = file_batches(files, files_per_task)
    fn = partial(_cache_batch, pipeline=pipeline, cache=cache,
                 retry_quarantined=retry_quarantined, decode=decode)
    ctx = contextlib.nullcontext(client) if client is not None else \
        dask_client(workers, scheduler)
    with ctx as client:
        done = run_batches(client, fn, batches, retries=retries, progress=progress,
                           desc="cache build")
    _check_visible(cache, done)
    # Collect here: every entry is a hit and every bad file has its quarantine record, so
    # this decodes nothing and gives the same Prepared as the local path (and writes the
    # look-up index that spares the next run the hashing).
    t_collect = time.perf_counter()
    prepared = prepare(table, pipeline, cache=cache, workers=1, executor="serial",
                       strict=strict, audit=audit, progress=False, decode=decode)
    prepared.stats.update(
        hits=sum(d["hits"] for d in done), decoded=sum(d["decoded"] for d in done) +
        prepared.stats["decoded"], seconds=time.perf_counter() - t0, tasks=len(batches),
        files=len(files), collect_seconds=time.perf_counter() - t_collect)
    return prepared


def _frames_by_file(table: Any) -> list[tuple[str, list[int | None]]]:
    """``(path, [frames])`` per file, in table order: all frames of a file in one task.

    Paths as given (the entry metadata records them: byte-identical to the local path's);
    load_inputs gives absolute ones, which a cluster's workers can open.
    """
    import pandas as pd

    frames = table["frame"] if "frame" in table.columns else pd.Series([None] * len(table))
    by_file: dict[str, list[int | None]] = {}
    for path, frame in zip(table["path"], frames, strict=True):
        fl = by_file.setdefault(str(path), [])
        f = None if pd.isna(frame) else int(frame)
        if f not in fl:
            fl.append(f)
    return list(by_file.items())


def _check_visible(cache: Any, done: list[dict[str, Any]]) -> None:
    """Refuse to go on when this process cannot see the entries the workers wrote."""
    from imaging_tl.data.prepare import CacheWriteError

    root = cache.root.resolve()
    unseen = [d["probe"] for d in done if d["probe"] and not (
        os.path.exists(d["probe"]) and Path(d["probe"]).resolve().is_relative_to(root))]
    if unseen:
        raise CacheWriteError(
            f"{cache.root}: the workers wrote cache entries this process cannot see (e.g. "
            f"{unseen[0]}); put the cache on a file system shared with the workers")
