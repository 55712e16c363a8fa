"""One LocalCluster of 2 worker processes (1 thread each) for the Dask tests of this folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dask_cluster_client():
    """A ``distributed.Client`` on a LocalCluster(2, processes=True, threads_per_worker=1)."""
    pytest.importorskip("distributed")
    from imaging_tl.scale import dask_client

    with dask_client(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
