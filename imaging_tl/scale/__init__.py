"""Big archives on a Dask cluster: census, cache build and prediction (``--workers N`` /
``--scheduler ADDRESS``; the ``scale`` extra).

- :mod:`~imaging_tl.scale.cluster`: the client, files cut into batches as tasks, retries,
  workers that keep decoder noise off the terminal;
- :mod:`~imaging_tl.scale.tasks`: :func:`census_dask`, :func:`build_cache_dask`,
  :func:`predict_dask`, each giving the rows of its single-process twin.

Examples
--------
>>> from imaging_tl.scale import census_dask
>>> result = census_dask("archive/", "census.csv", workers=4)  # doctest: +SKIP
"""

from imaging_tl.scale.cluster import dask_client, map_batches, quiet_readers
from imaging_tl.scale.tasks import build_cache_dask, census_dask, predict_dask

__all__ = ["build_cache_dask", "census_dask", "dask_client", "map_batches", "predict_dask",
           "quiet_readers"]
