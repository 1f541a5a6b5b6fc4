"""One step of each recurrent cell, forward and backward: the equations of `RNN`, `LSTM` and `GRU`.

Each cell gets ``xp``, the input's share of the gate pre-activations (``x_t @ W_ih.T + b_ih``,
computed for every step at once by the layer), and the previous state. ``step`` returns the new
state and what ``step_backward`` needs; ``step_backward`` takes the gradients of the new state and
returns those of the pre-activations and of the previous state. The rows of ``W_ih`` and ``W_hh``
hold the gates in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ...utils.types import Array
from ..functional import sigmoid

#: What a step keeps for its backward.
Kept = Tuple[Any, ...]


class ElmanCell:
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU): `RNN`'s cell."""

    gates = 1
    has_cell_state = False

    def __init__(self, nonlinearity: str) -> None:
        self.relu = nonlinearity == "relu"

    def step(
        self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array]
    ) -> Tuple[Array, None, Kept]:
        a = xp + h @ w_hh.T
        if b_hh is not None:
            a += b_hh
        h_new = np.maximum(a, 0) if self.relu else np.tanh(a)
        return h_new, None, (h_new,)

    def step_backward(
        self, dh: Array, dc: Optional[Array], kept: Kept, h: Array, c: Optional[Array], w_hh: Array
    ) -> Tuple[Array, Array, Array, None]:
        (h_new,) = kept
        da = dh * (h_new > 0) if self.relu else dh * (1 - h_new * h_new)  # tanh' = 1 - tanh^2
        return da, da, da @ w_hh, None  # d(input gates), d(hidden gates), dh_prev


class LSTMCell:
    """Hochreiter & Schmidhuber's cell, as ``torch.nn.LSTM`` computes it:

    - ``i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_ih^T + b_ih + h W_hh^T + b_hh)``
    - ``c' = f * c + i * g``
    - ``h' = o * tanh(c')``
    """

    gates = 4
    has_cell_state = True

    def step(
        self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array]
    ) -> Tuple[Array, Array, Kept]:
        assert c is not None
        a = h @ w_hh.T  # the four gates' pre-activations: x W_ih^T + b_ih + h W_hh^T + b_hh
        a += xp  # (the layer adds b_hh to xp once for every step)
        if b_hh is not None:
            a += b_hh
        n = h.shape[1]
        gates = sigmoid(a)  # i, f and o (the g block is overwritten next): input, forget, output gates
        g = np.tanh(a[:, 2 * n : 3 * n], out=gates[:, 2 * n : 3 * n])  # the candidate cell values
        i, f, o = gates[:, :n], gates[:, n : 2 * n], gates[:, 3 * n :]
        c_new = f * c  # c' = f * c + i * g: forget some of the old memory, write some new
        c_new += i * g
        tanh_c = np.tanh(c_new)
        return o * tanh_c, c_new, (gates, tanh_c)  # h' = o * tanh(c'): show some of the memory

    def step_backward(
        self, dh: Array, dc: Optional[Array], kept: Kept, h: Array, c: Optional[Array], w_hh: Array
    ) -> Tuple[Array, Array, Array, Array]:
        assert c is not None and dc is not None
        gates, tanh_c = kept
        n = dh.shape[1]
        i, f, g, o = gates[:, :n], gates[:, n : 2 * n], gates[:, 2 * n : 3 * n], gates[:, 3 * n :]
        one = gates.dtype.type(1)
        do = dh * tanh_c  # h' = o * tanh(c')
        dc = dc + dh * o * (one - tanh_c * tanh_c)  # c' reaches the loss through h' and through the next step
        # the derivatives of the sigmoids s (1 - s) and of the tanh 1 - g^2, for all four blocks at once
        da = np.subtract(one, gates)
        da *= gates
        da[:, 2 * n : 3 * n] = one - g * g
        da[:, :n] *= dc * g  # c' = f c + i g, through i's sigmoid
        da[:, n : 2 * n] *= dc * c  # through f's sigmoid
        da[:, 2 * n : 3 * n] *= dc * i  # through g's tanh
        da[:, 3 * n :] *= do  # through o's sigmoid
        return da, da, da @ w_hh, dc * f  # dc_prev = dc' * f


class GRUCell:
    """Cho et al.'s cell, as ``torch.nn.GRU`` computes it (the reset gate inside the candidate's product):

    - ``r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)``, ``z`` likewise
    - ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``
    - ``h' = (1 - z) * n + z * h``
    """

    gates = 3
    has_cell_state = False

    def step(
        self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array]
    ) -> Tuple[Array, None, Kept]:
        hp = h @ w_hh.T
        if b_hh is not None:
            hp += b_hh
        n_ = h.shape[1]
        r = sigmoid(xp[:, :n_] + hp[:, :n_])
        z = sigmoid(xp[:, n_ : 2 * n_] + hp[:, n_ : 2 * n_])
        hn = hp[:, 2 * n_ :]
        n = np.tanh(xp[:, 2 * n_ :] + r * hn)
        return (1 - z) * n + z * h, None, (r, z, n, hn)

    def step_backward(
        self, dh: Array, dc: Optional[Array], kept: Kept, h: Array, c: Optional[Array], w_hh: Array
    ) -> Tuple[Array, Array, Array, None]:
        r, z, n, hn = kept
        dan = dh * (1 - z) * (1 - n * n)  # h' = (1 - z) n + z h, through n's tanh
        daz = dh * (h - n) * z * (1 - z)  # through z's sigmoid
        dar = dan * hn * r * (1 - r)  # n = tanh(... + r * hn), through r's sigmoid
        d_input = np.concatenate([dar, daz, dan], axis=1)
        d_hidden = np.concatenate([dar, daz, dan * r], axis=1)  # hn is multiplied by r
        return d_input, d_hidden, d_hidden @ w_hh + dh * z, None
