"""Conv2D's dilation, groups (depthwise), padding="valid"/"same" and padding_mode: gradcheck, PyTorch in
float64 to 1e-10, model files, and a depthwise-separable block in ONNX Runtime."""

import numpy as np
import pytest

from nnlayers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool2D, ReLU, Residual, Sequential, gradcheck, load, save

OPTIONS = {
    "dilation 2": dict(dilation=2, padding=2),
    "dilation per axis, stride 2": dict(dilation=(1, 2), stride=2, padding=1),
    "groups 2, stride 2": dict(groups=2, stride=2, padding=1),
    "depthwise, same": dict(groups=4, padding="same"),
    "depthwise dilated same": dict(groups=4, dilation=2, padding="same"),
    "valid": dict(padding="valid"),
    "reflect": dict(padding=1, padding_mode="reflect"),
    "replicate, groups": dict(padding=1, padding_mode="replicate", groups=2, stride=2),
    "circular dilated": dict(padding=2, padding_mode="circular", dilation=(1, 2)),
}


def make(options, out=4, rng=0):
    return Conv2D(4, out, 3, rng=rng, dtype=np.float64, init="torch", **options)


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_gradcheck(case):
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 4))  # odd sizes
    assert gradcheck(make(OPTIONS[case]), x).passed


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_agrees_with_torch(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    ours = make(OPTIONS[case], out=8)
    theirs = torch.nn.Conv2d(4, 8, 3, **OPTIONS[case]).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    x = np.random.default_rng(1).normal(size=(2, 7, 6, 4))
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    g = np.random.default_rng(2).normal(size=y.shape)
    yt.backward(torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_depthwise_is_one_filter_per_channel():
    conv = Conv2D(3, 3, 3, padding=1, groups=3, bias=False, rng=0, dtype=np.float64)
    assert conv.weight.shape == (3, 1, 3, 3)
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 3))
    for c in range(3):  # channel c alone through its own filter
        alone = Conv2D(1, 1, 3, padding=1, bias=False, dtype=np.float64)
        alone.weight.data[...] = conv.weight.data[c : c + 1]
        np.testing.assert_allclose(conv(x)[..., c], alone(x[..., c : c + 1])[..., 0], rtol=1e-12)
    with pytest.raises(ValueError, match="must divide"):
        Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        Conv2D(4, 4, 3, padding_mode="mirror")


def depthwise_separable():
    return Sequential([
        Conv2D(3, 8, 3, padding=1, rng=0), BatchNorm2D(8), ReLU(),
        Residual(Sequential([Conv2D(8, 8, 3, padding="same", groups=8, rng=1), BatchNorm2D(8), ReLU(),
                             Conv2D(8, 8, 1, rng=2)])),
        Conv2D(8, 8, 3, dilation=2, padding=2, groups=2, padding_mode="reflect", rng=3),
        GlobalAvgPool2D(), Dense(8, 2, rng=4),
    ])  # fmt: skip


def test_a_depthwise_separable_block_saves_and_runs_in_onnx_runtime(tmp_path):
    model = depthwise_separable()
    rng = np.random.default_rng(0)
    for _, layer in model.named_modules():
        if isinstance(layer, BatchNorm2D):
            layer.running_mean[:], layer.running_var[:] = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    model.eval()
    x = rng.random((3, 9, 9, 3)).astype(np.float32)
    loaded = load(save(model, tmp_path / "m.nnl"))
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(x), model(x))
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(9, 9, 3))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)


TRANSPOSED = {
    "stride 1": dict(),
    "stride 2": dict(stride=2),
    "output padding": dict(stride=2, padding=1, output_padding=1),
    "dilated, per axis": dict(stride=(2, 3), padding=(1, 0), dilation=2),
    "stride 3 no bias": dict(stride=3, output_padding=2, bias=False),
}


