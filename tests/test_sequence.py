"""Sequence layers: gradient checks of every input (initial states, key and value, masks), and their behaviour."""

import numpy as np
import pytest

from nnlayers import (
    GRU,
    LSTM,
    RNN,
    Dense,
    Embedding,
    FinalState,
    MeanOverTime,
    MultiheadAttention,
    PositionalEmbedding,
    SequenceOutput,
    Sequential,
    TakeStep,
    TransformerEncoder,
    TransformerEncoderLayer,
    gradcheck,
)
from nnlayers.nn.functional import scaled_dot_product_attention
from nnlayers.nn.layers.normalization import LayerNorm
from tests.sequence_helpers import check_gradients

RECURRENT = [
    pytest.param(RNN, {}, id="rnn-tanh"),
    pytest.param(RNN, {"nonlinearity": "relu"}, id="rnn-relu"),
    pytest.param(LSTM, {}, id="lstm"),
    pytest.param(GRU, {}, id="gru"),
]


def recurrent_call(layer, with_lengths):
    def call(x, h0, c0=None):
        hx = (h0, c0) if c0 is not None else h0
        return layer(x, hx, lengths=np.array([5, 2, 3]) if with_lengths else None)

    return call


def initial_grads(layer, returned):
    grads = {"x": returned}
    if isinstance(layer.initial_state_grad, tuple):
        grads.update(h0=layer.initial_state_grad[0], c0=layer.initial_state_grad[1])
    else:
        grads["h0"] = layer.initial_state_grad
    return grads


@pytest.mark.parametrize("cls, kwargs", RECURRENT)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_recurrent_gradients_of_input_initial_state_and_weights(cls, kwargs, with_lengths):
    rng = np.random.default_rng(1)
    layer = cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0, **kwargs)
    if kwargs.get("nonlinearity") == "relu":  # away from the kink: larger biases keep most units on one side
        for name, p in layer.named_parameters():
            if name.startswith("bias"):
                p.data += 0.3
    inputs = {"x": rng.normal(size=(3, 5, 3)), "h0": rng.normal(size=(4, 3, 4)) * 0.5}
    if cls is LSTM:
        inputs["c0"] = rng.normal(size=(4, 3, 4)) * 0.5
    errors = check_gradients(
        layer, recurrent_call(layer, with_lengths), inputs, lambda returned: initial_grads(layer, returned)
    )
    assert {"x", "h0", "weight_ih_l1_reverse", "weight_hh_l0"} <= set(errors)


@pytest.mark.parametrize("cls, kwargs", RECURRENT)
@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 7, 2), (4, 3, 2)], ids=["one-step", "batch-1-odd-T", "batch-4"])
def test_recurrent_gradcheck_odd_lengths_and_batch_one(cls, kwargs, shape):
    layer = cls(2, 3, rng=0, **kwargs)
    x = np.random.default_rng(2).normal(size=shape)
    assert gradcheck(layer, x).passed
    assert gradcheck(Sequential([cls(2, 3, rng=1, **kwargs), FinalState(), Dense(3, 2, rng=2)]), x).passed


def test_recurrent_time_major_layout_is_the_transpose():
    rng = np.random.default_rng(0)
    first = LSTM(3, 4, rng=0, dtype=np.float64)
    second = LSTM(3, 4, rng=0, dtype=np.float64, batch_first=False)
    x = rng.normal(size=(2, 5, 3))
    out, (h, c) = first(x)
    out_t, (h_t, c_t) = second(x.transpose(1, 0, 2))
    np.testing.assert_allclose(out_t.transpose(1, 0, 2), out)
    np.testing.assert_allclose(h_t, h)
    grad = rng.normal(size=out.shape)
    np.testing.assert_allclose(second.backward(grad.transpose(1, 0, 2)).transpose(1, 0, 2), first.backward(grad))


def test_padded_steps_leave_the_state_and_output_zero():
    rng = np.random.default_rng(0)
    gru = GRU(2, 3, bidirectional=True, rng=0, dtype=np.float64)
    x = rng.normal(size=(2, 6, 2))
    out, h_n = gru(x, lengths=np.array([6, 4]))
    short_out, short_h = gru(x[1:, :4])
    np.testing.assert_allclose(out[1, :4], short_out[0], atol=1e-12)  # the same as the unpadded sequence
    np.testing.assert_allclose(h_n[:, 1], short_h[:, 0], atol=1e-12)
    assert not out[1, 4:].any()


