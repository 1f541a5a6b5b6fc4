"""Every layer, one family a module: linear, activation, smooth (activations), conv, pooling, resampling, reshape,
normalization, dropout."""

from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv1D, Conv2D, ConvTranspose2D
from .dropout import Dropout
from .linear import Dense
from .normalization import BatchNorm1D, BatchNorm2D, GroupNorm, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .resampling import AdaptiveAvgPool2D, Upsample2D
from .reshape import Flatten
from .smooth import ELU, GELU, Hardswish, SiLU, Softplus

__all__ = [
    "AdaptiveAvgPool2D",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "GELU",
    "GlobalAvgPool2D",
    "GroupNorm",
    "Hardswish",
    "LayerNorm",
    "LeakyReLU",
    "LogSoftmax",
    "MaxPool2D",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "Upsample2D",
]
