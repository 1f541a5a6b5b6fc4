"""fit, History, callbacks, the NaN guard, bit-identical resume, evaluate and predict."""

import json

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCELoss,
    Callback,
    Dense,
    EarlyStopping,
    History,
    ImageDataset,
    ModelCheckpoint,
    Sequential,
    Sigmoid,
    Tanh,
    evaluate,
    fit,
    predict,
    predict_proba,
)


def make_data(n=240, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def make_model(d=12, hidden=8, dtype=np.float64, logits=False):
    layers = [Dense(d, hidden, rng=0, dtype=dtype), Tanh(), Dense(hidden, 1, rng=1, dtype=dtype)]
    return Sequential(layers if logits else [*layers, Sigmoid()])


def test_fit_learns_and_records_history():
    x, y = make_data()
    model = make_model()
    history = fit(
        model, BCELoss(), SGD(model.parameters(), lr=0.3), (x, y), epochs=15, batch_size=32, validation=0.25, verbose=0
    )
    assert history.epochs == list(range(1, 16))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    assert not model.training  # fit leaves the model in evaluation mode


def test_epoch_loss_is_the_mean_over_the_epoch(monkeypatch):
    """The reported loss is the example-weighted mean of the batch losses (checked with lr tiny)."""
    x, y = make_data(n=100)
    model = make_model()
    before = evaluate(model, (x, y))["loss"]
    history = fit(model, BCELoss(), SGD(model.parameters(), lr=1e-12), (x, y), epochs=1, batch_size=30, verbose=0)
    assert history.history["loss"][0] == pytest.approx(before, rel=1e-9)


def test_history_json_round_trip(tmp_path):
    history = History()
    history.append(1, {"loss": 0.5, "accuracy": 0.7})
    history.append(2, {"loss": 0.4, "accuracy": 0.8})
    history.stop_reason = "early stopping"
    history.save(tmp_path / "h.json")
    again = History.load(tmp_path / "h.json")
    assert again == history and json.loads((tmp_path / "h.json").read_text())["history"]["loss"] == [0.5, 0.4]


def test_nan_loss_stops_with_a_message_and_keeps_the_best_weights(capsys):
    x, y = make_data()
    model = make_model()
    opt = SGD(model.parameters(), lr=0.3)

    class PoisonAfter(Callback):
        """Puts a NaN into the inputs after epoch 2, as a bad batch of data would."""

        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 2:
                x[7, 3] = np.nan
                self.weights = trainer.model.state_dict()

    poison = PoisonAfter()
    history = fit(model, BCELoss(), opt, (x, y), epochs=5, verbose=2, callbacks=[poison])
    assert history.diverged and history.epochs == [1, 2]
    assert history.stop_reason.startswith("stopped: training diverged in epoch 3: the loss became NaN or infinite")
    assert "smaller learning rate (e.g. 0.03)" in capsys.readouterr().err
    for name, value in model.state_dict().items():  # epoch 2 had the lowest loss: its weights are back
        np.testing.assert_array_equal(value, poison.weights[name])


def test_huge_learning_rate_stops_as_diverged():
    x, y = make_data()
    model = make_model(dtype=np.float32)
    initial = model.state_dict()
    history = fit(model, BCELoss(), SGD(model.parameters(), lr=1e6), (x, y), epochs=10, verbose=0)
    assert history.diverged and "over 10x that of guessing" in history.stop_reason
    assert len(history.epochs) < 10
    for name, value in model.state_dict().items():
        assert np.isfinite(value).all()
        if not history.epochs:  # no good epoch at all: the initial weights are kept
            np.testing.assert_array_equal(value, initial[name])


def test_early_stopping_restores_the_best_weights():
    x, y = make_data(n=60)
    xv, yv = make_data(n=60, seed=1)
    yv = 1 - yv  # validation labels flipped: val_loss gets worse as training goes on
    model = make_model()
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots[epoch] = trainer.model.state_dict()

    stopper = EarlyStopping(patience=2)
    history = fit(
        model,
        BCELoss(),
        SGD(model.parameters(), lr=0.5),
        (x, y),
        epochs=30,
        validation=(xv, yv),
        callbacks=[Snapshot(), stopper],
        verbose=0,
    )
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses)) + 1
    assert history.stop_reason.startswith("early stopping") and len(val_losses) == best_epoch + 2
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[best_epoch][name])


