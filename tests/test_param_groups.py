"""Parameter groups, as torch.optim has them: per-group lr and hyper-parameters, schedules on every group, state dicts."""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    Adam,
    AdamW,
    BatchNorm1D,
    BCEWithLogitsLoss,
    CosineAnnealingLR,
    Dense,
    Optimizer,
    Parameter,
    ReduceLROnPlateau,
    ReLU,
    Sequential,
    StepLR,
    fit,
)
from nnlayers.optim.fused import FUSED_MIN_SIZE
from nnlayers.optim.schedules import schedule_values

from .conftest import step_both_optimizers

SHAPES = [(80, 64), (80,), (64, 5), (5,)]  # the weights above the fused update's threshold


def groups_of(params):
    """Weights in one group, biases in another: the way weight decay is kept off biases."""
    return [
        {"params": [p for p in params if p.data.ndim > 1]},
        {"params": [p for p in params if p.data.ndim == 1], "lr": 0.03, "weight_decay": 0.0},
    ]


def test_the_weights_are_large_enough_for_the_fused_update():
    assert np.prod(SHAPES[0]) > FUSED_MIN_SIZE


OURS_AND_TORCH = {
    "sgd nesterov": (
        lambda g: SGD(g, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05),
        lambda g, torch: torch.optim.SGD(g, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05),
    ),
    "sgd dampening": (
        lambda g: SGD(g, lr=0.02, momentum=0.8, dampening=0.2, weight_decay=0.01),
        lambda g, torch: torch.optim.SGD(g, lr=0.02, momentum=0.8, dampening=0.2, weight_decay=0.01),
    ),
    "adam": (
        lambda g: Adam(g, lr=0.01, weight_decay=0.1, amsgrad=True),
        lambda g, torch: torch.optim.Adam(g, lr=0.01, weight_decay=0.1, amsgrad=True),
    ),
    "adamw": (
        lambda g: AdamW(g, lr=0.01, weight_decay=0.2, betas=(0.8, 0.99)),
        lambda g, torch: torch.optim.AdamW(g, lr=0.01, weight_decay=0.2, betas=(0.8, 0.99)),
    ),
}


@pytest.mark.parametrize("schedule", ["cosine", "step"])
@pytest.mark.parametrize("name", list(OURS_AND_TORCH))
def test_two_groups_with_a_schedule_agree_with_torch_over_thirty_steps(name, schedule):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    make_ours, make_theirs = OURS_AND_TORCH[name]
    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape) for shape in SHAPES]
    ours = [Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in start]
    opt = make_ours(groups_of(ours))
    topt = make_theirs(
        [
            {"params": [p for p in theirs if p.ndim > 1]},
            {"params": [p for p in theirs if p.ndim == 1], "lr": 0.03, "weight_decay": 0.0},
        ],
        torch,
    )
    if schedule == "cosine":
        sched, tsched = CosineAnnealingLR(opt, 20, 1e-3), torch.optim.lr_scheduler.CosineAnnealingLR(topt, 20, 1e-3)
    else:
        sched, tsched = StepLR(opt, 2, 0.5), torch.optim.lr_scheduler.StepLR(topt, 2, 0.5)
    for step in range(30):
        step_both_optimizers(rng, ours, theirs, opt, topt, torch)
        if step % 3 == 2:  # a schedule step every few optimizer steps, as per epoch
            sched.step()
            tsched.step()
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), abs=1e-15)
    assert sched.get_last_lr()[0] != sched.get_last_lr()[1]  # the groups kept their own rates
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


def test_group_settings_default_to_the_optimizer_arguments():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0, "lr": 0.5}], lr=0.1, eps=1e-6)
    first, second = opt.param_groups
    assert (first["lr"], first["weight_decay"], first["eps"]) == (0.1, 0.01, 1e-6)
    assert (second["lr"], second["weight_decay"], second["eps"]) == (0.5, 0.0, 1e-6)
    assert opt.params == [a, b] and opt.lr == 0.1 and opt.weight_decay == 0.01
    opt.lr = 0.2  # setting lr sets every group's
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]


