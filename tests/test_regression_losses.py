"""Regression and the losses' options: MSE, L1, Huber, SmoothL1, NLL; every reduction; CrossEntropy's
ignore_index; BCEWithLogits' pos_weight; and fit / evaluate / predict_values on float targets.

Oracles: the definitions by hand, central differences (gradcheck), PyTorch in float64 where it is
installed, and the closed-form least-squares solution.
"""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2D,
    CrossEntropyLoss,
    Dense,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    SmoothL1Loss,
    evaluate,
    fit,
    gradcheck,
    predict_values,
)

REGRESSION = {
    "mse": (lambda r: MSELoss(r), "MSELoss(reduction=r)"),
    "l1": (lambda r: L1Loss(r), "L1Loss(reduction=r)"),
    "huber": (lambda r: HuberLoss(r, delta=0.7), "HuberLoss(reduction=r, delta=0.7)"),
    "smooth l1": (lambda r: SmoothL1Loss(r, beta=0.6), "SmoothL1Loss(reduction=r, beta=0.6)"),
    "smooth l1 beta 0": (lambda r: SmoothL1Loss(r, beta=0.0), "SmoothL1Loss(reduction=r, beta=0.0)"),
}


def pairs(shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(0, 2, shape), rng.normal(0, 2, shape)
    near = np.abs(np.abs(pred - target) - 0.65) < 0.06  # keep off the kinks of Huber and SmoothL1
    pred[near] += 0.2
    pred[np.abs(pred - target) < 1e-3] += 0.01  # and off L1's
    return pred, target


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_regression_losses_pass_gradcheck(name, reduction):
    pred, target = pairs()
    assert gradcheck(REGRESSION[name][0](reduction), pred, target).passed


def test_the_definitions_by_hand():
    pred, target = np.array([[0.5, 3.0], [-2.0, 0.1]]), np.zeros((2, 2))
    e = pred - target
    assert MSELoss()(pred, target) == pytest.approx((e**2).mean(), rel=1e-15)
    assert L1Loss("sum")(pred, target) == pytest.approx(np.abs(e).sum(), rel=1e-15)
    huber = np.where(np.abs(e) <= 1, 0.5 * e**2, np.abs(e) - 0.5)
    assert HuberLoss()(pred, target) == pytest.approx(huber.mean(), rel=1e-15)
    smooth = np.where(np.abs(e) < 2, 0.25 * e**2, np.abs(e) - 1)
    assert SmoothL1Loss(beta=2.0)(pred, target) == pytest.approx(smooth.mean(), rel=1e-15)
    np.testing.assert_allclose(MSELoss("none")(pred, target), e**2)
    loss = MSELoss("none")
    loss(pred, target)
    np.testing.assert_allclose(loss.backward(np.full((2, 2), 3.0)), 6 * e)  # of sum(3 * losses)
    log_p = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
    assert NLLLoss()(log_p, np.array([1, 0])) == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)
    with pytest.raises(ValueError, match="expected targets of the output's shape"):
        MSELoss()(pred, np.zeros(3))
    with pytest.raises(ValueError, match="one number"):
        model = Sequential([Dense(2, 1)])
        fit(model, MSELoss("none"), SGD(model.parameters(), lr=0.1), (pred, target[:, :1]), verbose=0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_loss_agrees_with_torch_for_every_reduction(reduction):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    r = reduction
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(7, 4))
    classes = np.array([0, 3, -100, 2, 1, 3, -100])  # with padding
    probs = 1 / (1 + np.exp(-rng.normal(size=(7, 1))))
    binary = (rng.random((7, 1)) > 0.5).astype(np.float64)
    weight = np.array([1.0, 2.0, 0.5, 3.0])
    names = {"torch": torch, "r": r}
    cases = [(make(r), eval(f"torch.nn.{expr}", names), *pairs((7, 2))) for make, expr in REGRESSION.values()]  # noqa: S307
    cases += [
        (
            CrossEntropyLoss(weight, r, label_smoothing=0.1),
            torch.nn.CrossEntropyLoss(torch.tensor(weight), reduction=r, label_smoothing=0.1),
            logits,
            classes,
        ),  # fmt: skip
        (
            CrossEntropyLoss(reduction=r, ignore_index=3),
            torch.nn.CrossEntropyLoss(reduction=r, ignore_index=3),
            logits,
            np.where(classes < 0, 0, classes),
        ),  # fmt: skip
        (NLLLoss(weight, r), torch.nn.NLLLoss(torch.tensor(weight), reduction=r), logits - 3, classes),
        (
            BCEWithLogitsLoss(r, pos_weight=2.5),
            torch.nn.BCEWithLogitsLoss(reduction=r, pos_weight=torch.tensor([2.5])),
            logits[:, :1] * 3,
            binary,
        ),  # fmt: skip
        (BCELoss(r), torch.nn.BCELoss(reduction=r), probs, binary),
    ]
    for ours, theirs, pred, target in cases:
        pred_t = torch.from_numpy(pred).requires_grad_(True)
        loss_t = theirs(pred_t, torch.from_numpy(target))
        grad = rng.normal(size=loss_t.shape)
        loss_t.backward(torch.from_numpy(grad) if r == "none" else None)
        loss = ours(pred, target)
        np.testing.assert_allclose(loss, loss_t.detach().numpy().reshape(np.shape(loss)), rtol=1e-10, atol=1e-12,
                                   err_msg=repr(ours))  # fmt: skip
        got = ours.backward(grad) if r == "none" else ours.backward()
        np.testing.assert_allclose(got, pred_t.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=repr(ours))


