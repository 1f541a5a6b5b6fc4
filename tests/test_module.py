"""Parameter and the Layer base class: declaration, naming, state dicts, modes, errors."""

import numpy as np
import pytest

from nnlayers import Dense, Layer, Parameter, ReLU, Sequential, Sigmoid, Tanh


def test_parameter_grad_matches_data():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not p.grad.any()
    p.grad += 1
    p.zero_grad()
    assert not p.grad.any()


def test_parameter_refuses_integer_data():
    with pytest.raises(TypeError, match="floating-point"):
        Parameter(np.ones(3, dtype=np.int64))


class Affine(Layer):
    """A layer with two declared parameters and one sub-layer, to exercise the base class."""

    def __init__(self):
        super().__init__()
        self.scale = self.register_parameter("scale", np.full(2, 2.0))
        self.inner = self.register_module("inner", Dense(2, 2, dtype=np.float64, rng=0))


def test_named_parameters_are_dotted_and_ordered():
    layer = Affine()
    assert [n for n, _ in layer.named_parameters()] == ["scale", "inner.weight", "inner.bias"]
    assert layer.parameters()[0] is layer.scale


def test_train_and_eval_reach_children():
    model = Sequential([Affine(), Tanh()])
    model.eval()
    assert not model.training and not model[0].training and not model[0].inner.training
    model.train()
    assert model[0].inner.training


def test_state_dict_round_trip_is_a_copy():
    a = Sequential([Dense(3, 2, rng=0), Tanh(), Dense(2, 1, rng=1)])
    b = Sequential([Dense(3, 2, rng=5), Tanh(), Dense(2, 1, rng=6)])
    state = a.state_dict()
    state["0.weight"][0, 0] = 99.0  # editing the copy leaves the model alone
    assert a[0].weight.data[0, 0] != 99.0
    b.load_state_dict(a.state_dict())
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)


def test_load_state_dict_casts_to_layer_dtype_in_place():
    model = Sequential([Dense(3, 2, rng=0)])
    weight_array = model[0].weight.data
    model.load_state_dict({"0.weight": np.ones((2, 3), dtype=np.float64), "0.bias": np.zeros(2)})
    assert model[0].weight.data is weight_array  # optimizers holding the array still see it
    assert weight_array.dtype == np.float32 and (weight_array == 1).all()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("0.bias"), r"missing keys \['0.bias'\]"),
        (lambda s: s.update({"9.weight": np.ones(2)}), r"unexpected keys \['9.weight'\]"),
        (lambda s: s.update({"0.weight": np.ones((3, 2))}), r"0.weight: expected shape \(2, 3\), got \(3, 2\)"),
        (lambda s: s.update({"0.weight": np.array([["a"] * 3] * 2)}), "expected a numeric array"),
    ],
)
def test_load_state_dict_is_strict_and_atomic(edit, message):
    model = Sequential([Dense(3, 2, rng=0)])
    before = model.state_dict()
    state = {k: np.full_like(v, 7.0) for k, v in before.items()}
    edit(state)
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_reports_keys():
    model = Sequential([Dense(3, 2, rng=0)])
    missing, unexpected = model.load_state_dict({"0.weight": np.zeros((2, 3)), "extra": np.ones(1)}, strict=False)
    assert missing == ["0.bias"] and unexpected == ["extra"]
    assert not model[0].weight.data.any()


@pytest.mark.parametrize("layer", [Dense(3, 2), Tanh(), Sigmoid(), ReLU()], ids=lambda layer: type(layer).__name__)
def test_backward_before_forward_is_a_runtime_error(layer):
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}.backward\(\) called before forward\(\)"):
        layer.backward(np.ones((1, 2), dtype=np.float32))


def test_base_layer_must_be_implemented():
    with pytest.raises(NotImplementedError, match="Layer must implement forward"):
        Layer()(np.ones((1, 1)))


def test_to_casts_parameters_and_grads():
    layer = Dense(3, 2, rng=0).to(np.float64)
    assert layer.dtype == np.float64 and layer.weight.grad.dtype == np.float64
    assert layer(np.ones((1, 3), dtype=np.float32)).dtype == np.float64
    with pytest.raises(TypeError, match="floating-point dtype"):
        layer.to(np.int32)


def test_repr_of_custom_layer_uses_extra_repr():
    class Scale(Layer):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def extra_repr(self):
            return f"k={self.k}"

    assert repr(Scale(3)) == "Scale(k=3)"
    assert "(0): Scale(k=3)" in repr(Sequential([Scale(3)]))


