"""`MultiheadAttention` (``torch.nn.MultiheadAttention``): queries, keys and values by one packed
projection, attention per head (`nnlayers.nn.functional.attention`), the heads joined by ``out_proj``.

Forward, for ``h`` heads of ``d = E / h`` features:

- ``q, k, v = query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v`` (the rows of ``in_proj_weight``)
- per head: ``P = softmax(q k^T / sqrt(d) + masks)``, ``o = P v``
- ``out = concat(o over heads) W_o^T + b_o``

Backward is the same path in reverse; the softmax's backward is in `nnlayers.nn.functional.attention_backward`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_number, check_positive_int, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_float_input
from ..functional import attention, attention_backward, causal_mask, with_blas_threads
from ..init import drawn
from ..module import Layer, Parameter
from .linear import Dense


def additive_mask(
    attn_mask: Optional[Array], key_padding_mask: Optional[Array], is_causal: bool, shape: Tuple[int, int, int, int],
    dtype: np.dtype,
) -> Optional[Array]:  # fmt: skip
    """One float mask broadcast to ``(N, heads, L, S)`` from PyTorch's three: boolean masks are True where a
    query must **not** look (``torch.nn.MultiheadAttention``'s rule), float ones are added to the scores."""
    batch, heads, length, source = shape

    def as_float(mask: Any, name: str) -> Array:
        mask = np.asarray(mask)
        return np.where(mask, -np.inf, 0.0).astype(dtype) if mask.dtype == np.bool_ else mask.astype(dtype)

    total: Optional[Array] = None
    if attn_mask is not None:
        mask = as_float(attn_mask, "attn_mask")
        if mask.shape == (length, source):
            mask = mask[None, None]
        elif mask.shape == (batch * heads, length, source):
            mask = mask.reshape(batch, heads, length, source)
        else:
            raise ValueError(
                f"attn_mask must be ({length}, {source}) or ({batch * heads}, {length}, {source}), got {mask.shape}"
            )
        total = mask
    elif is_causal:
        total = causal_mask(length, source, dtype)[None, None]
    if key_padding_mask is not None:
        pad = as_float(key_padding_mask, "key_padding_mask")
        if pad.shape != (batch, source):
            raise ValueError(f"key_padding_mask must be ({batch}, {source}) (True at padding keys), got {pad.shape}")
        pad = pad[:, None, None, :]
        total = pad if total is None else total + pad
    return total


class MultiheadAttention(Layer):
    """Multi-head attention (Vaswani et al., 2017), as ``torch.nn.MultiheadAttention``.

    Args:
        embed_dim: ``E``, the features of queries, keys and values.
        num_heads: ``h``; ``E`` must be a multiple of it.
        dropout: Dropout on the attention weights in training.
        bias: Learn ``in_proj_bias`` and ``out_proj.bias``.
        batch_first: ``(N, L, E)`` in and out (the default here, as PyTorch users set it); else ``(L, N, E)``.
        dtype, rng: The parameters' dtype; the seed of their starting values and of the dropout.

    A call ``mha(query, key=None, value=None, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``
    as PyTorch's: ``weights`` ``(N, L, S)`` averaged over the heads (``(N, h, L, S)`` with
    ``average_attn_weights=False``), or ``None`` without ``need_weights``. Leave ``key`` and ``value``
    out for self-attention. ``backward(grad_output)`` returns the gradient of ``query`` for
    self-attention, else a tuple ``(grad_query, grad_key, grad_value)``. In a `Sequential`, follow it
    with `SequenceOutput` to keep the output.

    Attributes:
        in_proj_weight: ``(3E, E)``, the rows of ``W_q``, ``W_k`` and ``W_v``; ``in_proj_bias`` ``(3E,)``.
        out_proj: A `Dense` ``(E -> E)``.

    Examples:
        >>> mha = MultiheadAttention(8, 2, rng=0)
        >>> out, weights = mha(np.ones((3, 5, 8), np.float32), is_causal=True)
        >>> out.shape, weights.shape, float(weights[0, 0, 1])
        ((3, 5, 8), (3, 5, 5), 0.0)
    """

    takes_sequences = True

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = True,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        self.embed_dim = check_positive_int("MultiheadAttention embed_dim", embed_dim)
        self.num_heads = check_positive_int("MultiheadAttention num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"MultiheadAttention embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})"
            )
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = check_number("MultiheadAttention dropout", dropout, high=1.0)
        self.batch_first = bool(batch_first)
        self.rng = make_rng(rng)
        dtype = np.dtype(dtype)
        e = self.embed_dim
        # torch's _reset_parameters: xavier_uniform over the packed (3E, E), zero biases
        self.in_proj_weight = Parameter(drawn((3 * e, e), self.rng, dtype, limit=math.sqrt(6.0 / (4 * e))))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = Dense(e, e, bias=bias, init="torch", dtype=dtype, rng=self.rng)
        if self.out_proj.bias is not None:
            self.out_proj.bias.data[...] = 0

    def _projected(self, x: Array, rows: slice) -> Array:
        """``x W^T + b`` for the rows of ``in_proj_weight`` given, split into heads ``(N, h, T, d)``."""
        batch, steps = x.shape[:2]
        y = x.reshape(batch * steps, -1) @ self.in_proj_weight.data[rows].T  # one product for every position
        if self.in_proj_bias is not None:
            y += self.in_proj_bias.data[rows]
        return y.reshape(batch, steps, -1, self.head_dim).transpose(0, 2, 1, 3)

    def _heads_joined(self, o: Array) -> Array:
        batch, _, steps, _ = o.shape
        return o.transpose(0, 2, 1, 3).reshape(batch, steps, self.embed_dim)

    def _checked(self, name: str, x: Any) -> Array:
        x = check_float_input(f"MultiheadAttention {name}", x, self.in_proj_weight.dtype)
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            layout = "(N, T, E)" if self.batch_first else "(T, N, E)"
            raise ValueError(f"{self} expected {name} {layout} with E={self.embed_dim}, got {x.shape}")
        return x if self.batch_first else x.transpose(1, 0, 2)

    @with_blas_threads
    def forward(  # type: ignore[override]
        self,
        query: Array,
        key: Optional[Array] = None,
        value: Optional[Array] = None,
        key_padding_mask: Optional[Array] = None,
        need_weights: bool = True,
        attn_mask: Optional[Array] = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> Tuple[Array, Optional[Array]]:
        self_attention = (key is None or key is query) and (value is None or value is query)
        xq = self._checked("query", query)
        xk = xq if key is None or key is query else self._checked("key", key)
        xv = xk if value is None or value is key else (xq if value is query else self._checked("value", value))
        if xk.shape[:2] != xv.shape[:2] or xk.shape[0] != xq.shape[0]:
            raise ValueError(f"{self}: query {xq.shape}, key {xk.shape} and value {xv.shape} do not match")
        e = self.embed_dim
        if self_attention:  # one product with the packed (3E, E) weight
            packed = self._projected(xq, slice(0, 3 * e))  # (N, 3h, T, d): the heads of q, then k, then v
            q, k, v = (packed[:, i * self.num_heads : (i + 1) * self.num_heads] for i in range(3))
        else:
            q, k, v = (self._projected(x, slice(i * e, (i + 1) * e)) for i, x in enumerate((xq, xk, xv)))
        shape = (xq.shape[0], self.num_heads, xq.shape[1], xk.shape[1])
        mask = additive_mask(attn_mask, key_padding_mask, is_causal, shape, xq.dtype)
        scale = 1.0 / math.sqrt(self.head_dim)
        o, p = attention(q, k, v, scale, mask)
        kept = None
        if self.training and self.dropout:  # dropout on the weights, then the weighted sum again
            kept = (self.rng.random(p.shape) >= self.dropout).astype(p.dtype) / p.dtype.type(1 - self.dropout)
            o = (p * kept) @ v
        out = self.out_proj(self._heads_joined(o))
        averaged = None if not need_weights else bool(average_attn_weights)
        self.save_for_backward(
            inputs=(xq, xk, xv),
            qkv=(q, k, v),
            p=p,
            kept=kept,
            scale=scale,
            self_attention=self_attention,
            averaged=averaged,
        )
        if not self.batch_first:
            out = out.transpose(1, 0, 2)
        if not need_weights:
            return out, None
        weights = p if kept is None else p * kept
        return out, (weights.mean(axis=1) if average_attn_weights else weights)

    @with_blas_threads
    def backward(self, grad_y: Any) -> Any:
        """``grad_y``: the output's gradient, or a tuple of it and the returned weights' gradient (or ``None``).
        Returns the query's gradient for self-attention, else ``(grad_query, grad_key, grad_value)``."""
        return self._backward(grad_y, input_grad=True)

    @with_blas_threads
    def backward_params(self, grad_y: Any) -> None:
        self._backward(grad_y, input_grad=False)

    def _backward(self, grad_y: Any, input_grad: bool) -> Any:
        (xq, xk, xv), (q, k, v), p, kept, scale, self_attention = self.saved(
            "inputs", "qkv", "p", "kept", "scale", "self_attention"
        )
        grad_weights = None
        if isinstance(grad_y, tuple):  # (output's gradient, the weights' gradient or None)
            grad_y, grad_weights = grad_y
        if grad_weights is not None:
            averaged = self.saved("averaged")
            if averaged is None:
                raise ValueError(
                    "MultiheadAttention.backward: a gradient for weights that need_weights=False did not return"
                )
            grad_weights = np.asarray(grad_weights, dtype=xq.dtype)
            grad_weights = grad_weights[:, None] / self.num_heads if averaged else grad_weights
        grad = np.asarray(grad_y, dtype=xq.dtype)
        grad = grad if self.batch_first else grad.transpose(1, 0, 2)
        batch, steps = xq.shape[:2]
        grad_o = self.out_proj.backward(grad).reshape(batch, steps, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
        grads = attention_backward(grad_o, q, k, v, p, scale, kept, grad_weights)
        e = self.embed_dim
        if self_attention:  # the packed weight's gradient in one product, and the input's in another
            flat_g = np.concatenate([self._heads_joined(g) for g in grads], axis=2).reshape(-1, 3 * e)
            self.in_proj_weight.add_matmul(flat_g.T, xq.reshape(-1, e))
            if self.in_proj_bias is not None:
                self.in_proj_bias.accumulate(flat_g.sum(axis=0))
            if not input_grad:
                return None
            grad_x = (flat_g @ self.in_proj_weight.data).reshape(xq.shape)  # query, key, value: the gradients add
            return grad_x if self.batch_first else grad_x.transpose(1, 0, 2)
        joined = [self._heads_joined(g) for g in grads]  # dq, dk, dv as (N, T, E)
        results = []
        for i, (x, g) in enumerate(zip((xq, xk, xv), joined)):
            rows = slice(i * e, (i + 1) * e)
            flat_g, flat_x = g.reshape(-1, e), x.reshape(-1, e)
            self.in_proj_weight.grad[rows] += flat_g.T @ flat_x
            if self.in_proj_bias is not None:
                self.in_proj_bias.grad[rows] += flat_g.sum(axis=0)
            if input_grad:
                results.append((flat_g @ self.in_proj_weight.data[rows]).reshape(x.shape))
        if not input_grad:
            return None
        return tuple(r if self.batch_first else r.transpose(1, 0, 2) for r in results)

    def get_config(self) -> Dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": self.in_proj_bias is not None,
            "batch_first": self.batch_first,
            "dtype": self.in_proj_weight.dtype.name,
        }

    def extra_repr(self) -> str:
        text = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        text += f", dropout={self.dropout}" if self.dropout else ""
        return text + (", batch_first=False" if not self.batch_first else "")
