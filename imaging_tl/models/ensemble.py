"""A fold ensemble: one Keras model that averages the probabilities of several members.

The graph is ``image`` -> ``fold_0`` ... ``fold_{K-1}`` (each a whole transfer model, used
as a layer) -> ``ensemble_mean`` (Keras' ``Average``). Members that share one backbone
(the same layer objects: :func:`~imaging_tl.models.transfer.new_head_on`, the folds of a
frozen-backbone cross-validation) keep it once: ``image`` -> the backbone ->
``head_pool`` -> ``fold_0`` ... (each member's head) -> ``ensemble_mean``, so the
ensemble costs one backbone pass, not K. Every layer has an explicit name
and only built-in or registered layers are used, so the file loads with
:func:`~imaging_tl.models.transfer.load_transfer_model` like a single model, runs under
the same contract and converts to ONNX and TFLite unchanged. The members' own outputs
stay reachable (:func:`ensemble_predictions`): their spread
(:func:`imaging_tl.augment.tta_uncertainty`, the same measure as for test-time
augmentation) is the ensemble's uncertainty.

Examples
--------
>>> from imaging_tl.models.transfer import build_transfer_model
>>> ms = [build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
...                            input_size=32, seed=s) for s in (0, 1)]
>>> ens = build_ensemble(ms)
>>> [layer.name for layer in ens.layers]
['image', 'fold_0', 'fold_1', 'ensemble_mean']

Members on one backbone keep it once:

>>> from imaging_tl.models.transfer import new_head_on
>>> one = build_ensemble([ms[0], new_head_on(ms[0])])
>>> [layer.name for layer in one.layers][-4:]
['head_pool', 'fold_0', 'fold_1', 'ensemble_mean']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from imaging_tl.models.contract import ModelContract, attach_contract
from imaging_tl.models.head import head_model

__all__ = ["MEAN_LAYER", "build_ensemble", "ensemble_members", "ensemble_predictions",
           "is_ensemble"]

#: the name of the averaging layer
MEAN_LAYER = "ensemble_mean"
# the attribute holding an ensemble's members-and-mean model (built on first use)
_BOTH = "_imaging_tl_members_model"


def build_ensemble(members: Sequence[keras.Model], name: str = "fold_ensemble",
                   contract: ModelContract | None = None) -> keras.Model:
    """One model whose output is the mean of the members' outputs.

    Parameters
    ----------
    members : sequence of keras.Model
        Transfer models with the same input and output shapes (the folds, in order).
    name : str
        The ensemble's name.
    contract : ModelContract, optional
        Attached as ``imaging_tl_contract``; default the first member's, with
        ``ensemble`` filled in (``members``, ``method: mean``).

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> from imaging_tl.models.transfer import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> build_ensemble([m, m]).imaging_tl_contract.ensemble["members"]
    2
    """
    if len(members) < 2:
        raise ValueError(f"build_ensemble: needs at least 2 members, got {len(members)}")
    shape = tuple(members[0].input_shape[1:])
    outputs = {tuple(m.output_shape[1:]) for m in members}
    if len(outputs) != 1 or any(tuple(m.input_shape[1:]) != shape for m in members):
        raise ValueError("build_ensemble: the members differ in input or output shape")
    pool = _shared_pool(members)
    if pool is not None:  # one backbone: each member's head on its pooled features
        heads = [head_model(m) for m in members]
        outs = [keras.Model(h.input, h.output, name=f"fold_{k}")(pool.output)
                for k, h in enumerate(heads)]
        inp = members[0].input
    else:
        inp = keras.Input(shape=shape, dtype="float32", name="image")
        # each member renamed (a Functional wrapper over the same layers and weights)
        outs = [keras.Model(m.input, m.output, name=f"fold_{k}")(inp)
                for k, m in enumerate(members)]
    model = keras.Model(inp, keras.layers.Average(name=MEAN_LAYER)(outs), name=name)
    if contract is None:
        base = getattr(members[0], "imaging_tl_contract", None)
        if base is not None:
            contract = ModelContract.from_dict({**base.to_dict(), "ensemble": {
                "members": len(members), "method": "mean",
                "member_layers": [f"fold_{k}" for k in range(len(members))]}})
    if contract is not None:
        attach_contract(model, contract)
    return model


def _shared_pool(members: Sequence[keras.Model]) -> Any:
    """The ``head_pool`` layer all members share (one backbone), else None."""
    try:
        pools = [m.get_layer("head_pool") for m in members]
    except ValueError:
        return None
    return pools[0] if all(p is pools[0] for p in pools) else None


def is_ensemble(model: Any) -> bool:
    """Whether ``model`` is a fold ensemble (:func:`build_ensemble`).

    Examples
    --------
    >>> from imaging_tl.models.transfer import build_transfer_model
    >>> is_ensemble(build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                                  input_size=32))
    False
    """
    return any(layer.name == MEAN_LAYER for layer in getattr(model, "layers", []))


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The members of a fold ensemble, in order; ``[model]`` for a single model.

    Examples
    --------
    >>> from imaging_tl.models.transfer import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> [x.name for x in ensemble_members(build_ensemble([m, m]))]
    ['fold_0', 'fold_1']
    """
    if not is_ensemble(model):
        return [model]
    folds = [layer for layer in model.layers if layer.name.startswith("fold_")
             and isinstance(layer, keras.Model)]
    if folds and len(folds[0].input_shape) == 2:  # heads on one backbone's pooled features
        feats = model.get_layer("head_pool").output
        return [keras.Model(model.input, f(feats), name=f.name) for f in folds]
    return folds


def ensemble_predictions(model: keras.Model, x: np.ndarray,
                         batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble's probabilities and each member's, from one pass:
    ``(N, outputs)`` and ``(members, N, outputs)`` (a single model is its own member).

    Examples
    --------
    >>> from imaging_tl.models.transfer import build_transfer_model
    >>> ms = [build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                            input_size=32, seed=s) for s in (0, 1)]
    >>> mean, each = ensemble_predictions(build_ensemble(ms), np.zeros((3, 32, 32, 3), "f4"))
    >>> mean.shape, each.shape, bool(np.allclose(mean, each.mean(axis=0), atol=1e-6))
    ((3, 1), (2, 3, 1), True)
    """
    from imaging_tl.models.predict import fast_predict

    if not is_ensemble(model):
        p = fast_predict(model, x, batch_size)
        return p, p[None]
    both = getattr(model, _BOTH, None)
    if both is None:  # members and mean stacked: (N, members + 1, outputs)
        parts = [*model.get_layer(MEAN_LAYER).input, model.output]
        both = keras.Model(model.input, keras.ops.stack(parts, axis=1),
                           name=f"{model.name}_members")
        object.__setattr__(model, _BOTH, both)  # kept away from Keras' tracking
    out = np.moveaxis(fast_predict(both, x, batch_size), 1, 0)
    return out[-1], out[:-1]
