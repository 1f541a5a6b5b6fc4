"""nnlayers: a neural-network layer framework on numpy.

The seed tutorial's free functions (forward, cost, backward, update) as objects you compose and
subclass::

    model = Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])
    loss_fn = BCELoss()
    opt = SGD(model.parameters(), lr=0.1)
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step()
    opt.zero_grad()
"""

from .augment import ColorJitter, Compose, RandomCrop, RandomFlip
from .batching import Subset, batches, split_indices, train_test_split
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, MonitorCallback, RestoreBest
from .container import Sequential
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D
from .data import ImageDataset, load_image_folder
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .images import ImageLoadError, load_image
from .inference import evaluate, predict, predict_proba
from .layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Loss
from .module import Layer, Parameter
from .norm import BatchNorm1D, BatchNorm2D, Dropout
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm
from .plot import plot_augmentations, plot_history, plot_predictions, plot_schedule
from .schedules import CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, ReduceLROnPlateau, StepLR
from .serialize import ModelFileError, load, read_header, register_layer, save
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1D",
    "BatchNorm2D",
    "Callback",
    "ColorJitter",
    "Compose",
    "Conv2D",
    "CosineAnnealingLR",
    "CrossEntropyLoss",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "ExponentialLR",
    "Flatten",
    "GlobalAvgPool2D",
    "GradcheckError",
    "GradcheckResult",
    "History",
    "ImageDataset",
    "ImageLoadError",
    "Layer",
    "LeakyReLU",
    "LinearLR",
    "Loss",
    "MaxPool2D",
    "ModelCheckpoint",
    "ModelFileError",
    "MonitorCallback",
    "MultiStepLR",
    "Optimizer",
    "Parameter",
    "RMSprop",
    "RandomCrop",
    "RandomFlip",
    "ReLU",
    "ReduceLROnPlateau",
    "RestoreBest",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StepLR",
    "Subset",
    "Tanh",
    "__version__",
    "batches",
    "clip_grad_norm",
    "evaluate",
    "fit",
    "gradcheck",
    "load",
    "load_image",
    "load_image_folder",
    "plot_augmentations",
    "plot_history",
    "plot_predictions",
    "plot_schedule",
    "predict",
    "predict_proba",
    "read_header",
    "register_layer",
    "save",
    "split_indices",
    "train_test_split",
]
