"""Fixtures shared by the whole suite.

Heavy objects (the pretrained backbone) are built once per session; TensorFlow is only
imported by the fixtures that need it, so io/stages tests stay light.

Isolation from the user's home: :func:`pytest_configure` points ``IMAGING_TL_CACHE_DIR``,
``XDG_CACHE_HOME`` and ``KERAS_HOME`` at a temporary session folder before any test module
(and so Keras, which reads ``KERAS_HOME`` once on import) is imported, and the autouse
:func:`isolated_homes` gives every test a cache and a Keras home of its own. Nothing the
suite does reads or writes ``~/.cache/imaging_tl`` or ``~/.keras``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The session's homes (set by pytest_configure): "base", "cache", "keras", "weights".
SESSION_HOME: dict[str, Path] = {}
# Converted ImageNet weights shared by hard link (written once per session, then read only).
_WEIGHTS_GLOB = "efficientnet_lite*.weights.h5"


def pytest_configure(config: pytest.Config) -> None:
    base = Path(tempfile.mkdtemp(prefix="imaging-tl-tests-"))
    SESSION_HOME.update(base=base, cache=base / "imaging_tl", keras=base / "keras",
                        weights=base / "weights")
    for path in SESSION_HOME.values():
        path.mkdir(exist_ok=True)
    # One pseudonym key for the whole session, in the session cache and copied into every
    # test's cache (see isolated_homes).
    (SESSION_HOME["cache"] / "pseudonym.key").write_text(secrets.token_hex(32) + "\n")
    os.environ["IMAGING_TL_CACHE_DIR"] = str(SESSION_HOME["cache"])
    os.environ["XDG_CACHE_HOME"] = str(base / "xdg")
    os.environ["KERAS_HOME"] = str(SESSION_HOME["keras"])
    os.environ.setdefault("MPLCONFIGDIR", str(base / "matplotlib"))
    os.environ.pop("IMAGING_TL_PSEUDONYM_KEY_FILE", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    base = SESSION_HOME.get("base")
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture(autouse=True)
def isolated_homes(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own ``IMAGING_TL_CACHE_DIR`` and ``KERAS_HOME``.

    - The cache starts with the converted EfficientNet-Lite ImageNet weights hard-linked in
      from the session's store, so only the first test that needs them converts them; a
      weights file a test converts is linked back into the store when the test ends. The
      package writes caches atomically (a new file replaces the link), so a test cannot
      change the store's copy; a test that damages a weights file on purpose must do it in
      a cache folder of its own.
    - The pseudonym key is per SESSION, deliberately: the same key file is copied into every
      test's cache, so a run built once by a session fixture (under the session cache) and a
      later test that pseudonymizes the same patients (under its own cache) agree. Tests of
      the key itself point ``IMAGING_TL_CACHE_DIR`` or ``IMAGING_TL_PSEUDONYM_KEY_FILE``
      elsewhere.
    - Keras reads ``KERAS_HOME`` once when imported; where Keras is already imported, its
      home is switched for the test too, so a download lands in the test's folder.
    - Subprocesses inherit both variables.

    Yields the test's cache folder.
    """
    root = tmp_path_factory.mktemp("home", numbered=True)
    cache, keras_home = root / "imaging_tl", root / "keras"  # named like the default
    cache.mkdir()
    keras_home.mkdir()
    store = SESSION_HOME["weights"]
    for src in store.glob(_WEIGHTS_GLOB):
        _link_or_copy(src, cache / src.name)
    shutil.copy2(SESSION_HOME["cache"] / "pseudonym.key", cache / "pseudonym.key")
    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(cache))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    keras_config = sys.modules.get("keras.src.backend.config")
    if keras_config is not None and hasattr(keras_config, "_KERAS_DIR"):
        monkeypatch.setattr(keras_config, "_KERAS_DIR", str(keras_home))
    yield cache
    _harvest_weights(cache, store)
    _harvest_weights(SESSION_HOME["cache"], store)  # converted by a session fixture


def _harvest_weights(cache: Path, store: Path) -> None:
    """Link converted weights a test left in ``cache`` into the session store (once)."""
    for src in cache.glob(_WEIGHTS_GLOB):
        dst = store / src.name
        if not dst.exists() and src.stat().st_size > 1_000_000:
            _link_or_copy(src, dst)


@pytest.fixture(scope="session")
def pydicom_test_dir() -> Path:
    """pydicom's bundled test files (real DICOM written by others)."""
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """The extra files of the ``pydicom-data`` package (imports as ``data_store``)."""
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data"


@pytest.fixture(scope="session")
def lite0_backbone():
    """efficientnet_lite0 with real ImageNet weights, built once per test session."""
    from imaging_tl.models import build_backbone

    return build_backbone("efficientnet_lite0", weights="imagenet", include_top=False)


@pytest.fixture(scope="session")
def lite0_classifier():
    """efficientnet_lite0 with its ImageNet 1000-class top, built once per session."""
    from imaging_tl.models import build_backbone

    return build_backbone("efficientnet_lite0", weights="imagenet", include_top=True)
