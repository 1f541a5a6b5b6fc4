"""Subsets of a data set without copies, and stratified, seeded splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np


def split_indices(labels: np.ndarray, test_size: float = 0.2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded, disjoint train and test indices.

    Each class contributes ``round(test_size * count)`` examples to the test part (at least one
    when it has two or more), so class proportions are kept on both sides.

    Args:
        labels: int array ``(N,)``.
        test_size: Fraction in (0, 1) for the test part.
        seed: Seed of the shuffle.

    Returns:
        ``(train_indices, test_indices)``, each sorted.

    Examples:
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> train, test = split_indices(labels, 0.25, seed=0)
        >>> len(train), len(test), labels[test].tolist()
        (6, 2, [0, 1])
    """
    labels = np.asarray(labels)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    test: List[np.ndarray] = []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test = int(round(test_size * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.append(members[:n_test])
    test_idx = np.sort(np.concatenate(test)) if test else np.array([], np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def train_test_split(
    images: np.ndarray, labels: np.ndarray, test_size: float = 0.2, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of arrays, in scikit-learn's order: ``x_train, x_test, y_train, y_test``."""
    train_idx, test_idx = split_indices(labels, test_size, seed)
    return images[train_idx], images[test_idx], labels[train_idx], labels[test_idx]


@dataclass
class Subset:
    """The examples ``indices`` of ``(x, y)``, without copying them: a split of a data set.

    `fit`, `evaluate` and `batches` take it like ``(x, y)``.

    Attributes:
        x: All the inputs: uint8 images ``(N, H, W, C)`` or floats ``(N, ...)``.
        y: All the labels ``(N,)``.
        indices: The examples that belong to this subset.
    """

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @classmethod
    def split(cls, x: np.ndarray, y: np.ndarray, test_size: float, seed: int = 0) -> Tuple[Subset, Subset]:
        """Stratified, seeded ``(train, test)`` subsets of the same arrays (see `split_indices`)."""
        train_idx, test_idx = split_indices(y, test_size, seed)
        return cls(x, y, train_idx), cls(x, y, test_idx)

    def labels(self) -> np.ndarray:
        """The labels of the subset's examples, in order."""
        return self.y[self.indices]
