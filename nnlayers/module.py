"""`Parameter` and `Layer`: the contract every layer follows.

A layer's ``forward(x)`` keeps what its ``backward`` needs in the layer itself (one slot,
overwritten by every call: the seed's ``cache``, split per layer). ``backward(grad_y)`` adds the
parameter gradients into ``param.grad`` and returns the gradient of the input.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

Array = np.ndarray


class Parameter:
    """A trainable array and the gradient accumulated for it.

    Args:
        data: The initial values. Kept as given (no copy) when it is already an ndarray.

    Attributes:
        data: The values, updated in place by optimizers.
        grad: The gradient, same shape and dtype as ``data``; ``backward`` adds into it.

    Examples:
        >>> p = Parameter(np.ones((2, 3), dtype=np.float32))
        >>> p.shape, p.dtype, float(p.grad.sum())
        ((2, 3), dtype('float32'), 0.0)
    """

    __slots__ = ("data", "_grad", "_grad_is_stale")

    def __init__(self, data: ArrayLike) -> None:
        self.data: Array = np.asarray(data)
        if not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"Parameter expected a floating-point array, got {self.data.dtype}")
        self._grad: Array = np.zeros_like(self.data)
        # zero_grad() only marks the gradient stale; it is zeroed when next read, or simply
        # overwritten by add_matmul: no pass over memory just to write zeros
        self._grad_is_stale = False

    @property
    def grad(self) -> Array:
        if self._grad_is_stale:
            self._grad.fill(0)
            self._grad_is_stale = False
        return self._grad

    @grad.setter
    def grad(self, value: Array) -> None:
        self._grad = np.asarray(value)
        self._grad_is_stale = False

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def zero_grad(self) -> None:
        """Set the gradient to zero."""
        self._grad_is_stale = True

    def add_matmul(self, a: Array, b: Array) -> None:
        """``grad += a @ b``; right after `zero_grad` the product is written in place instead."""
        if self._grad_is_stale:
            np.matmul(a, b, out=self._grad)  # no temporary array, no extra pass
            self._grad_is_stale = False
        else:
            self._grad += a @ b

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def check_float_input(layer: object, x: Any, dtype: Optional[np.dtype] = None) -> Array:
    """Return ``x`` as a floating-point ndarray, or raise a `TypeError` naming ``layer``.

    Integer, boolean, complex and object arrays are refused rather than silently converted: raw
    uint8 pixels fed to a network are a bug (scale them to [0, 1] first). When ``dtype`` is
    given, the array is cast to it, so a float32 model never computes in float64.
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        hint = " (scale images to floats in [0, 1] first)" if arr.dtype.kind in "ui" else ""
        raise TypeError(f"{layer} expected a floating-point array, got dtype {arr.dtype}{hint}")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


