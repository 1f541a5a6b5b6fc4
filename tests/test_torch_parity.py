"""Parity with PyTorch (runs where torch is importable; .ci/run installs torch==2.13.0)."""

import numpy as np
import pytest

from nnlayers import SGD, BCELoss, BCEWithLogitsLoss, Dense, ReLU, Sequential, Sigmoid, Tanh

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


@pytest.mark.parametrize("momentum, nesterov, weight_decay", [(0.9, False, 0.0), (0.9, True, 1e-3), (0.0, False, 0.0)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_twenty_sgd_steps_agree_with_torch(momentum, nesterov, weight_decay, activation):
    ours, theirs = both_models(activation=activation)
    rng = np.random.default_rng(7)
    loss_fn = BCELoss()
    opt = SGD(ours.parameters(), lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    topt = torch.optim.SGD(
        theirs.parameters(), lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
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
