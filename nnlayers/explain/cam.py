"""Class activation maps: Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al., 2018).

A convolutional layer's output ``A`` (N, h, w, C) says where each of its C features is; the class
score's gradient ``G`` at that output says how much each matters. Grad-CAM weighs the features by
their mean gradient, ``relu(sum_c mean(G_c) * A_c)``; Grad-CAM++ by the positive gradients, each
weighted by a closed-form ``alpha``. The map is brought to the image's size and to [0, 1] exactly
as the ``grad-cam`` package (pytorch-grad-cam) does: scaled, resized bilinearly with OpenCV,
scaled again.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..nn.module import Layer
from ..utils.types import Array
from .probe import Images, Probe, Target, as_images, batched, targets_of


def spatial_layers(model: Layer, image_shape: Tuple[int, ...]) -> List[Tuple[str, Layer, Tuple[int, ...]]]:
    """``(name, layer, output shape)`` of each layer whose output is a map ``(N, h, w, C)`` with ``h * w > 1``,
    in the order their forward passes end (so a block comes after the layers inside it)."""
    names = {id(layer): name for name, layer in model.named_modules() if name}
    finished: List[Tuple[str, Layer, Tuple[int, ...]]] = []
    wrapped = []
    for _, layer in model.named_modules():
        if id(layer) not in names:
            continue
        forward = layer.forward

        def recording(x: Array, _layer: Layer = layer, _forward: Any = forward) -> Array:
            y = _forward(x)
            if np.ndim(y) == 4 and y.shape[1] * y.shape[2] > 1:
                finished.append((names[id(_layer)], _layer, tuple(y.shape[1:])))
            return y

        layer.__dict__["forward"] = recording
        wrapped.append(layer)
    try:
        with Probe(model) as probe:
            probe.outputs(np.zeros((1, *image_shape), model.dtype or np.float32))
    finally:
        for layer in wrapped:
            layer.__dict__.pop("forward", None)
    return finished


def cam_layer(model: Layer, image_shape: Tuple[int, ...], layer: Union[None, str, Layer] = None) -> Tuple[str, Layer]:
    """The layer Grad-CAM looks at: ``layer`` (a name from ``named_modules`` or the layer itself), or by
    default the last one with a spatial output (tf-keras-vis' rule): for a ResNet, its last stage."""
    candidates = spatial_layers(model, image_shape)
    if layer is None:
        if not candidates:
            raise ValueError(
                "Grad-CAM needs a layer whose output is a map (N, h, w, C) larger than 1x1, and this model has none "
                "(a dense model?): use saliency, gradient_x_input, smoothgrad, integrated_gradients or occlusion"
            )
        name, found, _ = candidates[-1]
        return name, found
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer not in modules:
            raise ValueError(
                f"the model has no layer named {layer!r}; its layers: {', '.join(n for n in modules if n)}"
            )
        name, layer = layer, modules[layer]
    else:
        name = next((n for n, m in modules.items() if m is layer), "")
    if not any(found is layer for _, found, _ in candidates):
        maps = ", ".join(n for n, _, _ in candidates) or "none"
        raise ValueError(f"layer {name!r} does not output a map (N, h, w, C) larger than 1x1; layers that do: {maps}")
    return name, layer


def _scaled(cams: Array, size: Optional[Tuple[int, int]] = None) -> Array:
    """pytorch-grad-cam's ``scale_cam_image``: each map minus its minimum, over its maximum, then resized."""
    import cv2

    out = []
    for cam in cams:
        cam = cam - np.min(cam)
        cam = cam / (1e-7 + np.max(cam))
        out.append(cv2.resize(np.float32(cam), size) if size is not None else cam)
    return np.array(out, np.float32)


def _weights(activations: Array, grads: Array, plus_plus: bool) -> Array:
    """Each feature's weight ``(N, C)`` from the activations and gradients ``(N, h, w, C)``."""
    if not plus_plus:
        return grads.mean(axis=(1, 2))
    grads_2 = grads**2
    grads_3 = grads_2 * grads
    sums = activations.sum(axis=(1, 2), keepdims=True)
    alpha = grads_2 / (2 * grads_2 + sums * grads_3 + 1e-6)  # the paper's equation 19
    alpha = np.where(grads != 0, alpha, 0)
    return (np.maximum(grads, 0) * alpha).sum(axis=(1, 2))


def _cam(model: Layer, images: Images, target: Target, layer: Union[None, str, Layer], batch_size: int,
         plus_plus: bool, raw: bool = False) -> Array:  # fmt: skip
    x = as_images(model, images)
    _, watched = cam_layer(model, x.shape[1:], layer)
    maps: List[Array] = []
    with Probe(model, watch=watched) as probe:
        for rows in batched(len(x), batch_size):
            probe.score_gradient(x[rows], targets_of(target, rows), input_grad=False)
            a, g = probe.record["activation"], probe.record["gradient"]
            cam = np.maximum((_weights(a, g, plus_plus)[:, None, None, :] * a).sum(axis=-1), 0)
            maps.append(cam if raw else _scaled(np.maximum(_scaled(cam, (x.shape[2], x.shape[1])), 0)))
    return np.concatenate(maps)


def grad_cam(model: Layer, images: Images, target: Target = None, *, layer: Union[None, str, Layer] = None,
             batch_size: int = 32, raw: bool = False) -> Array:  # fmt: skip
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] on ``layer`` (default: `cam_layer`'s), as pytorch-grad-cam's ``GradCAM``.

    ``raw=True``: the map at the layer's own resolution ``(N, h, w)``, before any scaling, in the
    model's dtype (Captum's ``LayerGradCam`` with ``relu_attributions=True``).
    """
    return _cam(model, images, target, layer, batch_size, plus_plus=False, raw=raw)


def grad_cam_plus_plus(model: Layer, images: Images, target: Target = None, *,
                       layer: Union[None, str, Layer] = None, batch_size: int = 32, raw: bool = False) -> Array:  # fmt: skip
    """Grad-CAM++ maps ``(N, H, W)`` in [0, 1], as pytorch-grad-cam's ``GradCAMPlusPlus`` (``raw``: as `grad_cam`)."""
    return _cam(model, images, target, layer, batch_size, plus_plus=True, raw=raw)
