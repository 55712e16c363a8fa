"""The example notebook executes (nbclient, a real kernel) and its outputs render."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


# a kernel, TensorFlow and a tiny run: about 20 s on 2 quiet cores
@pytest.mark.skipif(importlib.util.find_spec("nbclient") is None
                    or importlib.util.find_spec("ipykernel") is None,
                    reason="nbclient/ipykernel are not installed "
                           "(pip install 'imaging-tl[notebook]')")
def test_quickstart_notebook_executes(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    scan, pipeline, result, metrics = html[1:5]  # after the table's head
    assert "data:image/png;base64," in scan and "Modality" in scan
    assert "fingerprint" in pipeline and "window" in pipeline
    assert result.count("data:image/png;base64,") >= 2 and "roc_auc" in result
    assert "data:image/png;base64," in metrics
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "## Intended use" in printed and "A notebook example on synthetic data" in printed
