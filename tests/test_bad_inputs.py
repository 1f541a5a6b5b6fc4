"""The bad-input matrix: every public entry point against wrong shapes, dtypes, empty arrays,
NaN and Inf, out-of-range targets, mismatched state dicts, and wrong argument types and values.

Each case names the exception type and a piece of the message that names the problem; none may
surface as a numpy broadcasting error, a bare KeyError or a silently wrong result.
"""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCELoss,
    BCEWithLogitsLoss,
    Dense,
    ImageLoadError,
    ModelFileError,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    batches,
    evaluate,
    fit,
    gradcheck,
    load,
    load_image,
    load_image_folder,
    predict_proba,
    save,
    split_indices,
)

F32 = np.float32


def model():
    return Sequential([Dense(3, 2, rng=0), Tanh(), Dense(2, 1, rng=1), Sigmoid()])


def fit_with(**overrides):
    m = overrides.pop("model", None) or model()
    args = {
        "loss_fn": BCELoss(),
        "optimizer": SGD(m.parameters(), lr=0.1),
        "train_data": (np.ones((4, 3), F32), np.array([0, 1, 0, 1])),
        "epochs": 1,
        "verbose": 0,
    }
    args.update(overrides)
    return fit(m, args.pop("loss_fn"), args.pop("optimizer"), args.pop("train_data"), **args)


def used(layer, x):
    layer(x)
    return layer


