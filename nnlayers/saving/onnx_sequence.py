"""The ONNX form of the sequence layers: ``Gather`` for embeddings, ONNX's own ``LSTM``, ``GRU`` and
``RNN`` operators (the gates reordered to ONNX's order), attention as ``MatMul`` and ``Softmax``,
and the Transformer encoder from those and ``LayerNormalization``.

Sequences keep nnlayers' layout ``(N, T, F)`` (the graph's ``"rows"`` layout, ``g.sequence`` set);
a recurrent operator takes time-major input, so it is transposed in and out. A recurrent layer's
``(output, state)`` becomes its output tensor, the final state kept aside (``g.state``) for a
`FinalState` that follows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from ..nn.layers.attention import MultiheadAttention
from ..nn.layers.embedding import Embedding, PositionalEmbedding
from ..nn.layers.linear import Dense
from ..nn.layers.recurrent import GRU, LSTM, RNN, _Recurrent
from ..nn.layers.sequence import ClassToken, FinalState, ImageToSequence, MeanOverTime, SequenceOutput, TakeStep
from ..nn.layers.transformer import TransformerEncoder, TransformerEncoderLayer

if TYPE_CHECKING:
    from .onnx import OnnxGraph

#: Where each of ONNX's gates sits in PyTorch's rows: LSTM i, o, f, c from torch's i, f, g, o;
#: GRU z, r, h from torch's r, z, n.
GATE_ORDER = {LSTM: [0, 3, 1, 2], GRU: [1, 0, 2], RNN: [0]}


def _ints(g: OnnxGraph, values: List[int]) -> str:
    return g.constant("ints", np.array(values), np.dtype(np.int64))


def linear(g: OnnxGraph, layer: Dense, x: str) -> str:
    """`Dense` on a sequence ``(N, T, F)``: ``MatMul`` (``Gemm`` takes matrices only) and ``Add``."""
    y = g.node("MatMul", [x, g.constant("weight", np.ascontiguousarray(layer.weight.data.T))])
    return g.node("Add", [y, g.constant("bias", layer.bias.data)]) if layer.bias is not None else y


def _embedding(g: OnnxGraph, layer: Embedding, x: str) -> str:
    g.sequence = True
    return g.node("Gather", [g.constant("weight", layer.weight.data), x], axis=0)


def _steps(g: OnnxGraph, x: str) -> str:
    """The sequence's length ``T`` as a 1-element int64 tensor (the export keeps it dynamic)."""
    return g.node("Slice", [g.node("Shape", [x]), _ints(g, [1]), _ints(g, [2])])


def _positions(g: OnnxGraph, layer: PositionalEmbedding, x: str) -> str:
    table = g.node("Slice", [g.constant("positions", layer.weight.data), _ints(g, [0]), _steps(g, x), _ints(g, [0])])
    return g.node("Add", [x, table])


def _recurrent(g: OnnxGraph, layer: _Recurrent, x: str) -> str:
    """ONNX's LSTM / GRU / RNN operator per layer, both directions in one; time-major inside."""
    op = {LSTM: "LSTM", GRU: "GRU", RNN: "RNN"}[type(layer)]
    order = GATE_ORDER[type(layer)]
    hidden = layer.hidden_size
    seq = g.node("Transpose", [x], perm=[1, 0, 2]) if layer.batch_first else x
    finals_h, finals_c = [], []
    for index in range(layer.num_layers):
        w, r, b = [], [], []
        for direction in range(layer.directions):
            w_ih, w_hh, b_ih, b_hh = layer._weights(index, direction)
            gates = lambda a: np.concatenate([a[k * hidden : (k + 1) * hidden] for k in order])  # noqa: E731
            w.append(gates(w_ih.data))
            r.append(gates(w_hh.data))
            zeros = np.zeros(len(order) * hidden)
            b.append(np.concatenate([gates(b_ih.data) if b_ih is not None else zeros,
                                     gates(b_hh.data) if b_hh is not None else zeros]))  # fmt: skip
        options: Dict[str, Any] = {
            "hidden_size": hidden,
            "direction": "bidirectional" if layer.bidirectional else "forward",
        }
        if isinstance(layer, GRU):
            options["linear_before_reset"] = 1  # PyTorch's: r * (W_hn h + b_hn)
        if isinstance(layer, RNN):
            options["activations"] = ["Relu" if layer.nonlinearity == "relu" else "Tanh"] * layer.directions
        outputs = [g.name(f"{op.lower()}_y"), g.name(f"{op.lower()}_h")] + ([g.name("lstm_c")] if op == "LSTM" else [])
        inputs = [seq, g.constant("W", np.stack(w)), g.constant("R", np.stack(r)), g.constant("B", np.stack(b))]
        g.nodes.append(g.onnx.helper.make_node(op, inputs, outputs, **options))
        finals_h.append(outputs[1])
        if op == "LSTM":
            finals_c.append(outputs[2])
        # Y is (T, directions, N, H): the next layer takes (T, N, directions * H)
        y = g.node("Transpose", [outputs[0]], perm=[0, 2, 1, 3])
        seq = g.node("Reshape", [y, _ints(g, [0, 0, -1])])
    h_n = finals_h[0] if len(finals_h) == 1 else g.node("Concat", finals_h, axis=0)
    g.state = h_n
    g.sequence = True
    return g.node("Transpose", [seq], perm=[1, 0, 2]) if layer.batch_first else seq


