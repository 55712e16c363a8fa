"""The configuration schema: one pydantic model per section, with defaults and ranges.

Sections forbid unknown keys (a typo is an error that suggests the close match), and
:class:`ConfigError` carries every problem found, one line each. No TensorFlow.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# the one definition of the head's settings (a plain dataclass; pydantic validates it here)
from imaging_tl.models.head import HeadConfig

__all__ = ["AugmentConfig", "ConfigError", "DataConfig", "EvaluateConfig", "ExportConfig",
           "Freeze", "HeadConfig", "ModelCardConfig", "ModelConfig", "MonitorConfig",
           "OperatingPointConfig", "PhaseConfig", "PretrainConfig", "PretrainModelConfig",
           "RunConfig", "Section",
           "SSLConfig", "SplitConfig", "TaskConfig", "TrackingConfig", "TrainConfig",
           "ViewsConfig"]

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


class Section(BaseModel):
    """The base of every section: unknown keys are errors."""

    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the samples come from and how they are labelled.

    Give ``csv`` (a manifest with a path column and label column(s)) or ``folder`` (one
    sub-folder per class). Relative paths are resolved against the YAML file's folder.
    ``unit: series`` (CT and MR series): the DICOM files under ``folder`` are grouped into
    series, each labelled by ``csv`` (one row per series, keyed by ``series_column``) or by
    the class folder it lies in, or per slice by ``slice_labels``; a sample is a slice of
    a labelled series.
    """

    csv: str | None = None
    folder: str | None = None
    path_column: str = "path"
    label_column: str | None = None
    label_columns: list[str] | None = None
    group_column: str | None = None
    frames: Literal["middle", "first", "all"] = "middle"
    strict: bool = False
    # colour policy (a `color` stage first in preprocessing): auto keeps true colour and
    # makes 3-channel images whose channels agree grey; null: auto with the default
    # preprocessing, nothing added to a preprocessing list of one's own
    color: Literal["auto", "grey", "rgb"] | None = None
    # auto: JPEG 2000 / baseline JPEG decoded at the reduced resolution the first resize
    # needs (the cold cache build's speed-up); full: every image decoded in full.
    decode: Literal["auto", "full"] = "auto"
    # image: every file (frame) is a sample with its own label; series: slices of series
    # labelled per series (imaging_tl.data.series)
    unit: Literal["image", "series"] = "image"
    series_column: str | None = None
    # series: the training split uses every k-th slice of each series (1: all slices);
    # validation, test and the stack stage's neighbours keep every slice
    slice_step: int = Field(1, ge=1)
    # series: labels per slice (binary), a CSV keyed by file (path_column) or by series and
    # instance_number (or 0-based slice); a series' label is then derived from its slices'
    slice_labels: str | None = None
    # series: the training slices: all, every_k (every slice_step-th), around_positive
    # (positive slices, negatives within slice_margin, a seeded share slice_rest of the
    # others); null: every_k when slice_step > 1, else all
    slice_sampling: Literal["all", "every_k", "around_positive"] | None = None
    slice_margin: int = Field(2, ge=0)
    slice_rest: float = Field(0.1, ge=0, le=1)


class TaskConfig(Section):
    """What is predicted; ``type`` null means: inferred from the labels.

    ``uncertain`` (multi-label CSVs): what an uncertain cell (``-1``, ``u``,
    ``uncertain``) means: ``ignore`` masks it like a blank (missing) cell, ``zeros`` reads
    it as negative, ``ones`` as positive (CheXpert's U-Ignore, U-Zeros, U-Ones). Null: a
    CSV with uncertain cells is refused, naming the labels and counts. ``label_map``
    harmonises names across datasets: multi-label, CSV column -> label name (columns
    mapped to one name are merged: positive if any is positive, else uncertain if any is
    uncertain, else negative if any is negative, else missing); single-label, class value
    -> class name. Names the map does not hold are kept.
    """

    type: Literal["binary", "multiclass", "multilabel"] | None = None
    positive: str | None = None
    classes: list[str] | None = None
    uncertain: Literal["ignore", "zeros", "ones"] | None = None
    label_map: dict[str, str] | None = None