def test_zero_grad_then_add_matmul_overwrites_and_later_calls_accumulate():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    p = Parameter(np.zeros((3, 5)))
    p.grad += 7.0
    p.zero_grad()
    p.add_matmul(a, b)  # written in place: the stale 7s must not leak in
    np.testing.assert_allclose(p.grad, a @ b, rtol=1e-15)
    p.add_matmul(a, b)  # now it accumulates
    np.testing.assert_allclose(p.grad, 2 * (a @ b), rtol=1e-15)


def test_writes_to_grad_after_zero_grad_are_kept():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    p = Parameter(np.ones((2, 2)))
    p.zero_grad()
    p.grad[0, 0] = 5.0  # reading .grad materialises the zeros first
    p.add_matmul(a, b)
    expected = a @ b
    expected[0, 0] += 5.0
    np.testing.assert_allclose(p.grad, expected, rtol=1e-15)
    p.zero_grad()
    assert not p.grad.any()


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("", ValueError, "must not be empty"),
        ("a.b", ValueError, "contains '.'"),
        ("scale", ValueError, "'scale' is already used"),
        ("forward", ValueError, "'forward' is already used"),
        (3, TypeError, "expected a str name"),
    ],
)
def test_register_parameter_and_module_refuse_bad_names(name, error, message):
    layer = Affine()
    with pytest.raises(error, match=message):
        layer.register_parameter(name, np.ones(2))
    with pytest.raises(error, match=message):
        layer.register_module(name, Tanh())
    with pytest.raises(error, match=message):
        layer.register_buffer(name, np.ones(2))
    assert [n for n, _ in layer.named_parameters()] == ["scale", "inner.weight", "inner.bias"]  # nothing added


def test_assigning_a_parameter_or_layer_declares_it():
    class Gain(Layer):
        def __init__(self):
            super().__init__()
            self.gain = Parameter(np.full(2, 3.0))  # no register_parameter: still trained and saved
            self.body = Dense(2, 2, rng=0, dtype=np.float64)

    layer = Gain()
    assert [n for n, _ in layer.named_parameters()] == ["gain", "body.weight", "body.bias"]
    assert set(layer.state_dict()) == {"gain", "body.weight", "body.bias"}
    layer.gain = Parameter(np.zeros(2))  # replacing keeps one entry
    assert len(layer.parameters()) == 3 and not layer.parameters()[0].data.any()
    with pytest.raises(TypeError, match="cannot assign ndarray to Gain.gain, a parameter"):
        layer.gain = np.ones(2)
    layer.body = None  # removing a sub-layer
    assert [n for n, _ in layer.named_parameters()] == ["gain"]


def test_the_old_register_layer_method_still_works_with_a_warning():
    layer = Layer()
    with pytest.warns(DeprecationWarning, match="renamed register_module"):
        layer.register_layer("inner", Tanh())
    assert [name for name, _ in layer.named_children()] == ["inner"]


def test_buffers_are_saved_loaded_and_cast_but_not_trained():
    class Running(Layer):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(np.ones(2, np.float32))
            self.register_buffer("mean", np.zeros(2, np.float32))
            self.register_buffer("count", np.array(0, np.int64))

    model = Sequential([Running()])
    assert list(model.state_dict()) == ["0.weight", "0.mean", "0.count"]  # parameters, then buffers, as torch
    assert len(model.parameters()) == 1
    model.load_state_dict({"0.weight": np.ones(2), "0.mean": np.array([1.0, 2.0]), "0.count": np.array(5)})
    assert model[0].mean.tolist() == [1.0, 2.0] and int(model[0].count) == 5
    model.to(np.float64)
    assert model[0].mean.dtype == np.float64 and model[0].count.dtype == np.int64
    model[0].mean = np.array([7.0, 8.0])  # assigning a new array updates the buffer
    assert model.state_dict()["0.mean"].tolist() == [7.0, 8.0]


def test_saved_values_and_backward_before_forward():
    layer = Tanh()
    with pytest.raises(RuntimeError, match=r"Tanh.backward\(\) called before forward\(\)"):
        layer.saved("y")
    y = layer(np.array([[0.5]]))
    assert layer.saved("y") is y
    with pytest.raises(KeyError, match="did not save 'x'"):
        layer.saved("x")


def test_layer_without_super_init_starts_in_training_mode():
    class Lazy(Layer):
        def __init__(self):  # forgot super().__init__()
            self.k = 2

        def forward(self, x):
            return x * self.k

    layer = Lazy()
    assert layer.training is True and Layer.training is True
    assert layer.parameters() == [] and layer(np.ones(1))[0] == 2


def test_the_deprecation_warning_points_at_the_caller():
    layer = Layer()
    with pytest.warns(DeprecationWarning) as caught:
        layer.register_layer("inner", Tanh())
    assert caught[0].filename == __file__
