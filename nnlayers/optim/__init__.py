"""Optimizers (one `Optimizer` base owning parameter groups and state, each optimizer only its
update rule), learning-rate schedules and gradient clipping, as ``torch.optim`` defines them."""

from .adam import Adam, AdamW
from .clipping import clip_grad_norm
from .cycles import CosineAnnealingWarmRestarts, LambdaLR, OneCycleLR, SequentialLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
    schedule_values,
)
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LambdaLR",
    "OneCycleLR",
    "SequentialLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "clip_grad_norm",
    "schedule_values",
]
