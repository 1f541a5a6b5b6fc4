"""The recurrent cells' equations, `RNN`'s, `LSTM`'s and `GRU`'s, and their loops over time.

Each cell gets ``xp``, the input's share of the gate pre-activations (``x_t @ W_ih.T + b_ih``,
computed for every step at once by the layer), and the initial state. ``forward_steps`` runs the
steps and returns every output, the final state and what ``backward_steps`` needs;
``backward_steps`` walks the steps in reverse and returns the gradients of every step's
pre-activations and of the initial state. The rows of ``W_ih`` and ``W_hh`` hold the gates in
PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n).

`ElmanCell` and `GRUCell` write one step (``step``, ``step_backward``) and share `_Cell`'s loops;
`LSTMCell` writes its loops itself, each step into arrays kept for the whole sequence, since its
step is the one people train most (a numpy call costs about as much as the arithmetic at these
sizes).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, cast

import numpy as np

from ...utils.fastmath import kernels, sigmoid_of_negated_, tanh_into
from ...utils.types import Array
from ..functional import sigmoid

#: What a step keeps for its backward.
Kept = Tuple[Any, ...]
#: What ``forward_steps`` keeps for ``backward_steps``: the order of the steps, the state each
#: started from (``h`` as one ``(T, N, H)`` array, ``c`` one per step) and the cell's own.
Record = Tuple[List[int], Array, List[Optional[Array]], Any]


class _Cell:
    """The loop over time of a cell that writes one step, ``step`` and ``step_backward``."""

    gates = 1
    has_cell_state = False
    #: GRU: the state's share of the gates, ``h W_hh^T + b_hh``, enters the step apart from the
    #: input's (the reset gate scales it), so ``b_hh`` stays in the step and the share has its own gradient.
    separate_state_share = False

    def input_share(
        self, seq: Array, w_ih: Array, b_ih: Optional[Array], b_hh: Optional[Array]
    ) -> Tuple[Array, Optional[Array]]:
        """``x_t W_ih^T + b_ih`` for every step ``(T, N, F)`` at once (one product), with ``b_hh`` too
        where it simply adds; and the bias left for the steps."""
        steps, batch = seq.shape[:2]
        xp = (seq.reshape(steps * batch, -1) @ w_ih.T).reshape(steps, batch, -1)
        if b_ih is not None:
            xp += b_ih
        if b_hh is not None and not self.separate_state_share:  # it adds to every step: once, here
            xp += b_hh
            b_hh = None
        return xp, b_hh

    def step(self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array]) -> Tuple[Array, Optional[Array], Kept]:  # fmt: skip
        raise NotImplementedError

    def step_backward(self, dh: Array, dc: Optional[Array], kept: Kept, h: Array, c: Optional[Array], w_hh: Array) -> Tuple[Array, Array, Array, Optional[Array]]:  # fmt: skip
        raise NotImplementedError

    def forward_steps(
        self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array],
        order: Sequence[int], mask: Optional[Array],
    ) -> Tuple[Array, Array, Optional[Array], Record]:  # fmt: skip
        """Every step in ``order``: the outputs ``(T, N, H)``, the final ``h`` and ``c``, and the record."""
        steps, batch = xp.shape[:2]
        out = np.empty((steps, batch, h.shape[1]), xp.dtype)
        prev_h = np.empty_like(out)  # the state each step starts from: dW_hh = sum_t dG_t^T h_{t-1}
        prev_c, kept = [], []
        for t in order:
            prev_h[t] = h
            prev_c.append(c)
            h_new, c_new, cell_kept = self.step(xp[t], h, c, w_hh, b_hh)
            kept.append(cell_kept)
            if mask is None:
                h, c = h_new, c_new
                out[t] = h_new
            else:  # padding: the state passes through unchanged and the output is zero
                h = np.where(mask[t], h_new, h)
                c = None if c is None or c_new is None else np.where(mask[t], c_new, c)
                out[t] = h_new * mask[t]
        return out, h, c, (list(order), prev_h, prev_c, kept)

    def backward_steps(
        self, d_out: Array, dh: Array, dc: Optional[Array], record: Record, w_hh: Array, mask: Optional[Array]
    ) -> Tuple[Array, Array, Array, Optional[Array]]:
        """The steps in reverse: the gradients of the input's and the state's share of every step's
        gates ``(T, N, gates * H)`` (one array for both but in a GRU), and of the initial ``h`` and ``c``."""
        order, prev_h, prev_c, cell_kept = record
        steps, batch = prev_h.shape[:2]
        d_in_gates = np.empty((steps, batch, self.gates * prev_h.shape[2]), prev_h.dtype)
        d_hid_gates = np.empty_like(d_in_gates) if self.separate_state_share else d_in_gates
        for j in range(steps - 1, -1, -1):
            t = order[j]
            dh_new = dh + d_out[t]  # h_t reaches the loss through the output at t and through step t + 1
            dc_new = dc
            if mask is not None:
                dh_new, dh = dh_new * mask[t], dh * ~mask[t]  # a padded step passed the state through
                if dc is not None:
                    dc_new, dc = dc * mask[t], dc * ~mask[t]
            da_in, da_hid, dh_prev, dc_prev = self.step_backward(
                dh_new, dc_new, cell_kept[j], prev_h[t], prev_c[j], w_hh
            )
            d_in_gates[t] = da_in
            if d_hid_gates is not d_in_gates:
                d_hid_gates[t] = da_hid
            dh = dh_prev if mask is None else dh + dh_prev
            if dc is not None:
                dc = dc_prev if mask is None else dc + dc_prev
        return d_in_gates, d_hid_gates, dh, dc


class ElmanCell(_Cell):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU): `RNN`'s cell."""

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


