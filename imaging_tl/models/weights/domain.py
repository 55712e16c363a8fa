"""Domain-pretrained weights files: RadImageNet (Keras) and torchxrayvision (PyTorch).

Neither may be redistributed, so the user downloads them once; this module knows each
file's name, where it comes from, where to put it (``<cache dir>/weights/``, see
:func:`imaging_tl.data.cache.default_cache_dir`) and how to read it.

RadImageNet (Mei et al., Radiology: AI 2022; github.com/BMEII-AI/RadImageNet, whose
README links the models folder) ships ``RadImageNet-<arch>_notop.h5``: whole tf.keras
models without classifier, read by layer order (:mod:`~imaging_tl.models.weights.keras_h5`).
Its input normalisation (scheme ``radimagenet``) is taken from the project's published
fine-tuning scripts (e.g. ``acl/acl_train.py``): ``ImageDataGenerator(rescale=1./255,
preprocessing_function=imagenet_utils.preprocess_input)``, i.e. Keras' "caffe" mode on
[0, 255] (RGB -> BGR, minus the ImageNet channel means) and then divided by 255.

torchxrayvision (Cohen et al., MIDL 2022) publishes its DenseNet121 checkpoints (e.g.
``nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt``)
as whole pickled ``torchxrayvision.models.DenseNet`` modules: reading those runs the
package's code, which the restricted reader never does. Saved once as a state dict
(``torch.save(model.state_dict(), ...)``, zip format) it is read without torch and
converted to Keras' DenseNet121 (:func:`xrv_key_map`). Its input is one grey channel
scaled to [-1024, 1024] (scheme ``xrv``); the one-channel stem is spread over RGB.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from imaging_tl.data.cache import default_cache_dir
from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.integrity import verify_sha256

__all__ = ["DOMAIN_WEIGHTS", "DomainWeights", "domain_weights_dir", "domain_weights_file",
           "looks_like_torch", "refuse_foreign_domain_file", "resolve_weights", "xrv_key_map"]

_RADIMAGENET_SOURCE = ("the RadImageNet models folder linked from the README of "
                       "github.com/BMEII-AI/RadImageNet (Google Drive; ask the authors at "
                       "radimagenet.com if the link has moved)")
_XRV_CONVERT = (
    "on a machine with torch and torchxrayvision run: python -c \"import torch, "
    "torchxrayvision as xrv; torch.save(xrv.models.DenseNet(weights='densenet121-res224-"
    "all').state_dict(), 'xrv-densenet121-res224-all.pt')\" (the published .pt file is a "
    "whole pickled model, which is never unpickled here)")


@dataclass(frozen=True)
class DomainWeights:
    """One domain-pretrained weights file and the backbone it belongs to.

    Attributes
    ----------
    backbone : str
        Registry name of the backbone (e.g. ``"radimagenet_resnet50"``).
    architecture : str
        The Keras application it is built as (e.g. ``"resnet50"``).
    filename : str
        The file's published name (looked for in :func:`domain_weights_dir`).
    aliases : tuple of str
        Other names the same file circulates under.
    source : str
        Where to download it, for messages and the README.
    kind : str
        ``"keras_h5"`` or ``"torch_state_dict"``.

    Examples
    --------
    >>> DOMAIN_WEIGHTS["radimagenet_resnet50"].filename
    'RadImageNet-ResNet50_notop.h5'
    """

    backbone: str
    architecture: str
    filename: str
    aliases: tuple[str, ...]
    source: str
    kind: str


def _radimagenet(arch: str, tag: str) -> DomainWeights:
    return DomainWeights(f"radimagenet_{arch}", arch, f"RadImageNet-{tag}_notop.h5",
                         (f"RadImageNet-{tag}-notop.h5",), _RADIMAGENET_SOURCE, "keras_h5")


#: backbone name -> its domain weights file.
DOMAIN_WEIGHTS: dict[str, DomainWeights] = {d.backbone: d for d in (
    _radimagenet("resnet50", "ResNet50"),
    _radimagenet("densenet121", "DenseNet121"),
    _radimagenet("inception_v3", "InceptionV3"),
    _radimagenet("inception_resnet_v2", "IRV2"),
    DomainWeights("xrv_densenet121", "densenet121", "xrv-densenet121-res224-all.pt", (),
                  _XRV_CONVERT, "torch_state_dict"),
)}


def domain_weights_dir() -> Path:
    """Where domain weights files are looked for: ``<cache dir>/weights``.

    Examples
    --------
    >>> domain_weights_dir().name
    'weights'
    """
    return default_cache_dir() / "weights"


def domain_weights_file(backbone: str) -> Path:
    """The domain weights file of ``backbone`` in :func:`domain_weights_dir`.

    Raises
    ------
    WeightsFileError
        The file is not there: the message says what to download, from where, where to
        put it and which config keys to set instead.

    Examples
    --------
    >>> try:
    ...     found = str(domain_weights_file("radimagenet_resnet50"))
    ... except WeightsFileError as e:   # not installed: the message says what to get
    ...     found = str(e)
    >>> "RadImageNet-ResNet50_notop.h5" in found
    True
    """
    entry = DOMAIN_WEIGHTS[backbone]
    folder = domain_weights_dir()
    for name in (entry.filename, *entry.aliases):
        if (folder / name).is_file():
            return folder / name
    raise WeightsFileError(
        entry.filename,
        f"the {backbone} weights are not installed (they cannot be shipped). Get "
        f"{entry.filename} from {entry.source}, then put it at {folder / entry.filename} or "
        f"set model.weights: /path/to/{entry.filename} (and pin it with "
        "model.weights_sha256: <output of sha256sum>)")


def refuse_foreign_domain_file(backbone: str, path: Path) -> None:
    """Refuse a RadImageNet file given to a backbone other than its ``radimagenet_*`` one.

    The weights would load (same architecture) but the model would normalise its input
    the ImageNet way, not RadImageNet's.

    Examples
    --------
    >>> try:
    ...     refuse_foreign_domain_file("resnet50", Path("RadImageNet-ResNet50_notop.h5"))
    ... except WeightsFileError as e:
    ...     print("radimagenet_resnet50" in str(e))
    True
    """
    if backbone in DOMAIN_WEIGHTS:
        return
    for entry in DOMAIN_WEIGHTS.values():
        names = {n.lower() for n in (entry.filename, *entry.aliases)}
        if path.name.lower() in names:
            raise WeightsFileError(
                path, f"this is the {entry.backbone} weights file: set model.backbone: "
                      f"{entry.backbone} (it declares the input normalisation these weights "
                      f"were trained with), not {backbone}")


def xrv_key_map(blocks: tuple[int, ...] = (6, 12, 24, 16)) -> dict[str, tuple[str, str]]:
    """Keras DenseNet121 layer name -> (torchxrayvision parameter prefix, kind).

    Examples
    --------
    >>> m = xrv_key_map()
    >>> m["conv1_conv"], m["conv2_block1_1_conv"], m["pool2_bn"], m["bn"]
    (('features.conv0', 'conv_grey'), ('features.denseblock1.denselayer1.conv1', 'conv'), \
('features.transition1.norm', 'bn'), ('features.norm5', 'bn'))
    """
    m = {"conv1_conv": ("features.conv0", "conv_grey"), "conv1_bn": ("features.norm0", "bn")}
    for b, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            src, dst = f"features.denseblock{b}.denselayer{i}", f"conv{b + 1}_block{i}"
            m[f"{dst}_0_bn"] = (f"{src}.norm1", "bn")
            m[f"{dst}_1_conv"] = (f"{src}.conv1", "conv")
            m[f"{dst}_1_bn"] = (f"{src}.norm2", "bn")
            m[f"{dst}_2_conv"] = (f"{src}.conv2", "conv")
        if b < len(blocks):
            m[f"pool{b + 1}_bn"] = (f"features.transition{b}.norm", "bn")
            m[f"pool{b + 1}_conv"] = (f"features.transition{b}.conv", "conv")
    m["bn"] = ("features.norm5", "bn")
    return m


def looks_like_torch(path: Path) -> bool:
    """True for a zip or legacy torch file (by its first bytes or its suffix).

    Examples
    --------
    >>> looks_like_torch(Path("w.pt"))
    True
    """
    if path.suffix in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"PK\x03\x04" or bool(re.match(rb"\x80[\x02-\x05]", head))


def resolve_weights(backbone: str, weights: str | os.PathLike | None,
                    weights_sha256: str | None = None) -> str | Path | None:
    """What ``build_backbone(backbone, weights, weights_sha256=...)`` loads, checked.

    Returns ``None`` (random init), ``"imagenet"`` (the family's own download or package)
    or the path of an existing weights file, verified against ``weights_sha256`` when
    given. For a domain backbone, ``"imagenet"`` (the config default: "the backbone's
    pretrained weights") means its file in :func:`domain_weights_dir`.

    Raises
    ------
    WeightsFileError
        A missing file (for a domain backbone the message says what to download and where
        to put it), a sha256 mismatch, or a RadImageNet file given to another backbone.
    ValueError
        ``weights_sha256`` without a weights file, or not a full sha256.

    Examples
    --------
    >>> resolve_weights("resnet50", None) is None, resolve_weights("resnet50", "imagenet")
    (True, 'imagenet')
    """
    if weights is None or str(weights) == "none":
        if weights_sha256 is not None:
            raise ValueError("weights_sha256 pins a weights file, but weights is None")
        return None
    if str(weights) == "imagenet":
        if backbone in DOMAIN_WEIGHTS:
            path = domain_weights_file(backbone)
        elif weights_sha256 is not None:
            raise ValueError("weights_sha256 pins a weights file: set model.weights to its "
                             "path (ImageNet weights come with their own checks)")
        else:
            return "imagenet"
    else:
        path = Path(weights).expanduser()
    if not path.is_file():
        if backbone in DOMAIN_WEIGHTS:
            entry = DOMAIN_WEIGHTS[backbone]
            raise WeightsFileError(path, f"weights file for {backbone} not found; get "
                                         f"{entry.filename} from {entry.source}")
        raise WeightsFileError(path, f"weights file for {backbone} not found")
    refuse_foreign_domain_file(backbone, path)
    if weights_sha256 is not None:
        verify_sha256(path, weights_sha256)
    return path
