"""Configuration: defaults, overrides, and one test per typical mistake (all errors at once)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from imaging_tl.config import ConfigError, RunConfig, apply_overrides, load_config

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = tmp_path / "labels.csv"
    p.write_text("path,label,patient_id,effusion,nodule,consolidation\na.dcm,normal,p1,0,1,0\n")
    return p


def minimal(csv: Path, **sections) -> dict:
    return {"data": {"csv": str(csv), "label_column": "label"}, **sections}


def errors_of(source, overrides=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return info.value.errors


def one_error(source, overrides=None) -> str:
    errs = errors_of(source, overrides)
    assert len(errs) == 1, errs
    return errs[0]


# -- defaults and resolution ---------------------------------------------------------------


def test_minimal_config_gets_backbone_defaults(csv):
    cfg = load_config(minimal(csv))
    assert cfg.model.input_size == 224
    assert cfg.model.normalization == "efficientnet_lite"
    assert cfg.preprocessing == [{"name": "color", "policy": "auto"},
                                 {"name": "window", "mode": "header"},
                                 {"name": "resize", "size": 224}, {"name": "to_rgb"}]
    assert [p.name for p in cfg.train.phases] == ["head", "finetune"]
    assert cfg.train.phases[0].freeze == "all"
    assert cfg.train.phases[1].freeze == "block5c_add"


def test_input_size_follows_the_last_resize_and_phase_freeze_defaults_to_model(csv):
    cfg = load_config(minimal(csv, preprocessing=[{"name": "window", "preset": "lung"},
                                                  {"name": "resize", "size": 96}],
                              model={"freeze": "block6d_add"},
                              train={"phases": [{"epochs": 2}]}))
    assert cfg.model.input_size == 96
    assert cfg.preprocessing[-1] == {"name": "to_rgb"}
    assert cfg.train.phases[0].freeze == "block6d_add"


def test_lite2_defaults(csv):
    cfg = load_config(minimal(csv, model={"backbone": "efficientnet_lite2"}))
    assert cfg.model.input_size == 260


def test_resolved_config_round_trips(csv, tmp_path):
    cfg = load_config(minimal(csv, seed=3))
    f = tmp_path / "resolved.yaml"
    f.write_text(cfg.to_yaml())
    again = load_config(f)
    assert again.to_dict() == cfg.to_dict()


def test_relative_paths_resolve_against_the_yaml_file(tmp_path, csv):
    sub = tmp_path / "conf"
    sub.mkdir()
    f = sub / "p.yaml"
    f.write_text(yaml.safe_dump({"data": {"csv": "../labels.csv", "label_column": "label"}}))
    assert Path(load_config(f).data.csv) == csv


def test_overrides_set_nested_keys_and_list_items():
    raw = {"train": {"phases": [{"epochs": 5}]}}
    out = apply_overrides(raw, ["train.phases.0.epochs=2", "model.head.hidden=[64, 32]",
                                "evaluate.bootstrap=50", "name=x"])
    assert out["train"]["phases"][0]["epochs"] == 2
    assert out["model"]["head"]["hidden"] == [64, 32]
    assert out["evaluate"]["bootstrap"] == 50
    assert raw["train"]["phases"][0]["epochs"] == 5  # the input is not changed


def test_override_applies_before_validation(csv):
    cfg = load_config(minimal(csv), ["model.input_size=64", "seed=9"])
    assert cfg.seed == 9 and cfg.preprocessing[2] == {"name": "resize", "size": 64}


def test_config_module_is_tf_free_in_a_fresh_process(csv):
    # In this process an earlier test may have imported TensorFlow already, so the check
    # runs where nothing else has: a fresh interpreter that loads and validates a config.
    import subprocess

    code = ("import sys; from imaging_tl.config import load_config; "
            f"load_config({{'data': {{'csv': {str(csv)!r}, 'label_column': 'label'}}}}); "
            "heavy = sorted({'tensorflow', 'keras', 'torch'} & set(sys.modules)); "
            "print('heavy:', heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "heavy: []" in done.stdout, done.stdout + done.stderr


# (target_task inherits its preprocessing from its source: run in tests/pipeline)
@pytest.mark.parametrize("name", ["chest_xray_folder", "head_ct_multiwindow", "multilabel_csv",
                                  "demo", "colour_example", "source_task"])
def test_pipeline_templates_are_valid_apart_from_their_data(name, csv, tmp_path):
    raw = yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())
    assert raw["data"]  # documented templates carry a data section
    if "folder" in raw["data"]:
        (tmp_path / "a").mkdir()
        over = [f"data.folder={tmp_path}"]
    else:
        over = [f"data.csv={csv}"]
    cfg = load_config(PIPELINES / f"{name}.yaml", over)
    assert cfg.preprocessing[-1]["name"] == "to_rgb"
    assert cfg.model.input_size in (128, 224)


def test_templates_are_documented_in_comments():
    for f in PIPELINES.glob("*.yaml"):
        text = f.read_text()
        assert text.startswith("#"), f
        assert sum(line.strip().startswith("#") or " # " in line
                   for line in text.splitlines()) >= 10, f


# -- one test per typical mistake ----------------------------------------------------------


def test_mistake_typo_in_a_section_name(csv):
    msg = one_error(minimal(csv, modle={"backbone": "efficientnet_lite0"}))
    assert msg.startswith("modle: unknown key; did you mean 'model'?")


def test_mistake_typo_in_a_nested_key(csv):
    msg = one_error(minimal(csv, model={"head": {"dropuot": 0.3}}))
    assert msg.startswith("model.head.dropuot: unknown key; did you mean 'dropout'?")
    assert "allowed: pooling, hidden, dropout" in msg


def test_mistake_freeze_point_that_does_not_exist(csv):
    msg = one_error(minimal(csv, model={"freeze": "block9"}))
    assert msg.startswith("model.freeze: 'block9' is not a freeze point of efficientnet_lite0; "
                          "choose one of all, none, stem_activation")


def test_mistake_phase_freeze_point_named_with_its_phase(csv):
    msg = one_error(minimal(csv, train={"phases": [{"epochs": 1}, {"epochs": 1, "name": "ft",
                                                                   "freeze": "block5c"}]}))
    assert msg.startswith("train.phases.1.freeze: 'block5c' is not a freeze point")
    assert "did you mean 'block5c_add'?" in msg


def test_mistake_unknown_backbone(csv):
    msg = one_error(minimal(csv, model={"backbone": "efficientnet_lite"}))
    assert msg.startswith("model.backbone: unknown backbone 'efficientnet_lite' (did you mean")
    assert "efficientnet_lite0" in msg


def test_mistake_data_file_missing(tmp_path):
    msg = one_error({"data": {"csv": str(tmp_path / "nope.csv"), "label_column": "label"}})
    assert msg == f"data.csv: file {str(tmp_path / 'nope.csv')!r} does not exist"


def test_mistake_label_column_not_in_the_csv(csv):
    msg = one_error({"data": {"csv": str(csv), "label_column": "diagnosis"}})
    assert msg.startswith("data.label_column: 'diagnosis' is not a column of labels.csv")
    assert "columns: path, label, patient_id, effusion" in msg


def test_mistake_no_data_source(tmp_path):
    msg = one_error({"data": {"label_column": "label"}})
    assert msg.startswith("data: give exactly one of data.csv")


def test_mistake_multilabel_without_label_columns(csv):
    errs = errors_of({"data": {"csv": str(csv), "label_column": "label"},
                      "task": {"type": "multilabel"}})
    assert any(e.startswith("data.label_columns: a multilabel task needs the list") for e in errs)


def test_mistake_wrong_type(csv):
    msg = one_error(minimal(csv, train={"batch_size": "thirty-two"}))
    assert msg.startswith("train.batch_size: input should be a valid integer")
    assert "(got 'thirty-two')" in msg


def test_mistake_value_out_of_range(csv):
    msg = one_error(minimal(csv, train={"phases": [{"epochs": 0}]}))
    assert msg == "train.phases.0.epochs: input should be greater than or equal to 1 (got 0)"


def test_mistake_choice_not_allowed(csv):
    msg = one_error(minimal(csv, task={"type": "binary-class"}))
    assert msg == ("task.type: 'binary-class' is not allowed; choose one of 'binary', "
                   "'multiclass' or 'multilabel'")


def test_mistake_unknown_stage(csv):
    msg = one_error(minimal(csv, preprocessing=[{"name": "windw", "preset": "lung"}]))
    assert msg.startswith("preprocessing.0: unknown stage 'windw' (did you mean 'window'?)")


def test_mistake_bad_stage_parameter(csv):
    msg = one_error(minimal(csv, preprocessing=[{"name": "window", "preset": "lugn"}]))
    assert msg.startswith("preprocessing.0: ") and "lung" in msg


def test_mistake_normalize_stage_in_the_pipeline(csv):
    msg = one_error(minimal(csv, preprocessing=[{"name": "window", "mode": "header"},
                                                {"name": "normalize", "scheme": "imagenet"}]))
    assert msg.startswith("preprocessing.1: remove 'normalize': the model applies")


def test_mistake_resize_disagrees_with_input_size(csv):
    msg = one_error(minimal(csv, model={"input_size": 224},
                            preprocessing=[{"name": "window", "mode": "header"},
                                           {"name": "resize", "size": 128}]))
    assert msg.startswith("preprocessing.1: resize to [128, 128] but model.input_size is 224")


def test_mistake_splits_leave_nothing_to_train(csv):
    msg = one_error(minimal(csv, split={"val": 0.4, "test": 0.4}))
    assert msg.startswith("split: val + test = 0.8 leaves too little to train on")


def test_mistake_operating_point_without_its_value(csv):
    msg = one_error(minimal(csv, evaluate={"operating_point": {"method": "sensitivity"}}))
    assert msg.startswith("evaluate.operating_point.value: required for method 'sensitivity'")


def test_mistake_bad_override_syntax(csv):
    msg = one_error(minimal(csv), ["train.batch_size"])
    assert msg == "--set 'train.batch_size': expected key.path=value"


def test_mistake_override_into_a_missing_list_item(csv):
    msg = one_error(minimal(csv, train={"phases": [{"epochs": 1}]}), ["train.phases.3.epochs=2"])
    assert msg.startswith("--set train.phases.3.epochs: train.phases has no item '3'")


def test_mistake_yaml_syntax(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("data:\n  csv: [unclosed\n")
    msg = one_error(f)
    assert msg.startswith("not valid YAML")


def test_mistake_normalization_set_by_hand(csv):
    msg = one_error(minimal(csv, model={"normalization": "imagenet"}))
    assert msg.startswith("model.normalization: 'imagenet' is not the input normalisation of "
                          "efficientnet_lite0")


def test_all_errors_are_reported_at_once(csv):
    # pydantic errors in one section must not hide the cross-field checks of the others,
    # nor of the rest of the same section
    errs = errors_of({"data": {"csv": str(csv), "label_column": "lable"},
                      "model": {"freeze": "block9", "head": {"hiden": [8]}},
                      "train": {"batch_size": 0},
                      "preprocessing": [{"name": "windw"}]})
    starts = ["data.label_column:", "model.freeze:", "model.head.hiden:", "train.batch_size:",
              "preprocessing.0:"]
    for s in starts:
        assert any(e.startswith(s) for e in errs), (s, errs)
    assert len(errs) == len(starts)


def test_error_text_names_the_file(tmp_path, csv):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(minimal(csv, seed="x")))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).startswith(f"invalid configuration in {f}:\n  - seed:")


def test_runconfig_rejects_unknown_keys_directly():
    with pytest.raises(Exception, match="extra"):
        RunConfig.model_validate({"data": {"folder": "."}, "extra_key": 1})


def test_pretrain_template_is_valid_apart_from_its_data(tmp_path):
    from imaging_tl.config import load_pretrain_config

    cfg = load_pretrain_config(PIPELINES / "pretrain.yaml", [f"data.folder={tmp_path}"])
    assert cfg.preprocessing[-1]["name"] == "to_rgb" and cfg.model.input_size == 224
    assert cfg.pretrain.method == "simsiam" and not cfg.views.hflip
    assert cfg.pretrain.learning_rate is None  # SimSiam's rule: 0.05 x global batch / 256


def test_pretrain_config_mistakes_are_listed_with_their_keys(tmp_path):
    from imaging_tl.config import load_pretrain_config

    with pytest.raises(ConfigError) as info:
        load_pretrain_config({"data": {"folder": str(tmp_path), "label_column": "label"},
                              "views": {"crop_scale": [0.6, 0.2]},
                              "model": {"source": "runs/x"},
                              "pretrain": {"methd": "simsiam"}})
    text = "\n".join(info.value.errors)
    assert "pretrain.methd: unknown key; did you mean 'method'?" in text
    assert "data.label_column: pretraining reads no labels" in text
    assert "views.crop_scale: [0.6, 0.2]" in text and "model.source" in text
