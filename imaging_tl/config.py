"""The pipeline configuration: schema, defaults, ``--set`` overrides and validation.

A run is described by one YAML file. Validation happens before any work starts and reports
every problem at once, each naming the key path, the bad value and what is allowed::

    model.freeze: 'block9' is not a freeze point of efficientnet_lite0; choose one of ...

A minimal configuration is a few lines::

    data:
      csv: sample_dicoms/labels.csv
      label_column: label

Everything else has a default; values that depend on the backbone (input size, input
normalisation, the fine-tuning freeze point) are filled from its registry entry, and the
preprocessing gets a final ``resize`` to the input size and ``to_rgb`` when it lacks them.
The resolved configuration (``RunConfig.to_dict()``) is written to the run directory as
``config.yaml`` and reproduces the run. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import copy
import csv
import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "load_config", "schema_help"]

Freeze = str | float


class ConfigError(ValueError):
    """The configuration is invalid; ``errors`` lists every problem, one line each.

    Examples
    --------
    >>> print(ConfigError(["seed: input should be a valid integer (got 'x')"], "a.yaml"))
    invalid configuration in a.yaml:
      - seed: input should be a valid integer (got 'x')
    """

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {e}" for e in self.errors))


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the samples come from and how they are labelled.

    Give ``csv`` (a manifest with a path column and label column(s)) or ``folder`` (one
    sub-folder per class). Relative paths are resolved against the YAML file's folder.
    """

    csv: str | None = None
    folder: str | None = None
    path_column: str = "path"
    label_column: str | None = None
    label_columns: list[str] | None = None
    group_column: str | None = None
    frames: Literal["middle", "first", "all"] = "middle"
    strict: bool = False


class TaskConfig(_Section):
    """What is predicted; ``type`` null means: inferred from the labels."""

    type: Literal["binary", "multiclass", "multilabel"] | None = None
    positive: str | None = None
    classes: list[str] | None = None


class SplitConfig(_Section):
    """Patient-grouped, label-stratified splits (or a user's own ``splits.csv``)."""

    method: Literal["holdout", "kfold"] = "holdout"
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    folds: int = Field(5, ge=3)
    fold: int = Field(0, ge=0)
    file: str | None = None


class AugmentConfig(_Section):
    """Augmentation of the training split (albumentations, float32 [0, 1])."""

    preset: Literal["none", "light", "medium", "heavy"] = "light"
    hflip: bool = False
    transforms: list[dict[str, Any]] = Field(default_factory=list)


class HeadConfig(_Section):
    """The new classification head."""

    pooling: Literal["avg", "max"] = "avg"
    hidden: list[int] = Field(default_factory=list)
    dropout: float | None = Field(None, ge=0, lt=1)


class ModelConfig(_Section):
    """Backbone, weights, default freeze point and head."""

    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    input_size: int | None = Field(None, ge=32, le=1024)
    normalization: str | None = None
    freeze: Freeze = "all"
    head: HeadConfig = Field(default_factory=HeadConfig)