class Layer:
    """Base class of every layer; subclass it to write your own.

    A subclass implements ``forward(x)`` and ``backward(grad_y)`` and declares each trainable
    array with `register_parameter` (sub-layers with `register_layer`). ``forward`` stores what
    ``backward`` needs on ``self``; ``backward`` adds (``+=``) into each ``param.grad`` and returns
    the gradient with respect to ``x``. Check a new layer with `nnlayers.gradcheck`.

    Examples:
        >>> class Scale(Layer):
        ...     def __init__(self, n):
        ...         super().__init__()
        ...         self.gain = self.register_parameter("gain", np.ones(n))
        ...     def forward(self, x):
        ...         self.x = x
        ...         return x * self.gain.data
        ...     def backward(self, grad_y):
        ...         self.gain.grad += (grad_y * self.x).sum(axis=0)
        ...         return grad_y * self.gain.data
        >>> layer = Scale(3)
        >>> [name for name, _ in layer.named_parameters()]
        ['gain']
        >>> layer(np.ones((2, 3))).shape
        (2, 3)
    """

    #: ``True`` after `train`, ``False`` after `eval`.
    training: bool = True

    def __init__(self) -> None:
        self._params: Dict[str, Parameter] = {}
        self._children: Dict[str, Layer] = {}
        self.training = True

    # --- declaring parameters and sub-layers -------------------------------------------------

    def register_parameter(self, name: str, value: Union[Parameter, ArrayLike]) -> Parameter:
        """Declare a trainable array under ``name`` and return its `Parameter`."""
        param = value if isinstance(value, Parameter) else Parameter(value)
        self.__dict__.setdefault("_params", {})[name] = param
        return param

    def register_layer(self, name: str, layer: Layer) -> Layer:
        """Declare a sub-layer under ``name`` (its parameters become ``name.<param>``)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a Layer for {name!r}, got {type(layer).__name__}")
        self.__dict__.setdefault("_children", {})[name] = layer
        return layer

    def named_children(self) -> Iterator[Tuple[str, Layer]]:
        """Yield ``(name, layer)`` for each direct sub-layer."""
        yield from self.__dict__.get("_children", {}).items()

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        """Yield ``(name, parameter)`` pairs, sub-layers' names dotted as in PyTorch."""
        for name, param in self.__dict__.get("_params", {}).items():
            yield prefix + name, param
        for child_name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def parameters(self) -> List[Parameter]:
        """All trainable parameters, this layer's first, then each sub-layer's in order."""
        return [param for _, param in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for param in self.parameters():
            param.zero_grad()

    @property
    def dtype(self) -> Optional[np.dtype]:
        """The dtype of the parameters, or ``None`` for a layer without any."""
        params = self.parameters()
        return params[0].dtype if params else None

    def to(self, dtype: DTypeLike) -> Layer:
        """Cast every parameter (and its gradient) to ``dtype``, in place; return ``self``."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"to() expected a floating-point dtype, got {dtype}")
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.grad = param.grad.astype(dtype)
        return self

    # --- modes ---------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Layer:
        """Put this layer and its sub-layers in training mode (``mode=False``: evaluation)."""
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self) -> Layer:
        """Put this layer and its sub-layers in evaluation mode."""
        return self.train(False)

    # --- computation -------------------------------------------------------------------------

    def forward(self, x: Array) -> Array:
        """Compute the output and keep what `backward` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, grad_y: Array) -> Array:
        """Add parameter gradients into ``param.grad``; return the gradient of the input."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad_y)")

    def backward_params(self, grad_y: Array) -> None:
        """Like `backward`, but the input gradient is not wanted (the first layer of a model).

        Layers for which that gradient is costly (`Dense`) override this to skip it.
        """
        self.backward(grad_y)

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def _cached(self, value: Optional[Array]) -> Array:
        """Return a value stored by forward, or raise if forward has not run yet."""
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return value

    # --- state -----------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Array]:
        """A copy of every parameter, keyed by its dotted name (PyTorch's keys and shapes)."""
        return {name: param.data.copy() for name, param in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Tuple[List[str], List[str]]:
        """Copy values from ``state`` into the parameters, cast to each parameter's dtype.

        Args:
            state: A mapping of dotted names to arrays (numpy arrays, or anything
                ``np.asarray`` accepts, such as CPU ``torch`` tensors).
            strict: When true, missing and unexpected keys are an error; when false they are
                returned and the matching keys loaded. A mis-shaped value is always an error.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            ValueError: On missing, unexpected or mis-shaped keys; nothing is loaded then.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict expected a mapping of names to arrays, got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = [name for name in params if name not in state]
        unexpected = [name for name in state if name not in params]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        values = {}
        for name, param in params.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != param.shape:
                problems.append(f"{name}: expected shape {param.shape}, got {value.shape}")
            elif not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                problems.append(f"{name}: expected a numeric array, got dtype {value.dtype}")
            else:
                values[name] = value
        if problems:
            raise ValueError(f"cannot load state dict into {type(self).__name__}: " + "; ".join(problems))
        for name, value in values.items():
            params[name].data[...] = value  # in place: optimizers keep their references
        return missing, unexpected

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer in a model file (weights aside).

        Override it when ``__init__`` takes arguments: ``type(self)(**self.get_config())`` must
        build an equivalent layer.
        """
        return {}

    # --- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside the parentheses of ``repr``; override to show constructor arguments."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in children:
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"
