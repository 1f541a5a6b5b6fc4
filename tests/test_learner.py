"""The learner's path: progress in notebooks, random layers in gradcheck, the tutorial's
initialisation, custom layers that cannot lose a parameter, and the CLI keeping the best epoch."""

import json
import os
import sys
import types

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCELoss,
    Dense,
    Dropout,
    GradcheckError,
    Layer,
    Parameter,
    Sequential,
    Sigmoid,
    Tanh,
    fit,
    gradcheck,
    load,
)
from nnlayers.saving.serialize import read_checkpoint

from .test_cli import run


class SpyBar:
    """Stands in for tqdm.auto.tqdm and remembers that it was used."""

    created = 0

    def __init__(self, iterable, **kwargs):
        type(self).created += 1
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)


def small_run(**kwargs):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    model = Sequential([Dense(3, 2, rng=0), Tanh(), Dense(2, 1, rng=1), Sigmoid()])
    return fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=16, **kwargs)


def test_a_progress_bar_in_a_notebook_and_lines_when_piped(monkeypatch, capsys):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", SpyBar)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # as in Jupyter, and as when piped
    SpyBar.created = 0
    small_run()  # piped: no bar, one line per epoch
    assert SpyBar.created == 0 and "epoch 2/2  loss" in capsys.readouterr().err

    class ZMQInteractiveShell:  # what Jupyter's kernel reports; tqdm.auto then draws a widget
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: ZMQInteractiveShell()))
    small_run()
    assert SpyBar.created == 2  # one bar per epoch
    small_run(progress=False)
    assert SpyBar.created == 2
    monkeypatch.delitem(sys.modules, "IPython")
    small_run(progress=True)  # forced, even when piped
    assert SpyBar.created == 4


def test_gradcheck_on_a_random_layer_says_so():
    model = Sequential([Dense(4, 6, rng=0), Dropout(0.5, rng=0), Dense(6, 1, rng=1)])
    x = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(GradcheckError, match=r"forward pass is not deterministic.*Dropout.*eval\(\)"):
        gradcheck(model, x)
    model.eval()
    assert gradcheck(model, x).passed  # in evaluation mode dropout is the identity


def test_an_assigned_parameter_is_trained_saved_and_checked(tmp_path):
    from nnlayers import register_layer, save

    @register_layer(replace=True)
    class Gain(Layer):
        def __init__(self, n=3):
            super().__init__()
            self.gain = Parameter(np.ones(n))  # no register_parameter call

        def forward(self, x):
            self.save_for_backward(x=x)
            return x * self.gain.data

        def backward(self, grad_y):
            self.gain.grad += np.sum(grad_y * self.saved("x"), axis=0)
            return grad_y * self.gain.data

        def get_config(self):
            return {"n": len(self.gain.data)}

    model = Sequential([Gain(3), Dense(3, 1, rng=0, dtype=np.float64), Sigmoid()])
    assert gradcheck(model, np.random.default_rng(0).normal(size=(4, 3))).errors["0.gain"] < 1e-6
    small = np.random.default_rng(1).normal(size=(32, 3))
    fit(model, BCELoss(), SGD(model.parameters(), lr=0.5), (small, (small[:, 0] > 0).astype(int)), epochs=3, verbose=0)
    assert not np.allclose(model[0].gain.data, 1.0)  # it was trained
    np.testing.assert_array_equal(load(save(model, tmp_path / "g.nnl"))[0].gain.data, model[0].gain.data)


def test_the_tutorials_initialisation_is_reproduced_exactly():
    """initialize_parameters: np.random.seed(2); W1 = randn(n_h, n_x) * 0.01; W2 = randn(n_y, n_h) * 0.01."""
    np.random.seed(2)
    w1 = np.random.randn(4, 12) * 0.01
    w2 = np.random.randn(1, 4) * 0.01
    shared = np.random.RandomState(2)
    model = Sequential([Dense(12, 4, init="normal", rng=shared, dtype=np.float64), Tanh(), Dense(4, 1, init="normal", rng=shared, dtype=np.float64), Sigmoid()])  # fmt: skip
    np.testing.assert_array_equal(model[0].weight.data, w1)
    np.testing.assert_array_equal(model[2].weight.data, w2)
    assert not model[0].bias.data.any() and not model[2].bias.data.any()


def test_the_cli_saves_the_best_epoch_and_says_which(tmp_path):
    args = [
        "train",
        "--epochs",
        "8",
        "--lr",
        "0.02",
        "--init",
        "normal",
        "--quiet",
        "--checkpoint-dir",
        "ck",
        "--history",
        "h.json",
    ]
    result = run({**os.environ, "PYTHONWARNINGS": "ignore"}, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "h.json").read_text())["history"]
    best = int(np.argmin(history["val_loss"])) + 1
    assert f"model saved to model.nnl: epoch {best} of 8 (lowest validation loss)" in result.stdout
    best_weights, best_state = read_checkpoint(tmp_path / "ck" / "best.nnl")  # written when that epoch ended
    assert best_state["epoch"] == best
    saved = load(tmp_path / "model.nnl")
    for key, value in best_weights.items():
        np.testing.assert_array_equal(saved.state_dict()[key], value, err_msg=key)
    assert saved.metadata["saved_epoch"] == best and saved.metadata["train_settings"]["init"] == "normal"
    last = run({**os.environ}, *args, "--save", "last", "--out", "last.nnl", cwd=tmp_path)
    assert "model saved to last.nnl: the last epoch (8)" in last.stdout
