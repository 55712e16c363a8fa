"""imaging_tl: transfer learning for radiology.

Importing this package (or :mod:`imaging_tl.io`, :mod:`imaging_tl.stages`) does not
import TensorFlow; :mod:`imaging_tl.models` imports it on first use.
"""

# The model registry (plain Python, no TensorFlow) registers its backbones' normalisation
# schemes with the stages here, so Normalize("efficientnet_lite0") works in any import order
# while imaging_tl.stages itself never imports the models layer.
import imaging_tl.models.registry  # noqa: F401
from imaging_tl._version import __version__
from imaging_tl.io import Scan, ScanReadError, read_scan

__all__ = ["Scan", "ScanReadError", "__version__", "read_scan", "run"]


def __getattr__(name: str):
    # imaging_tl.run is imported on first use: it pulls in TensorFlow, the package must not
    if name == "run":
        from imaging_tl.pipeline import run

        return run
    raise AttributeError(f"module 'imaging_tl' has no attribute {name!r}")
