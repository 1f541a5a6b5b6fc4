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

from .batching import Subset, batches, split_indices, train_test_split
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, MonitorCallback
from .container import Sequential
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D
from .data import ImageDataset, load_image_folder
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .images import ImageLoadError, load_image
from .layers import Dense, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import BCELoss, BCEWithLogitsLoss, Loss
from .module import Layer, Parameter
from .norm import BatchNorm1D, BatchNorm2D, Dropout
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm
from .serialize import ModelFileError, load, read_header, register_layer, save
from .train import evaluate, fit, predict, predict_proba

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
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "GlobalAvgPool2D",
    "GradcheckError",
    "GradcheckResult",
    "History",
    "ImageDataset",
    "ImageLoadError",
    "Layer",
    "LeakyReLU",
    "Loss",
    "MaxPool2D",
    "ModelCheckpoint",
    "ModelFileError",
    "MonitorCallback",
    "Optimizer",
    "Parameter",
    "RMSprop",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
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
    "predict",
    "predict_proba",
    "read_header",
    "register_layer",
    "save",
    "split_indices",
    "train_test_split",
]
