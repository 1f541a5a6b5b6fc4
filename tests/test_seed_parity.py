"""The whole network against oracles: the seed's own equations and the published catvnoncat run.

The seed's functions are re-implemented here, in its float64 ``(features, N)`` layout, as the
tutorial wrote them; nnlayers must give the same numbers with the same weights.
"""

import numpy as np
import pytest

from nnlayers import SGD, BCELoss, Dense, ReLU, Sequential, Sigmoid, Tanh


# --- the seed, as written in the tutorial (columns are examples) ------------------------------
def seed_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def seed_forward(X, params):
    Z1 = np.dot(params["W1"], X) + params["b1"]
    A1 = np.tanh(Z1)
    Z2 = np.dot(params["W2"], A1) + params["b2"]
    A2 = seed_sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def seed_cost(A2, Y):
    m = Y.shape[1]
    logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), (1 - Y))
    return float(np.squeeze(-1 / m * np.sum(logprobs)))


def seed_backward(params, cache, X, Y):
    m = X.shape[1]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = 1.0 / m * np.dot(dZ2, A1.T)
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = np.dot(params["W2"].T, dZ2) * (1 - np.power(A1, 2))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def seed_update(params, grads, learning_rate):
    return {k: params[k] - grads["d" + k] * learning_rate for k in ("W1", "b1", "W2", "b2")}


def to_state_dict(params):
    """The seed's W1 is Dense.weight as is; its column biases become flat vectors."""
    return {
        "0.weight": params["W1"],
        "0.bias": params["b1"].ravel(),
        "2.weight": params["W2"],
        "2.bias": params["b2"].ravel(),
    }


def test_seed_equations_match_layers_to_1e12():
    rng = np.random.default_rng(42)
    n_x, n_h, m = 30, 6, 25
    X = rng.random((n_x, m))  # the seed's layout: (features, N)
    Y = (rng.random((1, m)) > 0.5).astype(float)
    params = {
        "W1": rng.normal(size=(n_h, n_x)) * 0.5,
        "b1": rng.normal(size=(n_h, 1)) * 0.1,
        "W2": rng.normal(size=(1, n_h)) * 0.5,
        "b2": rng.normal(size=(1, 1)) * 0.1,
    }

    model = Sequential([Dense(n_x, n_h, dtype=np.float64), Tanh(), Dense(n_h, 1, dtype=np.float64), Sigmoid()])
    model.load_state_dict(to_state_dict(params))
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=1.2)

    x, y = X.T, Y.T  # the one transpose between the seed and nnlayers
    for step in range(3):
        A2, cache = seed_forward(X, params)
        cost = seed_cost(A2, Y)
        grads = seed_backward(params, cache, X, Y)

        pred = model(x)
        np.testing.assert_allclose(model[1].saved("y"), cache["A1"].T, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pred, A2.T, rtol=0, atol=1e-12)
        assert abs(loss_fn(pred, y) - cost) < 1e-12
        model.backward(loss_fn.backward())
        for name, seed_grad in to_state_dict({k[1:]: v for k, v in grads.items()}).items():
            actual = dict(model.named_parameters())[name].grad
            np.testing.assert_allclose(actual, seed_grad, rtol=0, atol=1e-12, err_msg=f"step {step} {name}")

        params = seed_update(params, grads, 1.2)
        opt.step()
        opt.zero_grad()
        for name, value in to_state_dict(params).items():
            np.testing.assert_allclose(
                model.state_dict()[name], value, rtol=0, atol=1e-12, err_msg=f"step {step} {name}"
            )


# --- the published catvnoncat run (figures in ../shared/DESIGN.md) ----------------------------
PUBLISHED_COSTS = {
    0: 0.6930497356599888,
    500: 0.515830477276473,
    1000: 0.3394281538366412,
    1500: 0.17448318112556654,
    2000: 0.07439078704319084,
}


def load_catvnoncat(shared_data, split):
    path = shared_data / "catvnoncat" / f"{split}.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with np.load(path) as data:
        return data["x"].reshape(len(data["x"]), -1) / 255, data["y"].reshape(-1, 1).astype(np.float64)


def test_catvnoncat_published_costs_and_accuracy(shared_data):
    x, y = load_catvnoncat(shared_data, "train")
    x_test, y_test = load_catvnoncat(shared_data, "test")
    # the published weights: np.random.seed(1); W1 = randn(7, 12288) * 0.01; W2 = randn(1, 7) * 0.01
    np.random.seed(1)
    w1 = np.random.randn(7, 12288) * 0.01
    w2 = np.random.randn(1, 7) * 0.01
    model = Sequential([Dense(12288, 7, dtype=np.float64), ReLU(), Dense(7, 1, dtype=np.float64), Sigmoid()])
    model.load_state_dict({"0.weight": w1, "0.bias": np.zeros(7), "2.weight": w2, "2.bias": np.zeros(1)})
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=0.0075)

    costs = {}
    for i in range(2500):
        cost = loss_fn(model(x), y)
        if i in PUBLISHED_COSTS:
            costs[i] = cost
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()
    for i, published in PUBLISHED_COSTS.items():
        assert costs[i] == pytest.approx(published, rel=1e-9), f"iteration {i}"
    model.eval()
    assert np.mean((model(x) > 0.5) == y) == 1.0
    assert np.mean((model(x_test) > 0.5) == y_test) == pytest.approx(0.72)
