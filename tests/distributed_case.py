"""Training runs shared by the distributed tests: the same run with and without MPI."""

import numpy as np

from nnlayers import (
    SGD,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2D,
    CrossEntropyLoss,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    fit,
)


def run(case: str, distributed: bool):
    """20 steps of one epoch (320 examples, global batch 16) plus a validation; the weights and history."""
    dtype = np.float64 if "64" in case else np.float32
    rng = np.random.default_rng(0)
    if case.startswith("cnn"):
        x = rng.integers(0, 256, (400, 8, 8, 3)).astype(np.uint8)
        y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(int)
        model = Sequential(
            [
                Conv2D(3, 4, 3, padding=1, rng=0, dtype=dtype),
                ReLU(),
                MaxPool2D(2),
                Flatten(),
                Dense(64, 1, rng=1, dtype=dtype),
            ]
        )
        loss = BCEWithLogitsLoss()
    elif case.startswith("weighted"):  # three unbalanced classes, class weights: shards weigh unequally
        x = rng.normal(size=(400, 12)).astype(dtype)
        y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [0.3, 1.2])
        model = Sequential([Dense(12, 6, rng=0, dtype=dtype), Tanh(), Dense(6, 3, rng=1, dtype=dtype)])
        loss = CrossEntropyLoss(weight=np.array([1.0, 3.0, 7.0]))
    else:
        x = rng.normal(size=(400, 12)).astype(dtype)
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        model = Sequential([Dense(12, 6, rng=0, dtype=dtype), Tanh(), Dense(6, 1, rng=1, dtype=dtype), Sigmoid()])
        loss = BCELoss()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, loss, opt, (x, y), epochs=1, batch_size=16, validation=0.2, verbose=0, distributed=distributed)
    return model.state_dict(), history.history
