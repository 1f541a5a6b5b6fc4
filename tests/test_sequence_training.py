"""Training on sequences with `fit`: an LSTM reads scikit-learn's 8x8 digits row by row, a Transformer
learns to sort digits (a label per step), padded steps count nowhere, and the models export to ONNX."""

import time

import numpy as np
import pytest

from nnlayers import (
    GRU,
    LSTM,
    RNN,
    SGD,
    Adam,
    CrossEntropyLoss,
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
    evaluate,
    fit,
    predict,
    predict_proba,
)
from nnlayers.models import vit
from nnlayers.optim.clipping import RECURRENT_MAX_GRAD_NORM, grad_norm_limit


def digits_split():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed: the digits ship with it")
    digits = datasets.load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target  # (1797, 8, 8): 8 steps of 8 pixels
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[: len(x) // 5], order[len(x) // 5 :]  # the held-out fifth
    return (x[train], y[train]), (x[test], y[test])


def test_lstm_reads_digits_row_by_row():
    train, test = digits_split()
    model = Sequential([LSTM(8, 64, rng=0), FinalState(), Dense(64, 10, rng=1)])
    start = time.perf_counter()
    history = fit(
        model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.01), train, epochs=12, batch_size=32, verbose=0
    )
    seconds = time.perf_counter() - start
    scores = evaluate(model, test)
    assert scores["accuracy"] >= 0.95, scores["accuracy"]
    assert seconds < 120
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    assert predict(model, test[0][:5]).shape == (5,)


def sorting_task(count, seed):
    x = np.random.default_rng(seed).integers(0, 10, size=(count, 8))
    return x, np.sort(x, axis=1)


def test_transformer_learns_to_sort_digits():
    model = Sequential(
        [
            Embedding(10, 32, rng=0),
            PositionalEmbedding(8, 32, rng=1),
            TransformerEncoderLayer(32, 4, 64, dropout=0.0, rng=2),
            TransformerEncoderLayer(32, 4, 64, dropout=0.0, rng=3),
            Dense(32, 10, rng=4),
        ]
    )
    fit(
        model,
        CrossEntropyLoss(),
        Adam(model.parameters(), lr=0.003),
        sorting_task(6000, 0),
        epochs=8,
        batch_size=64,
        verbose=0,
    )
    test = sorting_task(1000, 1)
    scores = evaluate(model, test)
    assert scores["accuracy"] >= 0.95, scores["accuracy"]  # per token
    assert scores["n"] == 8000
    proba = predict_proba(model, test[0][:3])
    assert proba.shape == (3, 8, 10)
    np.testing.assert_allclose(proba.sum(axis=-1), 1, rtol=1e-5)
    assert predict(model, test[0][:3]).shape == (3, 8)