def test_early_stopping_on_unknown_metric_is_clear():
    x, y = make_data(n=40)
    model = make_model()
    with pytest.raises(
        ValueError, match=r"EarlyStopping: val_loss is not logged \(loss, accuracy are\): pass validation data"
    ):
        fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, callbacks=[EarlyStopping()], verbose=0)


def test_model_checkpoint_writes_last_and_best(tmp_path):
    from nnlayers.saving.serialize import load, read_checkpoint

    x, y = make_data()
    model = make_model()
    fit(
        model,
        BCELoss(),
        SGD(model.parameters(), lr=0.3, momentum=0.9),
        (x, y),
        epochs=4,
        validation=0.25,
        callbacks=[ModelCheckpoint(tmp_path)],
        verbose=0,
    )
    weights, training = read_checkpoint(tmp_path / "last.nnl")
    buffers = [entry["momentum_buffer"] for entry in training["optimizer"]["state"]]
    assert training["epoch"] == 4 and len(buffers) == 4
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], value)
    best_weights, best_training = read_checkpoint(tmp_path / "best.nnl")
    val = training["history"]["history"]["val_loss"]
    assert best_training["epoch"] == int(np.argmin(val)) + 1
    assert isinstance(load(tmp_path / "best.nnl"), Sequential)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_resume_is_bit_identical(tmp_path, momentum):
    x, y = make_data(n=300)
    images = (np.abs(x[:, :12]) * 40).astype(np.uint8).reshape(300, 2, 2, 3)  # uint8 images path too
    data = ImageDataset(images, y, ["a", "b"], [f"{i}.jpg" for i in range(300)])

    def run(epochs, directory, resume=None):
        model = make_model(dtype=np.float32)
        opt = SGD(model.parameters(), lr=0.2, momentum=momentum)
        callbacks = [ModelCheckpoint(directory), EarlyStopping(patience=50)]
        history = fit(
            model,
            BCELoss(),
            opt,
            data,
            epochs=epochs,
            batch_size=16,
            validation=0.2,
            seed=5,
            callbacks=callbacks,
            verbose=0,
            resume=resume,
        )
        return model, history

    full_model, full_history = run(6, tmp_path / "full")
    run(3, tmp_path / "part")  # "killed" after epoch 3
    resumed_model, resumed_history = run(6, tmp_path / "part", resume=tmp_path / "part" / "last.nnl")
    for name, value in full_model.state_dict().items():
        assert value.tobytes() == resumed_model.state_dict()[name].tobytes(), name
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert full_history.history[key] == resumed_history.history[key], key
    assert resumed_history.epochs == list(range(1, 7))


def test_resume_from_a_plain_model_file_is_refused(tmp_path):
    from nnlayers.saving.serialize import save

    x, y = make_data(n=40)
    model = make_model()
    save(model, tmp_path / "plain.nnl")
    with pytest.raises(ValueError, match="without training state; resume needs a checkpoint"):
        fit(
            model,
            BCELoss(),
            SGD(model.parameters(), lr=0.1),
            (x, y),
            epochs=2,
            resume=tmp_path / "plain.nnl",
            verbose=0,
        )


def test_evaluate_metrics_by_hand():
    # a model whose output is sigmoid(x): the inputs are the logits
    model = Sequential([Dense(1, 1, dtype=np.float64), Sigmoid()])
    model.load_state_dict({"0.weight": np.ones((1, 1)), "0.bias": np.zeros(1)})
    logits = np.array([[3.0], [2.0], [-1.0], [0.5], [-2.0], [-3.0], [1.0]])
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = evaluate(model, (logits, y))
    # predicted 1 for logits > 0: [1, 1, 0, 1, 0, 0, 1]
    assert scores["confusion_matrix"] == [[2, 2], [1, 2]]  # [[tn, fp], [fn, tp]]
    assert scores["accuracy"] == pytest.approx(4 / 7)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    p = 1 / (1 + np.exp(-logits.ravel()))
    assert scores["loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-12)
    np.testing.assert_allclose(predict_proba(model, logits), p, rtol=1e-12)
    np.testing.assert_array_equal(predict(model, logits), [1, 1, 0, 1, 0, 0, 1])


def test_logit_models_get_probabilities_through_the_sigmoid():
    x, y = make_data(n=50)
    model = make_model(logits=True)
    with_sigmoid = Sequential([*model, Sigmoid()])
    np.testing.assert_allclose(predict_proba(model, x), predict_proba(with_sigmoid, x), rtol=1e-12)
    assert evaluate(model, (x, y))["loss"] == pytest.approx(evaluate(with_sigmoid, (x, y))["loss"], rel=1e-9)


def test_predict_on_image_files_uses_the_model_preprocessing(tmp_path):
    from PIL import Image

    from nnlayers.data import load_image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    model = Sequential([Dense(8 * 8 * 3, 4, rng=0), Tanh(), Dense(4, 1, rng=1), Sigmoid()])
    model.preprocessing = {"size": [8, 8], "backend": "pil", "interpolation": "area", "reduce": False}
    expected = predict_proba(
        model, np.stack([load_image(p, 8, backend="pil", interpolation="area", reduce=False) for p in paths])
    )
    np.testing.assert_allclose(predict_proba(model, paths), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"batch_size": -1}, ValueError, "batch_size must be a positive int"),
        ({"verbose": 5}, ValueError, "verbose must be 0, 1 or 2"),
        ({"validation": 1.5}, ValueError, "test_size must be a fraction"),
    ],
)
def test_fit_argument_errors(kwargs, error, message):
    x, y = make_data(n=20)
    model = make_model()
    with pytest.raises(error, match=message):
        fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), (x, y), **{"epochs": 1, "verbose": 0, **kwargs})


