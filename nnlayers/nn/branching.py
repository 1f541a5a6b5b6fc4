"""Networks that branch: one input feeds several paths that meet again (ResNet's skip connection,
U-Net's concatenations, a Transformer block's residual paths), with the backward derived from the
parts.

- `Identity` passes its input on (the shortcut of a residual block).
- `Add` and `Concat` run parallel branches on the same input and merge their outputs: a sum, or a
  concatenation on the last axis (the channels of channels-last images).
- `Residual` is ``body(x) + shortcut(x)``, the shortcut an identity unless given.
- `ModuleList` holds layers that a custom ``forward`` calls in its own order (PyTorch's ``ModuleList``).

The backward of a fork follows from the chain rule: the input feeds every branch, so its gradient
is the **sum** of the gradients each branch sends back; at a concatenation each branch gets its own
slice of the output's gradient. As the first layer of a model (`Layer.backward_params`), every
branch skips the input gradient that nobody needs.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union, overload

import numpy as np

from ..utils.checks import is_int
from ..utils.types import Array
from .module import Layer


class Identity(Layer):
    """Return the input unchanged (``torch.nn.Identity``): the shortcut of a residual block.

    Examples:
        >>> Identity()(np.ones((2, 3))).shape
        (2, 3)
    """

    takes_images = None  # rows or images

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, grad_y: Array) -> Array:
        return grad_y

    def backward_params(self, grad_y: Array) -> None:
        return None


class _Branches(Layer):
    """Parallel branches on one input, merged by `merge`; the input gradient is the sum of the branches'."""

    takes_images = None  # the branches' first layers decide

    def __init__(self, branches: Sequence[Layer], names: Sequence[str]) -> None:
        super().__init__()
        if not branches:
            raise ValueError(f"{type(self).__name__} needs at least one branch")
        for name, branch in zip(names, branches):
            if not isinstance(branch, Layer):
                raise TypeError(f"{type(self).__name__} takes layers, got {type(branch).__name__} for {name!r}")
            self.register_module(name, branch)

    @property
    def branches(self) -> List[Layer]:
        return [layer for _, layer in self.named_children()]

    def merge(self, outputs: List[Array]) -> Array:
        raise NotImplementedError

    def split(self, grad_y: Array) -> List[Array]:
        """The gradient of each branch's output, from the merged output's."""
        raise NotImplementedError

    def forward(self, x: Array) -> Array:
        outputs = [branch(x) for branch in self.branches]
        self.save_for_backward(x_shape=np.shape(x), shapes=[np.shape(o) for o in outputs])
        return self.merge(outputs)

    def backward(self, grad_y: Array) -> Array:
        x_shape = self.saved("x_shape")
        grad_x: Optional[Array] = None
        for (name, branch), grad in zip(self.named_children(), self.split(np.asarray(grad_y))):
            part = branch.backward(grad)
            if np.shape(part) != x_shape:
                raise ValueError(
                    f"branch {name!r} ({type(branch).__name__}) of {type(self).__name__}: backward returned shape "
                    f"{np.shape(part)}, expected the shape of its input {x_shape}"
                )
            grad_x = part.copy() if grad_x is None else grad_x + part  # a fork: the gradients add up
        assert grad_x is not None
        return grad_x

    def backward_params(self, grad_y: Array) -> None:
        for branch, grad in zip(self.branches, self.split(np.asarray(grad_y))):
            branch.backward_params(grad)


class Add(_Branches):
    """The sum of parallel branches on the same input (Keras ``Add`` of branches that share an input).

    ``y = branch_0(x) + branch_1(x) + ...``; every branch's output must have the same shape. Children
    are named ``"0"``, ``"1"``, ... as in `Sequential`.

    Examples:
        >>> from nnlayers import Dense
        >>> block = Add(Dense(4, 4, rng=0), Identity())  # a residual connection
        >>> block(np.ones((2, 4), np.float32)).shape
        (2, 4)
    """

    def __init__(self, *branches: Layer) -> None:
        super().__init__(list(branches), [str(i) for i in range(len(branches))])

    @classmethod
    def from_children(cls, children: Dict[str, Layer], config: Dict[str, Any]) -> Layer:
        """Rebuild from a model file (the saved branches, in order); a subclass with its own constructor is
        built from its ``get_config()`` instead."""
        return cls(*children.values(), **config)

    def merge(self, outputs: List[Array]) -> Array:
        shapes = {np.shape(o) for o in outputs}
        if len(shapes) > 1:
            raise ValueError(f"{type(self).__name__}'s branches gave outputs of different shapes {sorted(shapes)}")
        total = np.array(outputs[0], copy=True)
        for out in outputs[1:]:
            total += out
        return total

    def split(self, grad_y: Array) -> List[Array]:
        return [grad_y] * len(self.branches)  # each branch's output moves the sum one for one


