"""Issue 22 class 8: a model contract is validated on load; errors name the file and field."""

from __future__ import annotations

import json
import math
import shutil
import zipfile

import pytest

from imaging_tl.models.contract import (
    CONTRACT_ENTRY,
    MAX_INPUT_SIDE,
    ContractError,
    ModelContract,
    read_contract,
    validate_contract,
)

GOOD = ModelContract("efficientnet_lite0", "binary", ["normal", "finding"], [64, 64],
                     "efficientnet_lite",
                     preprocessing={"stages": [{"name": "resize", "size": 64}]}).to_dict()


def _with_contract(src, dst, data) -> None:
    """Copy the .keras zip ``src`` to ``dst`` with its contract entry replaced by ``data``."""
    text = data if isinstance(data, str) else json.dumps(data)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename != CONTRACT_ENTRY:
                zout.writestr(item, zin.read(item))
        zout.writestr(CONTRACT_ENTRY, text)


@pytest.mark.parametrize(("change", "field", "why"), [
    ({"threshold": math.nan}, "threshold", "finite number in"),
    ({"threshold": 2.0}, "threshold", "finite number in"),
    ({"threshold": "0.5"}, "threshold", "finite number in"),
    ({"input_size": [20000, 20000]}, "input_size", f"[1, {MAX_INPUT_SIDE}]"),
    ({"input_size": [64]}, "input_size", "two whole numbers"),
    ({"preprocessing": {"stages": [{"name": "resize", "size": 20000}]}},
     "preprocessing.stages[0].size", "stage 'resize'"),
    ({"preprocessing": {"stages": "resize"}}, "preprocessing", "list of stage"),
    ({"task": "regression"}, "task", "not one of binary"),
    ({"label_names": ["normal", "finding", "other"]}, "label_names", "exactly 2"),
    ({"task": "multiclass", "label_names": ["a"]}, "label_names", "at least 2"),
    ({"label_names": ["a", "a"]}, "label_names", "not unique"),
    ({"label_names": ["a", "b\x00"]}, "label_names", "not printable"),
    ({"label_names": "ab"}, "label_names", "list of strings"),
    ({"channels": 4}, "channels", "not one of (1, 3)"),
    ({"input_range": [1.0, 0.0]}, "input_range", "low < high"),
    ({"dtype": "object"}, "dtype", "not one of"),
])
def test_out_of_bounds_fields_are_named(change, field, why):
    with pytest.raises(ContractError, match="m.keras: .*") as exc:
        validate_contract({**GOOD, **change}, "m.keras")
    assert f"contract field {field!r}" in str(exc.value) and why in str(exc.value)


def test_valid_and_extended_contracts_pass():
    validate_contract(GOOD, "m.keras")
    # fields a newer writer adds (chain, provenance, ...) are tolerated
    validate_contract({**GOOD, "chain": {"parent": "x"}, "future": [1, 2]}, "m.keras")
    validate_contract({**GOOD, "task": "multilabel", "label_names": ["a"]}, "m.keras")
    with pytest.raises(ContractError, match="missing: task, label_names"):
        validate_contract({k: v for k, v in GOOD.items()
                           if k not in ("task", "label_names")}, "m.keras")
    with pytest.raises(ContractError, match="not a JSON object"):
        validate_contract([1], "m.keras")
    assert issubclass(ContractError, ValueError)  # older callers catching ValueError still do


def test_tampered_model_file_is_refused_on_load(saved_model, tmp_path):
    bad = tmp_path / "model.keras"
    _with_contract(saved_model, bad, {**read_contract(saved_model).to_dict(),
                                      "threshold": math.nan})
    with pytest.raises(ContractError, match=rf"{bad}: contract field 'threshold': nan"):
        read_contract(bad)
    _with_contract(saved_model, bad, "{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        read_contract(bad)


def test_contract_json_beside_is_named(saved_model, tmp_path):
    # a .keras without the entry falls back to contract.json beside it: that file is named
    bad = tmp_path / "model.keras"
    with zipfile.ZipFile(saved_model) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            if item.filename != CONTRACT_ENTRY:
                zout.writestr(item, zin.read(item))
    data = {**read_contract(saved_model).to_dict(), "input_size": [64, 20000]}
    (tmp_path / "contract.json").write_text(json.dumps(data))
    with pytest.raises(ContractError, match=r"contract.json: contract field 'input_size'"):
        read_contract(bad)


def test_cli_predict_refuses_a_bad_contract_with_exit_2(saved_model, real_files, tmp_path,
                                                         capsys):
    from imaging_tl.cli import main

    bad = tmp_path / "model.keras"
    data = read_contract(saved_model).to_dict()
    data["label_names"] = ["normal", "finding", "=HYPERLINK(1)"]
    _with_contract(saved_model, bad, data)
    shutil.copy(real_files[0], tmp_path / "a.dcm")
    out = tmp_path / "p.csv"
    code = main(["predict", str(bad), str(tmp_path / "a.dcm"), "--engine", "keras",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "contract field 'label_names'" in err and str(bad) in err
    assert not out.exists()