CASES = {
    # --- Dense ------------------------------------------------------------------------------
    "dense wrong width": (
        lambda: Dense(3, 2)(np.ones((5, 4), F32)),
        ValueError,
        r"Dense\(3 -> 2\) expected input of shape \(N, 3\), got \(5, 4\)",
    ),
    "dense 1-d": (lambda: Dense(3, 2)(np.ones(3, F32)), ValueError, r"expected input of shape \(N, 3\), got \(3,\)"),
    "dense 3-d": (lambda: Dense(3, 2)(np.ones((2, 3, 1), F32)), ValueError, r"got \(2, 3, 1\)"),
    "dense int": (lambda: Dense(3, 2)(np.ones((2, 3), int)), TypeError, "floating-point array, got dtype int64"),
    "dense uint8 pixels": (
        lambda: Dense(3, 2)(np.ones((2, 3), np.uint8)),
        TypeError,
        r"uint8 \(scale images to floats in \[0, 1\] first\)",
    ),
    "dense object": (lambda: Dense(3, 2)(np.array([[None] * 3])), TypeError, "got dtype object"),
    "dense complex": (lambda: Dense(3, 2)(np.ones((2, 3), complex)), TypeError, "got dtype complex128"),
    "dense string": (lambda: Dense(3, 2)("abc"), TypeError, "floating-point array"),
    "dense zero size": (lambda: Dense(0, 2), ValueError, "in_features must be a positive int, got 0"),
    "dense float size": (lambda: Dense(3, 2.5), ValueError, "out_features must be a positive int, got 2.5"),
    "dense string size": (lambda: Dense("3", 2), ValueError, "in_features must be a positive int, got '3'"),
    "dense int dtype": (lambda: Dense(3, 2, dtype=np.int32), TypeError, "dtype must be floating point, got int32"),
    "dense unknown init": (lambda: Dense(3, 2, init="ones"), ValueError, "unknown init 'ones'"),
    "dense bad rng": (
        lambda: Dense(3, 2, rng=1.5),
        TypeError,
        "rng must be None, an int seed or a numpy.random.Generator",
    ),
    "dense backward first": (
        lambda: Dense(3, 2).backward(np.ones((1, 2), F32)),
        RuntimeError,
        r"Dense.backward\(\) called before forward\(\)",
    ),
    "dense backward shape": (
        lambda: used(Dense(3, 2), np.ones((4, 3), F32)).backward(np.ones((4, 3), F32)),
        ValueError,
        r"gradient of shape \(4, 2\).*got \(4, 3\)",
    ),
    "dense backward int": (
        lambda: used(Dense(3, 2), np.ones((4, 3), F32)).backward(np.ones((4, 2), int)),
        TypeError,
        "floating-point gradient, got dtype int64",
    ),
    # --- activations --------------------------------------------------------------------------
    "tanh int": (lambda: Tanh()(np.ones((2, 2), int)), TypeError, "Tanh expected a floating-point array"),
    "sigmoid complex": (
        lambda: Sigmoid()(np.ones((2, 2), complex)),
        TypeError,
        "Sigmoid expected a floating-point array",
    ),
    "relu object": (lambda: ReLU()(np.array([["a"]], dtype=object)), TypeError, "ReLU expected a floating-point array"),
    "relu backward first": (
        lambda: ReLU().backward(np.ones((1, 1))),
        RuntimeError,
        r"ReLU.backward\(\) called before forward\(\)",
    ),
    "tanh backward shape": (
        lambda: used(Tanh(), np.ones((2, 2))).backward(np.ones((2, 3))),
        ValueError,
        r"Tanh\(\).backward expected a gradient of shape \(2, 2\)",
    ),
    # --- losses -------------------------------------------------------------------------------
    "bce pred (N,2)": (
        lambda: BCELoss()(np.full((3, 2), 0.5), np.zeros(3)),
        ValueError,
        r"pred of shape \(N, 1\) or \(N,\), got \(3, 2\)",
    ),
    "bce target mismatch": (
        lambda: BCELoss()(np.full((3, 1), 0.5), np.zeros(4)),
        ValueError,
        r"target of shape \(3, 1\) or \(3,\).*got \(4,\)",
    ),
    "bce target 2": (
        lambda: BCELoss()(np.full((3, 1), 0.5), np.array([0, 1, 2])),
        ValueError,
        r"targets in \[0, 1\], got 2",
    ),
    "bce target nan": (
        lambda: BCELoss()(np.full((2, 1), 0.5), np.array([np.nan, 1])),
        ValueError,
        r"targets in \[0, 1\], got nan",
    ),
    "bce target string": (
        lambda: BCELoss()(np.full((1, 1), 0.5), np.array(["1"])),
        TypeError,
        "real numeric target, got dtype <U1",
    ),
    "bce target object": (
        lambda: BCELoss()(np.full((1, 1), 0.5), None),
        TypeError,
        "real numeric target, got dtype object",
    ),
    "bce pred above 1": (lambda: BCELoss()(np.array([[1.5]]), np.array([1])), ValueError, r"predictions in \[0, 1\]"),
    "bce pred inf": (lambda: BCELoss()(np.array([[np.inf]]), np.array([1])), ValueError, r"predictions in \[0, 1\]"),
    "bce pred int": (
        lambda: BCELoss()(np.array([[1]]), np.array([1])),
        TypeError,
        "BCELoss pred expected a floating-point array",
    ),
    "bce empty": (lambda: BCELoss()(np.zeros((0, 1)), np.zeros(0)), ValueError, "empty batch"),
    "logits complex": (
        lambda: BCEWithLogitsLoss()(np.ones((2, 1), complex), np.zeros(2)),
        TypeError,
        "floating-point array, got dtype complex128",
    ),
    "logits target -1": (
        lambda: BCEWithLogitsLoss()(np.ones((2, 1)), np.array([0, -1])),
        ValueError,
        r"targets in \[0, 1\], got -1",
    ),
    "loss reduction": (
        lambda: BCELoss(reduction="average"),  # ("none" is one since 0.3)
        ValueError,
        r"reduction must be one of \('mean', 'sum', 'none'\), got 'average'",
    ),
    "loss backward first": (
        lambda: BCEWithLogitsLoss().backward(),
        RuntimeError,
        r"BCEWithLogitsLoss.backward\(\) called before forward\(\)",
    ),
    # --- Sequential and state dicts -------------------------------------------------------------
    "sequential non-layer": (
        lambda: Sequential([Dense(3, 2), "tanh"]),
        TypeError,
        "Sequential takes Layer instances, got str at position 1",
    ),
    "sequential index range": (lambda: model()[7], IndexError, "Sequential index 7 is out of range for 4 layers"),
    "sequential index type": (lambda: model()["0"], TypeError, "indices must be integers or slices, got str"),
    "sequential width": (
        lambda: model()(np.ones((2, 5), F32)),
        ValueError,
        r"Dense\(3 -> 2\) expected input of shape \(N, 3\), got \(2, 5\)",
    ),
    "summary wrong shape": (
        lambda: model().summary(5, print_fn=lambda s: None),
        ValueError,
        r"expected input of shape \(N, 3\), got \(1, 5\)",
    ),
    "state missing": (
        lambda: model().load_state_dict({"0.weight": np.ones((2, 3))}),
        ValueError,
        r"missing keys \['0.bias', '2.weight', '2.bias'\]",
    ),
    "state unexpected": (
        lambda: model().load_state_dict({**model().state_dict(), "x": np.ones(1)}),
        ValueError,
        r"unexpected keys \['x'\]",
    ),
    "state shape": (
        lambda: model().load_state_dict({**model().state_dict(), "2.weight": np.ones((2, 1))}),
        ValueError,
        r"2.weight: expected shape \(1, 2\), got \(2, 1\)",
    ),
    "state strings": (
        lambda: model().load_state_dict({**model().state_dict(), "2.bias": np.array(["a"])}),
        ValueError,
        "2.bias: expected a numeric array",
    ),
    "state not mapping": (
        lambda: model().load_state_dict([("0.weight", 1)]),
        TypeError,
        "expected a mapping of names to arrays, got list",
    ),
    # --- optimizer --------------------------------------------------------------------------
    "sgd empty": (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    "sgd model not params": (
        lambda: SGD(model(), lr=0.1),
        TypeError,
        r"SGD expects model.parameters\(\), got Sequential",
    ),
    "sgd arrays": (lambda: SGD([np.ones(3)], lr=0.1), TypeError, "expected Parameters .* got ndarray at position 0"),
    "sgd lr zero": (
        lambda: SGD(model().parameters(), lr=0),
        ValueError,
        "learning rate must be a positive number, got 0",
    ),
    "sgd lr inf": (
        lambda: SGD(model().parameters(), lr=float("inf")),
        ValueError,
        "learning rate must be a positive number",
    ),
    "sgd lr string": (
        lambda: SGD(model().parameters(), lr="0.1"),
        ValueError,
        "learning rate must be a positive number, got '0.1'",
    ),
    "sgd momentum": (
        lambda: SGD(model().parameters(), lr=0.1, momentum=-0.9),
        ValueError,
        "momentum must be >= 0, got -0.9",
    ),
    "sgd nesterov": (
        lambda: SGD(model().parameters(), lr=0.1, nesterov=True),
        ValueError,
        "nesterov=True needs momentum > 0",
    ),
    "sgd state count": (
        lambda: SGD(model().parameters(), lr=0.1).load_state_dict({**SGD([Dense(2, 2).weight], lr=0.1).state_dict()}),
        ValueError,
        "has 1 momentum buffers, expected 4",
    ),
    # --- gradcheck ------------------------------------------------------------------------------
    "gradcheck non-layer": (
        lambda: gradcheck(np.tanh, np.ones((1, 1))),
        TypeError,
        "expected a Layer or a Loss, got ufunc",
    ),
    "gradcheck nan": (
        lambda: gradcheck(Tanh(), np.array([[np.nan]])),
        ValueError,
        "finite input: x contains NaN or Inf",
    ),
    "gradcheck inf": (lambda: gradcheck(Dense(1, 1), np.array([[np.inf]])), ValueError, "finite input"),
    "gradcheck one nan among numbers": (
        lambda: gradcheck(Dense(2, 1), np.array([[0.5, 1.0], [np.nan, 2.0]])),
        ValueError,
        "finite input",
    ),
    "gradcheck string": (lambda: gradcheck(Tanh(), np.array([["a"]])), TypeError, "real numeric input, got dtype <U1"),
    "gradcheck loss no target": (lambda: gradcheck(BCELoss(), np.full((2, 1), 0.5)), ValueError, "needs the target"),
    "gradcheck width": (
        lambda: gradcheck(Dense(3, 1), np.ones((2, 4))),
        ValueError,
        r"expected input of shape \(N, 3\), got \(2, 4\)",
    ),
    # --- images -------------------------------------------------------------------------------
    "folder int path": (lambda: load_image_folder(42), TypeError, "path must be a folder path"),
    "folder missing": (
        lambda: load_image_folder("/no/such/folder"),
        FileNotFoundError,
        "image folder not found: /no/such/folder",
    ),
    "folder is file": (lambda: load_image_folder(__file__), FileNotFoundError, "not a folder"),
    "folder size": (
        lambda: load_image_folder(".", size=(64,)),
        ValueError,
        r"size must be a positive int or \(height, width\)",
    ),
    "folder backend": (
        lambda: load_image_folder(".", backend="skimage"),
        ValueError,
        r"backend must be one of \('cv2', 'pil'\)",
    ),
    "folder interpolation": (
        lambda: load_image_folder(".", interpolation="bicubic"),
        ValueError,
        "interpolation must be one of",
    ),
    "folder labels": (lambda: load_image_folder(".", labels="names"), ValueError, "labels must be one of"),
    "folder on_error": (
        lambda: load_image_folder(".", on_error="ignore"),
        ValueError,
        "on_error must be 'skip' or 'raise'",
    ),
    "folder workers": (
        lambda: load_image_folder(".", workers=0),
        ValueError,
        "workers must be a positive int or None, got 0",
    ),
    "image missing": (lambda: load_image("/no/such.jpg"), FileNotFoundError, "such.jpg"),
    "image not image": (lambda: load_image(__file__), ImageLoadError, r"test_bad_inputs.py: not a readable image"),
    "image size": (lambda: load_image(__file__, size=-3), ValueError, "size must be a positive int"),
    "batches size zero": (
        lambda: next(batches(np.zeros((2, 1, 1, 3), np.uint8), np.zeros(2), 0)),
        ValueError,
        "batch_size must be a positive int, got 0",
    ),
    "batches size bool": (
        lambda: next(batches(np.zeros((2, 1, 1, 3), np.uint8), np.zeros(2), True)),
        ValueError,
        "batch_size must be a positive int, got True",
    ),
    "batches lengths": (
        lambda: next(batches(np.zeros((2, 1, 1, 3), np.uint8), np.zeros(3), 1)),
        ValueError,
        "differ in length: 2 vs 3",
    ),
    "batches labels 2-d": (
        lambda: next(batches(np.zeros((2, 1, 1, 3), np.uint8), np.zeros((2, 2)), 1)),
        ValueError,
        r"labels must have shape \(N,\) or \(N, 1\), got \(2, 2\)",
    ),
    "batches object images": (
        lambda: next(batches(np.zeros((2, 3), object), np.zeros(2), 1)),
        TypeError,
        "batches expects uint8 images .* got dtype object",
    ),
    "split size": (
        lambda: split_indices(np.zeros(10), 1.0),
        ValueError,
        r"test_size must be a fraction in \(0, 1\), got 1.0",
    ),
    "split negative": (lambda: split_indices(np.zeros(10), -0.2), ValueError, "test_size must be a fraction"),
    # --- training -----------------------------------------------------------------------------
    "fit epochs": (lambda: fit_with(epochs=0), ValueError, "epochs must be a positive int, got 0"),
    "fit epochs float": (lambda: fit_with(epochs=2.5), ValueError, "epochs must be a positive int, got 2.5"),
    "fit batch": (lambda: fit_with(batch_size=-8), ValueError, "batch_size must be a positive int, got -8"),
    "fit verbose": (lambda: fit_with(verbose=3), ValueError, "verbose must be 0, 1 or 2, got 3"),
    "fit data type": (
        lambda: fit_with(train_data=np.ones((4, 3))),
        TypeError,
        "train_data must be an ImageDataset or a tuple",
    ),
    "fit data lengths": (
        lambda: fit_with(train_data=(np.ones((4, 3)), np.zeros(5))),
        ValueError,
        r"expected x of shape \(N, ...\) and labels of shape \(N,\) or \(N, 1\).*got \(4, 3\) and \(5,\)",
    ),
    "fit labels": (
        lambda: fit_with(train_data=(np.ones((4, 3)), np.array([0, 1, 2, 1]))),
        ValueError,
        r"labels must be 0 or 1, got \[2\]",
    ),
    "fit empty": (lambda: fit_with(train_data=(np.ones((0, 3)), np.zeros(0))), ValueError, "train_data is empty"),
    "fit complex x": (
        lambda: fit_with(train_data=(np.ones((4, 3), complex), np.zeros(4))),
        TypeError,
        "expected uint8 images or floating-point inputs, got dtype complex128",
    ),
    "fit width": (
        lambda: fit_with(train_data=(np.ones((4, 5)), np.zeros(4))),
        ValueError,
        r"Dense\(3 -> 2\) expected input of shape \(N, 3\), got \(4, 5\)",
    ),
    "fit model type": (
        lambda: fit("model", BCELoss(), SGD(model().parameters(), lr=0.1), (np.ones((4, 3)), np.zeros(4))),
        TypeError,
        "model must be a Layer",
    ),
    "fit loss type": (lambda: fit_with(loss_fn=lambda p, y: 0.0), TypeError, "loss_fn must be a Loss"),
    "fit optimizer type": (lambda: fit_with(optimizer="sgd"), TypeError, "optimizer must be an optimizer"),
    "fit other model's optimizer": (
        lambda: fit_with(optimizer=SGD(model().parameters(), lr=0.1)),
        ValueError,
        "the optimizer updates none of this model's parameters",
    ),
    "fit validation fraction": (lambda: fit_with(validation=2.0), ValueError, "test_size must be a fraction"),
    "fit validation type": (
        lambda: fit_with(validation="20%"),
        TypeError,
        "validation must be an ImageDataset or a tuple",
    ),
    "fit resume missing": (
        lambda: fit_with(resume="/no/such/ckpt.nnl"),
        FileNotFoundError,
        "model file not found: /no/such/ckpt.nnl",
    ),
    "evaluate labels": (
        lambda: evaluate(model(), (np.ones((2, 3)), np.array([0, 5]))),
        ValueError,
        r"data: labels must be 0 or 1, got \[5\]",
    ),
    "predict width": (
        lambda: predict_proba(model(), np.ones((2, 4))),
        ValueError,
        r"expected input of shape \(N, 3\), got \(2, 4\)",
    ),
    "predict missing file": (lambda: predict_proba(model(), ["/no/such.jpg"]), FileNotFoundError, "such.jpg"),
    # --- model files ----------------------------------------------------------------------------
    "save non-layer": (lambda: save({"w": 1}, "m.nnl"), TypeError, "save expects a Layer"),
    "save missing folder": (
        lambda: save(model(), "/no/such/folder/m.nnl"),
        FileNotFoundError,
        "folder /no/such/folder does not exist",
    ),
    "save into folder": (lambda: save(model(), "/tmp"), IsADirectoryError, "it is a folder"),
    "load missing": (lambda: load("/no/such.nnl"), FileNotFoundError, "model file not found"),
    "load folder": (lambda: load("/tmp"), IsADirectoryError, "is a folder, not a model file"),
    "load not a model": (lambda: load(__file__), ModelFileError, "is not an nnlayers model file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_a_clear_error(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, error, message = CASES[case]
    with pytest.raises(error, match=message) as info:
        call()
    assert type(info.value).__name__ != "KeyError" and "broadcast" not in str(info.value)


def test_nan_inputs_propagate_and_fit_stops_on_them():
    """NaN in, NaN out (as in PyTorch): never a silently finite wrong number; fit stops with advice."""
    out = model()(np.array([[np.nan, 0.0, 1.0]], F32))
    assert np.isnan(out).all()
    assert np.isnan(BCELoss()(np.array([[np.nan]]), np.array([1.0])))
    history = fit_with(train_data=(np.full((4, 3), np.nan), np.array([0, 1, 0, 1])), epochs=3)
    assert history.diverged and "check the inputs for NaN" in history.stop_reason


def test_empty_batches_are_not_errors_where_pytorch_allows_them():
    assert Dense(3, 2)(np.zeros((0, 3), F32)).shape == (0, 2)
    assert list(batches(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0), 4)) == []
