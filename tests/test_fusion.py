"""`no_grad` and the fused convolution + batch norm (+ ReLU, + residual sum) of predictions.

The oracle is the same model run layer by layer (grad mode on): the fused pass must give its
numbers to rounding, and must run only where it is exact (evaluation mode, running statistics,
the built-in layers, one dtype); anywhere else the layers run one by one as before.
"""

import threading

import numpy as np
import pytest

from nnlayers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    MaxPool2D,
    ReLU,
    Sequential,
    enable_grad,
    is_grad_enabled,
    no_grad,
    predict_proba,
    set_grad_enabled,
)
from nnlayers.models import resnet
from nnlayers.nn import fusion
from nnlayers.nn.blocks import BasicBlock


def with_statistics(model, dtype=np.float64, seed=0):
    """Random running statistics and affine weights in every batch norm, as after training."""
    rng = np.random.default_rng(seed)
    for _, layer in model.named_modules():
        if isinstance(layer, BatchNorm2D) and layer.track_running_stats:
            c = layer.num_features
            layer.running_mean[...] = rng.normal(size=c)
            layer.running_var[...] = rng.uniform(0.5, 2.0, size=c)
            layer.weight.data[...] = rng.normal(1.0, 0.3, size=c)
            layer.bias.data[...] = rng.normal(size=c)
    return model.to(dtype).eval()


def images(shape, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


@pytest.fixture
def counted_batchnorms(monkeypatch):
    """How many times `BatchNorm2D.forward` runs (replaced on the class: instances stay fusable)."""
    calls = []
    original = BatchNorm2D.forward

    def counting(self, x):
        calls.append(self)
        return original(self, x)

    monkeypatch.setattr(BatchNorm2D, "forward", counting)
    return calls


def test_a_resnet_predicts_the_same_fused_and_layer_by_layer(counted_batchnorms):
    model = with_statistics(resnet(3, widths=(4, 8, 16), rng=0))
    x = images((3, 17, 15, 3))
    expected = model(x)
    assert len(counted_batchnorms) == 1 + 2 * 3 + 2  # the stem, two a block, two projections
    counted_batchnorms.clear()
    with no_grad():
        got = model(x)
    assert counted_batchnorms == []  # every batch norm was folded into its convolution
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, with_statistics(resnet(3, widths=(4, 8, 16), rng=0), seed=5)(x))  # it is the model


def test_float32_fused_agrees_to_float32_rounding():
    model = with_statistics(resnet(2, widths=(8, 16), stem_stride=2, rng=1), np.float32)
    x = images((4, 24, 24, 3), dtype=np.float32)
    expected = model(x)
    with no_grad():
        got = model(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, stride=2, padding=1, bias=False),
        dict(kernel_size=3, padding=2, dilation=2),
        dict(kernel_size=(3, 1), padding="same", padding_mode="reflect"),
        dict(kernel_size=1),
    ],
)
def test_chains_of_convolution_batch_norm_and_relu(conv, counted_batchnorms):
    model = with_statistics(
        Sequential(
            [
                Conv2D(3, 5, rng=0, **conv), BatchNorm2D(5), ReLU(),  # fused with its ReLU
                Conv2D(5, 6, 3, padding=1, rng=1), BatchNorm2D(6), MaxPool2D(2),  # fused without
                Conv2D(6, 4, 1, rng=2), BatchNorm2D(4),  # fused at the end
            ]
        )
    )  # fmt: skip
    x = images((2, 9, 11, 3))
    expected = model(x)
    counted_batchnorms.clear()
    with no_grad():
        got = model(x)
    assert counted_batchnorms == []
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


class ScaledBatchNorm(BatchNorm2D):
    def forward(self, x):
        return 2 * super().forward(x)


def unfusable_models():
    """Each model has a convolution and a batch norm that must not be fused, and says why."""
    grouped = Sequential([Conv2D(4, 4, 3, padding=1, groups=2, rng=0), BatchNorm2D(4)])
    batch_stats = Sequential([Conv2D(4, 4, 3, padding=1, rng=0), BatchNorm2D(4, track_running_stats=False)])
    subclass = Sequential([Conv2D(4, 4, 3, padding=1, rng=0), ScaledBatchNorm(4)])
    probed = Sequential([Conv2D(4, 4, 3, padding=1, rng=0), BatchNorm2D(4)])
    probed[1].forward = lambda x, layer=probed[1]: BatchNorm2D.forward(layer, x) + 1  # a probe's watch
    return {"groups": grouped, "batch statistics": batch_stats, "a subclass": subclass, "a probed instance": probed}