def _final_state(g: OnnxGraph, layer: FinalState, x: str) -> str:
    """The last layer's directions of h_n ``(L * D, N, H)``, side by side: ``(N, D * H)``."""
    if g.state is None:
        raise ValueError("FinalState exports after a recurrent layer only")
    directions = 2 if layer.bidirectional else 1
    last = g.node("Slice", [g.state, _ints(g, [-directions]), _ints(g, [2**62]), _ints(g, [0])])
    g.sequence, g.state = False, None
    return g.node("Reshape", [g.node("Transpose", [last], perm=[1, 0, 2]), _ints(g, [0, -1])])


def attention_nodes(g: OnnxGraph, layer: MultiheadAttention, x: str) -> str:
    """Self-attention on ``(N, T, E)``: the packed projection, per-head ``softmax(q k^T / sqrt(d)) v``, ``out_proj``."""
    e, heads, d = layer.embed_dim, layer.num_heads, layer.head_dim
    qkv = g.node("MatMul", [x, g.constant("in_proj", np.ascontiguousarray(layer.in_proj_weight.data.T))])
    if layer.in_proj_bias is not None:
        qkv = g.node("Add", [qkv, g.constant("in_bias", layer.in_proj_bias.data)])
    split = g.node("Transpose", [g.node("Reshape", [qkv, _ints(g, [0, 0, 3, heads, d])])], perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.node("Gather", [split, g.constant("which", np.array(i), np.dtype(np.int64))], axis=0) for i in range(3)
    )
    scores = g.node("MatMul", [q, g.node("Transpose", [k], perm=[0, 1, 3, 2])])
    weights = g.node("Softmax", [g.node("Mul", [scores, g.constant("scale", np.array(1 / math.sqrt(d)))])], axis=-1)
    joined = g.node("Transpose", [g.node("MatMul", [weights, v])], perm=[0, 2, 1, 3])
    return linear(g, layer.out_proj, g.node("Reshape", [joined, _ints(g, [0, 0, e])]))


def _attention(g: OnnxGraph, layer: MultiheadAttention, x: str) -> str:
    if not layer.batch_first:
        raise ValueError("MultiheadAttention exports with batch_first=True")
    g.state = None  # its weights: a following SequenceOutput keeps the output
    return attention_nodes(g, layer, x)


def _encoder_layer(g: OnnxGraph, layer: TransformerEncoderLayer, x: str) -> str:
    if not layer.batch_first:
        raise ValueError("TransformerEncoderLayer exports with batch_first=True")

    def feedforward(h: str) -> str:
        return linear(g, layer.linear2, g.add_layer(layer.activation, linear(g, layer.linear1, h)))

    if layer.norm_first:
        x = g.node("Add", [x, attention_nodes(g, layer.self_attn, g.add_layer(layer.norm1, x))])
        return g.node("Add", [x, feedforward(g.add_layer(layer.norm2, x))])
    x = g.add_layer(layer.norm1, g.node("Add", [x, attention_nodes(g, layer.self_attn, x)]))
    return g.add_layer(layer.norm2, g.node("Add", [x, feedforward(x)]))


def _encoder(g: OnnxGraph, layer: TransformerEncoder, x: str) -> str:
    for block in layer.layers:
        x = _encoder_layer(g, block, x)  # type: ignore[arg-type]
    return g.add_layer(layer.norm, x) if layer.norm is not None else x


def _take_step(g: OnnxGraph, layer: TakeStep, x: str) -> str:
    g.sequence = False
    return g.node("Gather", [x, g.constant("step", np.array(layer.index), np.dtype(np.int64))], axis=1)


def _mean_over_time(g: OnnxGraph, layer: MeanOverTime, x: str) -> str:
    g.sequence = False
    if g.opset >= 18:
        return g.node("ReduceMean", [x, _ints(g, [1])], keepdims=0)
    return g.node("ReduceMean", [x], axes=[1], keepdims=0)


def _image_to_sequence(g: OnnxGraph, layer: ImageToSequence, x: str) -> str:
    if g.layout == "nchw":  # back to channels-last: positions row by row, as nnlayers orders them
        x = g.node("Transpose", [x], perm=[0, 2, 3, 1])
    g.layout, g.sequence = "rows", True
    shape = g.node("Concat", [g.node("Slice", [g.node("Shape", [x]), _ints(g, [0]), _ints(g, [1])]),
                              _ints(g, [-1]), g.node("Slice", [g.node("Shape", [x]), _ints(g, [3]), _ints(g, [4])])],
                   axis=0)  # fmt: skip
    return g.node("Reshape", [x, shape])


def _class_token(g: OnnxGraph, layer: ClassToken, x: str) -> str:
    batch = g.node("Slice", [g.node("Shape", [x]), _ints(g, [0]), _ints(g, [1])])
    size = g.node("Concat", [batch, _ints(g, [1, layer.embed_dim])], axis=0)
    token = g.node("Expand", [g.constant("class_token", layer.class_token.data), size])
    return g.node("Concat", [token, x], axis=1)


def _sequence_output(g: OnnxGraph, layer: SequenceOutput, x: str) -> str:
    g.state = None
    return x


SEQUENCE_EXPORTERS: Dict[type, Any] = {
    Embedding: _embedding,
    PositionalEmbedding: _positions,
    RNN: _recurrent,
    LSTM: _recurrent,
    GRU: _recurrent,
    FinalState: _final_state,
    SequenceOutput: _sequence_output,
    MultiheadAttention: _attention,
    TransformerEncoderLayer: _encoder_layer,
    TransformerEncoder: _encoder,
    TakeStep: _take_step,
    MeanOverTime: _mean_over_time,
    ImageToSequence: _image_to_sequence,
    ClassToken: _class_token,
}


def sequence_input(first: Optional[Any]) -> bool:
    """Whether the model's input is integer ids (an `Embedding` first)."""
    return isinstance(first, Embedding)