class Concat(_Branches):
    """Parallel branches on the same input, concatenated on ``axis`` (the channels of images by default).

    As Keras ``Concatenate(axis=-1)`` of branches that share an input (U-Net's skip connections,
    Inception's towers). The outputs must agree on every other axis.

    Args:
        *branches: The layers.
        axis: The axis to concatenate on (``-1``: the last, the channels of channels-last images).

    Examples:
        >>> from nnlayers import Conv2D
        >>> block = Concat(Conv2D(3, 4, 1, rng=0), Identity())
        >>> block(np.zeros((2, 8, 8, 3), np.float32)).shape
        (2, 8, 8, 7)
    """

    def __init__(self, *branches: Layer, axis: int = -1) -> None:
        if not is_int(axis):
            raise TypeError(f"Concat axis must be an int, got {axis!r}")
        self.axis = int(axis)
        super().__init__(list(branches), [str(i) for i in range(len(branches))])

    @classmethod
    def from_children(cls, children: Dict[str, Layer], config: Dict[str, Any]) -> Layer:
        return cls(*children.values(), **config)

    def merge(self, outputs: List[Array]) -> Array:
        try:
            return np.concatenate(outputs, axis=self.axis)
        except ValueError:
            shapes = [np.shape(o) for o in outputs]
            raise ValueError(f"Concat(axis={self.axis}) cannot join branch outputs of shapes {shapes}") from None

    def split(self, grad_y: Array) -> List[Array]:
        sizes = [shape[self.axis] for shape in self.saved("shapes")]
        return np.split(grad_y, np.cumsum(sizes)[:-1], axis=self.axis)

    def get_config(self) -> Dict[str, Any]:
        return {"axis": self.axis}

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Residual(Add):
    """``body(x) + shortcut(x)``: a residual connection (He et al., 2015), the shortcut an identity by default.

    The gradient reaches the input through both paths and the two add up: through the identity
    it arrives unchanged, however deep the body, which is why very deep residual networks still
    train. Children are named ``body`` and ``shortcut`` (state-dict keys ``body.0.weight``, ...).

    Args:
        body: The layers the input goes through (often a `Sequential`).
        shortcut: The path around them: `Identity` (default), or a projection such as a 1x1
            `Conv2D` with stride when the body changes the shape.

    Examples:
        >>> from nnlayers import Dense, Tanh, Sequential
        >>> block = Residual(Sequential([Dense(4, 4, rng=0), Tanh()]))
        >>> block(np.ones((2, 4), np.float32)).shape
        (2, 4)
    """

    def __init__(self, body: Layer, shortcut: Optional[Layer] = None) -> None:
        _Branches.__init__(self, [body, shortcut if shortcut is not None else Identity()], ["body", "shortcut"])

    @classmethod
    def from_children(cls, children: Dict[str, Layer], config: Dict[str, Any]) -> Layer:
        return cls(children["body"], children["shortcut"], **config)


class ModuleList(Layer):
    """A list of layers that a custom ``forward`` calls in its own order (``torch.nn.ModuleList``).

    The layers are registered (their parameters are the list's, with keys ``0.weight``, ...), but
    the list has no ``forward`` of its own: a block that holds one runs its layers and, in its
    ``backward``, sends the gradient back through them in reverse.

    Examples:
        >>> from nnlayers import Dense
        >>> layers = ModuleList([Dense(4, 4, rng=i) for i in range(3)])
        >>> len(layers), [name for name, _ in layers.named_parameters()][:2]
        (3, ['0.weight', '0.bias'])
    """

    takes_images = None

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> ModuleList:
        """Add ``layer`` at the end; return the list."""
        if not isinstance(layer, Layer):
            raise TypeError(f"ModuleList takes layers, got {type(layer).__name__}")
        self.register_module(str(len(self)), layer)
        return self

    def __len__(self) -> int:
        return len(self._registry("_children"))

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._registry("_children").values()))

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> List[Layer]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Layer, List[Layer]]:
        layers = list(self)
        if isinstance(index, slice):
            return layers[index]
        if not is_int(index) or not -len(layers) <= index < len(layers):
            raise IndexError(f"ModuleList index {index!r} is out of range for {len(layers)} layers")
        return layers[index]

    def forward(self, x: Array) -> Array:
        raise TypeError("a ModuleList has no forward: call its layers from your block's forward, in your order")

    def backward(self, grad_y: Array) -> Array:
        raise TypeError(
            "a ModuleList has no backward: send the gradient back through its layers in your block's backward"
        )

    @classmethod
    def from_children(cls, children: Dict[str, Layer], config: Dict[str, Any]) -> Layer:
        return cls(children.values())
