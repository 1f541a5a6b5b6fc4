"""gradcheck over every layer, loss and a custom layer; it must also catch a broken backward."""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dense,
    GradcheckError,
    Layer,
    LeakyReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    fit,
    gradcheck,
)

SHAPES = [(1, 1), (4, 3), (7, 5)]


def away_from_zero(rng, shape):
    """Random values with |x| >= 0.1, so ReLU's kink at 0 is never within a finite-difference step."""
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.1, 0.1 * np.sign(x) + 0.1 * (x == 0), x)


def layer_cases():
    for n, d in SHAPES:
        yield f"Dense-{n}x{d}", Dense(d, 3, rng=n), (n, d)
        yield f"Dense-nobias-{n}x{d}", Dense(d, 2, bias=False, rng=n), (n, d)
        for act in (Tanh, Sigmoid, ReLU, Softmax, lambda: LeakyReLU(0.2)):
            name = getattr(act, "__name__", "LeakyReLU")
            yield f"{name}-{n}x{d}", act(), (n, d)


@pytest.mark.parametrize("layer, shape", [c[1:] for c in layer_cases()], ids=[c[0] for c in layer_cases()])
def test_every_layer_passes_gradcheck(layer, shape):
    x = away_from_zero(np.random.default_rng(sum(shape)), shape)
    result = gradcheck(layer, x)
    assert result.passed and result.max_rel_error < 1e-5
    assert set(result.errors) == {"input", *(name for name, _ in layer.named_parameters())}


@pytest.mark.parametrize("n", [1, 5, 16])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_pass_gradcheck(n, reduction):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, size=(n, 1)).astype(float)
    soft = rng.random((n, 1))  # soft targets in [0, 1] too
    assert gradcheck(BCELoss(reduction), rng.uniform(0.05, 0.95, (n, 1)), y).passed
    assert gradcheck(BCELoss(reduction), rng.uniform(0.05, 0.95, (n,)), soft.ravel()).passed
    assert gradcheck(BCEWithLogitsLoss(reduction), rng.normal(scale=3, size=(n, 1)), soft).passed
    classes = rng.integers(0, 4, size=n)
    weight = rng.uniform(0.5, 2.0, 4)
    for options in ({}, {"label_smoothing": 0.1}, {"weight": weight, "label_smoothing": 0.2}):
        assert gradcheck(
            CrossEntropyLoss(reduction=reduction, **options), rng.normal(scale=2, size=(n, 4)), classes
        ).passed


def test_whole_models_pass_gradcheck():
    rng = np.random.default_rng(0)
    for model in (
        Sequential([Dense(6, 5, rng=0), Tanh(), Dense(5, 1, rng=1), Sigmoid()]),
        Sequential([Dense(6, 5, rng=0, init="he_normal"), ReLU(), Dense(5, 4, rng=2), Tanh(), Dense(4, 1, rng=3)]),
    ):
        result = gradcheck(model, away_from_zero(rng, (8, 6)))
        assert result.passed, result


def test_gradcheck_works_on_a_float64_copy():
    layer = Dense(3, 2, rng=0)
    before = layer.weight.data.copy()
    gradcheck(layer, np.ones((2, 3)))
    assert layer.dtype == np.float32 and not layer.weight.grad.any()
    np.testing.assert_array_equal(layer.weight.data, before)


class BrokenTanh(Tanh):
    """A deliberately wrong backward: forgets the square in 1 - a**2."""

    def backward(self, grad_y):
        return grad_y * (1 - self.saved("y"))


class BrokenDense(Dense):
    """A deliberately wrong weight gradient: forgets to use the input."""

    def backward_params(self, grad_y):
        self.weight.grad += grad_y.sum(axis=0)[:, None]
        self.bias.grad += grad_y.sum(axis=0)


def test_gradcheck_catches_broken_layers():
    x = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(GradcheckError, match=r"gradcheck FAILED: worst relative error .* at input\["):
        gradcheck(BrokenTanh(), x)
    result = gradcheck(BrokenDense(3, 2, rng=0), x, raise_exception=False)
    assert not result.passed and result.worst.startswith("weight[")
    assert result.errors["bias"] < 1e-6 and result.errors["weight"] > 1e-2
    with pytest.raises(GradcheckError):
        gradcheck(Sequential([Dense(3, 4, rng=0), BrokenTanh(), Dense(4, 1, rng=1)]), x)


def test_gradcheck_sampling_and_argument_errors():
    layer = Dense(50, 40, rng=0)
    assert gradcheck(layer, np.ones((2, 50)), max_checks=20).passed
    with pytest.raises(ValueError, match="needs the target"):
        gradcheck(BCELoss(), np.full((2, 1), 0.5))
    with pytest.raises(TypeError, match="expected a Layer or a Loss, got function"):
        gradcheck(lambda x: x, np.ones((1, 1)))


