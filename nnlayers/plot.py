"""Pictures: learning curves, predictions, learning-rate schedules, augmented photos.

Each function draws into the matplotlib ``Axes`` you give (or a new figure), returns the
``Figure`` (a notebook shows it inline) and, with ``path=``, also saves it. None of them changes
matplotlib's backend or opens a window. Needs ``pip install 'nnlayers[plot]'``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .training.callbacks import History
from .utils.types import PathLike


def _figure(axes: Any, count: int, size: tuple) -> tuple:
    """``(figure, [axes])``: the given axes and their figure, or a new figure (no pyplot, no backend)."""
    if axes is not None:
        axes = list(np.atleast_1d(axes))
        if len(axes) != count:
            raise ValueError(f"expected {count} Axes, got {len(axes)}")
        return axes[0].figure, axes
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nnlayers[plot]'") from None
    figure = Figure(figsize=size)
    return figure, [figure.add_subplot(1, count, i + 1) for i in range(count)]


def _finish(figure: Any, path: Optional[PathLike]) -> Any:
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure


def plot_history(history: History, axes: Any = None, *, path: Optional[PathLike] = None) -> Any:
    """Loss and accuracy per epoch, training and validation, side by side.

    Args:
        history: What `fit` returned.
        axes: Two matplotlib ``Axes`` to draw into (loss, accuracy), or ``None`` for a new figure.
        path: Also save the figure there (PNG, SVG, PDF: by the file's suffix).

    Returns:
        The matplotlib ``Figure``.
    """
    figure, (ax_loss, ax_acc) = _figure(axes, 2, (10, 4))
    from matplotlib.ticker import MaxNLocator

    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        if key in history.history:
            ax.plot(history.epochs, history.history[key], "o-", label="train")
        if f"val_{key}" in history.history:
            ax.plot(history.epochs, history.history[f"val_{key}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(figure, path)


def plot_predictions(
    images: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    truth: Optional[Sequence[Optional[int]]] = None,
    threshold: float = 0.5,
    columns: int = 6,
    path: Optional[PathLike] = None,
) -> Any:
    """A grid of photos, each titled with its predicted class and probability.

    Args:
        images: uint8 ``(N, H, W, 3)``.
        probabilities: ``(N,)`` of class 1 (binary) or ``(N, K)``, as `nnlayers.predict_proba` gives.
        classes: The class names.
        truth: The true class of each photo where known (else ``None``): the title is then green
            when right and red, with the true class, when wrong.
        threshold: For binary probabilities, above which class 1 is predicted.
        columns: Photos per row.
        path: Also save the figure there.

    Returns:
        The matplotlib ``Figure``.
    """
    from .training.evaluation import class_table

    proba = np.asarray(probabilities, dtype=np.float64)
    table = class_table(proba)
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    figure, axes = _figure(None, 1, (2.2 * columns, 2.4 * rows))
    figure.delaxes(axes[0])
    for i, (image, row) in enumerate(zip(images, table)):
        ax = figure.add_subplot(rows, columns, i + 1)
        ax.axis("off")
        predicted = int(row[1] > threshold) if proba.ndim == 1 else int(row.argmax())
        title, colour = f"{classes[predicted]} {row[predicted]:.0%}", "black"
        if truth is not None and truth[i] is not None:
            right = truth[i] == predicted
            colour = "green" if right else "red"
            title += " ✓" if right else f" ✗ ({classes[int(truth[i])]})"  # type: ignore[arg-type]
        ax.imshow(image)
        ax.set_title(title, color=colour, fontsize=9)
    return _finish(figure, path)


def plot_schedule(
    scheduler: Any,
    epochs: int,
    ax: Any = None,
    *,
    path: Optional[PathLike] = None,
    metrics: Optional[Sequence[float]] = None,
) -> Any:
    """The learning rate a schedule sets, epoch by epoch from its start (the schedule itself is not advanced).

    One line per parameter group; ``metrics`` (one value per epoch) for `ReduceLROnPlateau`, whose
    rates follow them.
    """
    from .optim.schedules import schedule_values

    figure, (axis,) = _figure(ax, 1, (6, 3.5))
    axis.plot(range(epochs), schedule_values(scheduler, epochs, metrics), "o-", markersize=3)
    axis.set_xlabel("epoch")
    axis.set_ylabel("learning rate")
    axis.set_title(type(scheduler).__name__)
    axis.grid(alpha=0.3)
    return _finish(figure, path)


def plot_augmentations(
    image: np.ndarray, augment: Any, *, samples: int = 8, seed: int = 0, path: Optional[PathLike] = None
) -> Any:
    """One photo and ``samples`` random versions of it, as training sees them."""
    batch = np.repeat(image[None].astype(np.float32) / 255, samples, axis=0)
    changed = augment(batch, np.random.default_rng(seed))
    figure, axes = _figure(None, samples + 1, (1.6 * (samples + 1), 2))
    for ax, picture, title in zip(axes, [image / 255, *changed], ["original", *[""] * samples]):
        ax.imshow(np.clip(picture, 0, 1))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return _finish(figure, path)
