"""Every docstring example of the package runs and prints what it says.

Examples that need training or data outside the repository carry ``# doctest: +SKIP``;
everything else runs here, from the repository root (examples read ``sample_dicoms/``).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import imaging_tl

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(imaging_tl.__path__, "imaging_tl.")
                 if not m.name.endswith("__main__"))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


# The steps of a run take the state of a whole run: tests/pipeline runs them for real.
NEEDS_A_RUN = {"imaging_tl.pipeline.data_steps", "imaging_tl.pipeline.model_steps",
               "imaging_tl.pipeline.output_steps", "imaging_tl.pipeline.state"}


def test_every_public_module_has_an_example():
    finder = doctest.DocTestFinder(exclude_empty=True)
    without = [name for name in MODULES
               if not name.rsplit(".", 1)[-1].startswith("_") and name not in NEEDS_A_RUN
               and not any(t.examples for t in finder.find(importlib.import_module(name)))]
    assert not without, f"modules without a docstring example: {without}"


def test_the_runner_finds_a_failing_example(tmp_path, monkeypatch):
    # the check above must be able to fail: a planted wrong example is counted
    source = 'def f():\n    """\n    >>> 1 + 1\n    3\n    """\n'
    (tmp_path / "planted_example.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = doctest.testmod(importlib.import_module("planted_example"), report=False)
    assert (result.failed, result.attempted) == (1, 1)
