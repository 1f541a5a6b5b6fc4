"""ONNX export, checked by onnx.checker and run in ONNX Runtime against nnlayers' own outputs."""

import json
import os

import numpy as np
import pytest

from nnlayers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    load,
    save,
)
from nnlayers.models import mlp, small_cnn

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'nnlayers[onnx]')")

from nnlayers.saving.onnx import export_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def trained_statistics(model, shape):
    """Give BatchNorm layers running statistics that are not the initial ones."""
    model.train()
    for _ in range(3):
        model(RNG.random((16, *shape), dtype=np.float32))
    return model.eval()


MODELS = {
    "tutorial": (lambda: mlp(12288, 64, rng=0), (12288,)),
    "relu mlp": (
        lambda: Sequential([Dense(30, 16, rng=0), ReLU(), Dense(16, 8, rng=1), ReLU(), Dense(8, 1, rng=2)]),
        (30,),
    ),
    "cnn": (lambda: small_cnn(2, channels=(8, 16, 32), dropout=0.5, rng=0), (32, 32, 3)),
    "softmax classifier": (
        lambda: Sequential(
            [
                Conv2D(3, 4, 3, padding=1, rng=0),
                BatchNorm2D(4),
                LeakyReLU(0.1),
                MaxPool2D(3, 2, 1),
                AvgPool2D(2),
                Sequential([Flatten(), Dropout(0.3)]),
                Dense(64, 6, rng=1),
                BatchNorm1D(6),
                Tanh(),
                Dense(6, 3, rng=2),
                Softmax(),
            ]
        ),
        (16, 16, 3),
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_gives_nnlayers_outputs(name, tmp_path):
    make, shape = MODELS[name]
    model = trained_statistics(make(), shape)
    path = export_onnx(model, tmp_path / "model.onnx", shape)
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", *shape]
    for batch in (1, 37):
        x = RNG.random((batch, *shape), dtype=np.float32)
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), rtol=1e-5, atol=1e-5)
    assert model.training is False and all(not layer.training for _, layer in model.named_modules())


def test_float64_models_export_in_their_dtype(tmp_path):
    model = Sequential([Dense(5, 4, rng=0, dtype=np.float64), Tanh(), Dense(4, 1, rng=1, dtype=np.float64), Sigmoid()])
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(7, 5))
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), rtol=1e-12)
    cnn = Sequential(
        [Conv2D(3, 2, 3, rng=0, dtype=np.float64), Flatten(), Dense(2 * 4 * 4, 1, rng=1, dtype=np.float64)]
    )
    path = export_onnx(cnn, tmp_path / "c.onnx", (6, 6, 3), dtype=np.float32)  # ONNX Runtime has no float64 Conv
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": RNG.random((2, 6, 6, 3), dtype=np.float32)}
    )[0]
    assert y.dtype == np.float32 and y.shape == (2, 1)


def test_metadata_holds_classes_and_preprocessing(tmp_path):
    model = mlp(48, 4, rng=0)
    model.classes = ["cat", "dog"]
    model.preprocessing = {"size": [4, 4], "scale": 1 / 255}
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx", metadata={"note": "hello"}))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == ["cat", "dog"] and json.loads(meta["preprocessing"])["size"] == [4, 4]
    assert meta["note"] == "hello" and meta["nnlayers_version"] and "rows" in meta["input_layout"]


class Swish(Layer):
    def forward(self, x):
        self.save_for_backward(x=x)
        return x / (1 + np.exp(-x))

    def backward(self, grad_y):
        x = self.saved("x")
        s = 1 / (1 + np.exp(-x))
        return grad_y * (s + x * s * (1 - s))


class ExportableSwish(Swish):
    def export_onnx(self, graph, x):
        return graph.node("Mul", [x, graph.node("Sigmoid", [x])])


def test_a_custom_layer_needs_the_hook(tmp_path):
    with pytest.raises(
        TypeError, match=r"layer 1 \(Swish\) has no ONNX form: give the class a method export_onnx\(self, graph, x\)"
    ):
        export_onnx(Sequential([Dense(3, 4, rng=0), Swish(), Dense(4, 1, rng=1)]), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    model = Sequential([Dense(3, 4, rng=0), ExportableSwish(), Dense(4, 1, rng=1)])
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), rtol=1e-5, atol=1e-6)


def test_a_failed_export_keeps_the_previous_file(tiny_disk):
    path = tiny_disk / "m.onnx"
    export_onnx(mlp(8, 2, rng=0), path)
    before = path.read_bytes()
    with pytest.raises(OSError, match="No space left on device"):
        export_onnx(Sequential([Dense(512, 256, rng=0)]), path)  # 512 KB of weights: does not fit
    assert path.read_bytes() == before
    assert [p.name for p in tiny_disk.iterdir()] == ["m.onnx"]  # no temporary file left behind


def test_the_cli_exports_a_trained_model(tmp_path):
    import subprocess

    from .test_cli import COMMAND

    model = mlp(4 * 4 * 3, 3, rng=0)
    model.classes, model.preprocessing = ["a", "b"], {"size": [4, 4], "layout": "NHWC, flattened"}
    save(model, tmp_path / "m.nnl")
    result = subprocess.run(
        [*COMMAND, "export", tmp_path / "m.nnl", tmp_path / "m.onnx"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = RNG.random((3, 48), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], load(tmp_path / "m.nnl")(x), rtol=1e-5)


def test_exported_cli_model_predicts_the_shared_test_photos_as_nnlayers_does(shared_data, tmp_path):
    """nnlayers train (a CNN, on 200 Kaggle photos) -> nnlayers export -> ONNX Runtime labels == nnlayers predict."""
    import subprocess

    from nnlayers.data.image import load_images

    from .conftest import copy_kaggle_photos
    from .test_cli import COMMAND

    train = copy_kaggle_photos(shared_data, tmp_path / "train", 100)
    env = {**os.environ, "NNLAYERS_CACHE_DIR": str(tmp_path / "cache")}
    trained = subprocess.run([*COMMAND, "train", train, "--arch", "cnn", "--size", "32", "--epochs", "2", "--quiet",
                              "--out", tmp_path / "m.nnl"], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    exported = subprocess.run(
        [*COMMAND, "export", tmp_path / "m.nnl", tmp_path / "m.onnx"], capture_output=True, text=True, env=env
    )
    assert exported.returncode == 0, exported.stderr
    photos = sorted((shared_data / "dogs-vs-cats" / "test").glob("*.jpg"))[::5]  # 200 of the 1,000
    predicted = subprocess.run(
        [*COMMAND, "predict", tmp_path / "m.nnl", *photos, "--json"], capture_output=True, text=True, env=env
    )
    labels = [row["label"] for row in json.loads(predicted.stdout)]

    model = load(tmp_path / "m.nnl")
    proto = onnx.load(tmp_path / "m.onnx")
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props if p.key in ("classes", "preprocessing")}
    assert meta["classes"] == model.classes and meta["preprocessing"] == model.preprocessing
    x = load_images([str(p) for p in photos], meta["preprocessing"]).astype(np.float32) / 255  # what the metadata says
    scores = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[
        0
    ]
    onnx_labels = [meta["classes"][int(s > 0)] for s in scores[:, 0]]  # one raw score: class 1 when positive
    assert onnx_labels == labels
