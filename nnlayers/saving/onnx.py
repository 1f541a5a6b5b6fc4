"""Export to ONNX: a trained model runs where numpy and nnlayers are not (ONNX Runtime, Netron, ...).

The graph takes the input as nnlayers does: rows ``(batch, D)`` for a dense model, channels-last
images ``(batch, H, W, C)`` for a convolutional one, with a dynamic batch dimension. Inside, the
convolutional part runs in ONNX's NCHW layout (one ``Transpose`` at its start), which is also the
order in which `Flatten` hands rows to the dense head. Class names, preprocessing and the
nnlayers version go into the file's metadata. Needs ``pip install 'nnlayers[onnx]'``.

A custom layer exports through a method ``export_onnx(self, graph, x) -> str``: it adds its
nodes with ``graph.node(...)`` and ``graph.constant(...)`` and returns the name of its output
(see `OnnxGraph`). A layer without it is refused with an error that names it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..nn.blocks import BasicBlock
from ..nn.branching import Add, Concat, Identity, Residual
from ..nn.container import Sequential, evaluation_mode
from ..nn.layers.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..nn.layers.conv import Conv1D, Conv2D, ConvTranspose2D
from ..nn.layers.dropout import Dropout
from ..nn.layers.linear import Dense
from ..nn.layers.normalization import BatchNorm1D, BatchNorm2D, GroupNorm, LayerNorm, _BatchNorm
from ..nn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from ..nn.layers.resampling import AdaptiveAvgPool2D, Upsample2D, _Separable
from ..nn.layers.reshape import Flatten
from ..nn.layers.smooth import ELU, GELU, Hardswish, SiLU, Softplus
from ..nn.module import Layer
from ..nn.structure import first_layer, flattens_input
from ..utils.files import atomic_write_bytes
from ..utils.types import PathLike
from .onnx_activations import element_wise, smooth
from .onnx_sequence import SEQUENCE_EXPORTERS, linear, sequence_input

DEFAULT_OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'nnlayers[onnx]'") from None
    return onnx


class OnnxGraph:
    """The graph being built; what a custom layer's ``export_onnx(graph, x)`` receives.

    Attributes:
        dtype: The model's float dtype (``np.float32`` or ``np.float64``).
        layout: ``"rows"`` (``(N, D)``), ``"nhwc"`` (the model's input images) or ``"nchw"``
            (inside the convolutional part): the layout of the tensor being passed along.
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.onnx = _onnx()
        self.dtype = np.dtype(dtype)
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.layout = "rows"
        self.sequence = False  # a sequence (N, T, F) in the "rows" layout
        self.state: Optional[str] = None  # a recurrent layer's final state h_n, for a FinalState
        self.opset = DEFAULT_OPSET
        self._count = 0

    def name(self, hint: str) -> str:
        """A fresh tensor name."""
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, array: np.ndarray, dtype: Optional[np.dtype] = None) -> str:
        """Add an initializer (a weight) and return its name."""
        name = self.name(hint)
        values = np.asarray(array, dtype=dtype if dtype is not None else self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(values, name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], **attributes: Any) -> str:
        """Add one node with a single output and return the output's name."""
        output = self.name(op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def add_layer(self, layer: Layer, x: str) -> str:
        """Add the nodes of ``layer`` (built-in, nested, or with its own ``export_onnx``) on ``x``; return the output.

        A block's ``export_onnx`` calls it for its children, then adds what its own ``forward`` does.
        """
        return _export_layer(self, layer, x, type(layer).__name__)

    def to_nchw(self, x: str) -> str:
        """The tensor in NCHW order (ONNX's convolution layout), transposing once if it is channels-last."""
        if self.layout == "nhwc":
            x = self.node("Transpose", [x], perm=[0, 3, 1, 2])
            self.layout = "nchw"
        return x


def _dense(g: OnnxGraph, layer: Dense, x: str) -> str:
    if g.sequence:
        return linear(g, layer, x)
    inputs = [x, g.constant("weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(g.constant("bias", layer.bias.data))
    return g.node("Gemm", inputs, transB=1)


def _pad_as(g: OnnxGraph, layer: Conv2D, x: str, pads: List[int]) -> str:  # ONNX's Conv pads with zeros only
    modes = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    return g.node("Pad", [x, g.constant("pads", np.array(pads), np.dtype(np.int64))], mode=modes[layer.padding_mode])


def _conv(g: OnnxGraph, layer: Conv2D, x: str) -> str:
    x = g.to_nchw(x)
    inputs = [x, g.constant("weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(g.constant("bias", layer.bias.data))
    (ph, pw), strides = layer.padding, list(layer.stride)
    if layer.padding_mode != "zeros" and (ph or pw):
        inputs[0] = _pad_as(g, layer, x, [0, 0, ph, pw, 0, 0, ph, pw])
        ph = pw = 0
    return g.node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=strides, pads=[ph, pw, ph, pw],
                  dilations=list(layer.dilation), group=layer.groups)  # fmt: skip


def _conv1d(g: OnnxGraph, layer: Conv1D, x: str) -> str:
    """On sequences ``(N, L, C)`` (the "rows" layout, as nnlayers holds them): NCL for ONNX's Conv, and back."""
    if g.layout != "rows":
        raise ValueError("Conv1D takes sequences (N, L, C): export it with input_shape=(L, C)")
    inputs = [g.node("Transpose", [x], perm=[0, 2, 1]), g.constant("weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(g.constant("bias", layer.bias.data))
    p = layer.padding[1]
    if layer.padding_mode != "zeros" and p:
        inputs[0], p = _pad_as(g, layer, inputs[0], [0, 0, p, 0, 0, p]), 0
    y = g.node("Conv", inputs, kernel_shape=[layer.kernel_size[1]], strides=[layer.stride[1]], pads=[p, p],
               dilations=[layer.dilation[1]], group=layer.groups)  # fmt: skip
    return g.node("Transpose", [y], perm=[0, 2, 1])


def _conv_transpose(g: OnnxGraph, layer: ConvTranspose2D, x: str) -> str:
    inputs = [g.to_nchw(x), g.constant("weight", layer.weight.data)]  # ONNX's layout is torch's (in, out, kh, kw)
    if layer.bias is not None:
        inputs.append(g.constant("bias", layer.bias.data))
    (ph, pw) = layer.padding
    return g.node("ConvTranspose", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=[ph, pw, ph, pw], output_padding=list(layer.output_padding), dilations=list(layer.dilation))  # fmt: skip


def _pool(g: OnnxGraph, layer: Any, x: str) -> str:
    x = g.to_nchw(x)
    (ph, pw), options = layer.padding, {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride)}
    if isinstance(layer, MaxPool2D):
        return g.node("MaxPool", [x], pads=[ph, pw, ph, pw], ceil_mode=int(layer.ceil_mode), **options)
    return g.node("AveragePool", [x], pads=[ph, pw, ph, pw], count_include_pad=1, **options)


def _global_pool(g: OnnxGraph, layer: GlobalAvgPool2D, x: str) -> str:
    x = g.node("GlobalAveragePool", [g.to_nchw(x)])
    g.layout = "rows"
    return g.node("Flatten", [x], axis=1)


def _flatten(g: OnnxGraph, layer: Flatten, x: str) -> str:
    if g.layout == "rows":  # rows stay rows; sequences (N, L, C) flatten in the order they are stored
        return g.node("Flatten", [x], axis=1)
    x = g.to_nchw(x)  # nnlayers flattens in NCHW order, as torch
    g.layout = "rows"
    return g.node("Flatten", [x], axis=1)


def _batchnorm(g: OnnxGraph, layer: _BatchNorm, x: str) -> str:
    if not layer.track_running_stats:
        raise ValueError(
            f"{type(layer).__name__} without running statistics normalises with each batch's own statistics; "
            "ONNX's BatchNormalization needs fixed ones (train with track_running_stats=True)"
        )
    if isinstance(layer, BatchNorm2D):
        x = g.to_nchw(x)
    n = layer.num_features
    scale = layer.weight.data if layer.weight is not None else np.ones(n)
    bias = layer.bias.data if layer.bias is not None else np.zeros(n)
    inputs = [
        x,
        *(
            g.constant(k, v)
            for k, v in (("scale", scale), ("bias", bias), ("mean", layer.running_mean), ("var", layer.running_var))
        ),
    ]
    return g.node("BatchNormalization", inputs, epsilon=layer.eps)


def _channels_last(g: OnnxGraph, x: str) -> str:
    """The tensor in nnlayers' own layout (NCHW inside the convolutional part goes back to NHWC)."""
    if g.layout == "nchw":
        x = g.node("Transpose", [x], perm=[0, 2, 3, 1])
        g.layout = "nhwc"
    return x


def _separable(g: OnnxGraph, layer: _Separable, x: str) -> str:
    """Resizing as two MatMuls in NCHW, with the matrices of the export's image size (``A_h x A_w^T``)."""
    a_h, a_w = layer.__dict__["_a"]  # made by the forward pass that export_onnx runs first
    x = g.node("MatMul", [g.constant("rows", a_h), g.to_nchw(x)])
    return g.node("MatMul", [x, g.constant("columns", np.ascontiguousarray(a_w.T))])


def _layer_norm(g: OnnxGraph, layer: LayerNorm, x: str) -> str:
    x = _channels_last(g, x)  # it normalises nnlayers' last axes
    n = layer.normalized_shape
    scale = layer.weight.data if layer.weight is not None else np.ones(n)
    inputs = [x, g.constant("scale", scale)]
    if layer.bias is not None:
        inputs.append(g.constant("bias", layer.bias.data))
    return g.node("LayerNormalization", inputs, axis=-len(n), epsilon=layer.eps)


def _group_norm(g: OnnxGraph, layer: GroupNorm, x: str) -> str:
    """As InstanceNormalization of (N, G, rest): ONNX's GroupNormalization changed meaning between opsets."""
    rows = g.layout == "rows"
    x = x if rows else g.to_nchw(x)  # channels at axis 1 either way
    shape = g.node("Shape", [x])
    groups = g.node("Reshape", [x, g.constant("shape", np.array([0, layer.num_groups, -1]), np.dtype(np.int64))])
    ones, zeros = np.ones(layer.num_groups), np.zeros(layer.num_groups)
    normal = g.node("InstanceNormalization", [groups, g.constant("one", ones), g.constant("zero", zeros)],
                    epsilon=layer.eps)  # fmt: skip
    out = g.node("Reshape", [normal, shape])
    if layer.weight is None or layer.bias is None:
        return out
    per_channel = (1, layer.num_channels) if rows else (1, layer.num_channels, 1, 1)
    out = g.node("Mul", [out, g.constant("scale", layer.weight.data.reshape(per_channel))])
    return g.node("Add", [out, g.constant("bias", layer.bias.data.reshape(per_channel))])


def _branches(g: OnnxGraph, outputs: List[Tuple[str, str]]) -> List[str]:
    """Branch outputs (name, layout) brought to one layout (NCHW if any branch went there)."""
    layouts = {layout for _, layout in outputs}
    if len(layouts) > 1 and "rows" in layouts:
        raise ValueError("branches that give rows and images cannot be merged")
    g.layout = "nchw" if "nchw" in layouts else layouts.pop()
    return [g.node("Transpose", [x], perm=[0, 3, 1, 2]) if layout == "nhwc" and g.layout == "nchw" else x
            for x, layout in outputs]  # fmt: skip


def _run_branches(g: OnnxGraph, layers: List[Layer], x: str, where: str) -> List[str]:
    start, outputs = g.layout, []
    for i, layer in enumerate(layers):
        g.layout = start  # every branch starts from the block's input
        outputs.append((_export_layer(g, layer, x, f"{where}.{i}"), g.layout))
    return _branches(g, outputs)


def _add(g: OnnxGraph, layer: Add, x: str) -> str:
    total, *rest = _run_branches(g, layer.branches, x, type(layer).__name__)
    for other in rest:
        total = g.node("Add", [total, other])
    return total


def _concat(g: OnnxGraph, layer: Concat, x: str) -> str:
    parts = _run_branches(g, layer.branches, x, "Concat")
    rank = 2 if g.layout == "rows" else 4
    axis = layer.axis % rank
    if g.layout == "nchw":  # nnlayers' axes are channels-last
        axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    return g.node("Concat", parts, axis=axis)


def _basic_block(g: OnnxGraph, block: BasicBlock, x: str) -> str:
    start = g.layout
    body = x
    for child in (block.conv1, block.bn1, block.relu1, block.conv2, block.bn2):
        body = g.add_layer(child, body)
    body_layout, g.layout = g.layout, start
    shortcut = g.add_layer(block.downsample, x) if block.downsample is not None else x
    body, shortcut = _branches(g, [(body, body_layout), (shortcut, g.layout)])
    return g.node("Relu", [g.node("Add", [body, shortcut])])


EXPORTERS: Dict[type, Any] = {
    Dense: _dense,
    Conv2D: _conv,
    ConvTranspose2D: _conv_transpose,
    Conv1D: _conv1d,
    MaxPool2D: _pool,
    AvgPool2D: _pool,
    GlobalAvgPool2D: _global_pool,
    Flatten: _flatten,
    BatchNorm1D: _batchnorm,
    BatchNorm2D: _batchnorm,
    LayerNorm: _layer_norm,
    Upsample2D: _separable,
    AdaptiveAvgPool2D: _separable,
    GroupNorm: _group_norm,
    Tanh: element_wise,
    Sigmoid: element_wise,
    ReLU: element_wise,
    LeakyReLU: element_wise,
    Softmax: element_wise,
    LogSoftmax: element_wise,
    Hardswish: element_wise,
    GELU: smooth,
    SiLU: smooth,
    ELU: smooth,
    Softplus: smooth,
    Dropout: lambda g, layer, x: x,  # the identity in evaluation
    Identity: lambda g, layer, x: x,
    Add: _add,
    Residual: _add,
    Concat: _concat,
    BasicBlock: _basic_block,
    **SEQUENCE_EXPORTERS,
}


def _export_layer(g: OnnxGraph, layer: Layer, x: str, where: str) -> str:
    hook = getattr(layer, "export_onnx", None)
    if callable(hook):  # a layer's own form comes first, a Sequential subclass's too
        return str(hook(g, x))
    if isinstance(layer, Sequential) and type(layer).forward is Sequential.forward:
        for i, child in enumerate(layer):
            x = _export_layer(g, child, x, f"{where}.{i}" if where else str(i))
        return x
    exporter = EXPORTERS.get(type(layer))
    if exporter is None:
        raise TypeError(
            f"layer {where or '(the model)'} ({type(layer).__name__}) has no ONNX form: give the class a method "
            "export_onnx(self, graph, x) -> str that adds its nodes (see nnlayers.saving.onnx.OnnxGraph)"
        )
    return str(exporter(g, layer, x))


def _output_shape(model: Layer, shape: Tuple[int, ...], dtype: np.dtype) -> Tuple[int, ...]:
    """One example's output shape, from a forward pass in evaluation mode (the mode is restored)."""
    with evaluation_mode(model):
        ids = sequence_input(first_layer(model))  # token ids: integers in
        return tuple(np.shape(model(np.zeros((1, *shape), np.int64 if ids else dtype)))[1:])


def default_input_shape(model: Layer) -> Tuple[int, ...]:
    """The shape of one example: from the model's first `Dense`, or its preprocessing's image size."""
    size = (getattr(model, "preprocessing", None) or {}).get("size")
    first = first_layer(model)
    if isinstance(first, Dense):
        return (first.in_features,)
    if size is not None and not flattens_input(model):
        channels = first.in_channels if isinstance(first, Conv2D) else 3
        return (int(size[0]), int(size[1]), channels)
    raise ValueError("cannot tell the input shape of this model: pass input_shape=(H, W, C) or (D,)")


def export_onnx(
    model: Layer,
    path: PathLike,
    input_shape: Optional[Sequence[int]] = None,
    *,
    opset: int = DEFAULT_OPSET,
    metadata: Optional[Dict[str, Any]] = None,
    dtype: Optional[Any] = None,
) -> Any:
    """Write ``model`` (in its evaluation form) as an ONNX file, atomically, and return the path.

    Args:
        model: A `Sequential` of built-in layers (nested ones too), or layers with an
            ``export_onnx`` method.
        path: The ``.onnx`` file to write.
        input_shape: One example's shape, without the batch: ``(64, 64, 3)`` for channels-last
            images, ``(12288,)`` for rows. By default from the first `Dense` or the model's
            preprocessing.
        opset: The ONNX opset to target (13 or newer).
        metadata: Extra entries for the file's metadata (strings, or JSON values).
        dtype: The graph's float type (default: the model's). ONNX Runtime's CPU provider has no
            float64 convolution: export a float64 CNN with ``dtype=np.float32`` to run it there.

    Returns:
        The path written.

    Raises:
        ImportError: The ``onnx`` package is missing.
        TypeError: A layer has no ONNX form (the message names it and the hook).

    Examples:
        >>> from nnlayers import Dense, Sequential, Sigmoid, Tanh
        >>> model = Sequential([Dense(4, 3, rng=0), Tanh(), Dense(3, 1, rng=1), Sigmoid()])
        >>> export_onnx(model, "tiny.onnx").name  # doctest: +SKIP
        'tiny.onnx'
    """
    onnx = _onnx()
    if opset < 13:
        raise ValueError(f"opset must be 13 or newer, got {opset}")
    shape = tuple(int(v) for v in (input_shape if input_shape is not None else default_input_shape(model)))
    dtype = np.dtype(dtype) if dtype is not None else model.dtype or np.dtype(np.float32)
    out_shape = _output_shape(model, shape, dtype)  # first: resizing layers keep the matrices of this size
    g = OnnxGraph(dtype)
    g.layout, g.opset = ("nhwc" if len(shape) == 3 else "rows"), opset
    ids = sequence_input(first_layer(model))
    g.sequence = len(shape) == 2 or ids  # (T, F) features or (T,) ids per example
    output = _export_layer(g, model, "input", "")
    if g.layout == "nchw":  # spatial outputs go back to the layout nnlayers gives
        output = g.node("Transpose", [output], perm=[0, 2, 3, 1])
    g.nodes.append(onnx.helper.make_node("Identity", [output], ["output"]))
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    graph = onnx.helper.make_graph(
        g.nodes,
        "nnlayers",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.INT64 if ids else elem, ["batch", *shape])],
        [onnx.helper.make_tensor_value_info("output", elem, ["batch", *out_shape])],
        g.initializers,
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="nnlayers")
    proto.ir_version = min(proto.ir_version, 9)  # readable by ONNX Runtime releases of the last two years
    from .._version import __version__

    entries = {
        "nnlayers_version": __version__,
        "input_layout": "NHWC (channels last), floats in [0, 1]"
        if len(shape) == 3
        else ("token ids (N, T), int64" if ids else "rows (N, D)" if len(shape) == 1 else "sequences (N, T, F)"),
        "classes": getattr(model, "classes", None),
        "preprocessing": getattr(model, "preprocessing", None),
        **(metadata or {}),
    }
    for key, value in entries.items():
        if value is not None:
            proto.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.checker.check_model(proto)
    return atomic_write_bytes(path, [proto.SerializeToString()])
