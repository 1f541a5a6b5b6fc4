"""Dense, Tanh, Sigmoid, ReLU: hand-worked values, initialisers, dtypes, stability, shape errors."""

import numpy as np
import pytest

from nnlayers import Dense, LeakyReLU, ReLU, Sigmoid, Tanh
from nnlayers.nn.init import INITIALIZERS


def test_dense_forward_backward_by_hand():
    layer = Dense(2, 2, dtype=np.float64)
    layer.load_state_dict({"weight": np.array([[1.0, 2.0], [3.0, 4.0]]), "bias": np.array([0.5, -0.5])})
    x = np.array([[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(layer(x), [[3.5, 6.5], [4.5, 7.5]])
    grad_x = layer.backward(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_array_equal(grad_x, [[1.0, 2.0], [3.0, 4.0]])  # grad_y @ W
    np.testing.assert_array_equal(layer.weight.grad, [[1.0, 1.0], [0.0, 2.0]])  # grad_y.T @ x
    np.testing.assert_array_equal(layer.bias.grad, [1.0, 1.0])
    layer.backward(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_array_equal(layer.bias.grad, [2.0, 2.0])  # gradients accumulate (+=)


def test_dense_without_bias():
    layer = Dense(3, 2, bias=False, rng=0)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Dense(in_features=3, out_features=2, bias=False)"
    x = np.ones((4, 3), dtype=np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.weight.data.T)


def test_dense_backward_params_skips_input_gradient_but_not_weights():
    a, b = Dense(5, 3, rng=0), Dense(5, 3, rng=0)
    x = np.random.default_rng(1).random((4, 5), dtype=np.float32)
    g = np.ones((4, 3), dtype=np.float32)
    a(x), b(x)
    assert a.backward_params(g) is None
    b.backward(g)
    np.testing.assert_array_equal(a.weight.grad, b.weight.grad)
    np.testing.assert_array_equal(a.bias.grad, b.bias.grad)


def test_dense_shape_error_names_layer_and_shapes():
    layer = Dense(12288, 64)
    with pytest.raises(
        ValueError, match=r"Dense\(12288 -> 64\) expected input of shape \(N, 12288\), got \(32, 4096\)"
    ):
        layer(np.zeros((32, 4096), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got \(12288,\)"):
        layer(np.zeros(12288, dtype=np.float32))


def test_dense_backward_gradient_shape_error():
    layer = Dense(3, 2)
    layer(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(4, 2\).*got \(4, 3\)"):
        layer.backward(np.ones((4, 3), dtype=np.float32))


@pytest.mark.parametrize(
    "bad", [np.ones((2, 3), dtype=np.uint8), np.ones((2, 3), dtype=complex), np.ones((2, 3), dtype=object)]
)
def test_non_float_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match=f"floating-point array, got dtype {bad.dtype}"):
        Dense(3, 2)(bad)
    with pytest.raises(TypeError, match="floating-point"):
        Tanh()(bad)


@pytest.mark.parametrize("args", [(0, 3), (3, -1), (2.5, 3), (True, 3)])
def test_dense_bad_sizes(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        Dense(*args)


def test_dense_unknown_init_lists_choices():
    with pytest.raises(ValueError, match="unknown init 'zeros'.*xavier_uniform"):
        Dense(3, 2, init="zeros")


def test_normal_init_reproduces_the_seed_exactly():
    # seed: np.random.seed(1); W1 = np.random.randn(7, 12288) * 0.01; W2 = np.random.randn(1, 7) * 0.01
    np.random.seed(1)
    w1 = np.random.randn(7, 300) * 0.01
    w2 = np.random.randn(1, 7) * 0.01
    state = np.random.RandomState(1)
    d1 = Dense(300, 7, init="normal", dtype=np.float64, rng=state)
    d2 = Dense(7, 1, init="normal", dtype=np.float64, rng=state)
    np.testing.assert_array_equal(d1.weight.data, w1)
    np.testing.assert_array_equal(d2.weight.data, w2)
    assert not d1.bias.data.any()


@pytest.mark.parametrize(
    "name, expected_std",
    [
        ("normal", 0.01),
        ("xavier_uniform", np.sqrt(2 / (400 + 100))),
        ("xavier_normal", np.sqrt(2 / (400 + 100))),
        ("he_normal", np.sqrt(2 / 400)),
        ("he_uniform", np.sqrt(2 / 400)),
    ],
)
def test_initializer_scales(name, expected_std):
    w = Dense(400, 100, init=name, rng=0).weight.data
    assert abs(w.std() / expected_std - 1) < 0.03
    assert abs(w.mean()) < 0.05 * expected_std


def test_init_aliases_and_rng_reproducibility():
    assert INITIALIZERS["glorot_uniform"] is INITIALIZERS["xavier_uniform"]
    assert INITIALIZERS["kaiming_normal"] is INITIALIZERS["he_normal"]
    a, b, c = Dense(5, 4, rng=3), Dense(5, 4, rng=np.random.default_rng(3)), Dense(5, 4, rng=4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    with pytest.raises(TypeError, match="rng must be"):
        Dense(5, 4, rng="seed")


def test_custom_initializer_callable():
    layer = Dense(3, 2, init=lambda shape, rng: np.full(shape, 0.5))
    assert (layer.weight.data == 0.5).all() and layer.weight.dtype == np.float32


def test_activations_by_hand():
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(Tanh()(z), np.tanh(z))
    np.testing.assert_allclose(Sigmoid()(z), 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_array_equal(ReLU()(z), [[0.0, 0.0, 3.0]])


@pytest.mark.parametrize(
    "layer_cls, derivative",
    [
        (Tanh, lambda a, z: 1 - a**2),
        (Sigmoid, lambda a, z: a * (1 - a)),
        (ReLU, lambda a, z: (z > 0).astype(float)),
    ],
)
def test_activation_backward_derives_from_cache(layer_cls, derivative):
    z = np.array([[-1.5, -0.2, 0.3, 2.0]])
    layer = layer_cls()
    a = layer(z)
    g = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(layer.backward(g), g * derivative(a, z), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    z = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        layer = Sigmoid()
        a = layer(z)
        g = layer.backward(np.ones_like(z))
    assert a.dtype == dtype and np.isfinite(a).all() and np.isfinite(g).all()
    assert a[0, 0] == 0.0 and a[0, -1] == 1.0 and a[0, 2] == 0.5


@pytest.mark.parametrize("layer", [Tanh(), Sigmoid(), ReLU()], ids=lambda layer: type(layer).__name__)
def test_activations_keep_dtype(layer):
    for dtype in (np.float32, np.float64):
        x = np.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
        assert layer(x).dtype == dtype
        assert layer.backward(np.ones_like(x)).dtype == dtype


def test_activation_gradient_shape_error():
    layer = Tanh()
    layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Tanh\(\).backward expected a gradient of shape \(2, 3\)"):
        layer.backward(np.zeros((3, 2)))


def test_relu_gradient_at_exactly_zero_is_zero_as_in_torch():
    relu = ReLU()
    y = relu(np.array([[-1.0, 0.0, -0.0, 2.0]]))
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.full((1, 4), 3.0)), [[0.0, 0.0, 0.0, 3.0]])


def test_dtype_of_a_layer_with_one_parameter_or_several():
    from nnlayers import SGD, BCEWithLogitsLoss, Sequential, fit

    single = Dense(3, 1, bias=False, rng=0, dtype=np.float64)  # one parameter
    assert single.dtype == np.float64 and len(single.parameters()) == 1
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.arange(16) % 2
    model = Sequential([single])
    history = fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1, verbose=0)
    assert len(history.epochs) == 1
    mixed = Sequential([Dense(3, 2, rng=0, dtype=np.float32), Dense(2, 1, rng=0, dtype=np.float64)])
    assert mixed.dtype == np.float32  # the first parameter's


def test_leaky_relu_defaults_to_torchs_slope():
    layer = LeakyReLU()
    assert layer.negative_slope == 0.01
    np.testing.assert_allclose(layer(np.array([[-2.0, 3.0]])), [[-0.02, 3.0]])


def test_initialisers_count_fans_as_torch():
    from nnlayers import Conv2D
    from nnlayers.nn.init import fans, weights_left_unset

    assert fans((50, 100)) == (100, 50) and fans((8, 3, 5, 5)) == (75, 200)
    assert fans((4, 3, 5)) == (15, 20)  # a 1-D convolution's (out, in, k), as torch counts it
    torch_like = Dense(100, 50, init="torch", rng=0)  # not square: fan_in and fan_out differ
    assert np.abs(torch_like.weight.data).max() <= 0.1 < 4 * np.abs(torch_like.weight.data).max()  # 1/sqrt(fan_in)
    assert torch_like.bias.shape == (50,) and np.abs(torch_like.bias.data).max() <= 0.1
    conv = Conv2D(3, 8, 5, init="xavier_uniform", rng=0)
    bound = np.sqrt(6 / (75 + 200))  # fan_out = out * kh * kw
    assert np.abs(conv.weight.data).max() <= bound < 1.1 * np.abs(conv.weight.data).max()
    calls = []

    def counting(shape, rng):
        calls.append(shape)
        return np.zeros(shape)

    with weights_left_unset():  # loading a file: nothing drawn
        Dense(4, 3, init=counting)
    assert calls == []
    Dense(4, 3, init=counting)
    assert calls == [(3, 4)]
