"""From the tutorial's network to the CNN, one change at a time: test accuracy after each.

Trains on the 6,002 photos of ``dogs-vs-cats/train`` and measures on the 1,000 of
``dogs-vs-cats/test`` (watched, never used to choose weights: the last epoch is kept), one seed;
the range over the last three epochs shows how much the accuracy still swings at the end:

1. the tutorial's network (``nnlayers train`` defaults: Dense 12288-64-1, tanh, SGD);
2. a CNN (``small_cnn`` without BatchNorm), Adam at a constant rate, no augmentation;
3. + BatchNorm after every convolution;
4. + random flips and crops;
5. + a cosine learning-rate schedule: ``nnlayers train --arch cnn``.

    python benchmarks/bench_ablation.py [--data ../shared/data] [--epochs 12] [--grid docs/_static/cnn-mistakes.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import add_data_argument

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers import (  # noqa: E402
    SGD,
    Adam,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2D,
    CosineAnnealingLR,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
    evaluate,
    fit,
    load_image_folder,
    plot_predictions,
    predict_proba,
)
from nnlayers.models import mlp, small_cnn  # noqa: E402


def cnn_without_batchnorm(seed: int) -> Sequential:
    layers: list = []
    previous = 3
    for i, width in enumerate((32, 64, 128, 128)):
        layers += [Conv2D(previous, width, 3, padding="same", rng=seed + i), ReLU(), MaxPool2D(2)]
        previous = width
    return Sequential([*layers, GlobalAvgPool2D(), Dropout(0.3, rng=seed + 100), Dense(previous, 1, rng=seed + 101)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--grid", type=Path, help="draw 24 of the final model's mistakes (spread over both classes) here"
    )
    args = parser.parse_args()
    train = load_image_folder(args.data / "dogs-vs-cats" / "train")
    test = load_image_folder(args.data / "dogs-vs-cats" / "test", classes=train.classes)
    seed, epochs = args.seed, args.epochs

    def run(
        label: str, model: Any, loss: Any, opt: Any, run_epochs: int, schedule: Any = None, augment: Any = None
    ) -> Any:
        start = time.perf_counter()
        history = fit(model, loss, opt, train, epochs=run_epochs, batch_size=64, validation=test, seed=seed,
                      scheduler=schedule, augment=augment, verbose=0)  # fmt: skip
        accuracy = evaluate(model, test)["accuracy"]
        last = history.history["val_accuracy"][-3:]
        minutes = (time.perf_counter() - start) / 60
        print(f"| {label} | {accuracy:.3f} | {min(last):.3f} to {max(last):.3f} | {minutes:.1f} min |", flush=True)
        return model

    print("| change | test accuracy, last epoch | over the last 3 epochs | training time |")
    print("|---|---|---|---|")
    model = mlp(12288, 64, rng=seed)
    run("the tutorial's network (Dense 12288-64-1, tanh, SGD 0.0005 + momentum, 20 epochs)", model, BCELoss(),
        SGD(model.parameters(), lr=0.0005, momentum=0.9), 20)  # fmt: skip
    model = cnn_without_batchnorm(seed)
    run(
        f"a CNN (4 conv blocks 32-64-128-128, Adam 0.001, {epochs} epochs)",
        model,
        BCEWithLogitsLoss(),
        Adam(model.parameters(), lr=0.001),
        epochs,
    )
    steps = [  # each adds one change to the row above; the last is what `nnlayers train --arch cnn` does
        ("+ BatchNorm after each convolution (Adam 0.002)", None, False),
        ("+ random flips and crops", "flip,crop", False),
        ("+ a cosine schedule (= nnlayers train --arch cnn)", "flip,crop", True),
    ]
    for label, augment, cosine in steps:
        model = small_cnn(2, rng=seed)
        opt = Adam(model.parameters(), lr=0.002)
        schedule = CosineAnnealingLR(opt, epochs) if cosine else None
        final = run(label, model, BCEWithLogitsLoss(), opt, epochs, schedule, augment)
    if args.grid:
        proba = predict_proba(final, test.images)
        wrong = np.flatnonzero((proba > 0.5).astype(int) != test.labels)
        wrong = wrong[np.unique(np.linspace(0, len(wrong) - 1, 24).round().astype(int))]  # both classes
        plot_predictions(
            test.images[wrong], proba[wrong], test.classes, truth=test.labels[wrong].tolist(), path=args.grid
        )


if __name__ == "__main__":
    main()
