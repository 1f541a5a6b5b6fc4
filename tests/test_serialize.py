"""Model files: exact round trips, custom layers, and refusal of altered, truncated or hostile files."""

import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from nnlayers import Dense, Layer, ReLU, Sequential, Sigmoid, Tanh
from nnlayers.saving.modelfile import MAGIC, ModelFileError
from nnlayers.saving.serialize import load, read_checkpoint, read_header, register_layer, save


@register_layer
class Swish(Layer):
    """A custom layer with a constructor argument and a parameter."""

    def __init__(self, beta=1.0, width=3):
        super().__init__()
        self.width = width
        self.beta = self.register_parameter("beta", np.full(width, beta))

    def forward(self, x):
        self._x = x
        return x / (1 + np.exp(-self.beta.data * x))

    def backward(self, grad_y):
        raise NotImplementedError

    def get_config(self):
        return {"beta": float(self.beta.data[0]), "width": self.width}


MODELS = {
    "seed": lambda: Sequential([Dense(48, 7, rng=0), Tanh(), Dense(7, 1, rng=1), Sigmoid()]),
    "relu64": lambda: Sequential(
        [
            Dense(48, 5, rng=2, init="he_normal", dtype=np.float64),
            ReLU(),
            Dense(5, 1, bias=False, rng=3, dtype=np.float64),
            Sigmoid(),
        ]
    ),
    "custom": lambda: Sequential([Dense(48, 3, rng=4), Swish(beta=0.5), Dense(3, 1, rng=5)]),
}
PREPROCESSING = {
    "size": [4, 4],
    "backend": "cv2",
    "interpolation": "cubic",
    "reduce": True,
    "scale": 1 / 255,
    "channel_order": "RGB",
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_is_exact(tmp_path, name):
    model = MODELS[name]()
    for p in model.parameters():  # make every value distinct from a fresh init
        p.data += np.random.default_rng(9).normal(size=p.shape).astype(p.dtype)
    path = save(model, tmp_path / "m.nnl", classes=["cat", "dog"], preprocessing=PREPROCESSING, metadata={"note": "é"})
    loaded = load(path)
    assert repr(loaded) == repr(model)
    assert [type(layer) for layer in loaded] == [type(layer) for layer in model]
    for (key, a), (key2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert key == key2 and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert (
        loaded.classes == ["cat", "dog"] and loaded.preprocessing == PREPROCESSING and loaded.metadata == {"note": "é"}
    )
    x = np.random.default_rng(0).random((5, 48)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model.eval()(x))
    assert not loaded.training


def test_custom_layer_config_survives(tmp_path):
    model = MODELS["custom"]()
    loaded = load(save(model, tmp_path / "c.nnl"))
    assert loaded[1].width == 3 and loaded[1].beta.data[0] == pytest.approx(0.5)


def test_unregistered_custom_layer_needs_custom_layers(tmp_path):
    class Mystery(Layer):
        def forward(self, x):
            return x

    save(Sequential([Dense(2, 2, rng=0), Mystery()]), tmp_path / "m.nnl")
    with pytest.raises(
        ModelFileError, match=r"unknown layer type 'Mystery': register it .* custom_layers=\{'Mystery': Mystery\}"
    ):
        load(tmp_path / "m.nnl")
    assert isinstance(load(tmp_path / "m.nnl", custom_layers={"Mystery": Mystery})[1], Mystery)


def test_header_fields(tmp_path):
    import nnlayers

    save(MODELS["seed"](), tmp_path / "m.nnl", classes=["cat", "dog"], preprocessing=PREPROCESSING)
    header = read_header(tmp_path / "m.nnl")
    assert header["format_version"] == 1 and header["nnlayers_version"] == nnlayers.__version__
    assert header["architecture"]["layers"][0] == {
        "type": "Dense",
        "config": {"in_features": 48, "out_features": 7, "bias": True, "dtype": "float32"},
    }
    assert (
        header["arrays"]["weights.0.weight"]["shape"] == [7, 48]
        and header["arrays"]["weights.0.weight"]["dtype"] == "<f4"
    )
    assert header["training"] is None


def test_checkpoint_training_state_round_trip(tmp_path):
    model = MODELS["seed"]()
    buffers = [np.arange(p.size, dtype=np.float32).reshape(p.shape) for p in model.parameters()]
    training = {
        "epoch": 3,
        "optimizer": {"lr": 0.1, "momentum_buffers": [buffers[0], None, buffers[2], buffers[3]]},
        "rng_state": {"state": 2**100 + 7},
    }
    save(model, tmp_path / "ck.nnl", training=training)
    weights, restored = read_checkpoint(tmp_path / "ck.nnl")
    assert restored["epoch"] == 3 and restored["rng_state"]["state"] == 2**100 + 7
    assert restored["optimizer"]["momentum_buffers"][1] is None
    np.testing.assert_array_equal(restored["optimizer"]["momentum_buffers"][2], buffers[2])
    assert set(weights) == set(model.state_dict())


def rewrite(path, edit_header=None, edit_body=None):
    """Re-assemble a model file after editing its header or body, with a valid checksum."""
    data = path.read_bytes()[:-32]
    n = int.from_bytes(data[8:16], "little")
    header, body = json.loads(data[16 : 16 + n]), data[16 + n :]
    if edit_header:
        edit_header(header)
    if edit_body:
        body = edit_body(body)
    raw = json.dumps(header).encode()
    out = MAGIC + len(raw).to_bytes(8, "little") + raw + body
    path.write_bytes(out + hashlib.sha256(out).digest())


@pytest.fixture()
def saved(tmp_path):
    path = tmp_path / "m.nnl"
    save(MODELS["seed"](), path, classes=["cat", "dog"])
    return path


def test_truncated_files_are_refused(saved):
    data = saved.read_bytes()
    for cut in (0, 10, 20, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|not an nnlayers model file"):
            load(saved)


def test_flipped_bits_are_refused_anywhere(saved):
    data = saved.read_bytes()
    for position in (3, 12, 40, 200, len(data) // 2, len(data) - 40, len(data) - 5):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        saved.write_bytes(bytes(flipped))
        with pytest.raises(ModelFileError):
            load(saved)


def test_altered_header_is_refused_even_with_a_valid_checksum(saved):
    original = saved.read_bytes()

    def check(edit_header=None, edit_body=None, message=""):
        saved.write_bytes(original)
        rewrite(saved, edit_header, edit_body)
        with pytest.raises(ModelFileError, match=message):
            load(saved)

    check(lambda h: h["arrays"]["weights.0.weight"].update(shape=[7, 47]), message="does not match its")
    check(lambda h: h["arrays"]["weights.0.weight"].update(dtype="<f8"), message="does not match its")
    check(
        lambda h: h["architecture"]["layers"][0]["config"].update(in_features=47),
        message="weights do not fit the architecture",
    )
    check(lambda h: h["architecture"]["layers"][1].update(type="os.system"), message="unknown layer type 'os.system'")
    check(
        lambda h: h.update(format_version=2),
        message=r"format version 2; this nnlayers \(1\) reads up to version 1. Upgrade",
    )
    check(lambda h: h.pop("format"), message="no format field")
    check(edit_body=lambda b: b + b"\0" * 8, message="not described by the header")
    check(lambda h: h["architecture"]["layers"][0]["config"].update(evil="x"), message="cannot build Dense")


class Canary:
    """Unpickling this would create a file: proof of code execution if it ever happens."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickles_are_never_loaded(tmp_path, saved):
    canary = tmp_path / "executed"
    evil = tmp_path / "evil.nnl"
    evil.write_bytes(pickle.dumps({"0.weight": Canary(str(canary))}))
    with pytest.raises(ModelFileError, match="looks like a pickle, which nnlayers never loads"):
        load(evil)
    # a well-formed file whose header declares a pickled object array
    payload = pickle.dumps(Canary(str(canary)))

    def add_object(h):
        h["arrays"]["weights.0.weight"] = {"dtype": "|O", "shape": [1], "offset": 0, "nbytes": len(payload)}

    rewrite(saved, add_object, lambda body: payload)
    with pytest.raises(ModelFileError, match=r"dtype '\|O'; only numeric arrays are loaded"):
        load(saved)
    np_file = tmp_path / "weights.npy"
    np.save(np_file, np.array([Canary(str(canary))], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError, match="not an nnlayers model file"):
        load(np_file)
    assert not canary.exists()


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.nnl"
    first = MODELS["seed"]()
    save(first, path)
    before = path.read_bytes()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save(MODELS["relu64"](), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nnl"]  # no temporary file left behind
    assert repr(load(path)) == repr(first)


def test_save_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        save(MODELS["seed"](), tmp_path / "missing" / "m.nnl")
    with pytest.raises(TypeError, match="save expects a Layer"):
        save({"0.weight": np.ones(2)}, tmp_path / "m.nnl")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load(tmp_path / "nope.nnl")

    class BadConfig(Layer):
        def get_config(self):
            return {"f": np.tanh}

    with pytest.raises(TypeError, match="get_config\\(\\) must return JSON values"):
        save(Sequential([BadConfig()]), tmp_path / "m.nnl")


def test_register_layer_rejects_non_layers_and_builtin_names():
    with pytest.raises(TypeError, match="expects a Layer subclass"):
        register_layer(int)

    with pytest.raises(ValueError, match="built-in layer name"):

        @register_layer
        class Dense(Layer):  # noqa: F811 - deliberately shadows the built-in name
            pass


def test_state_dict_loads_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    model = MODELS["seed"]()
    loaded = load(save(model, tmp_path / "m.nnl"))
    twin = torch.nn.Sequential(torch.nn.Linear(48, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1), torch.nn.Sigmoid())
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.state_dict().items()}, strict=True)
    x = np.random.default_rng(0).random((4, 48)).astype(np.float32)
    np.testing.assert_allclose(twin(torch.from_numpy(x)).detach().numpy(), loaded(x), rtol=1e-5)


def test_registered_classes_are_keyed_by_module_and_name(tmp_path):
    from nnlayers.saving.serialize import layer_key, registered_layers

    assert layer_key(Swish) == f"{__name__}.Swish" and registered_layers()[layer_key(Swish)] is Swish
    header = read_header(save(MODELS["custom"](), tmp_path / "c.nnl"))
    assert header["architecture"]["layers"][1] == {
        "type": "Swish",
        "module": __name__,
        "config": {"beta": 0.5, "width": 3},
    }
    assert header["architecture"]["layers"][0]["type"] == "Dense"  # built-ins keep their bare names


def test_a_second_class_under_a_taken_key_is_an_error():
    def make():
        class Twin(Layer):
            pass

        return Twin

    first, second = make(), make()
    register_layer(first)
    register_layer(first)  # the same class again is fine
    with pytest.raises(ValueError, match=r"another class is already registered as '.*\.Twin'"):
        register_layer(second)
    assert register_layer(replace=True)(second) is second  # a notebook cell run again


def test_a_class_of_the_same_name_from_another_module_does_not_collide(tmp_path):
    from nnlayers.saving.serialize import registered_layers

    class Swish(Layer):  # noqa: F811 - same name as the module-level class, another key
        def forward(self, x):
            return x

    Swish.__module__ = "elsewhere"
    register_layer(Swish)
    assert registered_layers()["elsewhere.Swish"] is Swish
    assert registered_layers()[f"{__name__}.Swish"] is not Swish
    loaded = load(save(MODELS["custom"](), tmp_path / "c.nnl"))  # the file names its module: no ambiguity
    assert type(loaded[1]).__module__ == __name__


def test_stale_temporary_files_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "m.nnl"
    save(MODELS["seed"](), target)
    killed = [tmp_path / ".m.nnl.999999999.abc.tmp", tmp_path / ".m.nnl.k2j3h4.tmp"]  # a dead writer; an old name
    for leftover in killed:
        leftover.write_bytes(b"half a model")
    alive = tmp_path / f".m.nnl.{os.getppid()}.xyz.tmp"  # a writer that still runs keeps its file
    alive.write_bytes(b"in progress")
    other = tmp_path / ".other.nnl.999999999.abc.tmp"  # another model's file is not ours to remove
    other.write_bytes(b"x")
    save(MODELS["seed"](), target)
    assert not any(p.exists() for p in killed) and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "m.nnl"])


def test_a_cnn_round_trips_exactly(tmp_path):
    from nnlayers import (
        AvgPool2D,
        BatchNorm1D,
        BatchNorm2D,
        Conv2D,
        Dropout,
        GlobalAvgPool2D,
        LeakyReLU,
        MaxPool2D,
    )

    model = Sequential(
        [
            Conv2D(3, 4, 3, padding=1, rng=0),
            BatchNorm2D(4, momentum=None),
            LeakyReLU(0.2),
            MaxPool2D(3, stride=2, padding=1),
            Conv2D(4, 6, (3, 1), stride=(1, 2), bias=False, rng=1),
            AvgPool2D(2),
            Sequential([BatchNorm2D(6, affine=False), GlobalAvgPool2D()]),
            Dropout(0.3),
            Dense(6, 5, rng=2),
            BatchNorm1D(5, eps=1e-3, track_running_stats=False),
            Dense(5, 1, rng=3),
        ]
    )
    x = np.random.default_rng(0).random((6, 10, 10, 3), dtype=np.float32)
    model(x)  # running statistics that are not the initial ones
    loaded = load(save(model, tmp_path / "cnn.nnl"))
    assert repr(loaded) == repr(model)
    for key, value in model.state_dict().items():
        again = loaded.state_dict()[key]
        assert again.dtype == value.dtype and again.shape == value.shape and again.tobytes() == value.tobytes(), key
    model.eval()
    np.testing.assert_array_equal(loaded(x), model(x))
    assert [layer.get_config() for layer in loaded] == [layer.get_config() for layer in model]