def test_carried_state_continues_the_sequence():
    """Truncated backpropagation through time: h_n of one chunk starts the next, and the two chunks
    compute what the whole sequence does."""
    rng = np.random.default_rng(0)
    lstm = LSTM(2, 3, num_layers=2, rng=0, dtype=np.float64)
    x = rng.normal(size=(2, 8, 2))
    whole, _ = lstm(x)
    first, state = lstm(x[:, :5])
    second, _ = lstm(x[:, 5:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-12)


def test_dropout_between_layers_only_in_training():
    lstm = LSTM(2, 3, num_layers=2, dropout=0.5, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not np.allclose(a, b)  # fresh masks each call
    lstm.eval()
    np.testing.assert_allclose(lstm(x)[0], lstm(x)[0])


def test_bad_recurrent_inputs_name_what_was_expected():
    lstm = LSTM(3, 4)
    with pytest.raises(ValueError, match=r"expected input \(N, T, F\) with F=3"):
        lstm(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"initial state of shape \(1, 2, 4\)"):
        lstm(np.zeros((2, 5, 3)), (np.zeros((2, 2, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\)"):
        lstm(np.zeros((2, 5, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        lstm(np.zeros((2, 5, 3)), lengths=[6, 2])


def test_embedding_gradient_adds_repeated_ids_and_skips_padding():
    emb = Embedding(5, 2, padding_idx=1, rng=0, dtype=np.float64)
    assert not emb.weight.data[1].any()
    ids = np.array([[0, 1, 0, 3]])
    emb(ids)
    emb.backward(np.ones((1, 4, 2)))
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [2, 0, 0, 1, 0])  # id 0 twice, padding never
    assert gradcheck(
        Sequential([Embedding(6, 3, rng=0), GRU(3, 2, rng=1), FinalState()]), np.array([[0, 5, 5, 2]])
    ).passed
    with pytest.raises(ValueError, match=r"ids in \[0, 5\)"):
        emb(np.array([[5]]))
    with pytest.raises(TypeError, match="integer ids"):
        emb(np.zeros((1, 2)))


def test_positional_embedding_and_selectors_gradcheck():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    assert gradcheck(PositionalEmbedding(5, 4, rng=0), x).passed
    assert gradcheck(Sequential([TakeStep(), Dense(4, 2, rng=0)]), x).passed
    assert gradcheck(Sequential([MeanOverTime(), Dense(4, 2, rng=0)]), x).passed
    assert gradcheck(Sequential([GRU(4, 3, rng=0), SequenceOutput(), TakeStep()]), x).passed
    assert gradcheck(Sequential([LSTM(4, 3, bidirectional=True, rng=0), FinalState(bidirectional=True)]), x).passed


def attention_call(layer, cross, masks):
    def call(query, key=None, value=None):
        return layer(query, key, value, **masks)

    return call


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("mask", ["none", "causal", "padding", "float"])
def test_attention_gradients_with_masks(cross, mask):
    rng = np.random.default_rng(3)
    layer = MultiheadAttention(4, 2, dtype=np.float64, rng=0)
    layer.in_proj_bias.data[:] = rng.normal(size=12) * 0.1
    length, source = 3, (4 if cross else 3)
    masks = {
        "none": {},
        "causal": {"attn_mask": np.triu(np.ones((length, source), bool), 1)},
        "padding": {"key_padding_mask": np.array([[False] * (source - 1) + [True], [False] * source])},
        "float": {"attn_mask": rng.normal(size=(2 * 2, length, source))},
    }[mask]
    inputs = {"query": rng.normal(size=(2, length, 4))}
    if cross:
        inputs.update(key=rng.normal(size=(2, source, 4)), value=rng.normal(size=(2, source, 4)))
    grads = (lambda r: dict(zip(("query", "key", "value"), r))) if cross else (lambda r: {"query": r})
    errors = check_gradients(layer, attention_call(layer, cross, masks), inputs, grads)
    assert "in_proj_weight" in errors and "out_proj.weight" in errors


def test_attention_weights_and_their_gradient():
    rng = np.random.default_rng(0)
    layer = MultiheadAttention(4, 2, dtype=np.float64, rng=0)
    x = rng.normal(size=(2, 3, 4))
    _, averaged = layer(x, is_causal=True)
    _, per_head = layer(x, average_attn_weights=False)
    assert averaged.shape == (2, 3, 3) and per_head.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(averaged.sum(axis=-1), 1)
    assert np.all(averaged[:, 0, 1:] == 0)  # the first query sees only itself
    assert gradcheck(layer, x).passed  # output and averaged weights both projected


def test_functional_attention_matches_the_definition():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 2))
    scores = q @ k.transpose(0, 2, 1) / 2.0
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v), weights @ v)
    allowed = np.array([[True, False, True, True, True]] * 3)
    scores[:, :, 1] = -np.inf
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, attn_mask=allowed), weights @ v)


def test_attention_keeps_its_inputs_and_a_wider_mask_widens_the_result():
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(3))
    mask = rng.normal(size=(3, 3))  # float64, added to float32 scores: the result is float64, as numpy adds
    copies = [a.copy() for a in (q, k, v, mask)]
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for before, after in zip(copies, (q, k, v, mask)):
        np.testing.assert_array_equal(before, after)  # the softmax runs in the scores' memory, not the inputs'
    scores = (q @ k.transpose(0, 2, 1) * np.float32(0.5)).astype(np.float64) + mask  # scale 1 / sqrt(4)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, weights @ v, rtol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_gradients_with_masks(norm_first, activation):
    rng = np.random.default_rng(4)
    block = TransformerEncoderLayer(
        4, 2, 6, dropout=0.0, activation=activation, norm_first=norm_first, dtype=np.float64, rng=0
    )
    padding = np.array([[False, False, True], [False, False, False]])
    causal = np.triu(np.ones((3, 3), bool), 1)

    def call(src):
        return block(src, causal, padding)

    check_gradients(block, call, {"src": rng.normal(size=(2, 3, 4))}, lambda r: {"src": r}, tol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("stack", [False, True], ids=["layer", "stack"])
def test_encoder_backward_params_gives_backwards_weight_gradients(norm_first, stack):
    rng = np.random.default_rng(5)
    layer = TransformerEncoderLayer(4, 2, 6, dropout=0.0, norm_first=norm_first, dtype=np.float64, rng=0)
    model = TransformerEncoder(layer, 2, LayerNorm(4, dtype=np.float64)) if stack else layer
    x, grad = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    grads = []
    for method in ("backward", "backward_params"):
        model.zero_grad()
        model(x)
        returned = getattr(model, method)(grad)
        assert (returned is None) == (method == "backward_params")
        grads.append({name: p.grad.copy() for name, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=0, atol=1e-13, err_msg=name)


def test_encoder_stack_gradcheck_and_copies_start_equal():
    encoder = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=0), 2, LayerNorm(4))
    state = encoder.state_dict()
    np.testing.assert_array_equal(state["layers.0.linear1.weight"], state["layers.1.linear1.weight"])
    assert "norm.weight" in state
    assert gradcheck(encoder, np.random.default_rng(0).normal(size=(2, 3, 4))).passed


