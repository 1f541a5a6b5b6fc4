"""LayerNorm and GroupNorm: gradcheck, PyTorch in float64 to 1e-10, the definition by hand, files, ONNX."""

import numpy as np
import pytest

from nnlayers import GELU, Conv2D, Dense, GlobalAvgPool2D, GroupNorm, LayerNorm, Sequential, gradcheck, load, save

F64 = {"dtype": np.float64}


def with_random_affine(layer, seed=0):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.normal(size=p.shape)
    return layer


CASES = {
    "layer norm rows": (lambda: LayerNorm(5, **F64), (4, 5), "LayerNorm(5)"),
    "layer norm sequence": (lambda: LayerNorm(5, **F64), (3, 4, 5), "LayerNorm(5)"),
    "layer norm two axes": (lambda: LayerNorm((4, 5), **F64), (3, 4, 5), "LayerNorm((4, 5))"),
    "layer norm no affine": (
        lambda: LayerNorm(5, elementwise_affine=False, **F64),
        (3, 5),
        "LayerNorm(5, elementwise_affine=False)",
    ),  # fmt: skip
    "layer norm no bias": (lambda: LayerNorm(5, bias=False, **F64), (3, 5), "LayerNorm(5, bias=False)"),
    "group norm images": (lambda: GroupNorm(2, 6, **F64), (2, 3, 5, 6), "GroupNorm(2, 6)"),
    "group norm rows": (lambda: GroupNorm(3, 6, **F64), (4, 6), "GroupNorm(3, 6)"),
    "instance norm": (lambda: GroupNorm(4, 4, **F64), (2, 3, 3, 4), "GroupNorm(4, 4)"),
    "group norm no affine": (lambda: GroupNorm(1, 4, affine=False, **F64), (2, 5, 4), "GroupNorm(1, 4, affine=False)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck(case):
    make, shape, _ = CASES[case]
    result = gradcheck(with_random_affine(make()), np.random.default_rng(1).normal(2, 3, size=shape))
    assert result.passed


def test_the_definition_by_hand():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    norm = with_random_affine(LayerNorm(4, eps=1e-3, **F64))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(
        norm(x), (x - mean) / np.sqrt(var + 1e-3) * norm.weight.data + norm.bias.data, rtol=1e-12
    )
    group = with_random_affine(GroupNorm(2, 4, **F64))
    images = np.random.default_rng(1).normal(size=(2, 3, 3, 4))
    expected = np.empty_like(images)
    for n in range(2):
        for channels in (slice(0, 2), slice(2, 4)):
            part = images[n, :, :, channels]
            expected[n, :, :, channels] = (part - part.mean()) / np.sqrt(part.var() + 1e-5)
    np.testing.assert_allclose(group(images), expected * group.weight.data + group.bias.data, rtol=1e-12)
    assert np.array_equal(group.eval()(images), group.train()(images))  # no batch statistics


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="divisible"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="expected input"):
        LayerNorm(5)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="channels last"):
        GroupNorm(2, 4)(np.ones((2, 4, 4, 3)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_torch(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    make, shape, expression = CASES[case]
    ours = with_random_affine(make())
    theirs = eval(f"torch.nn.{expression}").double()  # noqa: S307 - our own table
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    x = np.random.default_rng(2).normal(1, 2, size=shape)
    g = np.random.default_rng(3).normal(size=shape)
    images = isinstance(ours, GroupNorm) and len(shape) > 2  # torch's channels are axis 1
    to_torch = (lambda a: np.moveaxis(a, -1, 1).copy()) if images else (lambda a: a)
    back = (lambda a: np.moveaxis(a, 1, -1)) if images else (lambda a: a)
    xt = torch.from_numpy(to_torch(x)).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(to_torch(g)))
    np.testing.assert_allclose(ours(x), back(yt.detach().numpy()), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), back(xt.grad.numpy()), rtol=1e-10, atol=1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def layer_norm_gelu_mlp():
    return Sequential([
        Dense(6, 8, rng=0), with_random_affine(LayerNorm(8)), GELU(), Dense(8, 8, rng=1),
        with_random_affine(GroupNorm(2, 8), 1), GELU("tanh"), Dense(8, 3, rng=2),
    ])  # fmt: skip


def test_files_and_onnx_runtime(tmp_path):
    model = layer_norm_gelu_mlp()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_array_equal(load(save(model, tmp_path / "m.nnl"))(x), model(x))
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    for net, shape in ((model, (6,)), (Sequential([Conv2D(3, 6, 3, padding=1, rng=0), with_random_affine(GroupNorm(3, 6)),
                       with_random_affine(LayerNorm(6), 2), GlobalAvgPool2D(), Dense(6, 2, rng=1)]), (8, 8, 3))):  # fmt: skip
        inputs = np.random.default_rng(1).random((3, *shape)).astype(np.float32)
        path = export_onnx(net, tmp_path / "m.onnx", input_shape=shape)
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": inputs})[0]
        np.testing.assert_allclose(got, net(inputs), rtol=1e-5, atol=1e-5)