class SplitConfig(Section):
    """Patient-grouped, label-stratified splits (or a user's own ``splits.csv``).

    ``kfold``: a test split (``test``) outside the folds, and ``folds`` folds of the rest;
    ``fold`` null trains every fold (cross-validation, a fold ensemble), a number trains
    that one fold (its fold is the validation split).
    """

    method: Literal["holdout", "kfold"] = "holdout"
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    folds: int = Field(5, ge=3)
    fold: int | None = Field(None, ge=0)
    file: str | None = None


class AugmentConfig(Section):
    """Augmentation of the training split (albumentations, float32 [0, 1])."""

    preset: Literal["none", "light", "medium", "heavy"] = "light"
    hflip: bool = False
    transforms: list[dict[str, Any]] = Field(default_factory=list)


def _source_value(v: Any) -> str:
    """``model.source`` / ``model.weights`` in one spelling: ``imagenet``, ``none`` or a path."""
    if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", "")):
        return "none"
    if isinstance(v, str) and v.strip().lower() == "imagenet":
        return "imagenet"
    if not isinstance(v, str):
        raise ValueError(f"expected 'imagenet', 'none' or a path, got {v!r}")
    return v


class ModelConfig(Section):
    """Backbone, where its weights come from, default freeze point and head.

    ``source`` is where the shared layers come from: ``imagenet`` (default), ``none``
    (random initialisation), a finished run directory or ``model.keras`` of this package
    (transfer from your own source task) or a weights file. ``weights`` is its older name,
    still accepted: give either (both only when they agree); both are written to
    ``config.yaml``, ``weights`` as null for ``none``.
    """

    backbone: str = "efficientnet_lite0"
    source: str = "imagenet"
    weights: str | None = "imagenet"
    # full sha256 of the weights file (64 hex); a different file is refused by name
    weights_sha256: str | None = Field(None, pattern=r"^(sha256:)?[0-9a-fA-F]{64}$")
    keep_source_hidden: bool = False
    allow_preprocessing_change: bool = False
    allow_source_overlap: bool = False
    input_size: int | None = Field(None, ge=32, le=1024)
    normalization: str | None = None
    freeze: Freeze = "all"
    head: HeadConfig = Field(default_factory=HeadConfig)

    @model_validator(mode="before")
    @classmethod
    def one_source(cls, data: Any) -> Any:
        """``source`` is canonical, ``weights`` its alias: both given must agree."""
        if not isinstance(data, dict) or ("source" not in data and "weights" not in data):
            return data
        given = {k: _source_value(data[k]) for k in ("source", "weights") if k in data}
        if len(set(given.values())) > 1:
            raise ValueError(
                f"model.source ({data['source']!r}) and model.weights ({data['weights']!r}, "
                "its older name) disagree; give only model.source")
        value = next(iter(given.values()))
        return {**data, "source": value, "weights": None if value == "none" else value}


class PhaseConfig(Section):
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


class TrainConfig(Section):
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


class OperatingPointConfig(Section):
    """How the binary decision threshold is chosen (on the validation split)."""

    method: Literal["youden", "sensitivity", "fixed"] = "youden"
    value: float | None = Field(None, ge=0, le=1)


