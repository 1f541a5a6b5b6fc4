"""Which layer classes a model file may name: the built-in ones (by their bare names) and those you
registered (by module and name). Loading builds only these: a file never names code to import."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type, TypeVar

from ..nn.blocks import BasicBlock
from ..nn.branching import Add, Concat, Identity, ModuleList, Residual
from ..nn.container import Sequential
from ..nn.layers.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..nn.layers.attention import MultiheadAttention
from ..nn.layers.conv import Conv1D, Conv2D, ConvTranspose2D
from ..nn.layers.dropout import Dropout
from ..nn.layers.embedding import Embedding, PositionalEmbedding
from ..nn.layers.linear import Dense
from ..nn.layers.normalization import BatchNorm1D, BatchNorm2D, GroupNorm, LayerNorm
from ..nn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from ..nn.layers.recurrent import GRU, LSTM, RNN
from ..nn.layers.resampling import AdaptiveAvgPool2D, Upsample2D
from ..nn.layers.reshape import Flatten
from ..nn.layers.sequence import ClassToken, FinalState, ImageToSequence, MeanOverTime, SequenceOutput, TakeStep
from ..nn.layers.smooth import ELU, GELU, Hardswish, SiLU, Softplus
from ..nn.layers.transformer import TransformerEncoder, TransformerEncoderLayer
from ..nn.module import Layer
from .modelfile import ModelFileError

LayerT = TypeVar("LayerT", bound=Type[Layer])


#: Built-in layers are stored under their bare class names; custom ones under ``module.QualName``.
BUILTIN_LAYERS: Dict[str, Type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Tanh,
        Sigmoid,
        ReLU,
        LeakyReLU,
        Softmax,
        Sequential,
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        GlobalAvgPool2D,
    )
    + (Flatten, BatchNorm1D, BatchNorm2D, Dropout)
    + (Identity, Add, Concat, Residual, ModuleList, BasicBlock)
    + (
        LogSoftmax,
        GELU,
        SiLU,
        ELU,
        Softplus,
        Hardswish,
        LayerNorm,
        GroupNorm,
        Upsample2D,
        AdaptiveAvgPool2D,
        ConvTranspose2D,
        Conv1D,
    )
    + (Embedding, PositionalEmbedding, RNN, LSTM, GRU, MultiheadAttention, TransformerEncoderLayer, TransformerEncoder)
    + (SequenceOutput, FinalState, TakeStep, MeanOverTime, ImageToSequence, ClassToken)
}


_REGISTRY: Dict[str, Type[Layer]] = dict(BUILTIN_LAYERS)


def layer_key(cls: Type[Layer]) -> str:
    """The key of a layer class in the registry: ``"Dense"``, or ``"my_module.MyLayer"``."""
    if BUILTIN_LAYERS.get(cls.__name__) is cls:
        return cls.__name__
    return f"{cls.__module__}.{cls.__name__}"


def register_layer(cls: Optional[LayerT] = None, *, replace: bool = False) -> Any:
    """Make a custom `Layer` subclass loadable from model files (use as a class decorator).

    The file stores the class's module and name (``my_module.MyLayer``) and
    ``layer.get_config()``; loading calls ``cls(**config)`` and then loads the weights. A file
    that names the class from another module (a script's ``__main__``) still finds it by its
    name when only one registered class has that name.

    Args:
        cls: The class.
        replace: Allow replacing another class registered under the same module and name (a
            notebook cell run again); otherwise that is an error.

    Examples:
        >>> from nnlayers import Layer
        >>> @register_layer
        ... class Doubler(Layer):
        ...     def forward(self, x): return 2 * x
        ...     def backward(self, grad_y): return 2 * grad_y
        >>> layer_key(Doubler) in registered_layers()
        True
    """
    if cls is None:
        return lambda c: register_layer(c, replace=replace)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer expects a Layer subclass, got {cls!r}")
    if cls.__name__ in BUILTIN_LAYERS and BUILTIN_LAYERS[cls.__name__] is not cls:
        raise ValueError(f"{cls.__name__} is a built-in layer name; choose another class name")
    key = layer_key(cls)
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls and not replace:
        raise ValueError(
            f"another class is already registered as {key!r} (from {existing.__module__}); rename one of them, "
            "or pass register_layer(replace=True) when you mean to replace it (e.g. a notebook cell run again)"
        )
    _REGISTRY[key] = cls
    return cls


def registered_layers() -> Dict[str, Type[Layer]]:
    """The layer classes that model files can name, by the key they are stored under."""
    return dict(_REGISTRY)


def _find_class(name: str, custom_layers: Optional[Mapping[str, Type[Layer]]]) -> Optional[Type[Layer]]:
    """The class a file names: by its full key, then (for files from a script) by its bare name if unique."""
    known = {**_REGISTRY, **(custom_layers or {})}
    if name in known:
        return known[name]
    bare = name.rsplit(".", 1)[-1]
    candidates = {cls for key, cls in known.items() if key.rsplit(".", 1)[-1] == bare}
    if len(candidates) > 1:
        raise ModelFileError(
            f"layer type {name!r} is not registered, and several registered classes are named {bare}: "
            f"pass custom_layers={{{name!r}: TheClass}} to load()"
        )
    return candidates.pop() if candidates else None
