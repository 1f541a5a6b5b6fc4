"""Sequence layers against PyTorch in float64, to 1e-10: outputs, final states, input, initial-state and
parameter gradients. Our state dicts load strictly into the torch modules (same keys, shapes, gate order)."""

import numpy as np
import pytest

from nnlayers import (
    GRU,
    LSTM,
    RNN,
    Embedding,
    MultiheadAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from nnlayers.nn.layers.normalization import LayerNorm

torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
TOL = 1e-10


def torch_twin(ours, module):
    """``module`` in float64 holding our weights; strict: every key and shape must match."""
    module = module.double()
    module.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    return module


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL, err_msg=what)


def assert_parameter_grads(ours, module):
    grads = dict(module.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, grads[name].grad, name)


@pytest.mark.parametrize(
    "cls, torch_cls, kwargs",
    [
        (RNN, "RNN", {}),
        (RNN, "RNN", {"nonlinearity": "relu"}),
        (LSTM, "LSTM", {}),
        (GRU, "GRU", {}),
    ],
    ids=["rnn-tanh", "rnn-relu", "lstm", "gru"],
)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "packed"])
def test_recurrent_layers_match_torch(cls, torch_cls, kwargs, padded):
    rng = np.random.default_rng(0)
    ours = cls(4, 6, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64, rng=1, **kwargs)
    twin = torch_twin(
        ours, getattr(torch.nn, torch_cls)(4, 6, num_layers=2, bidirectional=True, batch_first=True, **kwargs)
    )
    lstm = cls is LSTM
    x, h0, c0 = rng.normal(size=(3, 5, 4)), rng.normal(size=(4, 3, 6)), rng.normal(size=(4, 3, 6))
    lengths = np.array([5, 2, 4]) if padded else None
    out, state = ours(x, (h0, c0) if lstm else h0, lengths=lengths)

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    hxt = (h0t, c0t) if lstm else h0t
    if padded:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        packed_out, t_state = twin(packed, hxt)
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=5)
    else:
        t_out, t_state = twin(xt, hxt)
    assert_close(out, t_out, "output")
    states, t_states = (state if lstm else (state,)), (t_state if lstm else (t_state,))
    for ours_s, theirs_s in zip(states, t_states):
        assert_close(ours_s, theirs_s, "final state")

    g_out, g_h, g_c = rng.normal(size=out.shape), rng.normal(size=h0.shape), rng.normal(size=c0.shape)
    loss = (t_out * torch.tensor(g_out)).sum() + (t_states[0] * torch.tensor(g_h)).sum()
    if lstm:
        loss = loss + (t_states[1] * torch.tensor(g_c)).sum()
    loss.backward()
    grad_x = ours.backward((g_out, (g_h, g_c) if lstm else g_h))
    assert_close(grad_x, xt.grad, "input gradient")
    initial = ours.initial_state_grad if lstm else (ours.initial_state_grad,)
    assert_close(initial[0], h0t.grad, "h_0 gradient")
    if lstm:
        assert_close(initial[1], c0t.grad, "c_0 gradient")
    assert_parameter_grads(ours, twin)


def test_embedding_with_padding_idx_matches_torch():
    ours = Embedding(10, 4, padding_idx=2, dtype=np.float64, rng=0)
    twin = torch_twin(ours, torch.nn.Embedding(10, 4, padding_idx=2))
    ids = np.array([[2, 3, 3, 9], [0, 2, 1, 3]])
    grad = np.random.default_rng(0).normal(size=(2, 4, 4))
    out = ours(ids)
    t_out = twin(torch.tensor(ids))
    assert_close(out, t_out, "output")
    (t_out * torch.tensor(grad)).sum().backward()
    ours.backward(grad)
    assert_parameter_grads(ours, twin)
    assert not ours.weight.grad[2].any()


@pytest.mark.parametrize("case", ["self-causal", "self-padding", "cross-padding", "cross-causal"])
def test_multihead_attention_matches_torch(case):
    rng = np.random.default_rng(1)
    ours = MultiheadAttention(8, 2, dtype=np.float64, rng=0)
    ours.in_proj_bias.data[:] = rng.normal(size=24) * 0.1
    ours.out_proj.bias.data[:] = rng.normal(size=8) * 0.1
    twin = torch_twin(ours, torch.nn.MultiheadAttention(8, 2, batch_first=True))
    cross = case.startswith("cross")
    length, source = 5, (4 if cross else 5)
    query = rng.normal(size=(3, length, 8))
    key, value = (rng.normal(size=(3, source, 8)), rng.normal(size=(3, source, 8))) if cross else (None, None)
    masks = {}
    if case.endswith("causal"):
        masks["attn_mask"] = np.triu(np.ones((length, source), bool), 1)
    else:
        padding = np.zeros((3, source), bool)
        padding[0, -2:] = padding[2, -1] = True
        masks["key_padding_mask"] = padding
    out, weights = ours(query, key, value, **masks)
    tq = torch.tensor(query, requires_grad=True)
    tk, tv = (torch.tensor(key, requires_grad=True), torch.tensor(value, requires_grad=True)) if cross else (tq, tq)
    t_out, t_weights = twin(tq, tk, tv, **{k: torch.tensor(v) for k, v in masks.items()})
    assert_close(out, t_out, "output")
    assert_close(weights, t_weights, "averaged weights")
    grad = rng.normal(size=out.shape)
    (t_out * torch.tensor(grad)).sum().backward()
    returned = ours.backward(grad)
    if cross:
        for ours_g, tensor, name in zip(returned, (tq, tk, tv), ("query", "key", "value")):
            assert_close(ours_g, tensor.grad, name)
    else:
        assert_close(returned, tq.grad, "query (self-attention: query, key and value)")
    assert_parameter_grads(ours, twin)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_matches_torch(norm_first, activation):
    rng = np.random.default_rng(2)
    layer = TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation=activation, norm_first=norm_first, dtype=np.float64, rng=0
    )
    ours = TransformerEncoder(layer, 2, LayerNorm(8, dtype=np.float64))
    state = {k: v + rng.normal(size=v.shape) * 0.1 for k, v in ours.state_dict().items()}  # non-trivial norms, biases
    ours.load_state_dict(state)
    t_layer = torch.nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True
    )
    twin = torch_twin(ours, torch.nn.TransformerEncoder(t_layer, 2, torch.nn.LayerNorm(8), enable_nested_tensor=False))
    x = rng.normal(size=(3, 5, 8))
    causal = np.triu(np.ones((5, 5), bool), 1)
    padding = np.zeros((3, 5), bool)
    padding[1, -2:] = True
    out = ours(x, causal, padding)
    xt = torch.tensor(x, requires_grad=True)
    t_out = twin(xt, torch.tensor(causal), torch.tensor(padding))
    assert_close(out, t_out, "output")
    grad = rng.normal(size=out.shape)
    (t_out * torch.tensor(grad)).sum().backward()
    assert_close(ours.backward(grad), xt.grad, "input gradient")
    assert_parameter_grads(ours, twin)
