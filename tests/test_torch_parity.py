"""Parity with PyTorch (runs where torch is importable; .ci/run installs torch==2.13.0)."""

import numpy as np
import pytest

from nnlayers import SGD, BCELoss, BCEWithLogitsLoss, Dense, ReLU, Sequential, Sigmoid, Tanh

from .conftest import step_both_optimizers

torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")


def both_models(hidden=16, features=40, activation="tanh"):
    ours_act, torch_act = (Tanh(), torch.nn.Tanh()) if activation == "tanh" else (ReLU(), torch.nn.ReLU())
    ours = Sequential(
        [
            Dense(features, hidden, dtype=np.float64, rng=0),
            ours_act,
            Dense(hidden, 1, dtype=np.float64, rng=1),
            Sigmoid(),
        ]
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(features, hidden), torch_act, torch.nn.Linear(hidden, 1), torch.nn.Sigmoid()
    ).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    return ours, theirs


@pytest.mark.parametrize(
    "momentum, nesterov, weight_decay, dampening",
    [(0.9, False, 0.0, 0.0), (0.9, True, 1e-3, 0.0), (0.0, False, 0.0, 0.0), (0.8, False, 1e-3, 0.3)],
)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_twenty_sgd_steps_agree_with_torch(momentum, nesterov, weight_decay, dampening, activation):
    ours, theirs = both_models(activation=activation)
    rng = np.random.default_rng(7)
    loss_fn = BCELoss()
    options = {
        "lr": 0.05,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "dampening": dampening,
    }
    opt = SGD(ours.parameters(), **options)
    topt = torch.optim.SGD(theirs.parameters(), **options)
    for step in range(20):
        x = rng.random((32, 40))
        y = (rng.random((32, 1)) > 0.5).astype(np.float64)
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()

        tloss = torch.nn.functional.binary_cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) < 1e-10, f"step {step}"
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_state[name].numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_logits_loss_and_input_gradient_agree_with_torch():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=4, size=(50, 1))
    y = rng.random((50, 1))
    ours = BCEWithLogitsLoss()
    loss = ours(z, y)
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.from_numpy(y))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    np.testing.assert_allclose(ours.backward(), tz.grad.numpy(), rtol=0, atol=1e-14)

    model, tmodel = both_models()
    x = rng.random((8, 40))
    tx = torch.tensor(x, requires_grad=True)
    grad_out = rng.normal(size=(8, 1))
    model(x)
    tmodel(tx).backward(torch.from_numpy(grad_out))
    np.testing.assert_allclose(model.backward(grad_out, input_grad=True), tx.grad.numpy(), rtol=0, atol=1e-14)


def test_state_dict_keys_and_shapes_match_torch_and_load_back():
    ours = Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])
    theirs = torch.nn.Sequential(
        torch.nn.Linear(12288, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1), torch.nn.Sigmoid()
    )
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    back = Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])
    back.load_state_dict(theirs.state_dict())  # CPU tensors load directly
    for name, value in back.state_dict().items():
        np.testing.assert_array_equal(value, ours.state_dict()[name])


# --- convolutional layers ----------------------------------------------------------------------

from nnlayers import (  # noqa: E402
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    MaxPool2D,
)


def nchw(a):
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def nhwc(a):
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def layer_pairs():
    def conv(**kw):
        ours = Conv2D(3, 5, dtype=np.float64, rng=0, **kw)
        theirs = torch.nn.Conv2d(
            3, 5, kw["kernel_size"], kw.get("stride", 1), kw.get("padding", 0), bias=kw.get("bias", True)
        )
        return ours, theirs.double()

    yield "conv 3x3 same", *conv(kernel_size=3, padding=1)
    yield "conv 5x5 stride 2", *conv(kernel_size=5, stride=2, padding=2)
    yield "conv 2x3 no bias", *conv(kernel_size=(2, 3), stride=(2, 1), bias=False)
    yield "maxpool 2", MaxPool2D(2), torch.nn.MaxPool2d(2)
    yield "maxpool 3/2 pad 1", MaxPool2D(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)
    yield "avgpool 3/2 pad 1", AvgPool2D(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1)
    yield "global avg", GlobalAvgPool2D(), torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    yield "flatten", Flatten(), torch.nn.Flatten()
    yield "batchnorm2d", BatchNorm2D(3, dtype=np.float64), torch.nn.BatchNorm2d(3).double()
    yield (
        "batchnorm2d momentum None",
        BatchNorm2D(3, momentum=None, dtype=np.float64),
        torch.nn.BatchNorm2d(3, momentum=None).double(),
    )
    yield "leaky relu", LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)


