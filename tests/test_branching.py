"""Branching networks: Identity, Add, Concat, Residual, ModuleList and BasicBlock.

Oracles: central differences (gradcheck) for every block's input and parameter gradients, the
chain rule at a fork written out by hand, model files that round-trip, and ONNX Runtime.
"""

import numpy as np
import pytest

from nnlayers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    GlobalAvgPool2D,
    Layer,
    Sequential,
    Tanh,
    gradcheck,
    load,
    register_layer,
    save,
)
from nnlayers.models import resnet
from nnlayers.nn.blocks import BasicBlock
from nnlayers.nn.branching import Add, Concat, Identity, ModuleList, Residual

F64 = {"dtype": np.float64}


def images(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def projection_block():
    body = Sequential([Conv2D(3, 4, 3, stride=2, padding=1, rng=0, **F64), BatchNorm2D(4, **F64), Tanh(),
                       Conv2D(4, 4, 3, padding=1, rng=1, **F64)])  # fmt: skip
    return Residual(body, Sequential([Conv2D(3, 4, 1, stride=2, rng=2, **F64), BatchNorm2D(4, **F64)]))


@pytest.mark.parametrize(
    "make, shape",
    [
        (projection_block, (2, 5, 5, 3)),  # odd size, stride 2, a projection shortcut
        (lambda: Residual(Sequential([Dense(5, 5, rng=0, **F64), Tanh()])), (4, 5)),
        (
            lambda: Concat(Conv2D(3, 2, 3, padding=1, rng=0, **F64), Identity(), Conv2D(3, 1, 1, rng=1, **F64)),
            (2, 4, 3, 3),
        ),  # fmt: skip
        (lambda: Add(Dense(4, 3, rng=0, **F64), Sequential([Dense(4, 3, rng=1, **F64), Tanh()])), (3, 4)),
        (lambda: BasicBlock(3, 3, rng=0, **F64), (2, 4, 4, 3)),
        (lambda: BasicBlock(3, 5, stride=2, rng=0, **F64), (2, 5, 5, 3)),
    ],
)
def test_blocks_pass_gradcheck_for_input_and_parameters(make, shape):
    block = make()
    result = gradcheck(block, images(*shape))
    assert result.passed and "input" in result.errors and len(result.errors) > 1  # the input and parameters
    model = Sequential([Conv2D(shape[-1], shape[-1], 1, rng=5, **F64), block]) if len(shape) == 4 else block
    assert gradcheck(model, images(*shape, seed=1)).passed  # inside a model too


def test_the_gradient_at_a_fork_is_the_sum_of_the_branches():
    a, b = Dense(4, 3, rng=0, **F64), Dense(4, 3, rng=1, **F64)
    block = Add(a, b)
    x, g = images(5, 4), images(5, 3, seed=1)
    y = block(x)
    np.testing.assert_allclose(y, x @ a.weight.data.T + a.bias.data + x @ b.weight.data.T + b.bias.data)
    grad_x = block.backward(g)
    np.testing.assert_allclose(grad_x, g @ a.weight.data + g @ b.weight.data, rtol=1e-12)
    np.testing.assert_allclose(a.weight.grad, g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(b.weight.grad, g.T @ x, rtol=1e-12)


def test_concat_gives_each_branch_its_slice_of_the_gradient():
    a, b = Conv2D(3, 2, 1, rng=0, **F64), Conv2D(3, 4, 1, rng=1, **F64)
    block = Concat(a, b)
    x, g = images(2, 3, 3, 3), images(2, 3, 3, 6, seed=1)
    np.testing.assert_array_equal(block(x), np.concatenate([a(x), b(x)], axis=-1))
    block(x)
    grad_x = block.backward(g)
    a(x)
    expected = a.backward(g[..., :2])
    b(x)
    expected = expected + b.backward(g[..., 2:])
    np.testing.assert_allclose(grad_x, expected, rtol=1e-12)


def test_as_a_model_s_first_layer_a_block_skips_the_input_gradient_but_not_the_weights():
    model = Sequential([projection_block(), GlobalAvgPool2D(), Dense(4, 1, rng=3, **F64)])
    x, g = images(3, 5, 5, 3), images(3, 1, seed=1)
    model(x)
    assert model.backward(g) is None
    first = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward(g, input_grad=True).shape == x.shape
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, first[name], rtol=1e-12, err_msg=name)


def test_merges_refuse_outputs_that_do_not_fit():
    with pytest.raises(ValueError, match="outputs of different shapes"):
        Residual(Dense(4, 3, rng=0))(np.ones((2, 4)))
    with pytest.raises(ValueError, match="cannot join branch outputs of shapes"):
        Concat(Conv2D(4, 3, 1, rng=0), Conv2D(4, 2, 3, rng=0), axis=-1)(np.ones((1, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="at least one branch"):
        Add()
    with pytest.raises(ValueError, match="only once in a model"):
        shared = Dense(3, 3)
        Add(shared, shared)


@register_layer
class SqueezeExcite(Layer):
    """The docs' example of a block of one's own: channels scaled by a gate computed from their means."""

    takes_images = True

    def __init__(self, channels, reduction=2, dtype=np.float64):
        super().__init__()
        self.channels, self.reduction = channels, reduction
        self.layers = ModuleList([Dense(channels, channels // reduction, rng=0, dtype=dtype), Tanh(),
                                  Dense(channels // reduction, channels, rng=1, dtype=dtype)])  # fmt: skip

    def forward(self, x):
        gate = x.mean(axis=(1, 2))
        for layer in self.layers:
            gate = layer(gate)
        self.save_for_backward(x=x, gate=gate)
        return x * gate[:, None, None, :]

    def backward(self, grad_y):
        x, gate = self.saved("x", "gate")
        grad_gate = (grad_y * x).sum(axis=(1, 2))
        for layer in reversed(list(self.layers)):
            grad_gate = layer.backward(grad_gate)
        h, w = x.shape[1:3]  # the input feeds the product and the mean: the two gradients add up
        return grad_y * gate[:, None, None, :] + grad_gate[:, None, None, :] / (h * w)

    def get_config(self):
        return {"channels": self.channels, "reduction": self.reduction}


@register_layer
class ScaledResidual(Residual):
    """A user's subclass of Residual that keeps its constructor."""

    def forward(self, x):
        return super().forward(x)


def test_blocks_of_one_s_own_and_the_containers_save_and_load_as_themselves(tmp_path):
    se = SqueezeExcite(4)
    assert gradcheck(se, images(2, 3, 3, 4)).passed
    model = Sequential([
        Conv2D(3, 4, 3, padding=1, rng=0, **F64), se, ScaledResidual(Sequential([Conv2D(4, 4, 1, rng=1, **F64), Tanh()])),
        Concat(Identity(), Conv2D(4, 2, 1, rng=2, **F64)), BasicBlock(6, 8, stride=2, rng=3, **F64), GlobalAvgPool2D(),
    ])  # fmt: skip
    for _, layer in model.named_modules():
        if isinstance(layer, BatchNorm2D):
            layer.running_mean[:], layer.running_var[:] = 0.3, 1.7
    x = images(2, 6, 6, 3)
    model.eval()
    loaded = load(save(model, tmp_path / "m.nnl"))
    assert [type(layer).__name__ for layer in loaded] == [type(layer).__name__ for layer in model]
    assert type(loaded[2]) is ScaledResidual and isinstance(loaded[1].layers, ModuleList)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert list(loaded.state_dict()) == list(model.state_dict())


def test_resnet_is_a_sequential_of_stages_with_torchvision_keys():
    model = resnet(3, widths=(8, 16), blocks=(1, 2), rng=0)
    keys = list(model.state_dict())
    assert "3.0.conv1.weight" in keys and "4.0.downsample.0.weight" in keys and "4.1.bn2.running_var" in keys
    assert "3.0.downsample.0.weight" not in keys  # the first stage keeps the size: an identity shortcut
    assert model(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 3)
    assert model[-1].weight.shape == (3, 16)


onnx_cases = {
    "resnet": (lambda: resnet(2, widths=(4, 8, 8), rng=0), (16, 16, 3)),
    "depthwise-separable-like block": (
        lambda: Sequential(
            [
                Conv2D(3, 6, 3, padding=1, rng=0),
                Residual(Sequential([Conv2D(6, 6, 1, rng=1), BatchNorm2D(6), Tanh()])),
                GlobalAvgPool2D(),
                Dense(6, 2, rng=2),
            ]
        ),  # fmt: skip
        (8, 8, 3),
    ),
    "u-net step (concat)": (
        lambda: Sequential(
            [
                Conv2D(3, 4, 3, padding=1, rng=0),
                Concat(Identity(), Sequential([Conv2D(4, 4, 3, padding=1, rng=1), Tanh()])),
                Conv2D(8, 2, 1, rng=2),
            ]
        ),  # fmt: skip
        (8, 8, 3),
    ),
    "rows": (
        lambda: Sequential(
            [
                Dense(6, 6, rng=0),
                Residual(Sequential([Dense(6, 6, rng=1), Tanh()])),
                Concat(Identity(), Dense(6, 2, rng=2)),
            ]
        ),
        (6,),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(onnx_cases))
def test_onnx_runtime_gives_the_outputs_of_branching_models(tmp_path, case):
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    make, shape = onnx_cases[case]
    model = make()
    rng = np.random.default_rng(0)
    for _, layer in model.named_modules():
        if isinstance(layer, BatchNorm2D):
            layer.running_mean[:] = rng.normal(size=layer.num_features)
            layer.running_var[:] = rng.uniform(0.5, 2, layer.num_features)
    model.eval()
    x = rng.random((3, *shape)).astype(np.float32)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=shape)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)
