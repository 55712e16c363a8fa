"""Hide TensorFlow's C++ start-up notices, which TF_CPP_MIN_LOG_LEVEL no longer hides.

Since TensorFlow 2.19 the oneDNN notice and absl's "All log messages before
absl::InitializeLog()" line are written while ``import tensorflow`` runs, before TF's own
log level is read (tensorflow/tensorflow#100442). The only way to keep them off a
researcher's terminal is to catch what the import writes to file descriptor 2 and give
back every line but those notices: errors printed during the import still reach stderr.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

#: the start-up lines hidden (substrings); anything else the import prints is kept.
START_UP = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations",
            "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate")


@contextlib.contextmanager
def start_up_lines_hidden() -> Iterator[None]:
    """Run a block with fd 2 caught; afterwards write back all but :data:`START_UP` lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True)
                    if not any(s.encode() in line for s in START_UP)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Wraps the first ``import tensorflow`` in :func:`start_up_lines_hidden`."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001 - the finder protocol
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module) -> None:  # noqa: ANN001
            with start_up_lines_hidden():
                exec_module(module)

        spec.loader.exec_module = quiet_exec  # type: ignore[method-assign]
        return spec


def hide_tensorflow_start_up() -> bool:
    """Have the coming ``import tensorflow`` hide its start-up notices; False if too late.

    Examples
    --------
    >>> import tensorflow
    >>> hide_tensorflow_start_up()   # the notices were already written
    False
    """
    if "tensorflow" in sys.modules:
        return False
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    return True