def test_a_group_without_decay_is_not_decayed():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = SGD([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5)
    opt.step()  # zero gradients: only decay moves a weight
    np.testing.assert_allclose(a.data, 1 - 0.1 * 0.5)
    np.testing.assert_array_equal(b.data, 1.0)


@pytest.mark.parametrize(
    "groups, message",
    [
        (lambda a, b: [{"params": [a]}, {"params": [b], "weight_decy": 0.0}], "unknown setting"),
        (lambda a, b: [{"params": [a]}, {"lr": 0.1}], "has no 'params'"),
        (lambda a, b: [{"params": [a]}, {"params": [a, b]}], "same parameter twice"),
        (lambda a, b: [{"params": [a]}, {"params": [b], "lr": -1.0}], "in parameter group 1"),
        (lambda a, b: [{"params": [a]}, {"params": [b], "momentum": -0.5}], "momentum must be >= 0"),
        (lambda a, b: [{"params": [a]}, {"params": [np.ones(2)]}], "expected Parameters"),
        (lambda a, b: [{"params": []}, {"params": []}], "empty parameter list"),
    ],
)
def test_bad_groups_are_refused_with_what_is_wrong(groups, message):
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    with pytest.raises((ValueError, TypeError), match=message):
        SGD(groups(a, b), lr=0.1)


def test_an_empty_group_is_allowed_beside_others():
    """A model without biases still has a (then empty) no-decay group."""
    a = Parameter(np.ones(3))
    a.grad[...] = 1.0
    opt = SGD([{"params": [a]}, {"params": [], "weight_decay": 0.0}], lr=0.1)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)


def test_state_dict_keeps_the_groups_and_refuses_other_groups():
    params = [Parameter(np.full(s, 0.5)) for s in SHAPES]
    opt = Adam(groups_of(params), lr=0.01, weight_decay=0.1)
    for p in params:
        p.grad[...] = 0.3
    opt.step()
    state = opt.state_dict()
    other = Adam(groups_of([Parameter(np.zeros(s)) for s in SHAPES]), lr=0.5)
    other.load_state_dict(state)
    assert [(g["lr"], g["weight_decay"]) for g in other.param_groups] == [(0.01, 0.1), (0.03, 0.0)]
    assert other.step_count == 1
    np.testing.assert_array_equal(other.state[0]["exp_avg"], opt.state[0]["exp_avg"])
    one_group = Adam([Parameter(np.zeros(s)) for s in SHAPES], lr=0.5)
    with pytest.raises(ValueError, match=r"groups of \[2, 2\] parameters, this optimizer \[4\]"):
        one_group.load_state_dict(state)
    assert one_group.lr == 0.5  # nothing changed


def test_a_state_dict_from_before_groups_loads():
    """Checkpoints of 0.2 hold the settings at the top and no param_groups."""
    p = Parameter(np.ones(2))
    old = {"type": "SGD", "lr": 0.05, "initial_lr": 0.1, "step_count": 3, "momentum": 0.9, "weight_decay": 0.01}
    old.update(dampening=0.0, nesterov=False, state=[{"momentum_buffer": np.full(2, 0.2)}])
    opt = SGD([p], lr=1.0)
    opt.load_state_dict(old)
    assert (opt.lr, opt.initial_lr, opt.momentum, opt.weight_decay, opt.step_count) == (0.05, 0.1, 0.9, 0.01, 3)
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], 0.2)


def test_a_schedule_moves_every_group_from_its_own_base_rate():
    a, b = Parameter(np.ones(1)), Parameter(np.ones(1))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    schedule = StepLR(opt, 1, 0.5)
    schedule.step()
    assert schedule.get_last_lr() == [0.05, 0.5]
    plateau = ReduceLROnPlateau(opt, patience=0, factor=0.1)
    plateau.step(1.0)
    plateau.step(2.0)
    assert plateau.get_last_lr() == pytest.approx([0.005, 0.05])


