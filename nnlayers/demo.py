"""A two-class toy problem made of numbers the package generates itself, for a first run."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .container import Sequential
from .layers import Dense, Sigmoid, Tanh
from .losses import BCELoss
from .optim import SGD


def make_blobs(n: int = 512, features: int = 12288, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Two noisy classes in ``features`` dimensions: ``x`` float32 ``(n, features)``, ``y`` ``(n, 1)``."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.float32).reshape(n, 1)
    direction = rng.standard_normal(features).astype(np.float32)
    x = rng.random((n, features), dtype=np.float32) + 0.05 * (2 * y - 1) * np.sign(direction)
    return x, y


def run_demo(hidden: int = 16, iterations: int = 50, lr: float = 0.002, seed: int = 0) -> float:
    """Train the seed's model on `make_blobs` full-batch, print the cost, return the accuracy."""
    x, y = make_blobs(seed=seed)
    model = Sequential([Dense(x.shape[1], hidden, rng=seed), Tanh(), Dense(hidden, 1, rng=seed + 1), Sigmoid()])
    loss_fn = BCELoss()
    optimizer = SGD(model.parameters(), lr=lr)
    print(model)
    for i in range(iterations + 1):
        cost = loss_fn(model(x), y)
        if i % 10 == 0:
            print(f"iteration {i:4d}  cost {cost:.6f}")
        model.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()
        optimizer.zero_grad()
    accuracy = float(np.mean((model(x) > 0.5) == y))
    print(f"train accuracy {accuracy:.3f}")
    return accuracy