def _blocks(a: Array) -> Tuple[Array, Array, Array, Array]:
    """The four gates' columns of ``(N, 4H)``: i, f, g, o."""
    n = a.shape[1] // 4
    return a[:, :n], a[:, n : 2 * n], a[:, 2 * n : 3 * n], a[:, 3 * n :]


class LSTMCell(_Cell):
    """Hochreiter & Schmidhuber's cell, as ``torch.nn.LSTM`` computes it:

    - ``i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_ih^T + b_ih + h W_hh^T + b_hh)``
    - ``c' = f * c + i * g``
    - ``h' = o * tanh(c')``

    Each step's four gates come out of one ``exp``: ``sigmoid(a) = 1 / (1 + exp(-a))`` for i, f and
    o, and ``tanh(a) = 2 sigmoid(2a) - 1`` for g. So the cell works on ``-a`` (``-2a`` for g), made
    from weights scaled by -1 and -2: exact in floating point, the same numbers negated and doubled.
    """

    gates = 4
    has_cell_state = True

    @staticmethod
    def _signs(width: int, dtype: np.dtype) -> Array:
        scale = np.full(width, -1, dtype)
        scale[width // 2 : 3 * width // 4] = -2  # the g block
        return scale

    def input_share(
        self, seq: Array, w_ih: Array, b_ih: Optional[Array], b_hh: Optional[Array]
    ) -> Tuple[Array, Optional[Array]]:
        """``-(x_t W_ih^T + b_ih + b_hh)`` (doubled for g) for every step: both biases, once."""
        scale = self._signs(w_ih.shape[0], w_ih.dtype)
        steps, batch = seq.shape[:2]
        xp = seq.reshape(steps * batch, -1) @ (w_ih.T * scale)
        biases = [bias for bias in (b_ih, b_hh) if bias is not None]
        if biases:
            xp += sum(biases) * scale  # (b_ih + b_hh) * scale: one pass over xp
        return xp.reshape(steps, batch, -1), None

    def forward_steps(
        self, xp: Array, h: Array, c: Optional[Array], w_hh: Array, b_hh: Optional[Array],
        order: Sequence[int], mask: Optional[Array],
    ) -> Tuple[Array, Array, Optional[Array], Record]:  # fmt: skip
        assert c is not None and b_hh is None
        steps, batch, width = xp.shape
        dtype, k = xp.dtype, kernels(xp.dtype)
        w_scaled = w_hh.T * self._signs(width, dtype)
        gates = np.empty_like(xp)  # step t's pre-activations, then its gates' values
        cells, tanh_cells, out = (np.empty((steps, batch, width // 4), dtype) for _ in range(3))
        prev_h, prev_c = np.empty_like(out), cast(List[Optional[Array]], [])
        scratch = np.empty((batch, width // 4), dtype)
        for t in order:
            prev_h[t] = h
            prev_c.append(c)
            a = np.matmul(h, w_scaled, out=gates[t])
            a += xp[t]  # -(x W_ih^T + b_ih + h W_hh^T + b_hh), g's twice
            i, f, g, o = _blocks(sigmoid_of_negated_(a, k))  # input, forget and output gates
            k.affine(g, 2.0, -1.0, g)  # the candidate cell values, tanh of their pre-activations
            c_new = k.multiply(f, c, cells[t])  # c' = f * c + i * g: forget some of the old memory,
            c_new += k.multiply(i, g, scratch)  # write some new
            h_new = k.multiply(o, tanh_into(c_new, tanh_cells[t], k), out[t])  # h' = o * tanh(c')
            if mask is None:
                h, c = h_new, c_new
            else:  # padding: the state passes through unchanged and the output is zero
                h, c = np.where(mask[t], h_new, h), np.where(mask[t], c_new, c)
                h_new *= mask[t]
        return out, h, c, (list(order), prev_h, prev_c, (gates, tanh_cells))

    def backward_steps(
        self, d_out: Array, dh: Array, dc: Optional[Array], record: Record, w_hh: Array, mask: Optional[Array]
    ) -> Tuple[Array, Array, Array, Optional[Array]]:
        assert dc is not None
        order, _, kept_c, (gates, tanh_cells) = record
        prev_c = cast(List[Array], kept_c)  # an LSTM's steps all have a cell state
        dtype = gates.dtype
        k = kernels(dtype)
        d_gates = np.empty_like(gates)
        dh, dc = np.array(dh, dtype), np.array(dc, dtype)  # own buffers: each step writes into them
        dh_t, scratch = np.empty_like(dh), np.empty_like(dh)
        for j in range(len(order) - 1, -1, -1):
            t = order[j]
            a, da = gates[t], d_gates[t]
            i, f, g, o = _blocks(a)
            da_i, da_f, da_g, da_o = _blocks(da)
            tanh_c = tanh_cells[t]
            np.add(dh, d_out[t], out=dh_t)  # h_t reaches the loss through the output at t and through step t + 1
            if mask is not None:  # a padded step passed the state through
                passed_h, passed_c = dh * ~mask[t], dc * ~mask[t]
                dh_t *= mask[t]
                dc *= mask[t]
            # dc += dh * o * (1 - tanh(c')^2): c' reaches the loss through h' and through the next step
            k.affine(k.multiply(tanh_c, tanh_c, scratch), -1.0, 1.0, scratch)
            k.multiply(scratch, o, scratch)
            dc += k.multiply(scratch, dh_t, scratch)
            k.affine(a, -1.0, 1.0, da)  # the sigmoids' derivatives s (1 - s), four blocks at once,
            k.multiply(da, a, da)
            k.affine(k.multiply(g, g, da_g), -1.0, 1.0, da_g)  # and the tanh's 1 - g^2 for g
            k.multiply(da_i, k.multiply(dc, g, scratch), da_i)  # c' = f c + i g, through i's sigmoid
            k.multiply(da_f, k.multiply(dc, prev_c[j], scratch), da_f)  # through f's sigmoid
            k.multiply(da_g, k.multiply(dc, i, scratch), da_g)  # through g's tanh
            k.multiply(da_o, k.multiply(dh_t, tanh_c, scratch), da_o)  # h' = o * tanh(c'), through o's sigmoid
            k.multiply(dc, f, dc)  # dc_prev = dc * f
            np.matmul(da, w_hh, out=dh)  # dh_prev = da @ W_hh
            if mask is not None:
                dh += passed_h
                dc += passed_c
        return d_gates, d_gates, dh, dc


class GRUCell(_Cell):
    """Cho et al.'s cell, as ``torch.nn.GRU`` computes it (the reset gate inside the candidate's product):

    - ``r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)``, ``z`` likewise
    - ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``
    - ``h' = (1 - z) * n + z * h``
    """

    gates = 3
    separate_state_share = True

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
