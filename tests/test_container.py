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


class CountingDense(Dense):
    """A Dense that counts how often its input gradient is computed."""

    input_grads = 0

    def backward(self, grad_y):
        type(self).input_grads += 1
        return super().backward(grad_y)


def test_the_readme_loop_does_not_compute_the_input_gradient():
    """The loop exactly as the README writes it: only the parameters' gradients are computed."""
    from nnlayers import SGD, BCELoss

    CountingDense.input_grads = 0
    model = Sequential([CountingDense(12, 5, rng=0), Tanh(), CountingDense(5, 1, rng=1), Sigmoid()])
    twin = Sequential([Dense(12, 5, rng=0), Tanh(), Dense(5, 1, rng=1), Sigmoid()])
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=0.1)
    x = np.random.default_rng(0).random((8, 12), dtype=np.float32)
    y = (x[:, :1] > 0.5).astype(np.float32)
    for _ in range(3):
        loss = loss_fn(model(x), y)
        result = model.backward(loss_fn.backward())
        loss_fn(twin(x), y)
        twin.backward(loss_fn.backward(), input_grad=True)
        for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
            np.testing.assert_array_equal(a.grad, b.grad, err_msg=name)  # same parameter gradients
        opt.step()
        opt.zero_grad()
        twin.load_state_dict(model.state_dict())
        twin.zero_grad()
    assert result is None and np.isfinite(loss)
    assert CountingDense.input_grads == 3  # the second Dense's, once a step; never the first's


def test_input_gradient_on_request_equals_central_differences():
    """``backward(..., input_grad=True)`` is the saliency map, checked against gradcheck's numbers."""
    from nnlayers import gradcheck

    model = Sequential([Dense(6, 4, rng=0, dtype=np.float64), Tanh(), Dense(4, 1, rng=1, dtype=np.float64)])
    x = np.random.default_rng(1).normal(size=(3, 6))
    out = model(x)
    saliency = model.backward(np.ones_like(out), input_grad=True)
    eps = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (model(plus).sum() - model(minus).sum()) / (2 * eps)
    np.testing.assert_allclose(saliency, numeric, rtol=1e-6, atol=1e-9)
    assert gradcheck(model, x).errors["input"] < 1e-6  # gradcheck reaches the input gradient too


def test_a_nested_sequential_passes_its_input_gradient_on():
    inner = Sequential([Dense(3, 3, rng=0, dtype=np.float64), Tanh()])
    outer = Sequential([Dense(4, 3, rng=1, dtype=np.float64), inner, Dense(3, 1, rng=2, dtype=np.float64)])
    x = np.random.default_rng(0).normal(size=(5, 4))
    outer(x)
    assert outer.backward(np.ones((5, 1))) is None
    assert outer.backward(np.ones((5, 1)), input_grad=True).shape == (5, 4)
    from nnlayers import gradcheck

    assert gradcheck(outer, x).passed  # the nested model's input gradient flows into the first Dense


def test_a_layer_object_used_twice_is_refused():
    d = Dense(3, 3)
    with pytest.raises(ValueError, match="can appear only once in a model"):
        Sequential([d, Tanh(), d])
    with pytest.raises(ValueError, match="already in it"):
        Sequential([Sequential([d]), d])
    a, b = Sequential([d]), Sequential([Tanh(), d])
    with pytest.raises(ValueError, match="already in it"):
        Sequential([a, b])
    model = Sequential([Tanh()])
    with pytest.raises(ValueError, match="this layer itself"):
        model.append(model)


def test_a_wrong_shape_gradient_is_blamed_on_the_layer_that_returned_it():
    class Truncating(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_y):
            return grad_y[:, :2]

    class Forgetful(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_y):
            grad_y * 2  # noqa: B018 - the missing return is the bug

    for bad, message in (
        (Truncating(), r"layer 2 \(Truncating\).*shape \(4, 2\), expected .* \(4, 3\)"),
        (Forgetful(), r"layer 2 \(Forgetful\).*returned None"),
    ):
        model = Sequential([Dense(5, 3), Tanh(), bad, Dense(3, 1)])
        model(np.ones((4, 5), dtype=np.float32))
        with pytest.raises(ValueError, match=message):
            model.backward(np.ones((4, 1), dtype=np.float32))


def test_a_nested_first_model_and_a_custom_first_layer_get_their_gradients():
    """backward skips the input gradient of the first layer, not its parameters' gradients."""
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 1))
    nested = Sequential(
        [Sequential([Dense(4, 3, rng=0, dtype=np.float64), Tanh()]), Dense(3, 1, rng=1, dtype=np.float64)]
    )
    twin = Sequential([Dense(4, 3, rng=0, dtype=np.float64), Tanh(), Dense(3, 1, rng=1, dtype=np.float64)])
    nested(x), twin(x)
    nested.backward(g)  # the inner model is the first layer: its backward_params runs
    twin.backward(g, input_grad=True)
    np.testing.assert_allclose(nested[0][0].weight.grad, twin[0].weight.grad, rtol=1e-14)

    from nnlayers import Parameter

    class Shift(Layer):  # a custom layer that only implements backward
        def __init__(self):
            super().__init__()
            self.shift = Parameter(np.zeros(4))

        def forward(self, x):
            return x + self.shift.data

        def backward(self, grad_y):
            self.shift.grad += grad_y.sum(axis=0)
            return grad_y

    model = Sequential([Shift(), Dense(4, 1, rng=0, dtype=np.float64)])
    model(x)
    model.backward(g)
    assert model[0].shift.grad.any()  # the default backward_params calls backward


def test_negative_indices_and_summary_columns():
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 1, rng=0)])
    assert model[-3] is model[0] and model[-1] is model[2]
    with pytest.raises(IndexError):
        model[-4]
    from nnlayers import Conv2D, Flatten

    lines = []
    wide = Sequential([Conv2D(3, 128, 3, padding=1, rng=0), Flatten()])
    wide.summary((16, 16, 3), print_fn=lines.append)
    assert len(lines[1]) == len(lines[0]) == len(lines[-2])  # the rules span the header
    shape_and_count = lines[2].split(")")[-1]
    assert lines[2].startswith("0 (Conv2D)") and "(None, 16, 16, 128)" in lines[2] and shape_and_count.startswith(" ")
    # the shape column is as wide as the longest shape plus a gap of two, never narrower than 19
    assert len(lines[0]) == 22 + len("(None, 16, 16, 128)") + 2 + 8
    lines.clear()
    Sequential([Dense(4, 3, rng=0)]).summary(4, print_fn=lines.append)
    assert len(lines[0]) == 22 + 19 + 8