@pytest.mark.parametrize("name, ours, theirs", list(layer_pairs()), ids=lambda v: v if isinstance(v, str) else "")
def test_each_image_layer_agrees_with_torch(name, ours, theirs):
    rng = np.random.default_rng(1)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)
    for mode in ("train", "eval"):
        ours.train(mode == "train"), theirs.train(mode == "train")
        x = np.maximum(rng.normal(size=(3, 9, 8, 3)), 0)  # ReLU-like inputs: ties in the max pools
        tx = torch.tensor(nchw(x), requires_grad=True)
        ty = theirs(tx)
        y = ours(x)
        np.testing.assert_allclose(y, nhwc(ty.detach().numpy()), rtol=0, atol=1e-10, err_msg=f"{name} {mode} output")
        g = rng.normal(size=y.shape)
        ty.backward(torch.from_numpy(nchw(g)))
        ours.zero_grad()
        np.testing.assert_allclose(
            ours.backward(g), nhwc(tx.grad.numpy()), rtol=0, atol=1e-10, err_msg=f"{name} input grad"
        )
        for (pname, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=0, atol=1e-10, err_msg=f"{name} {mode} {pname}")
            tp.grad = None
        for key, value in theirs.state_dict().items():  # running statistics
            np.testing.assert_allclose(
                ours.state_dict()[key], value.numpy(), rtol=0, atol=1e-12, err_msg=f"{name} {key}"
            )


def both_cnns(dtype=np.float64):
    ours = Sequential(
        [
            Conv2D(3, 4, 3, padding=1, dtype=dtype, rng=0),
            BatchNorm2D(4, dtype=dtype),
            ReLU(),
            MaxPool2D(2),
            Conv2D(4, 6, 3, stride=2, padding=1, dtype=dtype, rng=1),
            BatchNorm2D(6, dtype=dtype),
            ReLU(),
            Flatten(),
            Dropout(0.5, rng=0),
            Dense(6 * 3 * 3, 5, dtype=dtype, rng=2),
            ReLU(),
            BatchNorm1D(5, dtype=dtype),
            Dense(5, 1, dtype=dtype, rng=3),
        ]
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(6 * 3 * 3, 5),
        torch.nn.ReLU(),
        torch.nn.BatchNorm1d(5),
        torch.nn.Linear(5, 1),
    ).to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)
    return ours, theirs


def test_a_cnn_trained_twenty_sgd_steps_agrees_with_torch():
    ours, theirs = both_cnns()
    ours[8].eval(), theirs[8].eval()  # dropout off, batch norm in training mode
    opt = SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loss_fn, rng = BCEWithLogitsLoss(), np.random.default_rng(5)
    for step in range(20):
        x = rng.random((8, 12, 12, 3))
        y = (rng.random((8, 1)) > 0.5).astype(np.float64)
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        tloss = torch.nn.functional.binary_cross_entropy_with_logits(
            theirs(torch.from_numpy(nchw(x))), torch.from_numpy(y)
        )
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) < 1e-10, f"step {step}"
    for key, value in theirs.state_dict().items():  # weights and running statistics
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=0, atol=1e-10, err_msg=key)
    ours.eval(), theirs.eval()
    x = rng.random((5, 12, 12, 3))
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(nchw(x))).detach().numpy(), rtol=0, atol=1e-10)


def test_a_cnn_state_dict_loads_strictly_into_torch_and_back(tmp_path):
    from nnlayers import load, save

    ours, _ = both_cnns(np.float32)
    ours.train()
    ours(np.random.default_rng(0).random((6, 12, 12, 3), dtype=np.float32))  # non-trivial running statistics
    ours = load(save(ours, tmp_path / "cnn.nnl"))  # through a model file too
    _, theirs = both_cnns(np.float32)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)
    theirs.eval()
    x = np.random.default_rng(1).random((4, 12, 12, 3), dtype=np.float32)
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(nchw(x))).detach().numpy(), rtol=1e-5, atol=1e-6)
    back, _ = both_cnns(np.float32)
    back.load_state_dict(theirs.state_dict())
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)


# --- optimizers, schedules, cross-entropy -------------------------------------------------------

