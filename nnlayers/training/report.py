"""What training says: the line of each epoch, and why a diverged run stopped."""

from __future__ import annotations

import math
import sys
from typing import Mapping


def say(message: str, verbose: int) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, float]) -> str:
    metric = "accuracy" if "accuracy" in logs else "mae"
    parts = [f"epoch {epoch}/{epochs}", f"loss {logs['loss']:.4f}", f"{metric} {logs[metric]:.3f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_{metric} {logs['val_' + metric]:.3f}"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.1f}s"]
    return "  ".join(parts)


def diverged_message(epoch: int, loss: float, lr: float, best_epoch: int, factor: float) -> str:
    """Why a diverged run stopped, what the model holds now, and what to try."""
    what = (
        "became NaN or infinite"
        if not math.isfinite(loss)
        else f"rose to {loss:.3g}, over {factor:g}x that of guessing"
    )
    kept = (
        f"the model holds the weights of epoch {best_epoch} again (its lowest training loss)"
        if best_epoch
        else "the model holds its initial weights again"
    )
    return (
        f"stopped: training diverged in epoch {epoch}: the loss {what} (learning rate {lr:g}); {kept}. "
        f"Try a smaller learning rate (e.g. {lr / 10:g}), less momentum, or check the inputs for NaN and that "
        f"images are scaled to [0, 1]."
    )
