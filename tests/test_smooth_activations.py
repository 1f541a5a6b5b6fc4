"""GELU, SiLU, ELU, Softplus, Hardswish, and Softmax/LogSoftmax over any axis.

Oracles: central differences (gradcheck) on rows and images, PyTorch in float64 to 1e-10 where it
is installed, their definitions at points worked out by hand, model files and ONNX Runtime.
"""

import math

import numpy as np
import pytest

from nnlayers import (
    ELU,
    GELU,
    Dense,
    Hardswish,
    LogSoftmax,
    Sequential,
    SiLU,
    Softmax,
    Softplus,
    gradcheck,
    load,
    save,
)

LAYERS = {
    "gelu": (lambda: GELU(), "GELU()"),
    "gelu tanh": (lambda: GELU("tanh"), "GELU(approximate='tanh')"),
    "silu": (lambda: SiLU(), "SiLU()"),
    "elu": (lambda: ELU(0.7), "ELU(alpha=0.7)"),
    "softplus": (lambda: Softplus(2.0, 5.0), "Softplus(beta=2.0, threshold=5.0)"),
    "hardswish": (lambda: Hardswish(), "Hardswish()"),
    "softmax axis 1": (lambda: Softmax(axis=1), "Softmax(dim=1)"),
    "log softmax": (lambda: LogSoftmax(), "LogSoftmax(dim=-1)"),
    "log softmax axis 1": (lambda: LogSoftmax(axis=1), "LogSoftmax(dim=1)"),
}


def inputs(shape, seed=0):
    x = np.random.default_rng(seed).normal(0, 2.5, size=shape)
    # keep away from the kinks, where central differences are not the derivative
    for kink in (-3.0, 0.0, 3.0, 2.5):
        x[np.abs(x - kink) < 1e-3] += 0.01
    return x


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4, 5)])
def test_each_passes_gradcheck(name, shape):
    layer = LAYERS[name][0]()
    assert gradcheck(layer, inputs(shape)).passed


def test_definitions_at_points_worked_by_hand():
    x = np.array([[-1.0, 0.0, 1.0, 2.0]])
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    np.testing.assert_allclose(GELU()(x), [[v * phi(v) for v in x[0]]], rtol=1e-15)
    tanh_form = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x[0]]
    np.testing.assert_allclose(GELU("tanh")(x), [tanh_form], rtol=1e-15)
    np.testing.assert_allclose(SiLU()(x), x / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(ELU(2.0)(x), [[2 * (math.exp(-1) - 1), 0.0, 1.0, 2.0]], rtol=1e-15)
    np.testing.assert_allclose(
        Softplus(2.0, 3.0)(x),
        [[math.log1p(math.exp(-2)) / 2, math.log(2) / 2, math.log1p(math.exp(2)) / 2, 2.0]],
        rtol=1e-15,
    )
    np.testing.assert_allclose(Hardswish()(np.array([[-4.0, -1.5, 1.0, 4.0]])), [[0.0, -0.375, 2 / 3, 4.0]], rtol=1e-15)
    z = np.array([[1000.0, 0.0], [0.0, math.log(3.0)]])
    np.testing.assert_allclose(np.exp(LogSoftmax()(z)), [[1.0, 0.0], [0.25, 0.75]], atol=1e-15)
    assert np.isfinite(LogSoftmax()(z)).all()  # no log(0)
    np.testing.assert_allclose(Softmax(axis=0)(z).sum(axis=0), [1.0, 1.0])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_agrees_with_torch(name):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    make, expression = LAYERS[name]
    ours, theirs = make(), eval(f"torch.nn.{expression}")  # noqa: S307 - our own table of expressions
    x = inputs((4, 3, 5, 6), seed=3)
    g = np.random.default_rng(4).normal(size=x.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_they_keep_float32_and_round_trip_through_a_model_file(tmp_path):
    model = Sequential([Dense(4, 6, rng=0), *(make() for make, _ in LAYERS.values() if "axis" not in _)])
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    assert model(x).dtype == np.float32
    loaded = load(save(model, tmp_path / "m.nnl"))
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_onnx_runtime_gives_their_outputs(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    model = Sequential([Dense(6, 8, rng=0), GELU(), Dense(8, 8, rng=1), GELU("tanh"), SiLU(), ELU(0.5),
                        Softplus(2.0), Hardswish(), Dense(8, 3, rng=2), LogSoftmax()])  # fmt: skip
    x = np.random.default_rng(0).normal(0, 2, size=(5, 6)).astype(np.float32)
    path = export_onnx(model, tmp_path / "m.onnx")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)