def test_schedule_values_start_from_the_schedule_base_rate_and_leave_everything_as_it_was():
    p = Parameter(np.ones(1))
    opt = SGD([p], lr=1.0)
    opt.lr = 0.1  # changed before the schedule is made: the schedule starts from 0.1
    schedule = StepLR(opt, 1, 0.5)
    schedule.step()
    schedule.step()  # the optimizer is at 0.025 now
    values = schedule_values(schedule, 3)
    np.testing.assert_allclose(values, [0.1, 0.05, 0.025])
    assert opt.lr == 0.025 and schedule.last_epoch == 2 and opt.param_groups[0]["initial_lr"] == 0.1


def test_schedule_values_of_a_plateau_follow_the_metrics_and_need_them():
    opt = SGD([Parameter(np.ones(1))], lr=1.0)
    plateau = ReduceLROnPlateau(opt, patience=1, factor=0.5)
    np.testing.assert_allclose(schedule_values(plateau, 6, metrics=[3, 2, 2, 2, 2, 2]), [1, 1, 1, 1, 0.5, 0.5])
    assert opt.lr == 1.0 and plateau.num_bad_epochs == 0
    with pytest.raises(ValueError, match="pass metrics="):
        schedule_values(plateau, 5)


def test_schedule_values_has_a_column_per_group():
    opt = SGD([{"params": [Parameter(np.ones(1))]}, {"params": [Parameter(np.ones(1))], "lr": 2.0}], lr=1.0)
    values = schedule_values(StepLR(opt, 1, 0.5), 3)
    np.testing.assert_allclose(values, [[1.0, 2.0], [0.5, 1.0], [0.25, 0.5]])


def test_fit_with_groups_trains_and_resumes_with_them(tmp_path):
    from nnlayers import ModelCheckpoint

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)

    def run(epochs, resume=None):
        model = Sequential([Dense(6, 8, rng=0), BatchNorm1D(8), ReLU(), Dense(8, 1, rng=1)])
        decay = [p for p in model.parameters() if p.data.ndim > 1]
        no_decay = [p for p in model.parameters() if p.data.ndim == 1]
        opt = AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "lr": 0.1}], lr=0.05)
        schedule = CosineAnnealingLR(opt, 6)
        checkpoint = ModelCheckpoint(tmp_path / "ck")
        history = fit(
            model, BCEWithLogitsLoss(), opt, (x, y), epochs=epochs, batch_size=32, verbose=0,
            scheduler=schedule, callbacks=[checkpoint], resume=resume,
        )  # fmt: skip
        return model, opt, history

    whole, whole_opt, history = run(6)
    assert history.history["accuracy"][-1] > 0.8
    run(3)
    resumed, resumed_opt, _ = run(6, resume=tmp_path / "ck" / "last.nnl")
    for key, value in whole.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value, err_msg=key)
    assert [g["lr"] for g in resumed_opt.param_groups] == [g["lr"] for g in whole_opt.param_groups]


def test_an_optimizer_written_before_groups_still_works():
    """update(param, state) reading self.lr, as the 0.2 docs showed."""

    class SignSGD(Optimizer):
        hyperparameters = ("beta",)

        def __init__(self, params, lr=0.01, beta=0.9):
            super().__init__(params, lr)
            self.beta = beta

        def update(self, param, state):
            param.data -= self.lr * np.sign(param.grad)

    p = Parameter(np.array([1.0, 1.0]))
    p.grad[...] = [2.0, -3.0]
    opt = SignSGD([p], lr=0.1, beta=0.5)
    opt.step()
    np.testing.assert_allclose(p.data, [0.9, 1.1])
    restored = SignSGD([Parameter(np.zeros(2))])
    restored.load_state_dict(opt.state_dict())
    assert (restored.lr, restored.beta) == (0.1, 0.5)


def test_optimizer_state_follows_the_model_to_float64():
    model = Sequential([Dense(3, 2, rng=0)])
    opt = Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad[...] = 0.5
    opt.step()
    model.to(np.float64)
    for p in model.parameters():
        p.grad[...] = 0.5
    opt.step()
    assert {s["exp_avg"].dtype for s in opt.state} == {np.dtype(np.float64)}
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float64)}
