"""Sequential: construction, order of forward and backward, container protocol, repr, summary."""

import numpy as np
import pytest

from nnlayers import Dense, Layer, ReLU, Sequential, Sigmoid, Tanh


class Recorder(Layer):
    """Multiplies by a constant and records the order of calls in a shared log."""

    def __init__(self, name, factor, log):
        super().__init__()
        self.name, self.factor, self.log = name, factor, log

    def forward(self, x):
        self.log.append(f"forward {self.name}")
        return x * self.factor

    def backward(self, grad_y):
        self.log.append(f"backward {self.name}")
        return grad_y * self.factor


def test_forward_in_order_backward_in_reverse():
    log = []
    model = Sequential([Recorder("a", 2.0, log), Recorder("b", 3.0, log)])
    assert model(np.ones((1, 1)))[0, 0] == 6.0
    assert model.backward(np.ones((1, 1)), input_grad=True)[0, 0] == 6.0
    assert log == ["forward a", "forward b", "backward b", "backward a"]


def test_list_and_varargs_construction_are_equivalent():
    layers = [Dense(3, 2, rng=0), Tanh()]
    assert repr(Sequential(layers)) == repr(Sequential(*layers))
    assert len(Sequential()) == 0
    np.testing.assert_array_equal(Sequential()(np.ones((2, 2))), np.ones((2, 2)))


def test_container_protocol():
    d0, act, d1 = Dense(3, 2, rng=0), ReLU(), Dense(2, 1, rng=0)
    model = Sequential([d0, act])
    model.append(d1)
    assert len(model) == 3 and list(model) == [d0, act, d1]
    assert model[0] is d0 and model[-1] is d1
    head = model[:2]
    assert isinstance(head, Sequential) and list(head) == [d0, act]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_non_layers_are_refused():
    with pytest.raises(TypeError, match="Sequential takes Layer instances, got ufunc at position 1"):
        Sequential([Dense(3, 2), np.tanh])
    with pytest.raises(TypeError, match="got int"):
        Sequential(5)


def test_torch_style_repr():
    model = Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Dense(in_features=12288, out_features=64, bias=True)\n"
        "  (1): Tanh()\n"
        "  (2): Dense(in_features=64, out_features=1, bias=True)\n"
        "  (3): Sigmoid()\n"
        ")"
    )
    nested = repr(Sequential([Sequential([Tanh()])]))
    assert nested == "Sequential(\n  (0): Sequential(\n    (0): Tanh()\n  )\n)"


def test_summary_shapes_and_counts():
    lines = []
    model = Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])
    model.summary((12288,), print_fn=lines.append)
    text = "\n".join(lines)
    assert "0 (Dense)" in lines[2] and "(None, 64)" in lines[2] and lines[2].endswith("786,496")
    assert "3 (Sigmoid)" in lines[5] and "(None, 1)" in lines[5] and lines[5].endswith(" 0")
    assert text.endswith(f"Total params: {12288 * 64 + 64 + 64 + 1:,}")


def test_backward_without_input_gradient():
    model = Sequential([Dense(4, 3, rng=0), Tanh(), Dense(3, 1, rng=1)])
    twin = Sequential([Dense(4, 3, rng=0), Tanh(), Dense(3, 1, rng=1)])
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    g = np.ones((5, 1), dtype=np.float32)
    model(x), twin(x)
    assert model.backward(g, input_grad=False) is None
    assert twin.backward(g, input_grad=True).shape == (5, 4)
    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=name)


def test_shape_error_from_inside_a_model_names_the_layer():
    model = Sequential([Dense(4, 3), Tanh(), Dense(2, 1)])
    with pytest.raises(ValueError, match=r"Dense\(2 -> 1\) expected input of shape \(N, 2\), got \(5, 3\)"):
        model(np.zeros((5, 4), dtype=np.float32))
