"""LambdaLR, CosineAnnealingWarmRestarts, OneCycleLR and SequentialLR: torch's rates and momenta,
their replay by schedule_values, and a resumed fit that is bit for bit the uninterrupted one."""

import math

import numpy as np
import pytest

from nnlayers import (
    SGD,
    Adam,
    BCEWithLogitsLoss,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    Dense,
    LambdaLR,
    LinearLR,
    ModelCheckpoint,
    OneCycleLR,
    Parameter,
    Sequential,
    SequentialLR,
    StepLR,
    fit,
)
from nnlayers.optim.schedules import schedule_values

CASES = {
    "lambda": ("sgd", lambda o: LambdaLR(o, lambda e: 0.9**e), "LambdaLR(o, lambda e: 0.9 ** e)"),
    "warm restarts": (
        "sgd",
        lambda o: CosineAnnealingWarmRestarts(o, 3, 2, 0.01),
        "CosineAnnealingWarmRestarts(o, 3, 2, 0.01)",
    ),  # fmt: skip
    "one cycle sgd": ("sgd", lambda o: OneCycleLR(o, 1.0, total_steps=30), "OneCycleLR(o, 1.0, total_steps=30)"),
    "one cycle adam three phases": (
        "adam",
        lambda o: OneCycleLR(o, 0.5, 30, anneal_strategy="linear", three_phase=True),
        "OneCycleLR(o, 0.5, 30, anneal_strategy='linear', three_phase=True)",
    ),  # fmt: skip
    "warm-up then cosine": (
        "sgd",
        lambda o: SequentialLR(o, [LinearLR(o, 0.1, total_iters=5), CosineAnnealingLR(o, 25)], [5]),
        "SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=5), S.CosineAnnealingLR(o, 25)], [5])",
    ),  # fmt: skip
    "three schedules": (
        "sgd",
        lambda o: SequentialLR(
            o, [LinearLR(o, 0.5, total_iters=3), StepLR(o, 4, 0.5), CosineAnnealingLR(o, 10)], [5, 17]
        ),
        "SequentialLR(o, [S.LinearLR(o, 0.5, total_iters=3), "
        "S.StepLR(o, 4, 0.5), S.CosineAnnealingLR(o, 10)], [5, 17])",
    ),  # fmt: skip
}


def momentum(group):
    return group["momentum"] if "momentum" in group else group["betas"][0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rates_and_momenta_are_torch_s_for_thirty_steps(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    kind, make, expression = CASES[case]
    p, tp = Parameter(np.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = SGD([p], lr=0.1, momentum=0.9) if kind == "sgd" else Adam([p], lr=0.1)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam([tp], lr=0.1)
    schedule = make(opt)
    S = torch.optim.lr_scheduler  # noqa: N806
    theirs = eval(f"S.{expression}", {"S": S, "o": topt})  # noqa: S307 - our own table
    ours_lr, theirs_lr = [], []
    for _ in range(30):
        ours_lr.append(opt.lr)
        theirs_lr.append(topt.param_groups[0]["lr"])
        assert momentum(opt.param_groups[0]) == pytest.approx(momentum(topt.param_groups[0]), abs=1e-15)
        topt.step()  # (torch wants a step before the schedule's)
        schedule.step() if len(ours_lr) < 30 else None
        theirs.step() if len(theirs_lr) < 30 else None
    np.testing.assert_allclose(ours_lr, theirs_lr, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(schedule_values(make(SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
                                                    if kind == "sgd" else Adam([Parameter(np.zeros(1))], lr=0.1)), 30),
                               theirs_lr, rtol=1e-13, atol=1e-16)  # fmt: skip


def test_one_cycle_by_its_formula_and_its_limits():
    opt = SGD([Parameter(np.zeros(1))], lr=1.0, momentum=0.9)
    schedule = OneCycleLR(opt, max_lr=2.0, total_steps=10, pct_start=0.5, div_factor=4, final_div_factor=10)
    rates = schedule_values(schedule, 10)
    assert rates[0] == pytest.approx(0.5) and rates[4] == pytest.approx(2.0) and rates[-1] == pytest.approx(0.05)
    climb = [0.5 + (2.0 - 0.5) * (1 - math.cos(math.pi * s / 4)) / 2 for s in range(5)]
    np.testing.assert_allclose(rates[:5], climb, rtol=1e-12)
    for _ in range(10):  # the last one holds the final rate (fit steps once after the last epoch)
        schedule.step()
    assert opt.lr == pytest.approx(0.05)
    with pytest.raises(ValueError, match="more than total_steps"):
        schedule.step()
    with pytest.raises(ValueError, match="milestones"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [])


@pytest.mark.parametrize("make", [lambda o: OneCycleLR(o, 0.5, total_steps=6),
                                  lambda o: SequentialLR(o, [LinearLR(o, 0.2, total_iters=2), CosineAnnealingLR(o, 4)], [2])])  # fmt: skip
def test_a_resumed_fit_is_the_uninterrupted_one(tmp_path, make):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)

    def run(epochs, folder, resume=None):
        model = Sequential([Dense(4, 1, rng=0, dtype=np.float64)])
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        history = fit(model, BCEWithLogitsLoss(), opt, (x, y), epochs=epochs, verbose=0, scheduler=make(opt),
                      callbacks=[ModelCheckpoint(tmp_path / folder)], resume=resume)  # fmt: skip
        return model.state_dict(), history.history["lr"]

    whole, rates = run(6, "a")
    run(3, "b")
    resumed, resumed_rates = run(6, "c", resume=tmp_path / "b" / "last.nnl")
    assert resumed_rates == rates
    for key, value in whole.items():
        np.testing.assert_array_equal(resumed[key], value)
