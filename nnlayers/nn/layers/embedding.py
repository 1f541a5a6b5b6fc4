"""Lookup tables: `Embedding` (token ids to vectors) and `PositionalEmbedding` (a learned vector per position)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_positive_int, is_int, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_float_input, check_grad_shape
from ..init import drawn
from ..module import Layer, Parameter


class Embedding(Layer):
    """A table of ``num_embeddings`` vectors; integer ids pick rows (``torch.nn.Embedding``).

    ``y[n, t] = weight[x[n, t]]``. The backward adds each position's gradient into the row it
    picked (a row picked twice gets both); the input, integers, has no gradient. The
    ``padding_idx`` row starts at zero and never learns, as in PyTorch.

    Args:
        num_embeddings: The number of ids (the vocabulary).
        embedding_dim: The length of each vector.
        padding_idx: An id whose vector stays zero (padding), or ``None``; negative counts from the end.
        dtype: ``np.float32`` (default) or ``np.float64``.
        rng: The seed of the starting values, N(0, 1) as in PyTorch.

    Shape:
        - Input: integers of any shape ``(*)``, each in ``[0, num_embeddings)``; as the first layer of
          a model, `fit` gives it integer inputs as they are (int32 or int64 ids; uint8 arrays are
          read as pixels).
        - Output: ``(*, embedding_dim)``.

    Examples:
        >>> emb = Embedding(10, 3, padding_idx=0, rng=0)
        >>> emb(np.array([[0, 2, 2]])).shape
        (1, 3, 3)
        >>> emb(np.array([[0]]))[0, 0].tolist()
        [0.0, 0.0, 0.0]
    """

    takes_sequences = True

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_positive_int("Embedding num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("Embedding embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not is_int(padding_idx) or not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"Embedding padding_idx must be an id in [0, {self.num_embeddings}), got {padding_idx!r}"
                )
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        weight = drawn((self.num_embeddings, self.embedding_dim), make_rng(rng), np.dtype(dtype), std=1.0)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, x: Array) -> Array:
        ids = np.asarray(x)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{self} expected integer ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"{self} expected ids in [0, {self.num_embeddings}), got {ids.min()}..{ids.max()}")
        self.save_for_backward(ids=ids)
        return self.weight.data[ids]

    def backward(self, grad_y: Array) -> None:  # type: ignore[override]
        """Add the gradients into the rows that were picked; the ids have no gradient (``None``)."""
        ids = self.saved("ids")
        grad = check_grad_shape(self, grad_y, (*ids.shape, self.embedding_dim)).reshape(-1, self.embedding_dim)
        flat = ids.reshape(-1)
        if self.padding_idx is not None:
            keep = flat != self.padding_idx
            flat, grad = flat[keep], grad[keep]
        summed = np.zeros_like(self.weight.data)
        np.add.at(summed, flat, grad.astype(summed.dtype, copy=False))  # an id picked twice gets both gradients
        self.weight.accumulate(summed)
        return None

    def get_config(self) -> Dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "dtype": self.weight.dtype.name,
        }

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class PositionalEmbedding(Layer):
    """Add a learned vector for each position to a sequence ``(N, T, D)``: ``y[n, t] = x[n, t] + weight[t]``.

    The learned position embeddings of BERT and of the Vision Transformer (``pos_embedding``
    there), which attention needs since it sees its inputs as a set.

    Args:
        max_len: The longest sequence it takes.
        embed_dim: ``D``.
        std: The starting values are N(0, std**2) (0.02, as BERT's and ViT's).
        dtype, rng: As for `Embedding`.

    Examples:
        >>> PositionalEmbedding(16, 4, rng=0)(np.zeros((2, 5, 4), np.float32)).shape
        (2, 5, 4)
    """

    takes_images = None
    no_weight_decay = True  # a learned token or position, not a weight: no_decay_groups leaves it alone
    # element-wise on its input's shape

    def __init__(
        self,
        max_len: int,
        embed_dim: int,
        std: float = 0.02,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        self.max_len = check_positive_int("PositionalEmbedding max_len", max_len)
        self.embed_dim = check_positive_int("PositionalEmbedding embed_dim", embed_dim)
        self.std = float(std)
        self.weight = Parameter(drawn((self.max_len, self.embed_dim), make_rng(rng), np.dtype(dtype), std=self.std))

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x, self.weight.dtype)
        if x.ndim != 3 or x.shape[2] != self.embed_dim or x.shape[1] > self.max_len:
            raise ValueError(f"{self} expected input (N, T <= {self.max_len}, {self.embed_dim}), got {x.shape}")
        self.save_for_backward(steps=x.shape[1], shape=x.shape)
        return x + self.weight.data[: x.shape[1]]

    def backward(self, grad_y: Array) -> Array:
        steps, shape = self.saved("steps", "shape")
        grad = check_grad_shape(self, grad_y, shape)
        summed = np.zeros_like(self.weight.data)
        summed[:steps] = grad.sum(axis=0)
        self.weight.accumulate(summed)
        return grad

    def get_config(self) -> Dict[str, Any]:
        return {"max_len": self.max_len, "embed_dim": self.embed_dim, "std": self.std, "dtype": self.weight.dtype.name}

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.embed_dim}"
