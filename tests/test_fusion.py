"""A convolution, its batch norm on running statistics and a ReLU in one pass give, to the last bit,
what the layers give one by one, forward and backward, and run only where they may."""

from __future__ import annotations

import numpy as np
import pytest

from nnlayers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, models
from nnlayers.nn import container, fusion


def _cnn(dtype) -> Sequential:
    model = Sequential(
        [Conv2D(3, 8, 3, padding=1, rng=0, dtype=dtype), BatchNorm2D(8, dtype=dtype), ReLU(), MaxPool2D(2)]
        + [Conv2D(8, 6, 3, stride=2, rng=1, dtype=dtype), BatchNorm2D(6, dtype=dtype)]  # no ReLU after
        + [Flatten(), Dense(6 * 2 * 2, 2, rng=2, dtype=dtype)]
    )
    return _with_statistics(model, dtype)


def _with_statistics(model, dtype):
    rng = np.random.default_rng(5)
    for _, layer in model.named_modules():
        if isinstance(layer, BatchNorm2D):  # running statistics and affine weights far from 0 and 1
            layer.running_mean[...] = rng.normal(0, 0.5, layer.num_features)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.num_features)
            layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.num_features).astype(dtype)
            layer.bias.data[...] = rng.normal(0, 0.3, layer.num_features).astype(dtype)
    return model.eval()


def _unfused(monkeypatch):
    monkeypatch.setattr(fusion, "fusable", lambda layers, i: 0)
    monkeypatch.setattr(container, "fusable", lambda layers, i: 0)


def _forward_backward(model, x):
    model.zero_grad()
    y = model(x)
    grad_x = model.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(y.dtype), input_grad=True)
    return y, grad_x, {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", ["cnn", "resnet"])
def test_fused_passes_are_the_layers_one_by_one_to_the_last_bit(monkeypatch, dtype, make):
    if make == "cnn":
        model, x = _cnn(dtype), np.random.default_rng(0).random((5, 12, 12, 3)).astype(dtype)
    else:
        model = _with_statistics(models.resnet(widths=(4, 8), num_classes=3).to(dtype), dtype)
        x = np.random.default_rng(0).random((3, 16, 16, 3)).astype(dtype)
    fused = _forward_backward(model, x)
    _unfused(monkeypatch)
    plain = _forward_backward(model, x)
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_array_equal(fused[1], plain[1])  # a saliency map runs backward in evaluation mode
    for name in plain[2]:
        np.testing.assert_array_equal(fused[2][name], plain[2][name], err_msg=name)


def test_the_fused_pass_runs_in_evaluation_only(monkeypatch):
    calls = []
    original = BatchNorm2D.forward
    monkeypatch.setattr(BatchNorm2D, "forward", lambda self, x: calls.append(1) or original(self, x))
    model, x = _cnn(np.float32), np.ones((2, 12, 12, 3), np.float32)
    model(x)
    assert calls == []  # both batch norms ran inside their convolution's pass
    model.train()
    model(x)
    assert len(calls) == 2  # batch statistics: each batch norm on its own


def test_no_fused_pass_where_a_layer_is_not_what_it_expects():
    conv, bn, relu = Conv2D(3, 4, 3, rng=0), BatchNorm2D(4).eval(), ReLU()
    assert fusion.fusable([conv, bn, relu], 0) == 3
    assert fusion.fusable([conv, bn], 0) == 2
    assert fusion.fusable([conv, BatchNorm2D(4, dtype=np.float64).eval()], 0) == 0  # mixed dtypes
    assert fusion.fusable([Conv2D(4, 4, 3, groups=2, rng=0), BatchNorm2D(4).eval()], 0) == 0
    assert fusion.fusable([conv, BatchNorm2D(4)], 0) == 0  # training: batch statistics
    assert fusion.fusable([bn, conv], 0) == 0
    hooked = Conv2D(3, 4, 3, rng=0)
    hooked.forward = lambda x: Conv2D.forward(hooked, x)  # an explanation's hook must see each layer
    assert fusion.fusable([hooked, bn, relu], 0) == 0
