"""The defects the 0.2 review found, one test each; every one failed on the code before the fix.

They use only the public API (``nnlayers.*``), so that they run against the old release as well.
"""

import math
import threading

import numpy as np
import pytest

import nnlayers
from nnlayers import (
    SGD,
    Adam,
    AvgPool2D,
    BatchNorm2D,
    BCEWithLogitsLoss,
    Conv2D,
    CrossEntropyLoss,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    batches,
    fit,
    load,
    register_layer,
    save,
)


@register_layer(replace=True)
class Doubled(Sequential):
    """A block with its own forward over Sequential's children: out = 2 * body(x)."""

    def forward(self, x):
        return 2.0 * super().forward(x)

    def backward(self, grad_y):
        return super().backward(2.0 * np.asarray(grad_y))


@register_layer(replace=True)
class Skip(Sequential):
    """A residual block with its own constructor: x + Dense(Tanh(x))."""

    def __init__(self, features=3, scale=1.0):
        super().__init__([Dense(features, features, rng=0), Tanh()])
        self.features, self.scale = features, scale

    def forward(self, x):
        return x + self.scale * super().forward(x)

    def backward(self, grad_y):
        return grad_y + super().backward(self.scale * grad_y)

    def get_config(self):
        return {"features": self.features, "scale": self.scale}


def test_a_sequential_subclass_saves_and_loads_as_itself(tmp_path):
    rng = np.random.default_rng(0)
    model = Sequential([Doubled([Dense(3, 3, rng=1), ReLU()]), Skip(3, scale=0.5), Dense(3, 1, rng=2)])
    x = rng.normal(size=(5, 3)).astype(np.float32)
    save(model, tmp_path / "m.nnl")
    loaded = load(tmp_path / "m.nnl")
    assert [type(layer) for layer in loaded] == [Doubled, Skip, Dense]
    assert loaded[1].scale == 0.5
    np.testing.assert_array_equal(loaded(x), model(x))


def test_onnx_export_uses_a_sequential_subclass_hook_and_refuses_a_forward_it_cannot_know(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

    class DoubledWithHook(Doubled):
        def export_onnx(self, graph, x):
            for child in self:
                x = graph.add_layer(child, x)
            return graph.node("Mul", [x, graph.constant("two", np.array(2.0))])

    model = Sequential([DoubledWithHook([Dense(3, 2, rng=1)])])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    nnlayers.export_onnx(model, tmp_path / "m.onnx", input_shape=(3,))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(out, model(x), rtol=1e-6)
    with pytest.raises(TypeError, match="has no ONNX form"):
        nnlayers.export_onnx(Sequential([Doubled([Dense(3, 2)])]), tmp_path / "n.onnx", input_shape=(3,))


def test_fit_refuses_a_final_sigmoid_with_bce_with_logits():
    model = Sequential([Dense(4, 1, rng=0), Sigmoid()])
    x, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 2
    with pytest.raises(ValueError, match="remove the model's final Sigmoid"):
        fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1, verbose=0)


def test_a_dropout_before_a_convolution_gets_images_from_fit():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 6, 6, 3), dtype=np.uint8)
    y = np.arange(24) % 2
    model = Sequential([Dropout(0.1, rng=0), Conv2D(3, 4, 3, rng=0), ReLU(), GlobalAvgPool2D(), Dense(4, 1, rng=1)])
    history = fit(model, BCEWithLogitsLoss(), Adam(model.parameters()), (x, y), epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert nnlayers.predict_proba(model, x).shape == (24,)


def test_divergence_is_caught_for_many_classes_too():
    """ln K for K classes: a 10-class loss that climbs to 100 and beyond (finite) is stopped, not trained on."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)) * 20
    y = rng.integers(0, 10, 200)
    model = Sequential([Dense(8, 64, rng=0), ReLU(), Dense(64, 10, rng=1)])
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.5), (x, y), epochs=5, verbose=0)
    assert history.diverged and "over 10x that of guessing" in history.stop_reason
    assert not history.history.get("loss")  # the first epoch already rose above 10 ln 10


def test_cli_adamw_takes_a_weight_decay_of_zero(tmp_path):
    import subprocess

    from .test_cli import COMMAND  # the CLI as a user runs it

    result = subprocess.run(
        [*COMMAND, "train", "--optimizer", "adamw", "--weight-decay", "0", "--epochs", "1", "--size", "16",
         "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "m.nnl")],
        capture_output=True, text=True, env={**__import__("os").environ, "NNLAYERS_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state = nnlayers.read_header(tmp_path / "ck" / "last.nnl")["training"]["optimizer"]
    assert state["type"] == "AdamW" and state["weight_decay"] == 0.0


def test_model_to_float64_moves_adam_state_too():
    model = Sequential([Dense(3, 2, rng=0)])
    opt = Adam(model.parameters(), lr=0.1)
    for step in range(2):
        for p in model.parameters():
            p.grad[...] = 0.25
        opt.step()
        if step == 0:
            model.to(np.float64)
    assert all(v.dtype == np.float64 for s in opt.state for v in s.values())


def test_batches_can_yield_labels_for_cross_entropy_and_its_error_says_how():
    images = np.zeros((6, 2, 2, 3), np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    loss_fn = CrossEntropyLoss()
    x, y = next(batches(images, labels, 4, shuffle=False, loss_fn=loss_fn))
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 0]
    assert math.isfinite(loss_fn(np.zeros((4, 3)), y))
    _, float_labels = next(batches(images, labels, 4, shuffle=False))
    with pytest.raises(ValueError, match=r"loss_fn=CrossEntropyLoss\(\)"):
        loss_fn(np.zeros((4, 3)), float_labels)


def test_export_onnx_is_public():
    assert nnlayers.export_onnx is nnlayers.saving.onnx.export_onnx and "export_onnx" in nnlayers.__all__


@pytest.mark.parametrize(
    "layer, x, wrong_grad",
    [
        (Conv2D(3, 4, 3, rng=0), np.ones((2, 5, 5, 3)), np.ones((2, 4, 3, 3))),  # NCHW of the same size
        (AvgPool2D(2), np.ones((1, 4, 4, 1)), np.ones((1, 1, 1, 1))),  # broadcast to the output
        (BatchNorm2D(3), np.random.default_rng(0).normal(size=(2, 4, 4, 3)), np.ones((32, 3))),  # rows, not images
    ],
)
def test_backward_refuses_a_gradient_that_is_not_shaped_like_the_output(layer, x, wrong_grad):
    y = layer(x.astype(np.float64) if layer.dtype is None else x.astype(layer.dtype))
    assert wrong_grad.size == y.size or y.size == 4  # same size, other shape (or a broadcastable one)
    with pytest.raises(ValueError, match=r"expected a gradient of shape"):
        layer.backward(wrong_grad.astype(y.dtype))


def test_loading_a_model_in_one_thread_never_leaves_another_threads_new_layers_without_weights(tmp_path):
    """Model files build layers without drawing their weights; that must not leak into other threads."""
    save(Sequential([Dense(200, 200, rng=0)] * 1 + [Dense(200, 200, rng=1) for _ in range(30)]), tmp_path / "big.nnl")
    stop, empty = threading.Event(), []

    def build_layers():
        while not stop.is_set():
            layer = Dense(50, 50, init="xavier_uniform", rng=0)
            if not np.array_equal(layer.weight.data, Dense(50, 50, init="xavier_uniform", rng=0).weight.data):
                empty.append(1)

    worker = threading.Thread(target=build_layers)
    worker.start()
    try:
        for _ in range(5):
            load(tmp_path / "big.nnl")
    finally:
        stop.set()
        worker.join()
    assert not empty
