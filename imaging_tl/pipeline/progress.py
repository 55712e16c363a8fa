"""Progress of a run: tqdm bars on a terminal, plain timestamped lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["ProgressLog", "epoch_callback"]


class ProgressLog:
    """Log lines to stderr with the seconds since the run started.

    Examples
    --------
    >>> log = ProgressLog(verbose=False)
    >>> log("nothing is printed"), log.tty
    (None, False)
    """

    def __init__(self, verbose: bool = True, progress: bool | None = None) -> None:
        self.verbose = verbose
        self.tty = sys.stderr.isatty() if progress is None else bool(progress)
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.verbose:
            stamp = f"[{time.perf_counter() - self.t0:7.1f}s]"
            print(f"{stamp} {msg}", file=sys.stderr, flush=True)


_SHOWN = ("loss", "val_loss", "val_auc", "val_accuracy", "auc", "accuracy")


def epoch_callback(log: ProgressLog, phase_index: int, n_phases: int, name: str,
                   epochs: int) -> Any:
    """A Keras callback showing the epochs of one phase (a bar, or a line per epoch)."""
    import keras

    class _Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = None

        def on_train_begin(self, logs=None):
            if log.tty and log.verbose:
                from tqdm import tqdm

                self.bar = tqdm(total=epochs, desc=f"phase {phase_index + 1}/{n_phases} {name}",
                                unit="epoch", file=sys.stderr, leave=True)

        def on_epoch_end(self, epoch, logs=None):
            shown = {k: v for k, v in (logs or {}).items() if k in _SHOWN}
            text = " ".join(f"{k} {float(v):.4f}" for k, v in shown.items())
            if self.bar is not None:
                self.bar.n = epoch + 1
                self.bar.set_postfix_str(text)
                self.bar.refresh()
            else:
                log(f"phase {phase_index + 1}/{n_phases} {name}: epoch {epoch + 1}/{epochs} "
                    f"{text}")

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return _Progress()