class EvaluateConfig(Section):
    """Test metrics, confidence intervals, calibration and Grad-CAM."""

    operating_point: OperatingPointConfig = Field(default_factory=OperatingPointConfig)
    bootstrap: int = Field(1000, ge=0)
    patient_level: Literal["none", "max", "mean", "top_k_mean", "noisy_or"] = "none"
    # data.unit series: how the slices' probabilities make the series' probability
    series_aggregate: Literal["max", "mean", "top_k_mean", "noisy_or"] = "max"
    top_k: int = Field(3, ge=1)  # the slices top_k_mean averages
    calibration: Literal["none", "temperature"] = "none"
    gradcam: int = Field(8, ge=0)
    # files that may carry burned-in text (BurnedInAnnotation YES, secondary captures,
    # ultrasound) appear in the report's pictures only when this is true
    show_burned_in: bool = False
    # the domain gate's feature threshold: the share of validation images it may flag
    domain_false_flag_rate: float = Field(0.05, gt=0, lt=0.5)
    # binary tasks: test figures per group of each of these (sex, age_band, manufacturer,
    # model, site, view, body_part: from the census; or any column of data.csv)
    subgroups: list[str] = Field(default_factory=list)
    # test-time augmentation: also report the figures of the mean prediction over each
    # image and this many augmented copies (the augment preset; light for none)
    tta: int = Field(0, ge=0, le=64)


ExportFormat = Literal["keras", "savedmodel", "onnx", "tflite"]


