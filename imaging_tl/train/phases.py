"""Training phases: what is frozen, for how long, at which learning rate.

No TensorFlow here: the configuration layer resolves its default phases with
:func:`default_phases`, and the training loop (:mod:`imaging_tl.train.loop`) runs them.

Examples
--------
>>> [(p.name, p.epochs, p.patience) for p in default_phases("efficientnet_lite0")]
[('head', 10, 3), ('finetune', 5, 3)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imaging_tl.models.registry import get_spec

__all__ = ["DEFAULT_PATIENCE", "OPTIMIZERS", "SCHEDULES", "Phase", "default_phases"]

SCHEDULES = ("constant", "cosine", "step", "exponential")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
# early stopping of the default phases: epochs without improvement of the monitored metric
DEFAULT_PATIENCE = 3


@dataclass
class Phase:
    """One training phase.

    Attributes
    ----------
    name : str
        Shown in the history (``"head"``, ``"finetune"``).
    epochs : int
    learning_rate : float
        Peak learning rate of the phase.
    freeze : "all", "none", layer name or fraction
        What stays frozen (see :func:`imaging_tl.models.transfer.set_freeze`).
    schedule : {"constant", "cosine", "step", "exponential"}
        Per-epoch schedule within the phase (cosine to 0, step halves every
        ``step_epochs``, exponential multiplies by ``decay`` each epoch).
    warmup_epochs : int
        Linear warm-up from ``learning_rate / 10``.
    patience : int or None
        Early stopping on the monitored validation metric; the best epoch's weights are
        restored at the end of the phase either way (when there is validation data).
    optimizer : {"adam", "sgd", "rmsprop"}
    weight_decay : float
    train_batchnorm : bool
        Let BatchNorm of the unfrozen part train (default: all stay in inference mode).

    Examples
    --------
    >>> Phase("finetune", epochs=5, learning_rate=1e-5, freeze="block5c_add").schedule
    'constant'
    """

    name: str = "head"
    epochs: int = 10
    learning_rate: float = 1e-3
    freeze: str | float = "all"
    schedule: str = "constant"
    warmup_epochs: int = 0
    patience: int | None = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    train_batchnorm: bool = False
    step_epochs: int = 5
    decay: float = 0.9

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"phase {self.name!r}: schedule={self.schedule!r}, "
                             f"expected one of {SCHEDULES}")
        if int(self.epochs) < 0:
            raise ValueError(f"phase {self.name!r}: epochs must be >= 0")
        if not self.learning_rate > 0:
            raise ValueError(f"phase {self.name!r}: learning_rate must be > 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"phase {self.name!r}: optimizer={self.optimizer!r}, "
                             "expected 'adam', 'sgd' or 'rmsprop'")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` within the phase.

        Examples
        --------
        >>> Phase(epochs=4, learning_rate=1.0, schedule="cosine").lr_at(2)
        0.5
        """
        if epoch < self.warmup_epochs:
            lo = self.learning_rate / 10
            return lo + (self.learning_rate - lo) * epoch / max(self.warmup_epochs, 1)
        e = epoch - self.warmup_epochs
        n = max(int(self.epochs) - self.warmup_epochs, 1)
        if self.schedule == "cosine":
            return float(self.learning_rate * 0.5 * (1 + math.cos(math.pi * e / n)))
        if self.schedule == "step":
            return float(self.learning_rate * 0.5 ** (e // max(self.step_epochs, 1)))
        if self.schedule == "exponential":
            return float(self.learning_rate * self.decay ** e)
        return float(self.learning_rate)


def default_phases(backbone: str = "efficientnet_lite0", head_epochs: int = 10,
                   finetune_epochs: int = 5, learning_rate: float = 1e-3,
                   finetune_learning_rate: float = 1e-4, unfreeze_stages: int = 2,
                   patience: int | None = DEFAULT_PATIENCE) -> list[Phase]:
    """Head-only phase, then the top ``unfreeze_stages`` stages at a lower rate.

    The one definition of the default schedule: a configuration without ``train.phases``
    is resolved to these phases too (:mod:`imaging_tl.config`).

    Examples
    --------
    >>> [p.freeze for p in default_phases("efficientnet_lite0")]
    ['all', 'block5c_add']
    """
    points = get_spec(backbone).freeze_points
    # points[-1] is the end of the backbone; unfreezing N stages freezes up to points[-1-N]
    freeze_at = points[max(len(points) - 1 - unfreeze_stages - 1, 0)]
    phases = [Phase("head", head_epochs, learning_rate, "all", patience=patience)]
    if finetune_epochs:
        phases.append(Phase("finetune", finetune_epochs, finetune_learning_rate, freeze_at,
                            schedule="cosine", patience=patience))
    return phases


