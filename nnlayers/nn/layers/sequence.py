"""Between sequences and the layers around them: `SequenceOutput` and `FinalState` keep a part of a
recurrent layer's ``(output, state)``; `TakeStep` and `MeanOverTime` summarise a sequence ``(N, T, F)``;
`ImageToSequence` and `ClassToken` make an image's patches a sequence (the Vision Transformer).

A recurrent layer returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for an LSTM), as PyTorch's do;
these layers pick what the next layer takes, and their backward hands the recurrent layer the
gradient of the part they picked (zeros, or ``None``, for the rest).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_positive_int, is_int
from ...utils.types import Array
from ..checks import check_float_input, check_grad_shape
from ..init import filled
from ..module import Layer, Parameter


def _unpacked(layer: Layer, x: Any) -> Tuple[Array, Any]:
    if not (isinstance(x, tuple) and len(x) == 2):
        raise TypeError(f"{type(layer).__name__} takes a recurrent layer's (output, state), got {type(x).__name__}")
    return x


class SequenceOutput(Layer):
    """Keep the ``output`` of a recurrent layer's ``(output, state)``: every step, ``(N, T, D * H)``.

    Examples:
        >>> from nnlayers import GRU, Sequential
        >>> Sequential([GRU(3, 4, rng=0), SequenceOutput()])(np.zeros((2, 5, 3))).shape
        (2, 5, 4)
    """

    takes_images = None

    def forward(self, x: Any) -> Array:
        output, _ = _unpacked(self, x)
        return output

    def backward(self, grad_y: Array) -> Any:
        return (np.asarray(grad_y), None)  # no gradient for the final state


class FinalState(Layer):
    """Keep the last layer's final hidden state of a recurrent layer's ``(output, state)``: ``(N, D * H)``.

    A sequence's summary for a classifier: with ``bidirectional``, the forward direction's state
    after the last step and the reverse direction's after the first, side by side (Keras'
    ``Bidirectional(LSTM(...))`` without ``return_sequences``). With ``lengths``, each sequence's
    state at its own last step.

    Args:
        bidirectional: The recurrent layer runs both directions (keep both final states).

    Examples:
        >>> from nnlayers import LSTM, Dense, Sequential
        >>> model = Sequential([LSTM(3, 4, num_layers=2, rng=0), FinalState(), Dense(4, 2)])
        >>> model(np.zeros((6, 5, 3))).shape
        (6, 2)
    """

    takes_images = None

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        self.bidirectional = bool(bidirectional)

    def forward(self, x: Any) -> Array:
        _, state = _unpacked(self, x)
        h_n = state[0] if isinstance(state, tuple) else state
        h_n = check_float_input(type(self).__name__, h_n)
        directions = 2 if self.bidirectional else 1
        if h_n.ndim != 3 or h_n.shape[0] < directions:
            raise ValueError(f"{self} expected h_n (layers * {directions}, N, H), got {h_n.shape}")
        self.save_for_backward(shape=h_n.shape, lstm=isinstance(state, tuple), dtype=h_n.dtype)
        last = h_n[-directions:]  # the last layer's directions
        return np.concatenate(list(last), axis=1)

    def backward(self, grad_y: Array) -> Any:
        shape, lstm, dtype = self.saved("shape", "lstm", "dtype")
        directions = 2 if self.bidirectional else 1
        grad = check_grad_shape(self, grad_y, (shape[1], directions * shape[2]))
        d_hn = np.zeros(shape, dtype)
        for d in range(directions):
            d_hn[shape[0] - directions + d] = grad[:, d * shape[2] : (d + 1) * shape[2]]
        return (None, (d_hn, None) if lstm else d_hn)

    def get_config(self) -> Dict[str, Any]:
        return {"bidirectional": self.bidirectional}

    def extra_repr(self) -> str:
        return "bidirectional=True" if self.bidirectional else ""


class TakeStep(Layer):
    """Keep one step of a sequence: ``(N, T, F)`` to ``(N, F)``; the last by default, 0 for a class token.

    (A recurrent layer's summary is `FinalState`, which also knows each sequence's length.)

    Args:
        index: The step to keep; negative counts from the end.

    Examples:
        >>> TakeStep()(np.arange(12.0).reshape(1, 4, 3))
        array([[ 9., 10., 11.]])
        >>> TakeStep(0)(np.arange(12.0).reshape(1, 4, 3))
        array([[0., 1., 2.]])
    """

    takes_images = None

    def __init__(self, index: int = -1) -> None:
        super().__init__()
        if not is_int(index):
            raise TypeError(f"TakeStep index must be an int, got {index!r}")
        self.index = int(index)

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x)
        if x.ndim != 3 or not -x.shape[1] <= self.index < x.shape[1]:
            raise ValueError(f"{self} expected a sequence (N, T, F) with step {self.index}, got {x.shape}")
        self.save_for_backward(shape=x.shape, dtype=x.dtype)
        return x[:, self.index]

    def backward(self, grad_y: Array) -> Array:
        shape, dtype = self.saved("shape", "dtype")
        grad = np.zeros(shape, dtype)
        grad[:, self.index] = check_grad_shape(self, grad_y, (shape[0], shape[2]))
        return grad

    def get_config(self) -> Dict[str, Any]:
        return {"index": self.index}

    def extra_repr(self) -> str:
        return f"index={self.index}"


class ImageToSequence(Layer):
    """An image's positions as a sequence: ``(N, H, W, C)`` to ``(N, H * W, C)``, row by row.

    After a strided `Conv2D` (a patch embedding), each patch becomes a token (the Vision Transformer).

    Examples:
        >>> ImageToSequence()(np.zeros((2, 4, 4, 8))).shape
        (2, 16, 8)
    """

    takes_images = True

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x)
        if x.ndim != 4:
            raise ValueError(f"{self} expected images (N, H, W, C), got {x.shape}")
        self.save_for_backward(shape=x.shape)
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])

    def backward(self, grad_y: Array) -> Array:
        shape = self.saved("shape")
        return check_grad_shape(self, grad_y, (shape[0], shape[1] * shape[2], shape[3])).reshape(shape)


class ClassToken(Layer):
    """Put a learned token before every sequence: ``(N, T, D)`` to ``(N, 1 + T, D)`` (BERT's [CLS], ViT's ``class_token``).

    Attention lets the token gather what the whole sequence holds; a classifier then reads it
    (``TakeStep(0)``).

    Args:
        embed_dim: ``D``.
        dtype: The token's dtype (it starts at zero, as torchvision's).

    Examples:
        >>> ClassToken(4)(np.ones((2, 3, 4), np.float32)).shape
        (2, 4, 4)
    """

    takes_images = None
    no_weight_decay = True  # a learned token or position, not a weight: no_decay_groups leaves it alone

    def __init__(self, embed_dim: int, *, dtype: DTypeLike = np.float32) -> None:
        super().__init__()
        self.embed_dim = check_positive_int("ClassToken embed_dim", embed_dim)
        self.class_token = Parameter(filled((1, 1, self.embed_dim), 0.0, np.dtype(dtype)))

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x, self.class_token.dtype)
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"{self} expected a sequence (N, T, {self.embed_dim}), got {x.shape}")
        self.save_for_backward(shape=x.shape)
        token = np.broadcast_to(self.class_token.data, (x.shape[0], 1, self.embed_dim))
        return np.concatenate([token, x], axis=1)

    def backward(self, grad_y: Array) -> Array:
        shape = self.saved("shape")
        grad = check_grad_shape(self, grad_y, (shape[0], shape[1] + 1, shape[2]))
        self.class_token.accumulate(grad[:, :1].sum(axis=0, keepdims=True))
        return grad[:, 1:]

    def get_config(self) -> Dict[str, Any]:
        return {"embed_dim": self.embed_dim, "dtype": self.class_token.dtype.name}

    def extra_repr(self) -> str:
        return str(self.embed_dim)


class MeanOverTime(Layer):
    """Average a sequence over its steps: ``(N, T, F)`` to ``(N, F)`` (a Transformer's pooled features).

    Examples:
        >>> MeanOverTime()(np.arange(6.0).reshape(1, 3, 2))
        array([[2., 3.]])
    """

    takes_images = None

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x)
        if x.ndim != 3:
            raise ValueError(f"{self} expected a sequence (N, T, F), got {x.shape}")
        self.save_for_backward(shape=x.shape)
        return x.mean(axis=1)

    def backward(self, grad_y: Array) -> Array:
        shape = self.saved("shape")
        grad = check_grad_shape(self, grad_y, (shape[0], shape[2]))
        return np.broadcast_to(grad[:, None, :] / shape[1], shape).copy()
