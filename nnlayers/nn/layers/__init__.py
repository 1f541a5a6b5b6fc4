"""Every layer, one family a module: linear, activation, smooth (activations), conv, pooling, resampling, reshape,
normalization, dropout, embedding, recurrent (its cells' equations in cells), attention, transformer, sequence."""

from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention
from .conv import Conv1D, Conv2D, ConvTranspose2D
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .linear import Dense
from .normalization import BatchNorm1D, BatchNorm2D, GroupNorm, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .recurrent import GRU, LSTM, RNN
from .resampling import AdaptiveAvgPool2D, Upsample2D
from .reshape import Flatten
from .sequence import ClassToken, FinalState, ImageToSequence, MeanOverTime, SequenceOutput, TakeStep
from .smooth import ELU, GELU, Hardswish, SiLU, Softplus
from .transformer import TransformerEncoder, TransformerEncoderLayer

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
    "Embedding",
    "FinalState",
    "Flatten",
    "GELU",
    "GlobalAvgPool2D",
    "GroupNorm",
    "GRU",
    "Hardswish",
    "ClassToken",
    "ImageToSequence",
    "TakeStep",
    "LayerNorm",
    "LeakyReLU",
    "LogSoftmax",
    "LSTM",
    "MaxPool2D",
    "MeanOverTime",
    "MultiheadAttention",
    "PositionalEmbedding",
    "ReLU",
    "RNN",
    "SequenceOutput",
    "Sigmoid",
    "SiLU",
    "Softmax",
    "Softplus",
    "Tanh",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "Upsample2D",
]
