"""Callbacks: the metric watched, its mode, and clear errors when it is not logged."""

import numpy as np
import pytest

from nnlayers import SGD, BCELoss, Dense, EarlyStopping, ModelCheckpoint, Sequential, Sigmoid, Tanh, fit
from nnlayers.saving.serialize import read_checkpoint
from nnlayers.training.callbacks import MonitorCallback, mode_for


def make_run(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] > 0).astype(int)
    model = Sequential([Dense(6, 4, rng=0, dtype=np.float64), Tanh(), Dense(4, 1, rng=1, dtype=np.float64), Sigmoid()])
    return model, (x, y)


def test_checkpoint_without_validation_keeps_the_lowest_training_loss(tmp_path):
    model, data = make_run()
    checkpoint = ModelCheckpoint(tmp_path)
    history = fit(model, BCELoss(), SGD(model.parameters(), lr=0.3), data, epochs=4, callbacks=[checkpoint], verbose=0)
    assert checkpoint.monitor == "loss" and checkpoint.mode == "min"  # the mode of the metric actually watched
    losses = history.history["loss"]
    _, best = read_checkpoint(tmp_path / "best.nnl")
    assert best["epoch"] == int(np.argmin(losses)) + 1 == 4  # the loss fell every epoch: the best is the last


@pytest.mark.parametrize("callback_type", [ModelCheckpoint, EarlyStopping])
def test_a_metric_that_is_not_logged_is_an_error_before_training(tmp_path, callback_type):
    model, data = make_run()
    before = model.state_dict()
    callback = (
        callback_type(tmp_path, monitor="val_accuracy")
        if callback_type is ModelCheckpoint
        else callback_type("val_accuracy")
    )
    with pytest.raises(
        ValueError, match="val_accuracy is not logged .*: pass validation data to fit, or monitor one of those"
    ):
        fit(model, BCELoss(), SGD(model.parameters(), lr=0.3), data, epochs=3, callbacks=[callback], verbose=0)
    for name, value in model.state_dict().items():  # nothing was trained
        np.testing.assert_array_equal(value, before[name])
    assert not (tmp_path / "last.nnl").exists()


def test_checkpoint_with_validation_accuracy_keeps_the_highest(tmp_path):
    model, data = make_run(n=200)
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_accuracy")
    history = fit(
        model,
        BCELoss(),
        SGD(model.parameters(), lr=0.5),
        data,
        epochs=6,
        validation=0.3,
        callbacks=[checkpoint],
        verbose=0,
    )
    assert checkpoint.mode == "max"
    accuracies = history.history["val_accuracy"]
    _, best = read_checkpoint(tmp_path / "best.nnl")
    assert best["epoch"] == int(np.argmax(accuracies)) + 1  # first epoch of the highest accuracy


def test_monitor_modes():
    assert mode_for("val_accuracy", "auto") == "max" and mode_for("loss", "auto") == "min"
    assert mode_for("loss", "max") == "max"
    with pytest.raises(ValueError, match="mode must be"):
        mode_for("loss", "up")
    watcher = MonitorCallback("val_loss", min_delta=0.1)
    assert watcher.improved({"val_loss": 1.0})
    watcher.best = 1.0
    assert not watcher.improved({"val_loss": 0.95}) and watcher.improved({"val_loss": 0.85})
    with pytest.raises(ValueError, match="val_loss is not logged"):
        watcher.improved({"loss": 0.5})