def test_fit_data_errors():
    x, y = make_data(n=20)
    model = make_model()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"train_data: labels must be 0 or 1, got \[2\]"):
        fit(model, BCELoss(), opt, (x, np.where(np.arange(20) == 3, 2, y)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, ...\) and labels of shape \(N,\) or \(N, 1\)"):
        fit(model, BCELoss(), opt, (x, y[:5]), epochs=1, verbose=0)
    with pytest.raises(TypeError, match="train_data must be an ImageDataset or a tuple"):
        fit(model, BCELoss(), opt, x, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="loss_fn must be a Loss"):
        fit(model, "bce", opt, (x, y), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Dense\(12 -> 8\) expected input of shape \(N, 12\), got \(16, 5\)"):
        fit(model, BCELoss(), opt, (x[:, :5], y), epochs=1, batch_size=16, verbose=0)


def test_a_large_but_finite_loss_of_another_kind_is_not_divergence():
    from nnlayers import Loss

    class SquaredError(Loss):
        """A user's loss on a different scale: 0.5 * mean((pred - 100 * y)^2), in the thousands here."""

        def forward(self, pred, target):
            diff = pred - 100 * np.asarray(target, pred.dtype).reshape(pred.shape)
            self._grad = diff / len(pred)
            return float(0.5 * np.mean(diff**2))

    x, y = make_data(n=40)
    model = make_model(logits=True)
    history = fit(model, SquaredError(), SGD(model.parameters(), lr=1e-4), (x, y), epochs=3, verbose=0)
    assert not history.diverged and len(history.epochs) == 3 and history.history["loss"][0] > 10


def shapes_set(n=160, size=12, seed=0):
    """uint8 images: a bright square (class 1) or a bright cross (class 0) on noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    labels = np.arange(n) % 2
    for img, label in zip(images, labels):
        if label:
            img[3:9, 3:9] = 220
        else:
            img[5:7, 2:10] = 220
            img[2:10, 5:7] = 220
    return images, labels


def small_cnn():
    from nnlayers import BatchNorm2D, Conv2D, Dropout, Flatten, MaxPool2D, ReLU

    return Sequential(
        [
            Conv2D(3, 6, 3, padding=1, rng=0),
            BatchNorm2D(6),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dropout(0.2, rng=0),
            Dense(6 * 6 * 6, 1, rng=1),
        ]
    )


def test_fit_evaluate_and_predict_a_cnn_on_uint8_images():
    from nnlayers import BCEWithLogitsLoss

    images, labels = shapes_set()
    model = small_cnn()
    history = fit(
        model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.05, momentum=0.9), (images, labels),
        epochs=6, batch_size=16, validation=0.25, verbose=0,
    )  # fmt: skip
    assert history.history["val_accuracy"][-1] >= 0.9 and not model.training
    scores = evaluate(model, (images, labels))
    assert scores["accuracy"] >= 0.9
    assert not model.training  # evaluate leaves the mode as it found it
    p = predict_proba(model, images)
    assert p.shape == (len(images),) and np.array_equal(p, predict_proba(model, images))  # eval: no dropout noise
    np.testing.assert_array_equal(predict(model, images), (p > 0.5).astype(int))
    manual = 1 / (1 + np.exp(-model(images.astype(np.float32) / 255).ravel()))  # the images as the model takes them
    np.testing.assert_allclose(p, manual, rtol=1e-5)


def test_fit_trains_in_training_mode_and_evaluates_in_evaluation_mode():
    from nnlayers import BCEWithLogitsLoss

    images, labels = shapes_set(n=64)
    model = small_cnn().eval()  # fit switches to training mode itself
    fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.01), (images, labels), epochs=2, batch_size=16,
        validation=0.25, verbose=0)  # fmt: skip
    # 48 training images in batches of 16: 3 steps an epoch update the running statistics;
    # validating (12 images, each epoch) does not
    assert int(model[1].num_batches_tracked) == 2 * 3
    assert not model.training and not model[5].training  # left in evaluation mode


def test_watching_validation_data_changes_no_weight():
    """What `nnlayers train --val-dir TEST --save last` relies on: validating draws no random number,
    moves no BatchNorm statistic and drops no dropout mask, so the weights are those of the run without it."""
    from nnlayers import BCEWithLogitsLoss

    images, labels = shapes_set(n=64)
    runs = []
    for validation in (None, (images[:16], labels[:16])):
        model = small_cnn()
        fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.05, momentum=0.9), (images, labels), epochs=2,
            batch_size=16, validation=validation, augment="flip,crop", verbose=0)  # fmt: skip
        runs.append(model.state_dict())
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)


def test_resume_with_adam_a_cosine_schedule_and_augmentation_is_bit_identical(tmp_path):
    from nnlayers import Adam, CosineAnnealingLR

    images, labels = shapes_set(n=96)

    def run(epochs, directory, resume=None):
        model = small_cnn()
        opt = Adam(model.parameters(), lr=3e-3)
        history = fit(
            model, BCEWithLogitsLoss(), opt, (images, labels), epochs=epochs, batch_size=16, validation=0.25, seed=3,
            callbacks=[ModelCheckpoint(directory)], scheduler=CosineAnnealingLR(opt, T_max=6), augment="flip,crop",
            verbose=0, resume=resume,
        )  # fmt: skip
        return model, history

    from nnlayers import BCEWithLogitsLoss

    full_model, full_history = run(6, tmp_path / "full")
    run(3, tmp_path / "part")  # "killed" after epoch 3
    resumed_model, resumed_history = run(6, tmp_path / "part", resume=tmp_path / "part" / "last.nnl")
    for name, value in full_model.state_dict().items():  # weights and running statistics
        assert value.tobytes() == resumed_model.state_dict()[name].tobytes(), name
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert full_history.history[key] == resumed_history.history[key], key


def test_a_mismatched_resume_leaves_the_weights_alone(tmp_path):
    x, y = make_data(n=60)
    model = make_model()
    fit(
        model,
        BCELoss(),
        SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=2,
        callbacks=[ModelCheckpoint(tmp_path)],
        verbose=0,
    )
    fresh = make_model()
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="holds the state of 1 callbacks, but 2 were given"):
        fit(fresh, BCELoss(), SGD(fresh.parameters(), lr=0.1), (x, y), epochs=3, verbose=0, resume=tmp_path / "last.nnl",
            callbacks=[ModelCheckpoint(tmp_path / "b"), EarlyStopping("loss")])  # fmt: skip
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_many_classes_end_to_end_in_code():
    from nnlayers import CrossEntropyLoss, Softmax

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(4, 5))
    y = np.arange(400) % 4
    x = centres[y] + rng.normal(size=(400, 5))
    model = Sequential([Dense(5, 16, rng=0, dtype=np.float64), Tanh(), Dense(16, 4, rng=1, dtype=np.float64)])
    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1, momentum=0.9), (x, y), epochs=10,
                  validation=0.25, verbose=0)  # fmt: skip
    assert history.history["val_accuracy"][-1] > 0.9
    p = predict_proba(model, x)
    assert p.shape == (400, 4) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_array_equal(predict(model, x), p.argmax(axis=1))
    scores = evaluate(model, (x, y))
    assert np.array(scores["confusion_matrix"]).shape == (4, 4) and sum(map(sum, scores["confusion_matrix"])) == 400
    assert len(scores["per_class"]) == 4 and scores["accuracy"] > 0.9
    with_softmax = Sequential([*model, Softmax()])  # probabilities out: the same predictions and loss
    np.testing.assert_allclose(predict_proba(with_softmax, x), p, rtol=1e-12)
    assert evaluate(with_softmax, (x, y))["loss"] == pytest.approx(scores["loss"], rel=1e-9)
    with pytest.raises(ValueError, match="CrossEntropyLoss takes raw scores"):
        fit(with_softmax, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), verbose=0)