@pytest.mark.parametrize("why", sorted(unfusable_models()))
def test_what_cannot_fuse_runs_layer_by_layer(why, counted_batchnorms):
    model = with_statistics(unfusable_models()[why])
    x = images((2, 6, 6, 4))
    expected = model(x)
    counted_batchnorms.clear()
    with no_grad():
        got = model(x)
    assert len(counted_batchnorms) == 1 or why == "a probed instance"  # (the probe calls the class's forward)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_training_mode_under_no_grad_still_uses_and_updates_batch_statistics(counted_batchnorms):
    model = with_statistics(Sequential([Conv2D(3, 4, 3, rng=0), BatchNorm2D(4), ReLU()])).train()
    x = images((4, 6, 6, 3))
    before = model[1].running_mean.copy()
    with no_grad():
        y = model(x)
    assert len(counted_batchnorms) == 1
    assert not np.allclose(model[1].running_mean, before)  # as torch.no_grad in training mode
    np.testing.assert_allclose(model[1].running_mean, 0.9 * before + 0.1 * model[0](x).reshape(-1, 4).mean(axis=0))
    assert y.min() == 0


def test_a_block_fed_a_wider_dtype_is_not_fused(counted_batchnorms):
    block = with_statistics(BasicBlock(4, 4, rng=0), np.float32)
    x = images((2, 5, 5, 4))  # float64 into a float32 block: the shortcut sum is float64, as layer by layer
    expected = block(x)
    counted_batchnorms.clear()
    with no_grad():
        got = block(x)
    assert got.dtype == expected.dtype == np.float64 and len(counted_batchnorms) == 2
    np.testing.assert_array_equal(got, expected)


def test_backward_after_a_forward_under_no_grad_is_a_clear_error():
    model = with_statistics(resnet(2, widths=(4,), rng=0)).train()
    x = images((2, 8, 8, 3))
    with no_grad():
        model(x)
    with pytest.raises(RuntimeError, match=r"after a forward inside nnlayers.no_grad\(\), which keeps nothing"):
        model.backward(np.ones((2, 1)))
    layer = Dense(3, 2, rng=0)
    with no_grad():
        layer(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="Dense.backward"):
        layer.backward(np.ones((1, 2)))
    y = model(x)  # grad mode again: forward keeps, backward works
    model.backward(np.ones_like(y))
    assert all(np.abs(p.grad).sum() > 0 for p in model.parameters())


def test_grad_mode_nests_decorates_and_belongs_to_the_thread():
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with enable_grad():
            assert is_grad_enabled()
        assert not is_grad_enabled()
        seen = []
        other = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        other.start()
        other.join()
        assert seen == [True]
    assert is_grad_enabled()

    @no_grad()
    def predicted():
        return is_grad_enabled()

    assert predicted() is False and is_grad_enabled()
    with set_grad_enabled(False):
        assert not is_grad_enabled()
    with pytest.raises(KeyError), no_grad():
        raise KeyError("an error inside")
    assert is_grad_enabled()  # restored after an error


def test_predict_runs_fused_and_gives_the_models_probabilities(counted_batchnorms):
    model = with_statistics(resnet(2, widths=(4, 8), rng=3), np.float32)
    x = images((5, 16, 16, 3), dtype=np.float32)
    expected = 1 / (1 + np.exp(-model(x)[:, 0].astype(np.float64)))
    counted_batchnorms.clear()
    got = predict_proba(model, x)
    assert counted_batchnorms == [] and model.training is False
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_residual_of_the_wrong_shape_is_refused():
    conv, norm = with_statistics(Conv2D(2, 3, 3, rng=0)), with_statistics(BatchNorm2D(3))
    with pytest.raises(ValueError, match=r"the residual has shape \(1, 4, 4, 3\), the output \(1, 3, 3, 3\)"):
        fusion.conv_bn(conv, norm, images((1, 5, 5, 2)), residual=np.zeros((1, 4, 4, 3)))
