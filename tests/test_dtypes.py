"""float32 stays float32 end to end; float64 works end to end."""

import numpy as np
import pytest

from nnlayers import SGD, BCELoss, BCEWithLogitsLoss, Dense, ReLU, Sequential, Sigmoid, Tanh


def every_array(model, opt):
    for name, p in model.named_parameters():
        yield f"{name}.data", p.data
        yield f"{name}.grad", p.grad
    for i, buf in enumerate(opt.momentum_buffers):
        yield f"momentum[{i}]", buf
    for i, layer in enumerate(model):
        for key in ("x", "y"):  # what forward kept for backward
            try:
                yield f"{i}.{key}", layer.saved(key)
            except KeyError:
                pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_training_step_keeps_the_model_dtype(dtype, input_dtype):
    model = Sequential(
        [
            Dense(20, 8, dtype=dtype, rng=0),
            Tanh(),
            Dense(8, 4, dtype=dtype, rng=1),
            ReLU(),
            Dense(4, 1, dtype=dtype, rng=2),
            Sigmoid(),
        ]
    )
    loss_fn = BCELoss()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    rng = np.random.default_rng(0)
    x = rng.random((16, 20)).astype(input_dtype)
    y = rng.integers(0, 2, (16, 1)).astype(np.float64)  # float64 targets must not upcast a float32 model
    for _ in range(2):
        pred = model(x)
        assert pred.dtype == dtype
        loss = loss_fn(pred, y)
        grad = loss_fn.backward()
        assert grad.dtype == dtype and isinstance(loss, float)
        grad_x = model.backward(grad, input_grad=True)
        assert grad_x.dtype == dtype
        opt.step()
    for name, array in every_array(model, opt):
        assert array.dtype == dtype, name


def test_logits_loss_keeps_float32():
    """float32 in, float32 gradient out, and the same numbers as in float64: sigmoid(z) - y over N."""
    z = np.array([[-3.0], [0.5], [40.0]], dtype=np.float32)
    y = np.array([1.0, 0.0, 1.0])
    loss_fn = BCEWithLogitsLoss()
    loss = loss_fn(z, y)
    grad = loss_fn.backward()
    assert grad.dtype == np.float32
    z64 = z.astype(np.float64)
    expected_grad = (1 / (1 + np.exp(-z64)) - y[:, None]) / 3
    expected_loss = np.mean(np.logaddexp(0, z64[:, 0]) - y * z64[:, 0])
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
