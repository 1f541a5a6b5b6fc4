"""SGD: hand-worked updates (plain, momentum, Nesterov, weight decay), errors, state."""

import numpy as np
import pytest

from nnlayers import SGD, Adam, AdamW, Dense, Parameter, RMSprop


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


def test_adam_first_step_moves_each_weight_by_the_learning_rate():
    # m = (1 - b1) g, v = (1 - b2) g^2; after bias correction m / sqrt(v) = sign(g)
    p = make_param([1.0, -2.0, 3.0], [0.5, -4.0, 1e-3])
    Adam([p], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(p.data, [0.9, -1.9, 2.9], rtol=1e-12)


def test_adam_weight_decay_is_coupled_and_adamw_decoupled():
    p, q = make_param([2.0], [0.0]), make_param([2.0], [0.0])
    Adam([p], lr=0.1, weight_decay=0.5).step()  # grad becomes 0 + 0.5 * 2 = 1: a full Adam step
    AdamW([q], lr=0.1, weight_decay=0.5).step()  # weights shrink by lr * wd, the zero gradient moves nothing
    assert p.data[0] == pytest.approx(1.9) and q.data[0] == pytest.approx(2.0 * (1 - 0.05))


def test_rmsprop_by_hand():
    p = make_param([1.0], [2.0])
    RMSprop([p], lr=0.1, alpha=0.5, eps=0.0).step()  # v = 0.5 * 4 = 2; w -= 0.1 * 2 / sqrt(2)
    assert p.data[0] == pytest.approx(1.0 - 0.1 * 2 / np.sqrt(2))


@pytest.mark.parametrize(
    "make", [lambda ps: Adam(ps, lr=0.01, amsgrad=True), lambda ps: RMSprop(ps, momentum=0.9, centered=True)]
)
def test_adam_and_rmsprop_state_dicts_continue_identically(make):
    def run(split):
        p = make_param([1.0, 2.0], [0.0, 0.0])
        opt = make([p])
        for step in range(6):
            if step == split:
                state = opt.state_dict()
                opt = make([p])
                opt.load_state_dict(state)
            p.grad[...] = [np.sin(step) * 3, np.cos(step) / 2]
            opt.step()
        return p.data

    np.testing.assert_array_equal(run(split=3), run(split=99))


def test_optimizer_state_of_another_kind_or_size_is_refused():
    p = make_param([1.0], [1.0])
    with pytest.raises(ValueError, match="cannot load the state of a SGD optimizer into Adam"):
        Adam([p]).load_state_dict(SGD([p], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="got the same parameter twice"):
        Adam([p, p])


def test_sgd_momentum_and_dampening_with_gradients_that_are_not_one():
    # torch: buf = g1; then buf = m * buf + (1 - d) * g2; w -= lr * buf
    p = make_param([0.0, 0.0], [2.0, -3.0])
    opt = SGD([p], lr=0.5, momentum=0.8, dampening=0.25)
    opt.step()
    p.grad[...] = [4.0, 1.5]
    opt.step()
    first = np.array([2.0, -3.0])
    second = 0.8 * first + 0.75 * np.array([4.0, 1.5])
    np.testing.assert_allclose(p.data, -0.5 * first - 0.5 * second, rtol=1e-14)


def test_clip_grad_norm_by_hand():
    from nnlayers import clip_grad_norm

    a, b = make_param([0.0, 0.0], [3.0, 0.0]), make_param([0.0], [4.0])
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(b.grad, [4.0])  # under the limit: untouched
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-6)
    assert clip_grad_norm([a, b], 1.0, norm_type=float("inf")) == pytest.approx(0.8, rel=1e-6)


def test_defaults_are_torchs_and_betas_are_checked():
    p = make_param([1.0], [0.0])
    assert RMSprop([p]).lr == 0.01 and Adam([p]).lr == 0.001 and AdamW([p]).weight_decay == 0.01
    for betas in ((0.9, 1.5), (-0.1, 0.999), (0.9,)):  # one bad value is enough
        with pytest.raises(ValueError, match="betas must be two numbers in"):
            Adam([p], betas=betas)


def test_load_state_dict_restores_the_hyperparameters():
    p = make_param([1.0, 2.0], [0.5, 0.5])
    saved = SGD([p], lr=0.3, momentum=0.7, weight_decay=0.01, dampening=0.2).state_dict()
    other = SGD([p], lr=0.1)
    other.load_state_dict(saved)
    assert (other.lr, other.momentum, other.weight_decay, other.dampening) == (0.3, 0.7, 0.01, 0.2)
    adam = Adam([p], betas=(0.8, 0.9))
    restored = Adam([p])
    restored.load_state_dict(adam.state_dict())
    assert restored.betas == (0.8, 0.9)