def test_padding_labels_count_nowhere():
    """ignore_index steps: the loss, its gradient and the accuracy leave them out."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5, size=(40, 6))
    y = x.copy()
    y[:, 4:] = -100  # padding: any prediction there is neither right nor wrong
    model = Sequential([Embedding(5, 8, rng=0), GRU(8, 8, rng=1), SequenceOutput(), Dense(8, 5, rng=2)])
    fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.03), (x, y), epochs=30, batch_size=8, verbose=0)
    scores = evaluate(model, (x, y))
    assert scores["n"] == 40 * 4
    assert scores["accuracy"] > 0.95  # copying the token: easy, once padding does not count
    full = evaluate(model, (x, x))  # the same model, scored on the padded steps too
    assert full["n"] == 40 * 6


def test_float_sequences_and_one_label_each_train():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 9, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(int)  # the sign of a running sum: needs every step
    model = Sequential([RNN(3, 16, rng=0), SequenceOutput(), MeanOverTime(), Dense(16, 2, rng=1)])
    history = fit(
        model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.01), (x, y), epochs=25, batch_size=20, verbose=0
    )
    assert history.history["accuracy"][-1] > 0.9


def test_recurrent_models_clip_gradients_by_default():
    lstm_model = Sequential([LSTM(2, 3), FinalState(), Dense(3, 2)])
    assert grad_norm_limit(lstm_model, "auto") == RECURRENT_MAX_GRAD_NORM
    assert grad_norm_limit(Sequential([Dense(2, 2)]), "auto") is None
    assert grad_norm_limit(lstm_model, None) is None
    with pytest.raises(ValueError, match="max_grad_norm"):
        grad_norm_limit(lstm_model, "always")
    # one SGD step of lr 1 moves the weights by the gradient's norm: clipped, by at most the limit
    x = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)
    y = np.array([0, 1, 0, 1])
    steps = {}
    for limit in ("auto", None):
        model = Sequential([LSTM(2, 3, rng=0), FinalState(), Dense(3, 2, rng=1)])
        model[2].weight.data *= 8  # a steep head: large gradients (a loss below the divergence guard)
        before = model.state_dict()
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=1.0), (x, y), epochs=1, batch_size=4, verbose=0,
            max_grad_norm=limit)  # fmt: skip
        after = model.state_dict()
        steps[limit] = np.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))
    assert steps["auto"] <= RECURRENT_MAX_GRAD_NORM + 1e-6 < steps[None]


@pytest.mark.parametrize(
    "name",
    ["lstm-classifier", "gru", "rnn-relu", "attention", "vit"],
)
def test_sequence_models_run_the_same_in_onnx_runtime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    from nnlayers.saving.onnx import export_onnx

    rng = np.random.default_rng(0)
    if name == "lstm-classifier":
        model = Sequential([Embedding(10, 8, rng=0), LSTM(8, 6, num_layers=2, bidirectional=True, rng=1),
                            FinalState(bidirectional=True), Dense(12, 3, rng=2)])  # fmt: skip
        x, shape = rng.integers(0, 10, size=(4, 7)), (7,)
    elif name == "gru":
        model = Sequential([GRU(5, 6, num_layers=2, rng=1), SequenceOutput(), Dense(6, 3, rng=2)])
        x, shape = rng.normal(size=(4, 7, 5)).astype(np.float32), (7, 5)
    elif name == "rnn-relu":
        model = Sequential([RNN(5, 6, nonlinearity="relu", bidirectional=True, rng=1), FinalState(bidirectional=True)])
        x, shape = rng.normal(size=(4, 7, 5)).astype(np.float32), (7, 5)
    elif name == "attention":
        model = Sequential([Embedding(10, 8, rng=0), PositionalEmbedding(9, 8, rng=3), MultiheadAttention(8, 2, rng=4),
                            SequenceOutput(), TransformerEncoderLayer(8, 2, 16, rng=5),
                            TransformerEncoderLayer(8, 2, 16, activation="gelu", norm_first=True, rng=6),
                            TakeStep(0), Dense(8, 2, rng=7)])  # fmt: skip
        x, shape = rng.integers(0, 10, size=(4, 7)), (7,)
    else:
        model = vit(3, image_size=32, patch_size=8, dim=16, depth=2, heads=2, mlp_dim=32, rng=0)
        x, shape = rng.random((3, 32, 32, 3)).astype(np.float32), (32, 32, 3)
    model.eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_shape=shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=0, atol=1e-5)
    assert {node.op_type for node in __import__("onnx").load(str(path)).graph.node} & {"LSTM", "GRU", "RNN", "Softmax"}


def test_a_seeded_sequence_run_repeats_exactly():
    """Dropout between LSTM layers and inside encoder layers draws from seeded generators: the same seeds,
    the same weights; each copy of an encoder layer draws its own masks."""

    def run():
        model = Sequential(
            [
                Embedding(6, 8, rng=0),
                TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.3, rng=1), 2),
                LSTM(8, 8, num_layers=2, dropout=0.3, rng=2),
                FinalState(),
                Dense(8, 2, rng=3),
            ]
        )
        x = np.random.default_rng(0).integers(0, 6, size=(32, 5))
        fit(
            model,
            CrossEntropyLoss(),
            Adam(model.parameters(), lr=0.01),
            (x, x[:, 0] % 2),
            epochs=2,
            batch_size=8,
            verbose=0,
        )
        return model

    first, second = run().state_dict(), run().state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    encoder = run()[1]
    a, b = encoder.layers[0].dropout.rng, encoder.layers[1].dropout.rng
    assert a is not b and a.random() != b.random()
