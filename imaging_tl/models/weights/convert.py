"""PyTorch layer weights -> Keras layer weights, by a map of layer names.

One conversion for every torch source (EfficientNet-Lite, torchxrayvision's DenseNet):
convolutions OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), dense transposed,
BatchNorm (weight, bias, running_mean, running_var) -> (gamma, beta, moving mean, moving
variance); ``num_batches_tracked`` is dropped. ``conv_grey`` is a convolution trained on
one grey channel, spread over RGB: the kernel divided by 3 on each of the three channels
gives the same output for a grey image replicated to RGB (which is what the pipeline's
``to_rgb`` stage feeds the model).
"""

from __future__ import annotations

import numpy as np

from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["KINDS", "torch_layers_to_keras"]

#: Layer kinds :func:`torch_layers_to_keras` converts, with the tensor rank of ``weight``.
KINDS = {"conv": 4, "conv_grey": 4, "dwconv": 4, "bn": 1, "dense": 2}


def _convert(state: dict[str, np.ndarray], prefix: str, kind: str) -> list[np.ndarray]:
    if kind == "bn":
        return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    w = state[f"{prefix}.weight"]
    if w.ndim != KINDS[kind]:
        raise ValueError(f"{prefix}.weight has shape {w.shape}, expected {KINDS[kind]} axes")
    if kind == "conv":
        return [w.transpose(2, 3, 1, 0)]
    if kind == "conv_grey":
        if w.shape[1] != 1:
            raise ValueError(f"{prefix}.weight has {w.shape[1]} input channels, expected 1")
        return [np.repeat(w.transpose(2, 3, 1, 0) / np.float32(3), 3, axis=2)]
    if kind == "dwconv":
        return [w.transpose(2, 3, 0, 1)]
    return [w.T, state[f"{prefix}.bias"]]  # dense


def torch_layers_to_keras(state: dict[str, np.ndarray], key_map: dict[str, tuple[str, str]],
                          source: str) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> float32 weight arrays, from a torch state dict.

    Parameters
    ----------
    state : dict
        Torch parameter name -> array (from the restricted readers).
    key_map : dict
        Keras layer name -> (torch module prefix, kind), kind one of :data:`KINDS`.
    source : str
        The file or model name, for messages.

    Raises
    ------
    WeightsFileError
        A parameter the map needs is missing or has the wrong rank (names the parameter).

    Examples
    --------
    >>> sd = {"c.weight": np.ones((8, 1, 3, 3), np.float32)}
    >>> out = torch_layers_to_keras(sd, {"stem": ("c", "conv_grey")}, "w.pt")
    >>> out["stem"][0].shape, float(out["stem"][0].sum())
    ((3, 3, 3, 8), 72.0)
    """
    out: dict[str, list[np.ndarray]] = {}
    for layer, (prefix, kind) in key_map.items():
        try:
            out[layer] = _convert(state, prefix, kind)
        except KeyError as exc:
            raise WeightsFileError(source, f"state dict lacks {exc.args[0]}") from exc
        except ValueError as exc:
            raise WeightsFileError(source, str(exc)) from exc
    return {k: [np.ascontiguousarray(w, dtype=np.float32) for w in v] for k, v in out.items()}