class PhaseConfig(_Section):
    """One training phase: what is frozen, for how long, at which learning rate."""

    name: str = "head"
    epochs: int = Field(10, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    freeze: Freeze | None = None
    schedule: Literal["constant", "cosine", "step", "exponential"] = "constant"
    warmup_epochs: int = Field(0, ge=0)
    patience: int | None = Field(None, ge=1)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    train_batchnorm: bool = False


class TrainConfig(_Section):
    """Batching, class weights, feature caching, devices and the phases.

    ``batch_size`` is the batch of ONE replica (device). With ``distribute`` over N replicas
    (GPUs, or GPUs x workers) the global batch is ``batch_size x N`` and every phase's
    learning rate is scaled by ``scale_learning_rate``: ``linear`` multiplies it by N
    (Goyal et al. 2017; add ``warmup_epochs`` for large N), ``sqrt`` by sqrt(N), ``none``
    keeps it. On one device nothing changes. ``distribute``: ``auto`` is ``mirrored`` when
    several GPUs are visible, ``multi_worker`` when ``TF_CONFIG`` names several workers,
    else ``none``. ``mixed_precision``: ``auto`` is ``mixed_float16`` on a GPU, ``none``
    on CPU; the head output stays float32 and float16 gets loss scaling.
    """

    batch_size: int = Field(32, ge=1)
    class_weights: Literal["balanced", "none"] = "balanced"
    feature_cache: Literal["auto", "off"] = "auto"
    monitor: str | None = None
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["none", "mixed_float16", "mixed_bfloat16", "auto"] = "none"
    scale_learning_rate: Literal["linear", "sqrt", "none"] = "linear"
    phases: list[PhaseConfig] | None = Field(None, min_length=1)


class OperatingPointConfig(_Section):
    """How the binary decision threshold is chosen (on the validation split)."""

    method: Literal["youden", "sensitivity", "fixed"] = "youden"
    value: float | None = Field(None, ge=0, le=1)


class EvaluateConfig(_Section):
    """Test metrics, confidence intervals, calibration and Grad-CAM."""

    operating_point: OperatingPointConfig = Field(default_factory=OperatingPointConfig)
    bootstrap: int = Field(1000, ge=0)
    patient_level: Literal["none", "max", "mean"] = "none"
    calibration: Literal["none", "temperature"] = "none"
    gradcam: int = Field(8, ge=0)


class ExportConfig(_Section):
    """Extra formats written beside ``model.keras`` (into ``export/``)."""

    formats: list[Literal["keras", "savedmodel", "onnx", "tflite"]] = Field(
        default_factory=lambda: ["keras"]
    )


def _plain_name(v: str) -> str:
    if not v or any(c in v for c in "/\\:") or v.startswith("."):
        raise ValueError("must be a plain name usable as a folder name")
    return v


_DEFAULT_PREPROCESSING = [{"name": "window", "mode": "header"}]


class RunConfig(_Section):
    """The whole run. ``preprocessing`` is a list of stage configs (see imaging_tl.stages).

    Examples
    --------
    >>> cfg = RunConfig.model_validate({"data": {"folder": "scans"}})
    >>> cfg.split.test, cfg.model.backbone
    (0.2, 'efficientnet_lite0')
    """

    name: Annotated[str, AfterValidator(_plain_name)] = "run"
    seed: int = 0
    output: str = "runs"
    cache_dir: str | None = None
    workers: int | None = Field(None, ge=1)
    data: DataConfig
    task: TaskConfig = Field(default_factory=TaskConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    preprocessing: list[dict[str, Any]] = Field(
        default_factory=lambda: copy.deepcopy(_DEFAULT_PREPROCESSING)
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (what ``config.yaml`` holds)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Overrides


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config dict.

    List items are addressed by index: ``train.phases.0.epochs=3``.

    Examples
    --------
    >>> apply_overrides({"seed": 0}, ["seed=7", "model.freeze=block5c_add"])
    {'seed': 7, 'model': {'freeze': 'block5c_add'}}
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected key.path=value"])
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError([f"--set {key}: value {text!r} is not valid YAML ({exc})"]) from None
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i]) or "<root>"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError([f"--set {key}: {where} has no item {part!r} "
                                       f"(it has {len(node)} items)"])
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError([f"--set {key}: {where} is a value, not a section"])
    return out


# ---------------------------------------------------------------------------------------------
# Error formatting


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for a in getattr(annotation, "__args__", (annotation,)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
        inner = _submodel(a) if getattr(a, "__args__", None) else None
        if inner is not None:
            return inner
    return None


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at ``loc`` (for "did you mean" suggestions)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return list(model.model_fields)
        sub = _submodel(field.annotation)
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _format_pydantic_error(err: dict[str, Any], model: type[BaseModel], prefix: tuple) -> str:
    # pydantic adds the union member tried to the location ("str", "float", "list[...]").
    loc = tuple(p for p in err["loc"]
                if not (isinstance(p, str) and (p in ("str", "float", "int", "bool", "none")
                                                or p.startswith(("list[", "dict[", "literal[")))))
    path = ".".join(str(p) for p in (*prefix, *loc)) or "<root>"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{path}: unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error":
        return f"{path}: {value!r} is not allowed; choose one of {err['ctx']['expected']}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a section (a mapping of keys), got {value!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg[0].lower() + msg[1:]} (got {value!r})"


# ---------------------------------------------------------------------------------------------
# Cross-field checks (run on every section that validated, so all errors come at once)


def _csv_columns(path: str) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return None


def _check_data(d: DataConfig, task: TaskConfig | None) -> list[str]:
    errors: list[str] = []
    if (d.csv is None) == (d.folder is None):
        errors.append("data: give exactly one of data.csv (a manifest) or data.folder "
                      "(one sub-folder per class)")
    if d.csv is not None:
        if not Path(d.csv).is_file():
            errors.append(f"data.csv: file {d.csv!r} does not exist")
        else:
            cols = _csv_columns(d.csv)
            if cols is None:
                errors.append(f"data.csv: {d.csv!r} cannot be read as a CSV text file")
            else:
                wanted = [("data.path_column", d.path_column),
                          ("data.label_column", d.label_column),
                          ("data.group_column", d.group_column)]
                wanted += [(f"data.label_columns.{i}", c)
                           for i, c in enumerate(d.label_columns or [])]
                for key, col in wanted:
                    if col is not None and col not in cols:
                        close = difflib.get_close_matches(col, cols, n=1)
                        hint = f" (did you mean {close[0]!r}?)" if close else ""
                        errors.append(f"{key}: {col!r} is not a column of {Path(d.csv).name}"
                                      f"{hint}; columns: {', '.join(cols)}")
    if d.folder is not None and not Path(d.folder).is_dir():
        errors.append(f"data.folder: folder {d.folder!r} does not exist")
    if d.folder is not None and (d.label_column or d.label_columns):
        errors.append("data.label_column: not used with data.folder (the sub-folder names are "
                      "the labels); remove it or use data.csv")
    if d.label_column and d.label_columns:
        errors.append("data: give data.label_column or data.label_columns, not both")
    ttype = task.type if task is not None else None
    if d.label_columns is not None and len(d.label_columns) == 0:
        errors.append("data.label_columns: empty list; name the 0/1 label columns")
    if ttype == "multilabel" and not d.label_columns:
        errors.append("data.label_columns: a multilabel task needs the list of 0/1 label "
                      "columns of data.csv")
    if ttype in ("binary", "multiclass") and d.label_columns:
        errors.append(f"data.label_columns: only for task.type multilabel (task.type is "
                      f"{ttype!r}); use data.label_column")
    if d.csv is not None and not d.label_column and not d.label_columns:
        errors.append("data.label_column: required with data.csv (the column holding the "
                      "label), or data.label_columns for a multilabel task")
    return errors


def _check_task(t: TaskConfig) -> list[str]:
    errors = []
    if t.classes is not None and len(set(t.classes)) != len(t.classes):
        errors.append(f"task.classes: duplicate names in {t.classes}")
    if t.type == "binary" and t.classes is not None and len(t.classes) != 2:
        errors.append(f"task.classes: a binary task has exactly 2 classes (negative first, "
                      f"positive second), got {t.classes}")
    if t.positive is not None and t.classes is not None and t.positive not in t.classes:
        errors.append(f"task.positive: {t.positive!r} is not one of task.classes {t.classes}")
    if t.positive is not None and t.type in ("multiclass", "multilabel"):
        errors.append(f"task.positive: only for binary tasks (task.type is {t.type!r})")
    return errors


def _check_split(s: SplitConfig) -> list[str]:
    errors = []
    if s.method == "kfold" and s.fold >= s.folds:
        errors.append(f"split.fold: {s.fold} must be below split.folds ({s.folds})")
    if s.method == "holdout" and s.val + s.test > 0.6:
        errors.append(f"split: val + test = {s.val + s.test:g} leaves too little to train on "
                      "(keep it at most 0.6)")
    if s.file is not None and not Path(s.file).is_file():
        errors.append(f"split.file: file {s.file!r} does not exist")
    return errors


def _check_freeze(value: Freeze, spec: Any, where: str) -> list[str]:
    if isinstance(value, bool):
        return [f"{where}: {value!r} is not a freeze setting; use 'all', 'none', a freeze "
                "point or a fraction in [0, 1]"]
    if isinstance(value, float | int):
        return [] if 0 <= value <= 1 else [f"{where}: fraction {value} must be in [0, 1]"]
    allowed = ["all", "none", *spec.freeze_points]
    if value in allowed:
        return []
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return [f"{where}: {value!r} is not a freeze point of {spec.name}{hint}; "
            f"choose one of {', '.join(allowed)} or a fraction in [0, 1]"]


def _check_model(m: ModelConfig, phases: list[PhaseConfig] | None) -> list[str]:
    from imaging_tl.models.registry import get_spec, list_backbones
    from imaging_tl.stages.normalize import list_schemes

    names = list_backbones()
    if m.backbone not in names:
        close = difflib.get_close_matches(m.backbone, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [f"model.backbone: unknown backbone {m.backbone!r}{hint}; "
                f"choose one of {', '.join(names)}"]
    spec = get_spec(m.backbone)
    errors = _check_freeze(m.freeze, spec, "model.freeze")
    for i, phase in enumerate(phases or []):
        if phase.freeze is not None:
            errors += _check_freeze(phase.freeze, spec, f"train.phases.{i}.freeze")
    w = m.weights
    if w not in (None, "imagenet", "none") and not Path(os.path.expanduser(w)).is_file():
        errors.append(f"model.weights: {w!r} is neither 'imagenet', null nor an existing "
                      "weights file")
    if m.normalization is not None and m.normalization != spec.normalization:
        known = "" if m.normalization in list_schemes() else " (not a known scheme)"
        errors.append(
            f"model.normalization: {m.normalization!r}{known} is not the input normalisation "
            f"of {spec.name}, which was trained with {spec.normalization!r}; the model applies "
            "it itself, so remove the key")
    return errors


def _check_phases(phases: list[PhaseConfig]) -> list[str]:
    errors = []
    names = [p.name for p in phases]
    for n in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"train.phases: phase name {n!r} is used twice; give each phase its "
                      "own name")
    for i, p in enumerate(phases):
        if p.warmup_epochs >= p.epochs and p.warmup_epochs:
            errors.append(f"train.phases.{i}.warmup_epochs: {p.warmup_epochs} must be below "
                          f"its epochs ({p.epochs})")
    return errors


def _check_stages(stages: list[dict[str, Any]], model: ModelConfig | None) -> list[str]:
    from imaging_tl.stages import stage_from_config

    errors = []
    resize_sizes = []
    for i, stage in enumerate(stages):
        try:
            built = stage_from_config(stage)
        except (ValueError, TypeError, KeyError) as exc:
            errors.append(f"preprocessing.{i}: {exc}")
            continue
        if built.name == "normalize":
            errors.append(
                f"preprocessing.{i}: remove 'normalize': the model applies its backbone's "
                "input normalisation itself (its input is RGB in [0, 1])")
        if built.name == "resize":
            resize_sizes.append((i, tuple(built.size)))
        if built.name == "multi_window" and len(built.windows) not in (1, 3):
            errors.append(f"preprocessing.{i}: multi_window gives {len(built.windows)} "
                          "channels; the backbone takes 3 (or 1, replicated): use 3 windows")
    if model is not None and model.input_size is not None and resize_sizes:
        i, size = resize_sizes[-1]
        if size != (model.input_size, model.input_size):
            errors.append(f"preprocessing.{i}: resize to {list(size)} but model.input_size is "
                          f"{model.input_size}; make them agree (or drop one of them)")
    if resize_sizes and resize_sizes[-1][1][0] != resize_sizes[-1][1][1]:
        i, size = resize_sizes[-1]
        errors.append(f"preprocessing.{i}: the last resize must be square (the model input "
                      f"is square), got {list(size)}")
    return errors


def _check_evaluate(e: EvaluateConfig) -> list[str]:
    op = e.operating_point
    if op.method in ("sensitivity", "fixed") and op.value is None:
        what = "target sensitivity" if op.method == "sensitivity" else "threshold"
        return [f"evaluate.operating_point.value: required for method {op.method!r} "
                f"(the {what}, in [0, 1])"]
    if op.method == "youden" and op.value is not None:
        return ["evaluate.operating_point.value: not used with method 'youden'; remove it or "
                "choose method 'sensitivity' or 'fixed'"]
    return []


def _cross_checks(parts: dict[str, Any]) -> list[str]:
    """Checks that need more than one key or another part's registry; skip failed sections."""
    errors: list[str] = []
    data, task, split = parts.get("data"), parts.get("task"), parts.get("split")
    model, train = parts.get("model"), parts.get("train")
    if data is not None:
        errors += _check_data(data, task)
    if task is not None:
        errors += _check_task(task)
    if split is not None:
        errors += _check_split(split)
    if model is not None:
        errors += _check_model(model, train.phases if train is not None else None)
    if train is not None and train.phases:
        errors += _check_phases(train.phases)
    if parts.get("preprocessing") is not None:
        errors += _check_stages(parts["preprocessing"], model)
    if parts.get("evaluate") is not None:
        errors += _check_evaluate(parts["evaluate"])
    aug = parts.get("augment")
    if aug is not None:
        try:
            from imaging_tl.augment import Augmenter

            Augmenter(aug.preset, hflip=aug.hflip, transforms=aug.transforms, seed=0)
        except (ValueError, TypeError) as exc:
            errors.append(f"augment: {exc}")
    return errors


def _without(raw: dict[str, Any], locs: list[tuple]) -> dict[str, Any] | None:
    """``raw`` without the values at ``locs`` (None when a location cannot be dropped)."""
    for loc in locs:
        node: Any = raw
        path = [p for p in loc if not (isinstance(p, str) and p not in _keys_of(node, loc))]
        for part in path[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        if len(path) < 2 or not isinstance(node, dict) or path[-1] not in node:
            return None
        del node[path[-1]]
    return raw


def _keys_of(node: Any, loc: tuple) -> set:
    # the keys along loc that exist in the raw data (pydantic adds union member names)
    keys: set = set()
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.add(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
    return keys


def _validate_parts(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate each top-level key on its own: the sections that pass, and all errors."""
    parts: dict[str, Any] = {}
    errors: list[str] = []
    fields = RunConfig.model_fields
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(f"{key}: unknown key{hint} (allowed: {', '.join(fields)})")
    for key, field in fields.items():
        if key not in raw:
            if field.is_required():
                errors.append(f"{key}: required section is missing (at least data.csv or "
                              "data.folder)")
                continue
            parts[key] = field.get_default(call_default_factory=True)
            continue

        one = create_model(f"_Only_{key}", __base__=_Section, **{key: (field.annotation, field)})
        try:
            parts[key] = getattr(one.model_validate({key: raw[key]}), key)
        except ValidationError as exc:
            model = _submodel(field.annotation) or RunConfig
            locs = []
            for e in exc.errors():
                locs.append(e["loc"])
                errors.append(_format_pydantic_error({**e, "loc": e["loc"][1:]}, model, (key,)))
            # Drop the bad keys and validate again, so that the cross-field checks still run
            # on the rest of the section (e.g. model.freeze when model.head has a typo).
            pruned = _without({key: copy.deepcopy(raw[key])}, locs)
            if pruned is not None and key in pruned:
                try:
                    parts[key] = getattr(one.model_validate(pruned), key)
                except ValidationError:
                    pass
    return parts, errors


# ---------------------------------------------------------------------------------------------
# Resolving defaults


def _resolve(cfg: RunConfig) -> RunConfig:
    """Fill the backbone-dependent defaults, so that config.yaml says what really ran."""
    from imaging_tl.models.registry import get_spec

    spec = get_spec(cfg.model.backbone)
    stages = [dict(s) for s in cfg.preprocessing]
    resizes = [s for s in stages if s.get("name") == "resize"]
    size = cfg.model.input_size
    if size is None:
        last = resizes[-1]["size"] if resizes else spec.input_size
        size = int(last[0] if isinstance(last, list | tuple) else last)
    if not resizes:
        stages.append({"name": "resize", "size": size})
    if not stages or stages[-1].get("name") != "to_rgb":
        stages.append({"name": "to_rgb"})
    phases = cfg.train.phases
    if phases is None:
        points = spec.freeze_points
        # fine-tune the top two stages (as imaging_tl.train.default_phases does)
        freeze_at = points[max(len(points) - 4, 0)]
        phases = [
            PhaseConfig(name="head", epochs=10, learning_rate=1e-3, patience=3),
            PhaseConfig(name="finetune", epochs=5, learning_rate=1e-4, freeze=freeze_at,
                        schedule="cosine", patience=3),
        ]
    phases = [p.model_copy(update={"freeze": cfg.model.freeze if p.freeze is None else p.freeze})
              for p in phases]
    return cfg.model_copy(update={
        "preprocessing": stages,
        "model": cfg.model.model_copy(update={"input_size": size,
                                              "normalization": spec.normalization}),
        "train": cfg.train.model_copy(update={"phases": phases}),
    })


def load_config(
    source: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None
) -> RunConfig:
    """Read, override, validate and resolve a configuration.

    Parameters
    ----------
    source : path or dict
        A YAML file, or the same content as a dict (relative paths then resolve against
        the current folder).
    overrides : list of str, optional
        ``key.path=value`` items (``--set`` on the command line).

    Returns
    -------
    RunConfig
        With every default filled (backbone input size and normalisation, phases, the final
        resize and to_rgb stages).

    Raises
    ------
    ConfigError
        Listing every problem found, each with its key path.

    Examples
    --------
    >>> cfg = load_config({"data": {"folder": "."}, "model": {"input_size": 96}})
    >>> cfg.preprocessing[-2:]
    [{'name': 'resize', 'size': 96}, {'name': 'to_rgb'}]
    """
    where = None
    base = Path.cwd()
    if isinstance(source, dict):
        raw: Any = copy.deepcopy(source)
    else:
        where = os.fspath(source)
        try:
            raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError):
            raise ConfigError([f"{where}: no such configuration file"], where) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], where) from None
        base = Path(source).resolve().parent
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the file must hold a mapping of sections (data:, model:, ...), "
                           f"got {type(raw).__name__}"], where)
    raw = apply_overrides(raw, overrides or [])
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("csv", "folder"):
            value = data.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                data[key] = os.path.normpath(base / value)
    split = raw.get("split")
    if isinstance(split, dict) and isinstance(split.get("file"), str):
        if not Path(split["file"]).is_absolute():
            split["file"] = os.path.normpath(base / split["file"])
    parts, errors = _validate_parts(raw)
    errors += _cross_checks(parts)
    if errors:
        raise ConfigError(errors, where)
    return _resolve(RunConfig.model_validate(raw))


def schema_help() -> str:
    """A short listing of every section and key with its default (for ``--help`` texts).

    Examples
    --------
    >>> "model.backbone" in schema_help()
    True
    """
    lines = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            sub = _submodel(field.annotation)
            if sub is not None and name not in ("phases",):
                walk(sub, f"{prefix}{name}.")
                continue
            default = "required" if field.is_required() else repr(
                field.get_default(call_default_factory=True))
            lines.append(f"{prefix}{name}: {default}")

    walk(RunConfig, "")
    return "\n".join(lines)
