"""Train the tutorial's network twice, with its free functions and with nnlayers, and print both.

The data is nnlayers' built-in set of circles and squares (made on first use), read the seed's
way: 64x64 RGB, flattened, divided by 255. Both runs start from the same weights, in float64.
"""

import numpy as np

from nnlayers import SGD, BCELoss, Dense, Sequential, Sigmoid, Tanh, load_image_folder
from nnlayers.data.builtin import builtin_dataset

# --- the data, as prepare_data makes it -------------------------------------------------------
dataset = load_image_folder(builtin_dataset(), cache=False)
X = dataset.images.reshape(len(dataset), -1).T / 255  # the seed's layout: (features, N) = (12288, 500)
Y = dataset.labels.reshape(1, -1).astype(np.float64)  # (1, N)


# --- the seed's functions ---------------------------------------------------------------------
def initialize_parameters(n_x, n_h, n_y):
    np.random.seed(2)
    return {
        "W1": np.random.randn(n_h, n_x) * 0.01,
        "b1": np.zeros((n_h, 1)),
        "W2": np.random.randn(n_y, n_h) * 0.01,
        "b2": np.zeros((n_y, 1)),
    }


def forward_propagation(X, parameters):
    Z1 = np.dot(parameters["W1"], X) + parameters["b1"]
    A1 = np.tanh(Z1)
    Z2 = np.dot(parameters["W2"], A1) + parameters["b2"]
    A2 = 1 / (1 + np.exp(-Z2))
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def compute_cost(A2, Y):
    m = Y.shape[1]
    logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), (1 - Y))
    return float(np.squeeze(-1 / m * np.sum(logprobs)))


def backward_propagation(parameters, cache, X, Y):
    m = X.shape[1]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = 1.0 / m * np.dot(dZ2, A1.T)
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = np.dot(parameters["W2"].T, dZ2) * (1 - np.power(A1, 2))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def update_parameters(parameters, grads, learning_rate):
    return {k: parameters[k] - learning_rate * grads["d" + k] for k in ("W1", "b1", "W2", "b2")}


# --- both runs ----------------------------------------------------------------------------------
LEARNING_RATE, ITERATIONS, HIDDEN = 0.01, 100, 8
parameters = initialize_parameters(X.shape[0], HIDDEN, 1)

model = Sequential([Dense(X.shape[0], HIDDEN, dtype=np.float64), Tanh(), Dense(HIDDEN, 1, dtype=np.float64), Sigmoid()])
model.load_state_dict(
    {
        "0.weight": parameters["W1"],
        "0.bias": parameters["b1"].ravel(),
        "2.weight": parameters["W2"],
        "2.bias": parameters["b2"].ravel(),
    }
)
loss_fn = BCELoss()
optimizer = SGD(model.parameters(), lr=LEARNING_RATE)
x, y = X.T, Y.T  # the one transpose: nnlayers puts examples in rows

print("iteration   seed cost        nnlayers cost")
for i in range(ITERATIONS + 1):
    A2, cache = forward_propagation(X, parameters)
    seed_cost = compute_cost(A2, Y)
    parameters = update_parameters(parameters, backward_propagation(parameters, cache, X, Y), LEARNING_RATE)

    layers_cost = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()
    optimizer.zero_grad()
    if i % 20 == 0:
        print(f"{i:9d}   {seed_cost:.8f}       {layers_cost:.8f}")
    assert abs(seed_cost - layers_cost) < 1e-6 * seed_cost, (seed_cost, layers_cost)  # float64 rounding only

seed_accuracy = np.mean((forward_propagation(X, parameters)[0] > 0.5) == Y)
layers_accuracy = np.mean((model(x) > 0.5) == y)
print(f"train accuracy: seed {seed_accuracy:.3f}, nnlayers {layers_accuracy:.3f}")
