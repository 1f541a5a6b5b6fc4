"""`Sequential`: layers chained in order, the model users compose."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, overload

import numpy as np

from ..utils.checks import is_int
from ..utils.memory import keep_freed_memory
from ..utils.threads import blas_threads
from ..utils.types import Array
from .fusion import chain, run, run_order
from .grad_mode import is_grad_enabled
from .layers.embedding import Embedding
from .module import Layer


@contextlib.contextmanager
def evaluation_mode(model: Layer) -> Iterator[Layer]:
    """``model`` in evaluation mode within the block; afterwards every layer is back in its own mode."""
    modes = [(layer, layer.training) for _, layer in model.named_modules()]
    model.eval()
    try:
        yield model
    finally:
        for layer, mode in modes:
            layer.training = mode


class Sequential(Layer):
    """A chain of layers: forward in order, backward in reverse.

    One exception, which no number shows: each ``ReLU -> MaxPool2D`` runs as pooling, then ReLU,
    with the same output and gradients bit for bit and the ReLU on the pooled quarter of the pixels
    (`nnlayers.nn.fusion`; not for subclasses, nor for a layer whose methods a probe replaced).

    Children are named ``"0"``, ``"1"``, ... so `state_dict` keys and shapes are those of
    ``torch.nn.Sequential`` of the same layers (``0.weight``, ``0.bias``, ``2.weight``, ...).

    Args:
        *layers: A list of layers, as users write it (``Sequential([a, b])``), or the layers
            themselves (``Sequential(a, b)``).

    Shape:
        - Input: what the first layer takes, e.g. ``(N, 12288)``.
        - Output: what the last layer gives, e.g. ``(N, 1)``.

    Examples:
        >>> from nnlayers import Dense, Tanh, Sigmoid
        >>> model = Sequential([Dense(12288, 64, rng=0), Tanh(), Dense(64, 1, rng=1), Sigmoid()])
        >>> model
        Sequential(
          (0): Dense(in_features=12288, out_features=64, bias=True)
          (1): Tanh()
          (2): Dense(in_features=64, out_features=1, bias=True)
          (3): Sigmoid()
        )
        >>> list(model.state_dict())
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> model(np.zeros((5, 12288), dtype=np.float32)).shape
        (5, 1)
    """

    def __init__(self, *layers: Union[Layer, Iterable[Layer]]) -> None:
        super().__init__()
        if len(layers) == 1 and not isinstance(layers[0], Layer):
            if not isinstance(layers[0], Iterable):
                raise TypeError(f"Sequential expected layers or a list of layers, got {type(layers[0]).__name__}")
            layers = tuple(layers[0])
        self._layers: List[Layer] = []
        self.__dict__["_building_ids"] = {id(self)}  # one set of the layers inside: building is linear
        try:
            for layer in layers:
                self.append(layer)  # type: ignore[arg-type]
        finally:
            del self.__dict__["_building_ids"]

    def append(self, layer: Layer) -> Sequential:
        """Add ``layer`` at the end; return ``self``."""
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential takes Layer instances, got {type(layer).__name__} at position {len(self._layers)}"
            )
        self.register_module(str(len(self._layers)), layer)
        self._layers.append(layer)
        return self

    def _threads(self) -> ContextManager[None]:
        """Without convolutions a model's work is products: BLAS's own threads serve it best."""
        if any(getattr(m, "splits_over_threads", False) for _, m in self.named_modules()):
            return contextlib.nullcontext()
        return blas_threads()

    def forward(self, x: Array) -> Array:
        keep_freed_memory()  # (once) a batch's large arrays reuse the last batch's pages: no page faults
        shapes = []  # each layer's input shape: backward checks the gradients against them
        order: List[int] = []  # the layers' indices as they ran: backward runs them in reverse
        with self._threads():
            if is_grad_enabled():
                order = run_order(self._layers)  # a max pooling runs before the ReLU it follows (`nnlayers.nn.fusion`)
                for i in order:
                    shapes.append(None if isinstance(x, tuple) else np.shape(x))  # a recurrent layer's (output, state)
                    x = run(self._layers, i, x)
            else:  # a prediction: nothing to keep, and convolutions may fuse
                x = chain(self._layers, x)
        self.save_for_backward(input_shapes=shapes, order=order)
        return x

    def backward(self, grad_y: Array, input_grad: Optional[bool] = None) -> Optional[Array]:  # type: ignore[override]
        """Back-propagate ``grad_y`` through every layer, last to first.

        The input of a model is data, as in PyTorch: a model that is not inside another layer
        fills every ``param.grad`` and returns ``None``, without the costly gradient of its input
        (the pixels), which training never uses. A `Sequential` inside another layer returns its
        input gradient, as every layer does.

        Args:
            grad_y: The gradient of the loss with respect to the model's output.
            input_grad: ``True`` to compute and return the gradient with respect to the model's
                input (a saliency map, or a model used as a part of a larger computation);
                ``False`` to skip it; ``None`` (default): skip it unless this model is inside
                another layer.

        Examples:
            >>> from nnlayers import Dense, Tanh
            >>> model = Sequential([Dense(3, 2, rng=0), Tanh()])
            >>> y = model(np.ones((4, 3), dtype=np.float32))
            >>> model.backward(np.ones_like(y)) is None  # parameters' gradients only
            True
            >>> model.backward(np.ones_like(y), input_grad=True).shape  # and the input's
            (4, 3)
        """
        if input_grad is None:
            input_grad = self.__dict__.get("_has_parent", False)
        if not self._layers:
            return grad_y if input_grad else None
        shapes, order = self.saved("input_shapes", "order")
        with self._threads():
            for step in range(len(order) - 1, 0, -1):  # the forward's order, reversed
                i = order[step]
                grad_y = self._checked(i, self._layers[i].backward(grad_y), shapes[step])
            if input_grad:
                return self._checked(order[0], self._layers[order[0]].backward(grad_y), shapes[0])
            self._layers[order[0]].backward_params(grad_y)
        return None

    def _checked(self, index: int, grad_x: Any, shape: Optional[Tuple[int, ...]]) -> Array:
        """A layer's returned input gradient, refused (naming that layer) if it is not the input's shape."""
        if shape is None and grad_x is not None:  # the input was a recurrent layer's (output, state)
            return grad_x
        if np.shape(grad_x) != shape or grad_x is None:
            got = "None (does backward end with a return?)" if grad_x is None else f"shape {np.shape(grad_x)}"
            raise ValueError(
                f"layer {index} ({type(self._layers[index]).__name__}) of {type(self).__name__}: backward returned {got}, "
                f"expected the shape of its input {shape}"
            )
        return grad_x

    def backward_params(self, grad_y: Array) -> None:
        """Back-propagate without the input gradient (``backward(grad_y, input_grad=False)``)."""
        self.backward(grad_y, input_grad=False)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Layer, Sequential]:
        if isinstance(index, slice):
            return Sequential(self._layers[index])
        if not is_int(index):
            raise TypeError(f"Sequential indices must be integers or slices, got {type(index).__name__}")
        if not -len(self._layers) <= index < len(self._layers):
            raise IndexError(f"Sequential index {index} is out of range for {len(self._layers)} layers")
        return self._layers[index]

    def summary(self, input_shape: Union[int, Sequence[int]], print_fn: Callable[[str], None] = print) -> None:
        """Print each layer, its output shape and parameter count, and the totals (as Keras).

        Runs one forward pass on a zero example, in evaluation mode (no running statistic moves), to
        learn the shapes.

        Args:
            input_shape: The shape of one example, without the batch: ``12288`` or ``(12288,)``.
            print_fn: Where each line goes.

        Examples:
            >>> from nnlayers import Dense, ReLU
            >>> Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 1, rng=0)]).summary(4)
            Layer (type)          Output Shape       Param #
            =================================================
            0 (Dense)             (None, 3)               15
            1 (ReLU)              (None, 3)                0
            2 (Dense)             (None, 1)                4
            =================================================
            Total params: 19
        """
        shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
        ids = bool(self._layers) and isinstance(self._layers[0], Embedding)  # token ids in
        x: Any = np.zeros((1, *shape), dtype=np.int64 if ids else self.dtype or np.float32)
        rows: List[Tuple[str, str, int]] = []
        with evaluation_mode(self):
            for name, layer in self.named_children():
                x = layer(x)
                count = sum(p.size for p in layer.parameters())
                out = x[0] if isinstance(x, tuple) else x  # a recurrent layer's (output, state): the output's shape
                rows.append((f"{name} ({type(layer).__name__})", str((None, *out.shape[1:])), count))
        width = max([19, *(len(out_shape) + 2 for _, out_shape, _ in rows)])
        first = max([22, *(len(label) + 2 for label, _, _ in rows)])
        rule = "=" * (first + 8 + width)
        print_fn(f"{'Layer (type)':<{first}}{'Output Shape':<{width}}{'Param #':>8}")
        print_fn(rule)
        for label, out_shape, count in rows:
            print_fn(f"{label:<{first}}{out_shape:<{width}}{count:>8,}")
        print_fn(rule)
        print_fn(f"Total params: {sum(p.size for p in self.parameters()):,}")
