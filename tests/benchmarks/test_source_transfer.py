"""benchmarks/source_transfer.py: the site knobs, the source data, the harness (tiny, slow)."""

import numpy as np
import pytest


def test_sites_and_source_data(st):
    assert st.site_kwargs("local")["site"].name == "local"
    assert st.site_kwargs("public")["site"] != st.site_kwargs("local")["site"]
    with pytest.raises(ValueError, match="unknown"):
        st.site_kwargs("x")
    x, y = st.source_split(6, base_seed=0, t=-1.0, gen_size=64, image_size=32)
    assert x.shape == (6, 32, 32, 3) and y.shape == (6, 3)
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(y)) <= {0.0, 1.0}


@pytest.mark.slow
def test_harness_end_to_end(st, tmp_path):
    args = ["--sizes", "12", "--seeds", "1", "--test", "24", "--val", "12", "--image-size",
            "32", "--gen-size", "64", "--epochs", "2", "1", "--workers", "1", "--source-n",
            "40", "--difficulty", "-1", "--out", str(tmp_path)]
    assert st.main(args) == 0
    rows, _ = st.tvs.read_results(tmp_path / "source_transfer_default.csv")
    assert {r["arm"] for r in rows} == set(st.ARMS)
    assert (tmp_path / "source_default_all" / "model.keras").is_file()
