"""Every layer, one family a module: linear, activation, conv, pooling, reshape, normalization, dropout."""

from .activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2D
from .dropout import Dropout
from .linear import Dense
from .normalization import BatchNorm1D, BatchNorm2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
