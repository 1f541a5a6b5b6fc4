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
from .data import ImageDataset, load_image_folder
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .images import ImageLoadError, load_image
from .layers import Dense, ReLU, Sigmoid, Tanh
from .losses import BCELoss, BCEWithLogitsLoss, Loss
from .module import Layer, Parameter
from .optim import SGD
from .serialize import ModelFileError, load, read_header, register_layer, save
from .train import evaluate, fit, predict, predict_proba

__version__ = "0.1.0"

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "Callback",
    "Dense",
    "EarlyStopping",
    "GradcheckError",
    "GradcheckResult",
    "History",
    "ImageDataset",
    "ImageLoadError",
    "Layer",
    "Loss",
    "ModelCheckpoint",
    "ModelFileError",
    "MonitorCallback",
    "Parameter",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Subset",
    "Tanh",
    "__version__",
    "batches",
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