def test_ignore_index_counts_nowhere():
    logits = np.random.default_rng(0).normal(size=(4, 3))
    loss = CrossEntropyLoss()
    with_padding = loss(logits, np.array([0, -100, 2, -100]))
    grad = loss.backward()
    assert with_padding == pytest.approx(CrossEntropyLoss()(logits[[0, 2]], np.array([0, 2])), rel=1e-12)
    assert not grad[[1, 3]].any() and loss.total_weight(np.array([0, -100, 2, -100])) == 2
    with pytest.raises(ValueError, match="every target is ignore_index"):
        loss(logits, np.full(4, -100))


def test_fit_reaches_the_least_squares_solution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = x @ rng.normal(size=(4, 2)) + [0.3, -1.0] + rng.normal(scale=0.2, size=(400, 2))
    model = Sequential([Dense(4, 2, rng=0, dtype=np.float64)])
    history = fit(model, MSELoss(), SGD(model.parameters(), lr=0.2, momentum=0.5), (x, y), epochs=300,
                  batch_size=400, verbose=0)  # fmt: skip
    solution, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)
    np.testing.assert_allclose(model[0].weight.data, solution[:4].T, atol=1e-4)
    np.testing.assert_allclose(model[0].bias.data, solution[4], atol=1e-4)
    assert set(history.history) >= {"loss", "mae"}
    scores = evaluate(model, (x, y), MSELoss())
    residual = y - np.c_[x, np.ones(len(x))] @ solution
    assert scores["mse"] == pytest.approx((residual**2).mean(), rel=1e-6) and scores["r2"] > 0.9
    np.testing.assert_allclose(predict_values(model, x), x @ model[0].weight.data.T + model[0].bias.data)


def test_a_model_that_outputs_an_image_trains_on_x_x_below_the_mean_image():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 8, 3))
    images = np.clip(base + rng.normal(0, 40, (120, 8, 8, 3)), 0, 255).astype(np.uint8)
    model = Sequential([Conv2D(3, 8, 3, padding=1, rng=0), ReLU(), Conv2D(8, 3, 3, padding=1, rng=1), Sigmoid()])
    history = fit(model, MSELoss(), SGD(model.parameters(), lr=0.5, momentum=0.9), (images, images), epochs=15,
                  batch_size=20, verbose=0, validation=0.25)  # fmt: skip
    scaled = images / 255
    mean_image_mse = ((scaled - scaled.mean(axis=0)) ** 2).mean()
    assert history.history["val_loss"][-1] < mean_image_mse
    assert predict_values(model, images[:2]).shape == (2, 8, 8, 3)
