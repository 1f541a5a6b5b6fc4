"""Classification metrics, as scikit-learn computes them."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..utils.types import Array


def classification_metrics(truth: Array, predicted: Array, classes: int) -> Dict[str, Any]:
    """Accuracy, per-class precision, recall, F1 and support, their macro means, and the confusion matrix.

    The confusion matrix has a row per true class and a column per predicted class, as
    scikit-learn's; a class never predicted (or never present) gets precision (recall) 0.
    """
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(hits / confusion.sum(axis=0))
        recall = np.nan_to_num(hits / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    per_class = [
        {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for p, r, f, s in zip(precision, recall, f1, confusion.sum(axis=1))
    ]
    return {
        "accuracy": float(hits.sum() / max(1, len(truth))),
        "per_class": per_class,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "confusion_matrix": confusion.tolist(),
    }