@pytest.mark.parametrize("case", sorted(TRANSPOSED))
def test_transposed_convolution_gradcheck_and_torch(case):
    from nnlayers import ConvTranspose2D

    x = np.random.default_rng(0).normal(size=(2, 5, 4, 4))
    ours = ConvTranspose2D(4, 6, 3, rng=0, dtype=np.float64, init="torch", **TRANSPOSED[case])
    assert gradcheck(ours, x).passed
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, **TRANSPOSED[case]).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    ours.zero_grad()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    assert y.shape == yt.detach().numpy().transpose(0, 2, 3, 1).shape
    g = np.random.default_rng(2).normal(size=y.shape)
    yt.backward(torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_transposed_convolution_decoder_saves_and_runs_in_onnx_runtime(tmp_path):
    from nnlayers import ConvTranspose2D, Sigmoid

    model = Sequential([Conv2D(3, 8, 3, stride=2, padding=1, rng=0), ReLU(),
                        ConvTranspose2D(8, 4, 3, stride=2, padding=1, output_padding=1, rng=1), ReLU(),
                        ConvTranspose2D(4, 3, 3, padding=1, dilation=1, rng=2), Sigmoid()])  # fmt: skip
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    assert model(x).shape == x.shape  # an autoencoder's shape
    np.testing.assert_array_equal(load(save(model, tmp_path / "m.nnl"))(x), model(x))
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(8, 8, 3))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), stride=2),
    ],  # fmt: skip
)
def test_max_pool_ceil_mode_keeps_the_partial_windows_as_torch(options):
    from nnlayers import MaxPool2D

    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3))
    ours = MaxPool2D(**options, ceil_mode=True)
    assert gradcheck(ours, x).passed
    assert MaxPool2D(2, ceil_mode=True)(x).shape[1:3] == (3, 4) and MaxPool2D(2)(x).shape[1:3] == (2, 3)
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    theirs = torch.nn.MaxPool2d(**options, ceil_mode=True)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    g = np.random.default_rng(1).normal(size=y.shape)
    yt.backward(torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2))))
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12)


CONV1D = {
    "plain": dict(),
    "stride 2 padded": dict(stride=2, padding=1),
    "dilated same": dict(dilation=2, padding="same"),
    "groups, reflect": dict(groups=2, padding_mode="reflect", padding=2),
    "valid, no bias": dict(padding="valid", bias=False),
}


@pytest.mark.parametrize("case", sorted(CONV1D))
def test_conv1d_on_sequences_gradcheck_and_torch(case):
    from nnlayers import Conv1D

    x = np.random.default_rng(0).normal(size=(2, 9, 4))
    ours = Conv1D(4, 6, 3, rng=0, dtype=np.float64, init="torch", **CONV1D[case])
    assert ours.weight.shape == (6, 4 // CONV1D[case].get("groups", 1), 3)
    assert gradcheck(ours, x).passed
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    theirs = torch.nn.Conv1d(4, 6, 3, **CONV1D[case]).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    ours.zero_grad()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    g = np.random.default_rng(1).normal(size=y.shape)
    yt.backward(torch.from_numpy(np.ascontiguousarray(g.transpose(0, 2, 1))))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy().transpose(0, 2, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_conv1d_model_trains_saves_and_runs_in_onnx_runtime(tmp_path):
    from nnlayers import BCEWithLogitsLoss, Conv1D, Flatten, fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 2)).astype(np.float32)
    y = (x[:, :6, 0].sum(axis=1) > x[:, 6:, 0].sum(axis=1)).astype(int)
    model = Sequential([Conv1D(2, 4, 3, padding=1, rng=0), ReLU(), Conv1D(4, 4, 3, stride=2, groups=2, rng=1),
                        Flatten(), Dense(20, 1, rng=2)])  # fmt: skip
    from nnlayers import SGD

    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, BCEWithLogitsLoss(), opt, (x, y), epochs=40, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] > 0.8  # sequences go in as they are, not flattened
    loaded = load(save(model, tmp_path / "m.nnl"))
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(x), model(x))
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(12, 2))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv1d_padding_modes_export_to_onnx(tmp_path, mode):
    from nnlayers import Conv1D, export_onnx

    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    model = Sequential([Conv1D(3, 4, 3, padding=2, dilation=2, padding_mode=mode, rng=0), ReLU()])
    x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(7, 3))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    zeros = Sequential([Conv1D(3, 4, 3, padding=2, dilation=2, rng=0), ReLU()])
    assert not np.allclose(zeros(x), model(x))  # the border is not zeros: the mode matters here
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)
