"""A Dask cluster for batch jobs: the client, batches of files as tasks, quiet workers.

Each batch of files is one Dask task that returns its rows, so a file that fails is a row
with its reason, a batch whose worker dies is retried on another worker (``retries``; Dask
also reschedules the tasks of a lost worker), and rows come back in input order.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["dask_client", "file_batches", "map_batches", "quiet_readers", "run_batches"]


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: a new local cluster of ``workers`` processes, or ``scheduler``.

    Raises ``ConnectionError`` (naming the address) when the scheduler cannot be reached.

    Examples
    --------
    >>> with dask_client(workers=2) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("--workers/--scheduler need Dask: pip install 'imaging-tl[scale]'"
                          ) from exc
    if (workers is None) == (scheduler is None):
        raise ValueError("give exactly one of workers=N (local cluster) or scheduler=ADDRESS")
    if scheduler is not None:
        try:
            client = Client(scheduler)
        except OSError as exc:  # distributed's own message is a long traceback's last line
            raise ConnectionError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def file_batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` cut into lists of at most ``size``, in order."""
    if size < 1:
        raise ValueError(f"batch_size={size}: must be >= 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def map_batches(client: Any, fn: Callable[[list[Any]], list[Any]], items: Sequence[Any], *,
                batch_size: int = 64, retries: int = 2, progress: bool = False,
                desc: str = "batches") -> list[Any]:
    """Run ``fn`` on batches of ``items`` on the cluster; results concatenated in input order.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        ``fn(batch) -> list`` (one result per item); must not raise for a bad item.
    items : sequence
    batch_size : int
        Items per task.
    retries : int
        Extra attempts of a task whose worker died or that raised.
    progress : bool
        A progress bar on the terminal (stderr) as batches finish.

    Returns
    -------
    list

    Examples
    --------
    >>> with dask_client(workers=1) as c:  # doctest: +SKIP
    ...     map_batches(c, lambda b: [x * 2 for x in b], range(5), batch_size=2)
    [0, 2, 4, 6, 8]
    """
    batches = file_batches(list(items), batch_size)
    results = run_batches(client, fn, batches, retries=retries, progress=progress, desc=desc)
    for i, (res, batch) in enumerate(zip(results, batches, strict=True)):
        if len(res) != len(batch):
            raise RuntimeError(f"batch {i}: {len(res)} results for {len(batch)} items")
    return [r for batch in results for r in batch]


def run_batches(client: Any, fn: Callable[[list[Any]], Any], batches: list[list[Any]], *,
                 retries: int, progress: bool, desc: str, unit: str = "file") -> list[Any]:
    """``[fn(b) for b in batches]`` on the cluster, in order; the bar counts items."""
    from distributed import as_completed
    from tqdm import tqdm

    # pure=False: a re-run gives a new task, never a cached result of another run
    futures = client.map(fn, batches, retries=retries, pure=False)
    bar = tqdm(total=sum(map(len, batches)), unit=unit, desc=desc, file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(batches)
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            results[i] = fut.result()
            bar.update(len(batches[i]))
    finally:
        bar.close()
    return results


@contextlib.contextmanager
def quiet_readers() -> Iterator[None]:
    """Inside a batch task: pydicom's warnings and log records are not shown.

    The rows (and quarantine records) carry each bad file's reason. Dask workers configure
    logging, so pydicom's decoder errors would otherwise reach the terminal once per bad file
    with a traceback, and its warnings can quote header values.

    Examples
    --------
    >>> with quiet_readers():
    ...     logging.getLogger("pydicom").error("not shown")
    """
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
