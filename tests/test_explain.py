"""nnlayers.explain: attribution maps by definition, by finite differences, and against the reference
libraries themselves (Captum, and the grad-cam package), on binary, K-class, dense, convolutional
and residual models, in float64."""

import numpy as np
import pytest

from nnlayers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from nnlayers.explain import (
    METHODS,
    cam_layer,
    captioned,
    explain,
    grad_cam,
    gradient_x_input,
    grid,
    integrated_gradients,
    occlusion,
    overlay,
    saliency,
    smoothgrad,
)
from nnlayers.models import resnet

FAST = {"smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 6}, "occlusion": {"window": 4}}


def small_resnet(classes=2, seed=0):
    """A float64 ResNet in evaluation mode with non-trivial running statistics (as after training)."""
    model = resnet(classes, widths=(4, 8), rng=seed).to(np.float64)
    rng = np.random.default_rng(seed + 10)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer[...] = rng.normal(0, 0.3, buffer.shape)
        elif name.endswith("running_var"):
            buffer[...] = rng.uniform(0.5, 2.0, buffer.shape)
    return model


def photos(n=3, size=16, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def logit(model, x):
    return np.asarray(model.eval()(x)).reshape(len(x), -1)


# --- by definition ------------------------------------------------------------------------------


def test_saliency_is_the_finite_difference_gradient_of_the_logit():
    model = Sequential([Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64), Tanh(), GlobalAvgPool2D(),
                        Dense(4, 1, rng=1, dtype=np.float64), Sigmoid()])  # fmt: skip
    x = np.random.default_rng(0).random((2, 5, 5, 3))
    got = gradient_x_input(model, x, target=1) / np.where(x.sum(-1) == 0, 1, 1)
    numeric = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[idx] = 1e-6
        numeric[idx] = ((logit(model[:4], x + step) - logit(model[:4], x - step)) / 2e-6)[idx[0], 0]
    np.testing.assert_allclose(got, (numeric * x).sum(-1), rtol=1e-6, atol=1e-9)  # the logit, not the sigmoid
    np.testing.assert_allclose(saliency(model, x, target=1), np.abs(numeric).max(-1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(saliency(model, x, target=0), saliency(model, x, target=1))  # -z: same size
    np.testing.assert_allclose(gradient_x_input(model, x, target=0), -got, rtol=1e-12)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_method_changes_weights_gradients_modes_or_statistics(method):
    model = small_resnet()
    model.train()
    model[-1].weight.grad[...] = 7.0  # a gradient mid-accumulation stays as it was
    before = {k: v.copy() for k, v in model.state_dict().items()}
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    maps = explain(model, photos(), method, **FAST.get(method, {}))
    assert maps.shape == (3, 16, 16) and np.isfinite(maps).all()
    assert maps.dtype == (np.float32 if method.startswith("gradcam") else np.float64)  # CAMs: as pytorch-grad-cam
    assert all(layer.training for _, layer in model.named_modules())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[name], err_msg=name)
    assert "forward" not in model[-1].__dict__ and "backward" not in model[3].__dict__  # no hook left behind


def test_integrated_gradients_add_up_to_the_score_difference():
    model = small_resnet(classes=3)
    x = photos(2)
    attributions = integrated_gradients(model, x, target=[0, 2], steps=128)
    scores = logit(model, x / 255.0)
    baseline = logit(model, np.zeros_like(x, np.float64))
    expected = [scores[0, 0] - baseline[0, 0], scores[1, 2] - baseline[1, 2]]
    # a ReLU network is piecewise linear: the quadrature's error at the kinks stays, small against the scores
    np.testing.assert_allclose(attributions.reshape(2, -1).sum(axis=1), expected, atol=1e-3 * np.abs(expected).max())


def test_smoothgrad_without_noise_is_saliency_and_with_it_the_mean_over_noisy_copies():
    model = small_resnet()
    x = photos(2)
    np.testing.assert_allclose(smoothgrad(model, x, noise=0.0, samples=2), saliency(model, x), rtol=1e-6)
    from nnlayers.explain.gradients import input_gradients

    scaled = x / 255.0
    target = (logit(model, scaled)[:, 0] > 0).astype(int)
    rng, total = np.random.default_rng(5), 0
    spread = (scaled.reshape(2, -1).max(1) - scaled.reshape(2, -1).min(1)).reshape(-1, 1, 1, 1)
    for _ in range(4):
        total = total + np.abs(input_gradients(model, scaled + rng.standard_normal(x.shape) * 0.2 * spread, target)[0])
    np.testing.assert_allclose(smoothgrad(model, x, samples=4, noise=0.2, seed=5), (total / 4).max(-1), rtol=1e-5)


def test_occlusion_and_grad_cam_find_the_part_of_the_picture_that_decides():
    """A network that looks only at the top-left corner: every map must point there."""
    conv = Conv2D(3, 4, 3, padding=1, bias=False, rng=0, dtype=np.float64)
    conv.weight.data[...] = np.abs(conv.weight.data)
    mask = np.zeros((1, 16, 16, 1))
    mask[:, :6, :6] = 1

    class Corner(Sequential):
        def forward(self, x):
            return super().forward(x * mask)

        def backward(self, grad_y, input_grad=None):
            g = super().backward(grad_y, input_grad=True)
            return g * mask

    model = Corner([conv, ReLU(), GlobalAvgPool2D(), Dense(4, 1, rng=1, dtype=np.float64)])
    model[3].weight.data[...] = 1.0
    x = np.full((1, 16, 16, 3), 200, np.uint8)
    for maps in (occlusion(model, x, target=1, window=4, stride=2), grad_cam(model, x, target=1, layer="1")):
        corner, rest = maps[0, :5, :5].mean(), maps[0, 8:, 8:].mean()
        assert corner > 0 and rest == pytest.approx(0, abs=1e-6), (corner, rest)


def test_the_default_cam_layer_is_the_last_spatial_one_and_bad_layers_are_named():
    model = small_resnet()
    assert cam_layer(model, (16, 16, 3))[0] == "4"  # the last stage, as model.layer4 in torchvision
    dense = Sequential([Dense(12, 4, rng=0), Tanh(), Dense(4, 1, rng=1)])
    with pytest.raises(ValueError, match="this model has none"):
        grad_cam(dense, np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        grad_cam(model, photos(1), layer="nope")
    with pytest.raises(ValueError, match="does not output a map"):
        grad_cam(model, photos(1), layer="6")  # the dense head
    with pytest.raises(ValueError, match="target class must be in 0..1"):
        saliency(model, photos(1), target=2)


def test_a_dense_model_explains_its_flattened_input_as_an_image():
    model = Sequential([Dense(16 * 16 * 3, 8, rng=0, dtype=np.float64), Tanh(), Dropout(0.5, rng=0),
                        Dense(8, 3, rng=1, dtype=np.float64), Softmax()])  # fmt: skip
    x = photos(2)
    maps = saliency(model, x, target=[1, 2])
    w1, w2 = model[0].weight.data, model[3].weight.data
    h = np.tanh(x.reshape(2, -1) / 255.0 @ w1.T + model[0].bias.data)
    grads = ((w2[[1, 2]] * (1 - h**2)) @ w1).reshape(2, 16, 16, 3)  # the logit's gradient, by hand
    np.testing.assert_allclose(maps, np.abs(grads).max(-1), rtol=1e-10)


def test_batches_files_and_targets_give_the_same_maps(tmp_path):
    import cv2

    model = small_resnet(classes=3)
    x = photos(5)
    whole = grad_cam(model, x)
    np.testing.assert_allclose(grad_cam(model, x, batch_size=2), whole, atol=1e-6)
    predicted = logit(model, x / 255.0).argmax(axis=1)
    np.testing.assert_allclose(grad_cam(model, x, target=predicted), whole, atol=1e-6)
    files = []
    for k, image in enumerate(x):
        files.append(tmp_path / f"p{k}.png")
        cv2.imwrite(str(files[-1]), image[:, :, ::-1])
    model.preprocessing = {"size": [16, 16], "backend": "cv2", "interpolation": "cubic", "reduce": True}
    np.testing.assert_allclose(saliency(model, files), saliency(model, x), rtol=1e-6)


def test_overlay_caption_and_grid_make_uint8_pictures():
    photo = np.zeros((20, 30, 3), np.uint8)
    heat = np.zeros((5, 5))
    heat[0, 0] = 1.0
    picture = overlay(photo, heat, alpha=1.0)
    assert picture.shape == (20, 30, 3) and picture.dtype == np.uint8
    assert picture[0, 0, 0] > 100 and picture[-1, -1, 2] > 100  # jet: red where hot, blue where cold
    np.testing.assert_array_equal(overlay(photo + 50, heat, alpha=0.0), photo + 50)
    assert captioned(picture, "dog 0.93").shape == picture.shape
    assert grid([picture] * 5, columns=2).shape == (3 * 20 + 2 * 4, 2 * 30 + 4, 3)
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        overlay(photo, heat, alpha=2)


# --- the reference libraries --------------------------------------------------------------------


def _torch_twin(model):
    from .test_resnet_parity import torch_resnet, twin

    classes = 2 if model[-1].out_features == 1 else model[-1].out_features
    theirs = twin(model, torch_resnet(classes, widths=(4, 8), blocks=1, stem_stride=1)).eval()
    return theirs


def _two_scores(torch, theirs):
    """A binary model as two scores (-z, z): what nnlayers explains for class 0 and class 1."""

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = theirs

        def forward(self, x):
            z = self.inner(x)
            return torch.cat([-z, z], dim=1)

    return Both().eval()


@pytest.mark.parametrize("classes", [2, 3])
def test_gradient_methods_and_occlusion_agree_with_captum(classes):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    captum = pytest.importorskip("captum.attr", reason="Captum not installed (pip install captum)")
    from .test_resnet_parity import nchw

    model = small_resnet(classes)
    theirs = _torch_twin(model)
    reference = _two_scores(torch, theirs) if classes == 2 else theirs
    x = photos(3)
    xt = nchw(x / 255.0).requires_grad_(True)
    target = [1, 0, 1] if classes == 2 else [2, 0, 1]

    def per_pixel(a, reduce):
        return reduce(a.detach().numpy().transpose(0, 2, 3, 1), axis=-1)

    expected = per_pixel(captum.Saliency(reference).attribute(xt, target=target, abs=True), np.max)
    np.testing.assert_allclose(saliency(model, x, target), expected, rtol=1e-6, atol=1e-10)
    expected = per_pixel(captum.InputXGradient(reference).attribute(xt, target=target), np.sum)
    np.testing.assert_allclose(gradient_x_input(model, x, target), expected, rtol=1e-6, atol=1e-10)
    for method in ("gausslegendre", "riemann_trapezoid"):
        ig = captum.IntegratedGradients(reference).attribute(xt, target=target, n_steps=7, method=method)
        ours = integrated_gradients(model, x, target, steps=7, method=method)
        np.testing.assert_allclose(ours, per_pixel(ig, np.sum), rtol=1e-5, atol=1e-9)
    layer_cam = captum.LayerGradCam(reference, theirs[4]).attribute(xt, target=target, relu_attributions=True)
    expected = layer_cam.detach().numpy()[:, 0]  # at the last stage's 4x4 (torchvision's layer4)
    np.testing.assert_allclose(grad_cam(model, x, target, raw=True), expected, rtol=1e-6, atol=1e-12)
    hidden = captum.Occlusion(reference).attribute(xt, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
                                                   target=target, baselines=0)  # fmt: skip
    expected = hidden.detach().numpy()[:, 0]  # the window covers every channel: one value for all
    np.testing.assert_allclose(occlusion(model, x, target, window=4, stride=2), expected, rtol=1e-5, atol=1e-9)


def _grad_cam_package():
    """pytorch-grad-cam, which imports torchvision for image transforms that these tests do not use."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # no CPU build of torchvision for this torch here: a stand-in for its unused parts
        from .torchvision_stand_in import install

        install()
    return pytest.importorskip("pytorch_grad_cam", reason="grad-cam not installed (pip install grad-cam)")


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("plus_plus", [False, True])
def test_grad_cam_agrees_with_the_grad_cam_package(classes, plus_plus):
    pytest.importorskip("torch", reason="PyTorch not installed")
    package = _grad_cam_package()
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget, ClassifierOutputTarget

    from .test_resnet_parity import nchw

    model = small_resnet(classes)
    theirs = _torch_twin(model)
    x = photos(4)
    target = [1, 0, 1, 0] if classes == 2 else [2, 0, 1, 2]
    wrap = BinaryClassifierOutputTarget if classes == 2 else ClassifierOutputTarget
    kind = package.GradCAMPlusPlus if plus_plus else package.GradCAM
    with kind(model=theirs, target_layers=[theirs[4]]) as cam:  # torchvision's model.layer4: our "4"
        expected = cam(input_tensor=nchw(x / 255.0), targets=[wrap(t) for t in target])
    ours = explain(model, x, "gradcam++" if plus_plus else "gradcam", target=target)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_a_batchnorm_cnn_with_predicted_classes_agrees_with_the_grad_cam_package_on_real_photos(shared_data):
    """The predicted class of each of 8 shared photos at 64x64, on a CNN with BatchNorm and pooling."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    package = _grad_cam_package()
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    from nnlayers import MaxPool2D, load_image_folder

    from .test_resnet_parity import nchw, twin

    ours = Sequential([Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64), BatchNorm2D(4, dtype=np.float64), ReLU(),
                       MaxPool2D(2), Conv2D(4, 6, 3, stride=2, padding=1, rng=1, dtype=np.float64),
                       BatchNorm2D(6, dtype=np.float64), ReLU(), GlobalAvgPool2D(), Dense(6, 1, rng=2, dtype=np.float64)])  # fmt: skip
    ours[1].running_mean[...], ours[5].running_var[...] = 0.2, 1.7
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                           nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(6, 1)).double()  # fmt: skip
    theirs = twin(ours, theirs).eval()
    data = load_image_folder(shared_data / "dogs-vs-cats" / "test", size=(64, 64), cache=False, verbose=False)
    x = data.images[::125][:8]
    assert cam_layer(ours, x.shape[1:])[0] == "6"  # the last ReLU: the last output that is a map
    predicted = (logit(ours, x / 255.0)[:, 0] > 0).astype(int)
    with package.GradCAM(model=theirs, target_layers=[theirs[6]]) as cam:
        expected = cam(input_tensor=nchw(x / 255.0), targets=[BinaryClassifierOutputTarget(int(t)) for t in predicted])
    np.testing.assert_allclose(grad_cam(ours, x), expected, atol=1e-5)


# --- sanity checks (Adebayo et al., 2018) -------------------------------------------------------


def _square_set(n, seed):
    """16x16 noise; class 1 has a bright 4x4 square somewhere in the top-left 8x8 quarter, which alone decides."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, (n, 16, 16, 3))
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, 5, 2)
        x[i, r : r + 4, c : c + 4] = 230
    return x.astype(np.uint8), y


def _square_cnn(seed):
    return Sequential([Conv2D(3, 8, 3, padding=1, rng=seed), ReLU(), MaxPool2D(2), Conv2D(8, 8, 3, padding=1, rng=seed + 1),
                       ReLU(), GlobalAvgPool2D(), Dense(8, 1, rng=seed + 2)])  # fmt: skip


@pytest.fixture(scope="module")
def trained_on_squares():
    from nnlayers import Adam, BCEWithLogitsLoss, fit

    x, y = _square_set(400, 0)
    model = _square_cnn(0)
    history = fit(model, BCEWithLogitsLoss(), Adam(model.parameters(), lr=0.01), (x, y), epochs=8, batch_size=32,
                  verbose=0)  # fmt: skip
    assert history.history["accuracy"][-1] > 0.95
    x_test, y_test = _square_set(40, 1)
    return model, x_test[y_test == 1]


def test_grad_cam_of_a_trained_cnn_falls_where_the_class_is_decided(trained_on_squares):
    model, squares = trained_on_squares
    cams = grad_cam(model, squares, target=1)
    inside = np.zeros((16, 16), bool)
    inside[:8, :8] = True
    share = cams[:, inside].sum(axis=1) / cams.sum(axis=(1, 2))
    assert share.mean() >= 0.8, share  # the quarter is a fourth of the picture


@pytest.mark.parametrize("method", sorted(METHODS))
def test_randomised_weights_change_every_method_s_maps(trained_on_squares, method):
    """The model parameter randomisation test: maps that do not depend on the weights explain nothing."""
    model, squares = trained_on_squares
    random = _square_cnn(100)
    options = {**FAST.get(method, {}), "target": 1}
    trained, scrambled = (np.abs(explain(m, squares, method, **options)) for m in (model, random))

    def ranks(a):
        return np.argsort(np.argsort(a.ravel()))

    correlation = np.mean([np.corrcoef(ranks(a), ranks(b))[0, 1] for a, b in zip(trained, scrambled)])
    assert correlation < 0.5, correlation  # Spearman's rank correlation, as in the paper