def test_sequence_models_save_and_load(tmp_path):
    import nnlayers

    model = Sequential(
        [
            Embedding(7, 4, padding_idx=0, rng=0),
            PositionalEmbedding(6, 4, rng=1),
            TransformerEncoder(TransformerEncoderLayer(4, 2, 8, dropout=0.1, norm_first=True, rng=2), 2),
            LSTM(4, 3, num_layers=2, bidirectional=True, dropout=0.2, rng=3),
            FinalState(bidirectional=True),
            Dense(6, 2, rng=4),
        ]
    )
    ids = np.random.default_rng(0).integers(0, 7, size=(3, 6))
    model.eval()
    nnlayers.save(model, tmp_path / "seq.nnl")
    loaded = nnlayers.load(tmp_path / "seq.nnl").eval()
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(ids), model(ids))


def test_summary_and_repr_of_a_sequence_model():
    model = Sequential(
        [Embedding(10, 8), LSTM(8, 6, num_layers=2, bidirectional=True), FinalState(bidirectional=True), Dense(12, 3)]
    )
    lines = []
    model.summary((7,), print_fn=lines.append)
    assert "(None, 7, 8)" in lines[2] and "(None, 7, 12)" in lines[3] and "(None, 12)" in lines[4]
    assert lines[-1] == f"Total params: {sum(p.size for p in model.parameters()):,}"
    assert "LSTM(8, 6, num_layers=2, bidirectional=True)" in repr(model)
    assert (
        repr(MultiheadAttention(8, 2))
        == "MultiheadAttention(embed_dim=8, num_heads=2\n  (out_proj): Dense(in_features=8, out_features=8, bias=True)\n)"
    )