class ModelCardConfig(Section):
    """What ``model_card.md`` says that the run cannot know: the intended use, the uses it
    is not meant for, and limitations beyond those the run finds itself (small samples,
    quarantined files, the domain gate)."""

    intended_use: str | None = None
    out_of_scope_use: str = (
        "Clinical diagnosis or triage without a prospective validation and the clearance "
        "the jurisdiction requires; images unlike the training data (other modalities, body "
        "parts, populations or scanners: see the training data and the domain gate).")
    limitations: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def no_empty_text(self) -> ModelCardConfig:
        """Text given must say something (an empty field is left out instead)."""
        for key in ("intended_use", "out_of_scope_use"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ValueError(f"model_card.{key}: empty text; leave the key out instead")
        return self


class TrackingConfig(Section):
    """Experiment tracking: TensorBoard event files in ``<run>/tensorboard/`` (offline, on by
    default) and, optionally, an MLflow tracking URI (``true``: a local ``file:`` store in
    ``<output>/mlruns``; needs ``pip install 'imaging-tl[mlflow]'``)."""

    tensorboard: bool = True
    mlflow: str | bool | None = None

    @model_validator(mode="after")
    def mlflow_uri(self) -> TrackingConfig:
        """``mlflow`` is true, false/null, or a non-empty URI."""
        if isinstance(self.mlflow, str) and not self.mlflow.strip():
            raise ValueError("tracking.mlflow: empty URI; give a URI such as "
                             "'file:/data/mlruns', true (a store under output) or null")
        return self


class ExportConfig(Section):
    """Extra formats written beside ``model.keras`` (into ``export/``)."""

    formats: list[ExportFormat] = Field(default_factory=lambda: list[ExportFormat](["keras"]))


def _plain_name(v: str) -> str:
    if not v or any(c in v for c in "/\\:") or v.startswith("."):
        raise ValueError("must be a plain name usable as a folder name")
    return v


_DEFAULT_PREPROCESSING = [{"name": "window", "mode": "header"}]


class ConfigFile(Section):
    """A whole configuration file (``run`` or ``pretrain``), dumpable as it resolved.

    Examples
    --------
    >>> RunConfig(data={"folder": "x"}).to_yaml().startswith("name:")
    True
    """

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (what ``config.yaml`` holds)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class RunConfig(ConfigFile):
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
    # predictions.csv paths: "absolute" as read, or "relative" to the data root
    output_paths: Literal["absolute", "relative"] = "absolute"
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
    model_card: ModelCardConfig = Field(default_factory=ModelCardConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


# -- imaging-tl pretrain: self-supervised pretraining on unlabelled images -----------------


class PretrainModelConfig(Section):
    """The backbone to pretrain and its start: ImageNet weights or random initialisation."""

    backbone: str = "efficientnet_lite0"
    source: Literal["imagenet", "none"] = "imagenet"
    input_size: int | None = Field(None, ge=32, le=1024)
    normalization: str | None = None


class SSLConfig(Section):
    """The self-supervised method and its schedule (section ``pretrain``).

    SimSiam (Chen & He 2021): two views of an image, a projector and a predictor, the
    negative cosine between one view's prediction and the other's (stop-gradient)
    projection. SGD with momentum 0.9 and cosine decay; ``learning_rate`` null follows
    SimSiam's rule, 0.05 x global batch / 256; a number is used as given.
    ``train_batchnorm`` null: the backbone's BatchNorm trains from a random start and
    stays frozen (inference mode) on ImageNet weights. ``collapse_ratio``: the run stops
    when the per-dimension std of the l2-normalised projection, times sqrt(dim), falls
    below it (1 for a spread embedding, 0 for a collapsed one), or when the spread of the
    pooled backbone features in inference mode (what a target task uses) falls below it
    as a share of its value before pretraining. ``keep``: which epoch's backbone becomes
    ``model.keras`` -- the one with the best linear-probe AUC (with ``monitor.csv``;
    without a probe, the last) or the last. ``distribute`` as ``train.distribute`` of a
    run (``multi_worker``: every worker runs the same command under its ``TF_CONFIG``;
    only the chief writes the run directory).
    """

    method: Literal["simsiam"] = "simsiam"
    epochs: int = Field(20, ge=1)
    # steps per epoch (null: one pass over the images): shorter epochs on a big archive
    steps_per_epoch: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=2)
    learning_rate: float | None = Field(None, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    projection_dim: int = Field(512, ge=8)
    predictor_dim: int = Field(128, ge=4)
    train_batchnorm: bool | None = None
    # epochs in which only the projector and predictor train (null: 1 from ImageNet, 0
    # from a random start): their first random gradients do not reach pretrained weights
    warmup_epochs: int | None = Field(None, ge=0)
    collapse_ratio: float = Field(0.05, ge=0, lt=1)
    # images (no augmentation) on which the collapse statistics are computed each epoch
    collapse_sample: int = Field(256, ge=8)
    keep: Literal["best_probe", "last"] = "best_probe"
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["none", "mixed_float16", "mixed_bfloat16", "auto"] = "none"


class ViewsConfig(Section):
    """The two random views of each image: radiograph-safe (never a vertical flip)."""

    crop_scale: tuple[float, float] = (0.4, 1.0)
    rotate: float = Field(10.0, ge=0, le=30)
    brightness: float = Field(0.2, ge=0, le=0.5)
    contrast: float = Field(0.2, ge=0, le=0.5)
    gamma: tuple[int, int] = (80, 125)
    blur: float = Field(0.2, ge=0, le=1)
    noise: float = Field(0.2, ge=0, le=1)
    hflip: bool = False


class MonitorConfig(Section):
    """A small labelled set for the linear probe (``csv`` null: no probe).

    Every ``every`` epochs a logistic regression on the pooled backbone features is fitted
    on a patient-grouped part of the CSV and its ROC AUC measured on the rest (``test``).
    """

    csv: str | None = None
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    positive: str | None = None
    every: int = Field(5, ge=1)
    test: float = Field(0.4, gt=0, lt=1)


class PretrainConfig(ConfigFile):
    """A self-supervised pretraining run (``imaging-tl pretrain``).

    ``data`` names unlabelled images: a folder (searched recursively), or a CSV (a table
    or a census; label columns are not read). The preprocessing and the array cache are
    the same as ``run``'s.

    Examples
    --------
    >>> cfg = PretrainConfig.model_validate({"data": {"folder": "scans"}})
    >>> cfg.pretrain.method, cfg.views.hflip
    ('simsiam', False)
    """

    name: Annotated[str, AfterValidator(_plain_name)] = "pretrain"
    seed: int = 0
    output: str = "runs"
    cache_dir: str | None = None
    workers: int | None = Field(None, ge=1)
    data: DataConfig
    preprocessing: list[dict[str, Any]] = Field(
        default_factory=lambda: copy.deepcopy(_DEFAULT_PREPROCESSING)
    )
    model: PretrainModelConfig = Field(default_factory=PretrainModelConfig)
    pretrain: SSLConfig = Field(default_factory=SSLConfig)
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