class Swish(Layer):
    """A user's layer: x * sigmoid(beta * x), with a learnable beta."""

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = self.register_parameter("beta", np.array([beta]))
        self._x = self._s = None

    def forward(self, x):
        self._x = x
        self._s = 1 / (1 + np.exp(-self.beta.data * x))
        return x * self._s

    def backward(self, grad_y):
        x, s = self._cached(self._x), self._s
        ds = s * (1 - s)
        self.beta.grad += np.sum(grad_y * x * x * ds).reshape(1)
        return grad_y * (s + self.beta.data * x * ds)


def test_custom_layer_gradchecks_composes_and_trains():
    rng = np.random.default_rng(0)
    assert gradcheck(Swish(0.7), rng.normal(size=(5, 4))).passed
    model = Sequential([Dense(2, 8, rng=1, dtype=np.float64), Swish(), Dense(8, 1, rng=2, dtype=np.float64)])
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.beta", "2.weight", "2.bias"]
    assert gradcheck(model, rng.normal(size=(6, 2))).passed
    x = rng.normal(size=(200, 2))
    y = (x[:, :1] * x[:, 1:] > 0).astype(float)  # XOR of signs: not linearly separable
    loss_fn, opt = BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.5, momentum=0.9)
    first = loss_fn(model(x), y)
    for _ in range(300):
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    accuracy = np.mean((model(x) > 0) == y)
    assert loss < 0.5 * first and accuracy > 0.9
    assert model[1].beta.data[0] != 1.0  # the custom parameter was trained too


class Scaled(Layer):
    """y = 1000 x, with a backward that is off by a relative ``error``: large values, small error."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def forward(self, x):
        return 1000.0 * x

    def backward(self, grad_y):
        return 1000.0 * (1 + self.error) * grad_y


def test_gradcheck_relative_tolerance_and_the_reported_error():
    x = np.random.default_rng(0).normal(size=(3, 4))
    # an error of 1e-5 relative is far above atol on gradients of ~1000, but within rtol = 1e-3
    assert gradcheck(Scaled(1e-5), x).passed
    assert not gradcheck(Scaled(1e-5), x, rtol=0, raise_exception=False).passed
    assert not gradcheck(Scaled(1e-2), x, raise_exception=False).passed  # 1% is a real bug
    doubled = gradcheck(Scaled(1.0), x, raise_exception=False)  # backward twice the truth
    assert doubled.max_rel_error == pytest.approx(1.0, rel=1e-6)  # |2g - g| / |g|


def test_gradcheck_of_a_layer_that_already_holds_gradients():
    layer = Dense(4, 3, rng=0, dtype=np.float64)
    layer.weight.grad[...] = 123.0  # left over from an earlier backward
    layer.bias.grad[...] = -7.0
    assert gradcheck(layer, np.random.default_rng(1).normal(size=(5, 4))).passed
    assert (layer.weight.grad == 123.0).all()  # and the original is untouched


def test_fit_never_computes_the_first_layers_input_gradient():
    from .test_container import CountingDense

    CountingDense.input_grads = 0
    x, y = np.random.default_rng(0).normal(size=(40, 6)), np.arange(40) % 2
    model = Sequential([CountingDense(6, 4, rng=0), Tanh(), Dense(4, 1, rng=1), Sigmoid()])
    fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=8, verbose=0)
    assert CountingDense.input_grads == 0  # backward_params all the way


class Offset(Layer):
    """y = x; backward adds a fixed absolute error to the input gradient (all of it near 0 here)."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def forward(self, x):
        return 1e-3 * x

    def backward(self, grad_y):
        return 1e-3 * grad_y + self.error


def test_gradcheck_tolerances_at_their_edges():
    x = np.random.default_rng(0).normal(size=(3, 4))
    assert gradcheck(Offset(5e-6), x).passed  # under atol = 1e-5 on gradients near 0
    assert not gradcheck(Offset(1.5e-5), x, raise_exception=False).passed  # over it
    assert not gradcheck(Scaled(1.5e-3), x, raise_exception=False).passed  # over rtol = 1e-3


class Counter(Layer):
    """A forward pass that changes by exactly 1 from one call to the next."""

    calls = 0

    def forward(self, x):
        type(self).calls += 1
        return x + type(self).calls

    def backward(self, grad_y):
        return grad_y


class LogLayer(Layer):
    """log(x): NaN for negative inputs, deterministic all the same."""

    def forward(self, x):
        self.save_for_backward(x=x)
        with np.errstate(invalid="ignore"):
            return np.log(x)

    def backward(self, grad_y):
        return grad_y / self.saved("x")


def test_gradcheck_reports_the_difference_of_a_random_forward_and_accepts_nan_outputs():
    with pytest.raises(GradcheckError, match=r"differ \(by up to 1\)"):
        gradcheck(Counter(), np.zeros((2, 2)))
    result = gradcheck(LogLayer(), np.array([[1.0, -1.0]]), raise_exception=False)  # NaN: a failure, not "random"
    assert not result.passed
