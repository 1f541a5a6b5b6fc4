"""Plots draw into given Axes or a new figure, return it, and leave matplotlib's backend alone."""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    Compose,
    CosineAnnealingLR,
    History,
    Parameter,
    RandomCrop,
    RandomFlip,
    plot_augmentations,
    plot_history,
    plot_predictions,
    plot_schedule,
)

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install 'nnlayers[plot]')")


def history():
    h = History()
    for epoch, (loss, acc) in enumerate([(0.7, 0.5), (0.5, 0.7), (0.4, 0.8)], 1):
        h.append(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.1, "val_accuracy": acc - 0.1})
    return h


def test_plots_return_figures_and_keep_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    figure = plot_history(history(), path=tmp_path / "curves.png")
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) == 2
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert [line.get_label() for line in figure.axes[0].lines] == ["train", "validation"]
    opt = SGD([Parameter(np.zeros(1))], lr=0.1)
    assert plot_schedule(CosineAnnealingLR(opt, 10), 20).axes[0].lines[0].get_ydata()[10] == pytest.approx(0.0)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    grid = plot_predictions(
        images, np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9]]), ["a", "b"], truth=[1, 1, None, 0]
    )
    titles = [ax.get_title() for ax in grid.axes]
    assert titles[0].startswith("b 80%") and "✓" in titles[0] and "✗ (b)" in titles[1] and "✗ (a)" in titles[3]
    assert len(plot_augmentations(images[0], Compose([RandomFlip(), RandomCrop(2)]), samples=3).axes) == 4
    assert matplotlib.get_backend() == backend  # never switched (inline plots in a notebook keep working)


def test_plots_draw_into_given_axes():
    from matplotlib.figure import Figure

    figure = Figure()
    ax_loss, ax_acc = figure.subplots(1, 2)
    assert plot_history(history(), axes=(ax_loss, ax_acc)) is figure
    assert len(ax_acc.lines) == 2
    with pytest.raises(ValueError, match="expected 2 Axes, got 1"):
        plot_history(history(), axes=[ax_loss])
