"""Pictures: learning curves and a grid of predictions (needs ``pip install 'nnlayers[plot]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .callbacks import History
from .util import PathLike


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nnlayers[plot]'") from None
    matplotlib.use("Agg")  # files only, no screen needed
    import matplotlib.pyplot as plt

    return plt


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def plot_history(history: History, path: PathLike) -> Path:
    """Write the learning curves (loss and accuracy; train and validation) as a PNG."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history.epochs
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        if key in history.history:
            ax.plot(epochs, history.history[key], "o-", label="train")
        if f"val_{key}" in history.history:
            ax.plot(epochs, history.history[f"val_{key}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(_integer_locator())
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_predictions(
    images: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    path: PathLike,
    truth: Optional[Sequence[Optional[int]]] = None,
    threshold: float = 0.5,
    columns: int = 6,
) -> Path:
    """Write a grid of photos, each titled with its predicted class and probability.

    Where the true class is known (``truth[i]`` not ``None``) the title is green when right and
    red, with the true class, when wrong.
    """
    plt = _pyplot()
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, image, p) in enumerate(zip(axes.ravel(), images, probabilities)):
        predicted = int(p > threshold)
        confidence = p if predicted else 1 - p
        title = f"{classes[predicted]} {confidence:.0%}"
        colour = "black"
        if truth is not None and truth[i] is not None:
            right = truth[i] == predicted
            colour = "green" if right else "red"
            title += " ✓" if right else f" ✗ ({classes[int(truth[i])]})"  # type: ignore[arg-type]
        ax.imshow(image)
        ax.set_title(title, color=colour, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
