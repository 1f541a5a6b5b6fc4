"""Upsample2D (nearest, bilinear, both align_corners) and AdaptiveAvgPool2D: gradcheck, PyTorch in float64,
the definitions by hand, model files, and a U-Net step (Upsample2D + Concat) in ONNX Runtime."""

import numpy as np
import pytest

from nnlayers import (
    AdaptiveAvgPool2D,
    Concat,
    Conv2D,
    Identity,
    MaxPool2D,
    ReLU,
    Sequential,
    Upsample2D,
    gradcheck,
    load,
    save,
)

CASES = {
    "nearest x2": (lambda: Upsample2D(scale_factor=2), "Upsample(scale_factor=2)"),
    "nearest to a size": (lambda: Upsample2D(size=(7, 11)), "Upsample(size=(7, 11))"),
    "bilinear x1.7": (
        lambda: Upsample2D(scale_factor=1.7, mode="bilinear"),
        "Upsample(scale_factor=1.7, mode='bilinear')",
    ),
    "bilinear per axis": (
        lambda: Upsample2D(scale_factor=(2, 3), mode="bilinear"),
        "Upsample(scale_factor=(2, 3), mode='bilinear')",
    ),  # fmt: skip
    "bilinear corners": (
        lambda: Upsample2D(size=(8, 4), mode="bilinear", align_corners=True),
        "Upsample(size=(8, 4), mode='bilinear', align_corners=True)",
    ),  # fmt: skip
    "adaptive 2": (lambda: AdaptiveAvgPool2D(2), "AdaptiveAvgPool2d(2)"),
    "adaptive 3x4 (overlapping)": (lambda: AdaptiveAvgPool2D((3, 4)), "AdaptiveAvgPool2d((3, 4))"),
    "adaptive 1": (lambda: AdaptiveAvgPool2D(1), "AdaptiveAvgPool2d(1)"),
}


def images(shape=(2, 5, 6, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck(case):
    assert gradcheck(CASES[case][0](), images()).passed


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_torch(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
    make, expression = CASES[case]
    ours, theirs = make(), eval(f"torch.nn.{expression}", {"torch": torch})  # noqa: S307 - our own table
    x = images(seed=1)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    yt = theirs(xt)
    y = ours(x)
    g = np.random.default_rng(2).normal(size=y.shape)
    yt.backward(torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)


def test_definitions_by_hand():
    x = np.arange(1.0, 5.0).reshape(1, 1, 4, 1)  # one row of 4 pixels: 1 2 3 4
    wide = Upsample2D(size=(1, 8), mode="bilinear")(x)[0, 0, :, 0]
    np.testing.assert_allclose(wide, [1, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4])  # half-pixel centres, clamped
    corners = Upsample2D(size=(1, 7), mode="bilinear", align_corners=True)(x)[0, 0, :, 0]
    np.testing.assert_allclose(corners, [1, 1.5, 2, 2.5, 3, 3.5, 4])
    pooled = AdaptiveAvgPool2D((1, 3))(np.arange(5.0).reshape(1, 1, 5, 1))[0, 0, :, 0]
    np.testing.assert_allclose(pooled, [0.5, 2.0, 3.5])  # bins [0, 2), [1, 4), [3, 5)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        Upsample2D()
    with pytest.raises(ValueError, match="align_corners applies to mode='bilinear' only"):
        Upsample2D(scale_factor=2, align_corners=True)


def unet_step():
    """Down, up, and the skip connection joined on the channels."""
    return Sequential([
        Conv2D(3, 4, 3, padding=1, rng=0),
        Concat(Identity(), Sequential([MaxPool2D(2), Conv2D(4, 4, 3, padding=1, rng=1), ReLU(),
                                       Upsample2D(scale_factor=2, mode="bilinear")])),
        Conv2D(8, 2, 1, rng=2), AdaptiveAvgPool2D((3, 3)),
    ])  # fmt: skip


def test_a_u_net_step_trains_saves_and_runs_in_onnx_runtime(tmp_path):
    model = unet_step()
    assert gradcheck(model.to(np.float64), images((2, 8, 8, 3))).passed
    model.to(np.float32)
    x = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    loaded = load(save(model, tmp_path / "m.nnl"))
    np.testing.assert_array_equal(loaded(x), model(x))
    assert repr(loaded) == repr(model)
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nnlayers[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from nnlayers import export_onnx

    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(8, 8, 3))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)
