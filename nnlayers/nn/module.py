"""`Parameter` and `Layer`: the contract every layer follows.

A layer's ``forward(x)`` keeps what its ``backward`` needs in the layer itself (one slot,
overwritten by every call: the seed's ``cache``, split per layer). ``backward(grad_y)`` adds the
parameter gradients into ``param.grad`` and returns the gradient of the input.

As in PyTorch, assigning a `Parameter` or a `Layer` to an attribute declares it (so a custom
layer cannot lose a parameter by forgetting to register it); `Layer.register_parameter`,
`Layer.register_module` and `Layer.register_buffer` do the same explicitly.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..utils.threads import matmul
from ..utils.types import Array
from .grad_mode import is_grad_enabled


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
        self._grad: Array = np.zeros(self.data.shape, self.data.dtype)  # calloc: pages only touched when written
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

    def accumulate(self, value: Array) -> None:
        """``grad += value``; right after `zero_grad` the value is copied in instead (no zero pass)."""
        if self._grad_is_stale:
            self._grad[...] = value
            self._grad_is_stale = False
        else:
            self._grad += value

    def add_matmul(self, a: Array, b: Array) -> None:
        """``grad += a @ b``; right after `zero_grad` the product is written in place instead."""
        fresh, self._grad_is_stale = self._grad_is_stale, False
        matmul(a, b, out=self._grad) if fresh else np.add(self._grad, matmul(a, b), out=self._grad)  # no extra pass

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def _check_name(owner: Layer, kind: str, name: Any) -> None:
    """Refuse names that would break dotted state-dict keys or shadow something else."""
    if not isinstance(name, str):
        raise TypeError(f"{type(owner).__name__}.register_{kind} expected a str name, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{type(owner).__name__}.register_{kind}: the name must not be empty")
    if "." in name:
        raise ValueError(f"{type(owner).__name__}.register_{kind}: name {name!r} contains '.', which separates "
                         "the parts of state-dict keys; use '_' instead")  # fmt: skip
    if name in owner.__dict__ or hasattr(type(owner), name):
        raise ValueError(f"{type(owner).__name__}.register_{kind}: the name {name!r} is already used in this layer")


_NOTHING_KEPT: Dict[str, Any] = {}  # what a forward inside `no_grad` saves
_AFTER_NO_GRAD = "after a forward inside nnlayers.no_grad(), which keeps nothing for backward"


class Layer:
    """Base class of every layer; subclass it to write your own.

    A subclass implements ``forward(x)`` and ``backward(grad_y)``. ``forward`` keeps what
    ``backward`` needs (`save_for_backward`); ``backward`` adds (``+=``) into each
    ``param.grad`` and returns the gradient with respect to ``x``. Trainable arrays are
    `Parameter` attributes, sub-layers are `Layer` attributes: assigning them declares them,
    as in PyTorch. Non-trained state that must be saved (running statistics) is declared with
    `register_buffer`. Check a new layer with `nnlayers.gradcheck`.

    Examples:
        >>> class Scale(Layer):
        ...     def __init__(self, n):
        ...         super().__init__()
        ...         self.gain = Parameter(np.ones(n))  # declared by the assignment
        ...     def forward(self, x):
        ...         self.save_for_backward(x=x)
        ...         return x * self.gain.data
        ...     def backward(self, grad_y):
        ...         x = self.saved("x")
        ...         self.gain.grad += (grad_y * x).sum(axis=0)
        ...         return grad_y * self.gain.data
        >>> layer = Scale(3)
        >>> [name for name, _ in layer.named_parameters()]
        ['gain']
        >>> layer(np.ones((2, 3))).shape
        (2, 3)
    """

    #: ``True`` after `train`, ``False`` after `eval`; layers start in training mode.
    training: bool = True
    #: Whether the layer takes images ``(N, H, W, C)`` (``True``) or rows ``(N, D)`` (``False``), or
    #: ``None`` for element-wise layers that take either: `fit` and `predict` give a model the form
    #: its first layer that is not element-wise takes.
    takes_images: Optional[bool] = False
    #: Whether the layer takes sequences ``(N, T, ...)`` as they are (`fit` neither flattens nor scales them).
    takes_sequences: bool = False

    def __init__(self) -> None:
        self.__dict__.update(_params={}, _children={}, _buffers={}, _saved=None)
        self.training = True

    # --- declaring parameters, sub-layers and buffers -----------------------------------------

    def _registry(self, kind: str) -> Dict[str, Any]:
        # setdefault: a subclass that forgot super().__init__() still works
        return self.__dict__.setdefault(kind, {})

    def register_parameter(self, name: str, value: Union[Parameter, ArrayLike]) -> Parameter:
        """Declare a trainable array under ``name`` (also set as ``self.<name>``); return its `Parameter`.

        Raises:
            ValueError: ``name`` is empty, contains ``.``, or is already used in this layer.
        """
        _check_name(self, "parameter", name)
        param = value if isinstance(value, Parameter) else Parameter(value)
        self.__setattr__(name, param)
        return param

    def register_module(self, name: str, layer: Layer) -> Layer:
        """Declare a sub-layer under ``name`` (its parameters become ``name.<param>``); return it.

        Raises:
            ValueError: ``name`` is empty, contains ``.`` or is already used, or ``layer`` (or a
                layer inside it) is already part of this one: each layer object appears once in a
                model, since it keeps one forward cache.
        """
        _check_name(self, "module", name)
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a Layer for {name!r}, got {type(layer).__name__}")
        self.__setattr__(name, layer)
        return layer

    def register_layer(self, name: str, layer: Layer) -> Layer:
        """Deprecated name of `register_module` (``nnlayers.register_layer`` is for model files)."""
        warnings.warn(
            "Layer.register_layer was renamed register_module (as in PyTorch); assigning the layer to an "
            "attribute also declares it",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.register_module(name, layer)

    def register_buffer(self, name: str, value: ArrayLike) -> Array:
        """Declare state that is saved and loaded but never trained (e.g. BatchNorm's running mean).

        The array is set as ``self.<name>``, appears in `state_dict` and model files, is cast by
        `to` when it is floating point, and is never touched by optimizers. Update it in place
        (``self.running_mean *= 0.9``) or by assigning a new array to the attribute.
        """
        _check_name(self, "buffer", name)
        array = np.asarray(value)
        self._registry("_buffers")[name] = array
        object.__setattr__(self, name, array)
        return array

    def __setattr__(self, name: str, value: Any) -> None:
        params, children, buffers = self._registry("_params"), self._registry("_children"), self._registry("_buffers")
        if isinstance(value, Parameter):
            children.pop(name, None)
            params[name] = value
        elif isinstance(value, Layer):
            if children.get(name) is not value:
                own = self.__dict__.get("_building_ids") or {id(m) for _, m in self.named_modules()}
                self._refuse_shared(name, value, own)
            params.pop(name, None)
            children[name] = value
            value.__dict__["_has_parent"] = True
        elif name in params or name in children:
            if value is not None:
                kind = "parameter" if name in params else "sub-layer"
                raise TypeError(
                    f"cannot assign {type(value).__name__} to {type(self).__name__}.{name}, a {kind}: assign a "
                    f"{'Parameter' if name in params else 'Layer'} (or None to remove it), or change its values in "
                    f"place ({name}.data[...] = ...)"
                )
            params.pop(name, None)
            children.pop(name, None)
        elif name in buffers:
            buffers[name] = np.asarray(value)
            value = buffers[name]
        object.__setattr__(self, name, value)

    def _refuse_shared(self, name: str, layer: Layer, own: set) -> None:
        """A layer may appear once in a model (it keeps one cache); ``own``, the ids of those in it, gains ``layer``'s."""
        inside = [inner for _, inner in layer.named_modules()]
        for inner in inside:
            if id(inner) in own:
                what = "this layer itself" if inner is self else f"a {type(inner).__name__} that is already in it"
                raise ValueError(
                    f"cannot add {type(layer).__name__} as {name!r} to {type(self).__name__}: it contains {what}. "
                    "A layer object can appear only once in a model (it keeps one forward cache); create a "
                    "second layer, and copy the weights if they should start equal"
                )
        own.update(id(inner) for inner in inside)

    def named_children(self) -> Iterator[Tuple[str, Layer]]:
        """Yield ``(name, layer)`` for each direct sub-layer."""
        yield from self._registry("_children").items()

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, Layer]]:
        """Yield ``(name, layer)`` for this layer (name ``""``) and every layer inside it, depth first."""
        yield prefix.rstrip("."), self
        for child_name, child in self.named_children():
            yield from child.named_modules(f"{prefix}{child_name}.")

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        """Yield ``(name, parameter)`` pairs, sub-layers' names dotted as in PyTorch."""
        for name, param in self._registry("_params").items():
            yield prefix + name, param
        for child_name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, Array]]:
        """Yield ``(name, array)`` for every buffer, dotted as parameters are."""
        for name, buffer in self._registry("_buffers").items():
            yield prefix + name, buffer
        for child_name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{child_name}.")

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
        """Cast every parameter (and its gradient) and floating-point buffer to ``dtype``, in place."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"to() expected a floating-point dtype, got {dtype}")
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.grad = param.grad.astype(dtype)
        for _, layer in self.named_modules():
            for name, buffer in list(layer._registry("_buffers").items()):
                if np.issubdtype(buffer.dtype, np.floating):
                    setattr(layer, name, buffer.astype(dtype))
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

        Layers for which that gradient is costly (`Dense`, `Conv2D`) override this to skip it.
        """
        self.backward(grad_y)

    def __call__(self, x: Array, *args: Any, **kwargs: Any) -> Any:
        return self.forward(x, *args, **kwargs)  # (a recurrent layer's hx, attention's masks pass through)

    def _cached(self, value: Optional[Array]) -> Array:
        """Kept for layers written before `saved` existed: the value, or the backward-before-forward error."""
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return value

    def save_for_backward(self, **values: Any) -> None:
        """Keep what `backward` needs, by name; each call replaces what the previous one kept.

        The seed's ``cache``, split per layer: call it in ``forward`` and read the values back
        with `saved` in ``backward``. Inside `no_grad` nothing is kept.
        """
        self.__dict__["_saved"] = values if is_grad_enabled() else _NOTHING_KEPT

    def saved(self, *names: str) -> Any:
        """What `save_for_backward` kept: one value for one name, a tuple for several.

        Raises:
            RuntimeError: ``forward`` has not run since the layer was made, or ran inside `no_grad`.
        """
        kept, name = self.__dict__.get("_saved"), type(self).__name__
        if kept is None or kept is _NOTHING_KEPT:
            raise RuntimeError(f"{name}.backward() called " + ("before forward()" if kept is None else _AFTER_NO_GRAD))
        try:
            values = tuple(kept[key] for key in names)
        except KeyError as missing:
            raise KeyError(f"{name}.forward() did not save {missing} (it saved {sorted(kept)})") from None
        return values[0] if len(values) == 1 else values

    # --- state -----------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Array]:
        """A copy of every parameter and buffer, keyed by dotted name (PyTorch's keys, order and shapes)."""
        state: Dict[str, Array] = {}
        for prefix, layer in self.named_modules():
            dotted = f"{prefix}." if prefix else ""
            for name, param in layer._registry("_params").items():
                state[dotted + name] = param.data.copy()
            for name, buffer in layer._registry("_buffers").items():
                state[dotted + name] = np.array(buffer, copy=True)
        return state

    def _state_arrays(self) -> Dict[str, Array]:
        """The live arrays behind `state_dict` (parameters' data and buffers), not copies."""
        arrays: Dict[str, Array] = {name: p.data for name, p in self.named_parameters()}
        arrays.update(self.named_buffers())
        return arrays

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Tuple[List[str], List[str]]:
        """Copy values from ``state`` into the parameters and buffers, cast to each one's dtype.

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
        targets = self._state_arrays()
        missing = [name for name in targets if name not in state]
        unexpected = [name for name in state if name not in targets]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        values = {}
        for name, target in targets.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != target.shape:
                problems.append(f"{name}: expected shape {target.shape}, got {value.shape}")
            elif not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                problems.append(f"{name}: expected a numeric array, got dtype {value.dtype}")
            else:
                values[name] = value
        if problems:
            raise ValueError(f"cannot load state dict into {type(self).__name__}: " + "; ".join(problems))
        for name, value in values.items():
            targets[name][...] = value  # in place: optimizers keep their references
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