from nnlayers import (  # noqa: E402
    Adam,
    AdamW,
    CosineAnnealingLR,
    CrossEntropyLoss,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    Parameter,
    ReduceLROnPlateau,
    RMSprop,
    StepLR,
    clip_grad_norm,
)

OPTIMIZERS = {
    "adam": (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam amsgrad weight decay": (
        lambda p: Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1, betas=(0.8, 0.99)),
        lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1, betas=(0.8, 0.99)),
    ),
    "adamw": (lambda p: AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    "adamw amsgrad": (
        lambda p: AdamW(p, lr=0.02, amsgrad=True, weight_decay=0.05),
        lambda p: torch.optim.AdamW(p, lr=0.02, amsgrad=True, weight_decay=0.05),
    ),
    "rmsprop": (lambda p: RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop momentum centered": (
        lambda p: RMSprop(p, lr=0.01, momentum=0.9, centered=True, weight_decay=0.01, alpha=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True, weight_decay=0.01, alpha=0.9),
    ),
    "sgd dampening": (
        lambda p: SGD(p, lr=0.01, momentum=0.9, dampening=0.3, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, dampening=0.3, weight_decay=0.01),
    ),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_thirty_optimizer_steps_agree_with_torch(name):
    make_ours, make_theirs = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(80, 64)), rng.normal(size=64)]  # the weight above the fused update's 4,096 entries
    ours = [Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in start]
    opt, topt = make_ours(ours), make_theirs(theirs)
    for _ in range(30):
        step_both_optimizers(rng, ours, theirs, opt, topt, torch)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


SCHEDULES = {
    "step": (lambda o: StepLR(o, 7, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5)),
    "multistep": (
        lambda o: MultiStepLR(o, [10, 30, 30, 60], 0.3),
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 30, 30, 60], 0.3),
    ),
    "exponential": (lambda o: ExponentialLR(o, 0.95), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.95)),
    "cosine": (
        lambda o: CosineAnnealingLR(o, 30, 1e-3),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 30, 1e-3),
    ),
    "linear warm-up": (
        lambda o: LinearLR(o, 0.1, 1.0, 10),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 10),
    ),
    "plateau": (
        lambda o: ReduceLROnPlateau(o, patience=3, cooldown=2, factor=0.5, min_lr=0.01, threshold=0.01),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, patience=3, cooldown=2, factor=0.5, min_lr=0.01, threshold=0.01
        ),
    ),
    "plateau max abs": (
        lambda o: ReduceLROnPlateau(o, mode="max", patience=2, threshold_mode="abs", threshold=0.05),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, mode="max", patience=2, threshold_mode="abs", threshold=0.05
        ),
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_hundred_epochs_of_learning_rates_agree_with_torch(name):
    make_ours, make_theirs = SCHEDULES[name]
    metrics = np.concatenate([np.linspace(1, 0.5, 20), np.full(30, 0.5), np.linspace(0.5, 0.3, 20), np.full(30, 0.31)])
    opt = SGD([Parameter(np.zeros(1))], lr=0.1)
    tp = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([tp], lr=0.1)
    ours, theirs = make_ours(opt), make_theirs(topt)
    plateau = isinstance(ours, ReduceLROnPlateau)
    seen = set()
    for epoch in range(100):
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=0, abs=1e-12), epoch
        seen.add(round(opt.lr, 12))
        topt.step()
        ours.step(metrics[epoch]) if plateau else ours.step()
        theirs.step(metrics[epoch]) if plateau else theirs.step()
    assert len(seen) > 1  # the rate did move


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"weight": True}, {"weight": True, "label_smoothing": 0.2, "reduction": "sum"}],
)
def test_cross_entropy_agrees_with_torch(options):
    rng = np.random.default_rng(2)
    z, y = rng.normal(scale=3, size=(9, 4)), rng.integers(0, 4, 9)
    weight = rng.uniform(0.2, 2.0, 4)
    ours_options = {**options, **({"weight": weight} if "weight" in options else {})}
    torch_options = {**options, **({"weight": torch.tensor(weight)} if "weight" in options else {})}
    ours = CrossEntropyLoss(**ours_options)
    loss = ours(z, y)
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss(**torch_options)(tz, torch.from_numpy(y))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    np.testing.assert_allclose(ours.backward(), tz.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_agrees_with_torch(norm_type, max_norm):
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    ours = [Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    total = clip_grad_norm(ours, max_norm, norm_type)
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type).item(), rel=1e-14)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=0, atol=1e-14)
