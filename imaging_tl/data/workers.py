"""Worker processes for the data layer: the start method that is safe in this process.

Both the cache build (:mod:`imaging_tl.data.prepare`) and the audit's pixel hashes
(:mod:`imaging_tl.data.audit`) decode files in a process pool started this way.
"""

from __future__ import annotations

import multiprocessing as mp
import sys

__all__ = ["boot_forkserver", "mp_context"]


def mp_context() -> mp.context.BaseContext:
    """The start method for worker pools: ``fork`` unless TensorFlow is loaded.

    ``fork`` starts fast; once TensorFlow's threads exist a fork is unsafe, so then
    ``forkserver`` (``spawn`` off Linux). As with any ``forkserver``/``spawn`` pool, a script
    that calls :func:`~imaging_tl.data.prepare.prepare` after importing TensorFlow needs the
    ``if __name__ == "__main__":`` guard.

    Examples
    --------
    >>> mp_context().get_start_method() in ("fork", "forkserver")
    True
    """
    if "tensorflow" in sys.modules or sys.platform != "linux":
        if sys.platform != "linux":
            return mp.get_context("spawn")
        ctx = mp.get_context("forkserver")
        # The server imports the readers once; each worker forks from it ready to go.
        ctx.set_forkserver_preload(["imaging_tl.data.prepare", "imaging_tl.stages"])
        return ctx
    return mp.get_context("fork")


def boot_forkserver() -> None:
    """Start the fork server now, when the pool will use one (measured ~1.5 s of imports on
    2 busy cores), so its start-up overlaps the parent's look-ups instead of following them.

    Examples
    --------
    >>> boot_forkserver()  # a no-op while TensorFlow is not loaded
    """
    ctx = mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
