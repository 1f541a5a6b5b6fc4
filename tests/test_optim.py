"""SGD: hand-worked updates (plain, momentum, Nesterov, weight decay), errors, state."""

import numpy as np
import pytest

from nnlayers import SGD, Dense, Parameter


def make_param(values, grad):
    p = Parameter(np.array(values, dtype=np.float64))
    p.grad[...] = grad
    return p


def test_plain_step_is_the_seed_update():
    p = make_param([1.0, -1.0], [0.5, 0.25])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -1.025], rtol=1e-15)


def test_momentum_follows_torch_definition():
    # torch: buf = g on the first step, then buf = m * buf + g; w -= lr * buf
    p = make_param([0.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert p.data[0] == pytest.approx(-0.1)
    opt.step()  # buf = 0.9 * 1 + 1 = 1.9
    assert p.data[0] == pytest.approx(-0.1 - 0.19)


def test_nesterov_and_weight_decay():
    p = make_param([2.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.5, weight_decay=0.1, nesterov=True)
    opt.step()  # d = 1 + 0.1*2 = 1.2; buf = 1.2; d = 1.2 + 0.5*1.2 = 1.8; w = 2 - 0.18
    assert p.data[0] == pytest.approx(1.82)


def test_dampening():
    p = make_param([0.0], [1.0])
    opt = SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    opt.step()  # buf = 1
    opt.step()  # buf = 0.5 * 1 + 0.5 * 1 = 1
    assert p.data[0] == pytest.approx(-2.0)


def test_step_updates_in_place_and_zero_grad():
    layer = Dense(3, 2, rng=0)
    weight = layer.weight.data
    layer.weight.grad += 1
    opt = SGD(layer.parameters(), lr=0.5)
    opt.step()
    assert layer.weight.data is weight and weight.dtype == np.float32
    opt.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, "learning rate must be a positive number, got 0"),
        ({"lr": -0.1}, "learning rate must be a positive number"),
        ({"lr": float("nan")}, "learning rate must be a positive number"),
        ({"lr": "0.1"}, "learning rate must be a positive number"),
        ({"lr": 0.1, "momentum": -0.5}, "momentum must be >= 0, got -0.5"),
        ({"lr": 0.1, "weight_decay": -1}, "weight_decay must be >= 0"),
        ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0"),
        ({"lr": 0.1, "dampening": 2}, "dampening must be in"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD(Dense(2, 1).parameters(), **kwargs)


def test_bad_parameter_lists():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"expected Parameters \(from model.parameters\(\)\), got ndarray"):
        SGD([np.zeros(3)], lr=0.1)


def test_state_dict_round_trip_continues_identically():
    def run(split):
        p = make_param([1.0, 2.0], [0.0, 0.0])
        opt = SGD([p], lr=0.1, momentum=0.9)
        for step in range(6):
            if step == split:
                state = opt.state_dict()
                opt = SGD([p], lr=0.1, momentum=0.9)
                opt.load_state_dict(state)
            p.grad[...] = [np.sin(step), np.cos(step)]
            opt.step()
        return p.data

    np.testing.assert_array_equal(run(split=3), run(split=99))
