"""Training and using a model: `fit` and its `Trainer`, callbacks, checkpoints, data-parallel
training over MPI, evaluation and metrics."""

from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, MonitorCallback, RestoreBest, TrainingStopped
from .evaluation import evaluate, predict, predict_proba, predict_values
from .fit import Trainer, fit

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "MonitorCallback",
    "RestoreBest",
    "Trainer",
    "TrainingStopped",
    "evaluate",
    "fit",
    "predict",
    "predict_proba",
    "predict_values",
]
