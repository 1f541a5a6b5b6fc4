"""Recurrent layers, `RNN`, `LSTM` and `GRU`, with backpropagation through time written out.

The cells' equations and their loops over time are in `nnlayers.nn.layers.cells`; this module runs
them over layers and directions. Forward: the input's share of every gate is one matrix product for
all the steps; then the cell's steps add ``h @ W_hh.T`` and apply the gates. Backward: the cell
walks the steps in reverse (at step ``t`` the gradient of ``h_t`` is what the output at ``t``
receives plus what step ``t + 1`` sends back through ``W_hh``) and keeps every step's gate
gradients, so the weight gradients are again one product each (``dW_ih = dG^T X``,
``dW_hh = dG^T H_prev``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_number, check_positive_int, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_float_input
from ..functional import with_blas_threads
from ..init import drawn
from ..module import Layer, Parameter
from .cells import ElmanCell, GRUCell, LSTMCell

State = Union[Array, Tuple[Array, Array]]


def lengths_mask(lengths: Any, batch: int, steps: int) -> Array:
    """``(T, N, 1)`` True where step ``t`` is inside sequence ``n`` (``t < lengths[n]``)."""
    lengths = np.asarray(lengths)
    if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths must be {batch} integers (one per sequence), got {lengths.dtype} {lengths.shape}")
    if (lengths < 1).any() or (lengths > steps).any():
        raise ValueError(f"lengths must be in [1, {steps}] (the padded length), got {lengths.min()}..{lengths.max()}")
    return (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]


class _Recurrent(Layer):
    """What `RNN`, `LSTM` and `GRU` share: layers, directions, dropout between layers, lengths."""

    cell: Any
    takes_sequences = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = check_positive_int(f"{name} input_size", input_size)
        self.hidden_size = check_positive_int(f"{name} hidden_size", hidden_size)
        self.num_layers = check_positive_int(f"{name} num_layers", num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout = check_number(f"{name} dropout", dropout, high=1.0)
        if self.dropout == 1.0:
            raise ValueError(f"{name} dropout must be below 1")
        self.rng = make_rng(rng)
        dtype = np.dtype(dtype)
        gates, hidden = self.cell.gates * self.hidden_size, self.hidden_size
        limit = 1.0 / math.sqrt(hidden)  # torch's reset_parameters: every weight and bias uniform in +-1/sqrt(H)
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else hidden * self.directions
            for suffix in self._suffixes(layer):
                setattr(self, f"weight_ih{suffix}", Parameter(drawn((gates, width), self.rng, dtype, limit=limit)))
                setattr(self, f"weight_hh{suffix}", Parameter(drawn((gates, hidden), self.rng, dtype, limit=limit)))
                if self.bias:
                    setattr(self, f"bias_ih{suffix}", Parameter(drawn((gates,), self.rng, dtype, limit=limit)))
                    setattr(self, f"bias_hh{suffix}", Parameter(drawn((gates,), self.rng, dtype, limit=limit)))

    @property
    def _dtype(self) -> np.dtype:
        return self._weights(0, 0)[0].dtype

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self, layer: int) -> List[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.directions]

    def _weights(
        self, layer: int, direction: int
    ) -> Tuple[Parameter, Parameter, Optional[Parameter], Optional[Parameter]]:
        suffix = self._suffixes(layer)[direction]
        found = [getattr(self, f"{kind}{suffix}", None) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        return found[0], found[1], found[2], found[3]  # type: ignore[return-value]

    # --- forward -------------------------------------------------------------------------------

    def _initial(self, hx: Optional[State], batch: int, dtype: np.dtype) -> Tuple[Array, Optional[Array]]:
        shape = (self.num_layers * self.directions, batch, self.hidden_size)
        if hx is None:
            return np.zeros(shape, dtype), (np.zeros(shape, dtype) if self.cell.has_cell_state else None)
        if self.cell.has_cell_state:
            if not (isinstance(hx, tuple) and len(hx) == 2):
                raise TypeError(f"{type(self).__name__} expected the initial state as a tuple (h_0, c_0)")
            states = [check_float_input(f"{type(self).__name__} {n}", s, dtype) for n, s in zip(("h_0", "c_0"), hx)]
        else:
            states = [check_float_input(f"{type(self).__name__} h_0", hx, dtype)]
        for state in states:
            if state.shape != shape:
                raise ValueError(f"{type(self).__name__} expected an initial state of shape {shape}, got {state.shape}")
        return states[0], (states[1] if len(states) > 1 else None)

    @with_blas_threads
    def forward(self, x: Array, hx: Optional[State] = None, lengths: Any = None) -> Tuple[Array, State]:  # type: ignore[override]
        """Run the sequence ``x``; return ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``), as PyTorch.

        Args:
            x: ``(N, T, input_size)`` with ``batch_first`` (the default), else ``(T, N, input_size)``.
            hx: The initial state ``(num_layers * directions, N, hidden_size)`` (LSTM: a tuple
                ``(h_0, c_0)``); zeros when ``None``. Carry ``h_n`` of one batch into the next for
                truncated backpropagation through time: arrays carry no graph, so it is detached.
            lengths: The true length of each sequence of a padded batch (``N`` ints): steps past it
                leave the state as it is and output zeros, as ``pack_padded_sequence`` does.
        """
        dtype = self._dtype
        x = check_float_input(type(self).__name__, x, dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(N, T, F)" if self.batch_first else "(T, N, F)"
            raise ValueError(f"{self} expected input {layout} with F={self.input_size}, got {x.shape}")
        seq = np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first else x)  # time-major: one step a slice
        steps, batch = seq.shape[:2]
        mask = None if lengths is None else lengths_mask(lengths, batch, steps)
        h0, c0 = self._initial(hx, batch, dtype)
        h_n, c_n, layers = [], [], []  # layers: per layer, its input, its dropout mask and each direction's record
        for layer in range(self.num_layers):
            outs, runs = [], []
            for direction in range(self.directions):
                k = layer * self.directions + direction
                out, h, c, kept = self._run(seq, layer, direction, h0[k], None if c0 is None else c0[k], mask)
                outs.append(out)
                runs.append(kept)
                h_n.append(h)
                c_n.append(c)
            inputs, seq = seq, outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
            drop = None
            if self.training and self.dropout and layer < self.num_layers - 1:  # between layers, as torch
                drop = (self.rng.random(seq.shape) >= self.dropout).astype(dtype) / dtype.type(1 - self.dropout)
                seq = seq * drop
            layers.append((inputs, drop, runs))
        self.save_for_backward(layers=layers, mask=mask, batch_first=self.batch_first)
        output = seq.transpose(1, 0, 2) if self.batch_first else seq
        final_h = np.stack(h_n)
        return output, ((final_h, np.stack(c_n)) if self.cell.has_cell_state else final_h)  # type: ignore[arg-type]

    def _run(
        self, seq: Array, layer: int, direction: int, h: Array, c: Optional[Array], mask: Optional[Array]
    ) -> Tuple[Array, Array, Optional[Array], Any]:
        """One direction of one layer over every step: outputs ``(T, N, H)``, final states, and what backward needs."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        steps, batch = seq.shape[:2]
        biases = [None if bias is None else bias.data for bias in (b_ih, b_hh)]
        xp, b = self.cell.input_share(seq, w_ih.data, *biases)
        order = range(steps - 1, -1, -1) if direction else range(steps)
        return self.cell.forward_steps(xp, h, c, w_hh.data, b, order, mask)

    # --- backward ------------------------------------------------------------------------------

    def _split_grad(self, grad: Any) -> Tuple[Optional[Array], Optional[Array], Optional[Array]]:
        """The gradients of ``output``, ``h_n`` and ``c_n`` from what the next layer gives back."""
        if isinstance(grad, tuple):
            d_out, d_state = grad
            if self.cell.has_cell_state and d_state is not None:
                return d_out, d_state[0], d_state[1]
            return d_out, d_state, None
        return grad, None, None

    @with_blas_threads
    def backward(self, grad_y: Any) -> Array:
        """Backpropagation through time; ``grad_y`` is the gradient of ``output``, or a tuple of those of
        ``output`` and of the final state (either may be ``None``). Returns the input's gradient; the
        initial state's is left in `initial_state_grad`."""
        return self._backward(grad_y, input_grad=True)  # type: ignore[return-value]

    @with_blas_threads
    def backward_params(self, grad_y: Any) -> None:
        self._backward(grad_y, input_grad=False)

    def _backward(self, grad_y: Any, input_grad: bool) -> Optional[Array]:
        layers, mask, batch_first = self.saved("layers", "mask", "batch_first")
        d_out, d_hn, d_cn = self._split_grad(grad_y)
        steps, batch = layers[0][0].shape[:2]
        width, hidden, dtype = self.hidden_size * self.directions, self.hidden_size, layers[0][0].dtype
        if d_out is None:
            d_seq = np.zeros((steps, batch, width), dtype)
        else:
            d_out = np.asarray(d_out, dtype=dtype)
            expected = (batch, steps, width) if batch_first else (steps, batch, width)
            if d_out.shape != expected:
                raise ValueError(
                    f"{self}.backward expected a gradient of shape {expected} (the output's), got {d_out.shape}"
                )
            d_seq = d_out.transpose(1, 0, 2) if batch_first else d_out
        count = self.num_layers * self.directions
        d_h0: List[Array] = [np.zeros((batch, hidden), dtype)] * count
        d_c0: List[Optional[Array]] = [None] * count
        for layer in range(self.num_layers - 1, -1, -1):  # the last layer first
            inputs, drop, runs = layers[layer]
            if drop is not None:
                d_seq = d_seq * drop
            d_inputs: Optional[Array] = None
            for direction, kept in enumerate(runs):
                k = layer * self.directions + direction
                d_dir = d_seq[:, :, direction * hidden : (direction + 1) * hidden]  # this direction's outputs
                dh = np.zeros((batch, hidden), dtype) if d_hn is None else np.asarray(d_hn[k], dtype)
                dc = None
                if self.cell.has_cell_state:
                    dc = np.zeros((batch, hidden), dtype) if d_cn is None else np.asarray(d_cn[k], dtype)
                need = input_grad or layer > 0  # the first layer's input gradient only when asked
                d_x, d_h0[k], d_c0[k] = self._run_backward(inputs, d_dir, dh, dc, kept, layer, direction, mask, need)
                if d_x is not None:  # both directions read the same input: their gradients add
                    d_inputs = d_x if d_inputs is None else d_inputs + d_x
            if d_inputs is not None:
                d_seq = d_inputs
        h_grad = np.stack(d_h0)
        if self.cell.has_cell_state:
            self.initial_state_grad: Optional[State] = (h_grad, np.stack(d_c0))  # type: ignore[arg-type]
        else:
            self.initial_state_grad = h_grad
        if not input_grad:
            return None
        return d_seq.transpose(1, 0, 2) if batch_first else d_seq

    def _run_backward(
        self, inputs: Array, d_out: Array, dh: Array, dc: Optional[Array], kept: Any, layer: int, direction: int,
        mask: Optional[Array], input_grad: bool,
    ) -> Tuple[Optional[Array], Array, Optional[Array]]:  # fmt: skip
        """One direction of one layer, the steps in reverse: the input's gradient (if wanted) and the initial state's."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        prev_h = kept[1]
        steps, batch = inputs.shape[:2]
        gates = self.cell.gates * self.hidden_size
        d_in_gates, d_hid_gates, dh, dc = self.cell.backward_steps(d_out, dh, dc, kept, w_hh.data, mask)
        flat_in = d_in_gates.reshape(steps * batch, gates)
        flat_hid = d_hid_gates.reshape(steps * batch, gates)
        w_ih.add_matmul(flat_in.T, inputs.reshape(steps * batch, -1))  # dW_ih = sum_t dG_t^T x_t
        w_hh.add_matmul(flat_hid.T, prev_h.reshape(steps * batch, -1))  # dW_hh = sum_t dG_t^T h_{t-1}
        if b_ih is not None and b_hh is not None:
            share = flat_in.sum(axis=0)
            b_ih.accumulate(share)
            b_hh.accumulate(share if d_hid_gates is d_in_gates else flat_hid.sum(axis=0))
        d_x = (flat_in @ w_ih.data).reshape(steps, batch, -1) if input_grad else None
        return d_x, dh, dc

    # --- files and printing --------------------------------------------------------------------

    def get_config(self) -> Dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self._dtype.name,
        }

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults: Sequence[Tuple[str, Any, Any]] = (
            ("num_layers", self.num_layers, 1),
            ("bias", self.bias, True),
            ("batch_first", self.batch_first, True),
            ("dropout", self.dropout, 0.0),
            ("bidirectional", self.bidirectional, False),
        )
        return text + "".join(f", {name}={value}" for name, value, default in defaults if value != default)


class RNN(_Recurrent):
    """Elman recurrent network, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (``torch.nn.RNN``).

    Args:
        input_size, hidden_size, num_layers, bias, dropout, bidirectional: As in PyTorch.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        batch_first: Input and output ``(N, T, F)`` (the default here, as every nnlayers array is
            batch-first; PyTorch's default is ``False``, ``(T, N, F)``).
        dtype, rng: The parameters' dtype; the seed of their starting values and of the dropout.

    Returns from a call: ``(output, h_n)``: ``output`` ``(N, T, directions * hidden_size)``, ``h_n``
    ``(num_layers * directions, N, hidden_size)``. In a `Sequential`, follow it with
    `SequenceOutput` or `FinalState`.

    Examples:
        >>> rnn = RNN(3, 5, rng=0)
        >>> out, h_n = rnn(np.zeros((2, 7, 3), np.float32))
        >>> out.shape, h_n.shape
        ((2, 7, 5), (1, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False, **kwargs: Any) -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.cell = ElmanCell(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(_Recurrent):
    """Long short-term memory (``torch.nn.LSTM``): the equations are `nnlayers.nn.layers.cells.LSTMCell`'s.

    Arguments and outputs as `RNN`'s, with a cell state: a call returns ``(output, (h_n, c_n))``
    and takes ``hx=(h_0, c_0)``. The gates' rows are ``i, f, g, o``, as in PyTorch, so state dicts
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``) load both ways.

    Examples:
        >>> out, (h_n, c_n) = LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)(np.zeros((2, 5, 3)))
        >>> out.shape, h_n.shape, c_n.shape
        ((2, 5, 8), (4, 2, 4), (4, 2, 4))
    """

    cell = LSTMCell()


class GRU(_Recurrent):
    """Gated recurrent unit (``torch.nn.GRU``): the equations are `nnlayers.nn.layers.cells.GRUCell`'s.

    Arguments and outputs as `RNN`'s; the gates' rows are ``r, z, n``, as in PyTorch.

    Examples:
        >>> out, h_n = GRU(3, 4, rng=0)(np.zeros((2, 5, 3)))
        >>> out.shape, h_n.shape
        ((2, 5, 4), (1, 2, 4))
    """

    cell = GRUCell()
