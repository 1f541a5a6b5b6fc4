"""`TransformerEncoderLayer` and `TransformerEncoder` (``torch.nn``'s): self-attention and a feed-forward
network, each on a residual path, with LayerNorm after (post-norm, the paper's) or before (``norm_first``).

A block with its own ``forward`` over registered children, as `nnlayers.nn.blocks` explains: each
residual path is a fork, so the backward adds the gradient that comes straight through the skip to
the one that comes back through the path.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_positive_int, make_rng
from ...utils.types import Array, RandomSource
from ..branching import ModuleList
from ..functional import with_blas_threads
from ..module import Layer
from .activation import ReLU
from .attention import MultiheadAttention
from .dropout import Dropout
from .linear import Dense
from .normalization import LayerNorm
from .smooth import GELU


class TransformerEncoderLayer(Layer):
    """One encoder block (``torch.nn.TransformerEncoderLayer``), with PyTorch's children and state-dict keys.

    Post-norm (default): ``x = norm1(x + sa(x))``, then ``x = norm2(x + ff(x))``.
    Pre-norm (``norm_first=True``, GPT's and ViT's): ``x = x + sa(norm1(x))``, then ``x = x + ff(norm2(x))``.
    ``sa(x) = dropout1(self_attn(x, x, x))`` and ``ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))``.

    Args:
        d_model, nhead, dim_feedforward, dropout, layer_norm_eps, norm_first, bias: As in PyTorch.
        activation: ``"relu"`` (default) or ``"gelu"``.
        batch_first: ``(N, T, E)`` (the default here; PyTorch's is ``False``).
        dtype, rng: The parameters' dtype; the seed of their starting values and dropouts.

    A call ``layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` takes the
    masks of `MultiheadAttention` (boolean: True where a query must not look).

    Examples:
        >>> block = TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, rng=0)
        >>> block(np.zeros((2, 5, 8), np.float32)).shape
        (2, 5, 8)
        >>> sorted(block.state_dict())[:3]
        ['linear1.bias', 'linear1.weight', 'linear2.bias']
    """

    takes_sequences = True

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"TransformerEncoderLayer activation must be 'relu' or 'gelu', got {activation!r}")
        self.d_model = check_positive_int("TransformerEncoderLayer d_model", d_model)
        self.dim_feedforward = check_positive_int("TransformerEncoderLayer dim_feedforward", dim_feedforward)
        self.nhead, self.p, self.activation_name = nhead, float(dropout), activation
        self.layer_norm_eps, self.batch_first, self.norm_first, self.bias = (
            layer_norm_eps,
            bool(batch_first),
            bool(norm_first),
            bool(bias),
        )
        rng, dtype = make_rng(rng), np.dtype(dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first=True, dtype=dtype, rng=rng)
        self.linear1 = Dense(d_model, dim_feedforward, bias, init="torch", dtype=dtype, rng=rng)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Dense(dim_feedforward, d_model, bias, init="torch", dtype=dtype, rng=rng)
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=rng)
        self.dropout2 = Dropout(dropout, rng=rng)
        self.activation = GELU() if activation == "gelu" else ReLU()

    # the two paths, forward and backward

    def _attention_path(self, x: Array, mask: Optional[Array], padding: Optional[Array], causal: bool) -> Array:
        out, _ = self.self_attn(x, need_weights=False, attn_mask=mask, key_padding_mask=padding, is_causal=causal)
        return self.dropout1(out)

    def _attention_path_backward(self, grad: Array) -> Array:
        return self.self_attn.backward(self.dropout1.backward(grad))

    def _feedforward_path(self, x: Array) -> Array:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _feedforward_path_backward(self, grad: Array) -> Array:
        grad = self.linear2.backward(self.dropout2.backward(grad))
        return self.linear1.backward(self.activation.backward(self.dropout.backward(grad)))

    @with_blas_threads
    def forward(
        self,
        src: Array,
        src_mask: Optional[Array] = None,
        src_key_padding_mask: Optional[Array] = None,
        is_causal: bool = False,
    ) -> Array:
        x = np.asarray(src)
        x = x if self.batch_first else x.transpose(1, 0, 2)
        if self.norm_first:
            x = x + self._attention_path(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._feedforward_path(self.norm2(x))
        else:
            x = self.norm1(x + self._attention_path(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._feedforward_path(x))
        self.save_for_backward(ran=True)
        return x if self.batch_first else x.transpose(1, 0, 2)

    @with_blas_threads
    def backward(self, grad_y: Array) -> Array:
        return self._backward(grad_y, input_grad=True)  # type: ignore[return-value]

    @with_blas_threads
    def backward_params(self, grad_y: Array) -> None:
        """As `backward`, without the input's gradient (a model's first layer): in a post-norm layer
        that skips the attention's input product, as PyTorch skips an input that needs no gradient."""
        self._backward(grad_y, input_grad=False)

    def _backward(self, grad_y: Array, input_grad: bool) -> Optional[Array]:
        self.saved("ran")
        grad = np.asarray(grad_y)
        grad = grad if self.batch_first else grad.transpose(1, 0, 2)
        # at each residual fork the input's gradient is the skip's plus the path's
        if self.norm_first:
            grad = grad + self.norm2.backward(self._feedforward_path_backward(grad))
            grad = grad + self.norm1.backward(self._attention_path_backward(grad))  # norm1's weights need it
        else:
            grad = self.norm2.backward(grad)
            grad = grad + self._feedforward_path_backward(grad)
            grad = self.norm1.backward(grad)
            if not input_grad:
                self.self_attn.backward_params(self.dropout1.backward(grad))
                return None
            grad = grad + self._attention_path_backward(grad)
        if not input_grad:
            return None
        return grad if self.batch_first else grad.transpose(1, 0, 2)

    def get_config(self) -> Dict[str, Any]:
        return {
            "d_model": self.d_model,
            "nhead": self.nhead,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self.p,
            "activation": self.activation_name,
            "layer_norm_eps": self.layer_norm_eps,
            "batch_first": self.batch_first,
            "norm_first": self.norm_first,
            "bias": self.bias,
            "dtype": self.linear1.weight.dtype.name,
        }

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, nhead={self.nhead}, dim_feedforward={self.dim_feedforward}, dropout={self.p}, "
            f"activation={self.activation_name!r}, norm_first={self.norm_first}"
        )


class TransformerEncoder(Layer):
    """A stack of ``num_layers`` copies of ``encoder_layer`` and an optional final ``norm`` (``torch.nn.TransformerEncoder``).

    The copies start equal, as PyTorch's (a deep copy each); keys ``layers.0.self_attn.in_proj_weight``, ...,
    ``norm.weight``. A call ``encoder(src, mask=None, src_key_padding_mask=None, is_causal=False)``
    gives every layer the same masks.

    Examples:
        >>> encoder = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, rng=0), num_layers=2)
        >>> encoder(np.zeros((2, 5, 8), np.float32)).shape
        (2, 5, 8)
    """

    takes_sequences = True

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Optional[Layer] = None) -> None:
        super().__init__()
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(f"TransformerEncoder takes a TransformerEncoderLayer, got {type(encoder_layer).__name__}")
        count = check_positive_int("TransformerEncoder num_layers", num_layers)
        copies = [copy.deepcopy(encoder_layer) for _ in range(count)]
        for index, layer in enumerate(copies):
            _own_randomness(layer, index)
        self.layers = ModuleList(copies)
        self.norm = norm

    @classmethod
    def from_children(cls, children: Dict[str, Layer], config: Dict[str, Any]) -> Layer:
        """Rebuilt from a model file: the saved layers themselves (their weights are loaded next)."""
        layers = list(children["layers"])  # type: ignore[call-overload]
        encoder = cls(layers[0], 1, children.get("norm"))
        encoder.layers = ModuleList(layers)
        return encoder

    def forward(
        self,
        src: Array,
        mask: Optional[Array] = None,
        src_key_padding_mask: Optional[Array] = None,
        is_causal: bool = False,
    ) -> Array:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal)
        return self.norm(x) if self.norm is not None else x

    def backward(self, grad_y: Array) -> Array:
        grad = self.norm.backward(grad_y) if self.norm is not None else grad_y
        for layer in reversed(list(self.layers)):
            grad = layer.backward(grad)
        return grad

    def backward_params(self, grad_y: Array) -> None:
        """As `backward`, without the input's gradient: the first layer skips it."""
        grad = self.norm.backward(grad_y) if self.norm is not None else grad_y
        layers = list(self.layers)
        for layer in reversed(layers[1:]):
            grad = layer.backward(grad)
        layers[0].backward_params(grad)

    def extra_repr(self) -> str:
        return f"num_layers={len(self.layers)}"


def _own_randomness(layer: Layer, index: int) -> None:
    """Give a copied layer its own dropout generators (deep copies would repeat one another's masks),
    derived from the copied state and the copy's index, so that a seeded stack stays reproducible."""
    fresh: Dict[int, np.random.Generator] = {}
    for _, module in layer.named_modules():
        rng = getattr(module, "rng", None)
        if isinstance(rng, np.random.Generator):
            if id(rng) not in fresh:
                fresh[id(rng)] = np.random.default_rng([int(rng.integers(2**63)), index])
            module.rng = fresh[id(rng)]
