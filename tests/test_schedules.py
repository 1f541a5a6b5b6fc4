"""Learning-rate schedules by hand (PyTorch parity is in test_torch_parity), in loops and in fit."""

import math

import numpy as np
import pytest

from nnlayers import (
    SGD,
    Adam,
    BCELoss,
    CosineAnnealingLR,
    Dense,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    Parameter,
    ReduceLROnPlateau,
    Sequential,
    Sigmoid,
    StepLR,
    fit,
)
from nnlayers.optim.schedules import schedule_values


def rates(make, epochs, lr=1.0, metrics=None):
    opt = SGD([Parameter(np.zeros(1))], lr=lr)
    scheduler = make(opt)
    out = []
    for epoch in range(epochs):
        out.append(opt.lr)
        scheduler.step(metrics[epoch]) if metrics is not None else scheduler.step()
    return out


def test_step_multistep_exponential_by_hand():
    assert rates(lambda o: StepLR(o, 2, 0.5), 6) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert rates(lambda o: MultiStepLR(o, [1, 3], 0.1), 5) == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])
    assert rates(lambda o: ExponentialLR(o, 0.5), 4) == [1.0, 0.5, 0.25, 0.125]


def test_cosine_follows_the_closed_form():
    got = rates(lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.1), 21)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(21)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)  # down to eta_min at T_max, then back up
    assert got[10] == pytest.approx(0.1) and got[20] == pytest.approx(1.0)


def test_linear_warm_up_reaches_the_base_rate():
    got = rates(lambda o: LinearLR(o, start_factor=0.25, total_iters=3), 6)
    np.testing.assert_allclose(got, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0], rtol=0, atol=1e-12)


def test_plateau_waits_for_patience_then_cools_down():
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    got = rates(lambda o: ReduceLROnPlateau(o, patience=2, cooldown=1, factor=0.5), 10, metrics=metrics)
    # epochs 2, 3 stall; the third stalled epoch (4) halves the rate; one cooldown epoch, then 2 more stalls...
    assert got == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_state_dict_resumes_a_schedule_exactly():
    opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    first = CosineAnnealingLR(opt, T_max=8)
    for _ in range(3):
        first.step()
    state = first.state_dict()
    opt2 = SGD([Parameter(np.zeros(1))], lr=1.0)
    second = CosineAnnealingLR(opt2, T_max=99)
    second.load_state_dict(state)
    opt2.lr = opt.lr
    for _ in range(4):
        first.step()
        second.step()
        assert opt.lr == opt2.lr
    with pytest.raises(ValueError, match="cannot load the state of a CosineAnnealingLR schedule into StepLR"):
        StepLR(opt2, 2).load_state_dict(state)


def test_schedule_values_does_not_touch_the_optimizer():
    opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    opt.lr = 0.1  # not the rate the optimizer was built with: the schedule starts from 0.1
    scheduler = StepLR(opt, 2, 0.1)
    scheduler.step()
    scheduler.step()  # part-way through: the optimizer is at 0.01
    np.testing.assert_allclose(schedule_values(scheduler, 5), [0.1, 0.1, 0.01, 0.01, 0.001])
    assert opt.lr == pytest.approx(0.01) and scheduler.last_epoch == 2
    plateau = ReduceLROnPlateau(opt, patience=0, factor=0.5)
    np.testing.assert_allclose(schedule_values(plateau, 3, metrics=[1.0, 2.0, 3.0]), [0.01, 0.01, 0.005])
    assert opt.lr == pytest.approx(0.01) and plateau.num_bad_epochs == 0


def test_bad_arguments():
    opt = SGD([Parameter(np.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        StepLR(opt, 0)
    with pytest.raises(TypeError, match="expects an optimizer"):
        StepLR([Parameter(np.zeros(1))], 2)
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(opt, factor=2)


def test_fit_steps_the_schedule_once_per_epoch_and_logs_the_rate():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)), (rng.random(64) > 0.5).astype(int)
    model = Sequential([Dense(4, 1, rng=0, dtype=np.float64), Sigmoid()])
    opt = Adam(model.parameters(), lr=0.01)
    history = fit(model, BCELoss(), opt, (x, y), epochs=4, scheduler=StepLR(opt, 1, 0.5), verbose=0)
    np.testing.assert_allclose(history.history["lr"], [0.01, 0.005, 0.0025, 0.00125])
    plateau_opt = SGD(model.parameters(), lr=0.1)
    plateau = ReduceLROnPlateau(plateau_opt, mode="max", patience=0)  # "max" of a loss: it never improves
    history = fit(model, BCELoss(), plateau_opt, (x, y), epochs=3, validation=0.25, scheduler=plateau, verbose=0)
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.1, 0.01])  # fed val_loss each epoch
    with pytest.raises(ValueError, match="changes another optimizer's learning rate"):
        fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), (x, y), scheduler=StepLR(opt, 1), verbose=0)


def test_plateau_state_and_first_epochs_and_argument_checks():
    opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    eager = ReduceLROnPlateau(opt, patience=0, factor=0.5)
    eager.step(1.0)
    assert opt.lr == 1.0
    eager.step(1.0)  # the first epoch without improvement, patience 0: halved at once
    assert opt.lr == 0.5 and eager.last_epoch == 2
    other = ReduceLROnPlateau(SGD([Parameter(np.zeros(1))], lr=0.5), patience=5)
    other.load_state_dict(eager.state_dict())
    assert (other.patience, other.best, other.num_bad_epochs, other.last_epoch) == (0, 1.0, 0, 2)
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="milestones must be positive ints"):
        MultiStepLR(opt, [0, 3])
    with pytest.raises(ValueError, match="gamma must be > 0"):
        MultiStepLR(opt, [2], gamma=0)


def test_linear_warm_up_defaults_are_torchs():
    got = rates(lambda o: LinearLR(o), 7)  # start_factor 1/3, total_iters 5
    np.testing.assert_allclose(got, [1 / 3, 7 / 15, 9 / 15, 11 / 15, 13 / 15, 1.0, 1.0], rtol=1e-12)
