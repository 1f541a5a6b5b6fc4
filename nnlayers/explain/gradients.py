"""Attributions from the gradient of a class score with respect to the pixels.

Each takes images (uint8 photos, float inputs or files, see `as_images`), explains one class per
image (the predicted one unless ``target`` says), and returns maps ``(N, H, W)`` at the
image's resolution, in the model's dtype. Per-channel values are reduced as the papers show them, and as Captum's
per-channel attributions reduce to: the largest absolute value over the channels for the gradient
maps (Simonyan et al., 2013), the sum over the channels for the products with the input.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from ..nn.module import Layer
from ..utils.types import Array
from .probe import Images, Probe, Target, as_images, batched, classified, targets_of


def input_gradients(model: Layer, x: Array, target: Target = None, batch_size: int = 32) -> Tuple[Array, np.ndarray]:
    """``(gradients (N, H, W, C), classes (N,))``: each image's class score differentiated by its pixels."""
    grads, classes = np.empty_like(x), np.empty(len(x), np.int64)
    with Probe(model) as probe:
        for rows in batched(len(x), batch_size):
            grads[rows], classes[rows] = probe.score_gradient(x[rows], targets_of(target, rows))
    return grads, classes


def saliency(model: Layer, images: Images, target: Target = None, *, batch_size: int = 32) -> Array:
    """The vanilla gradient: ``max over channels |d score / d pixel|`` (Captum's ``Saliency``)."""
    grads, _ = input_gradients(model, as_images(model, images), target, batch_size)
    return np.abs(grads).max(axis=-1)


def gradient_x_input(model: Layer, images: Images, target: Target = None, *, batch_size: int = 32) -> Array:
    """``sum over channels of pixel * d score / d pixel`` (Captum's ``InputXGradient``)."""
    x = as_images(model, images)
    grads, _ = input_gradients(model, x, target, batch_size)
    return (grads * x).sum(axis=-1)


def smoothgrad(
    model: Layer,
    images: Images,
    target: Target = None,
    *,
    samples: int = 25,
    noise: float = 0.15,
    seed: Union[None, int, np.random.Generator] = 0,
    batch_size: int = 32,
) -> Array:
    """SmoothGrad (Smilkov et al., 2017): the saliency of noisy copies, averaged.

    Each image gets ``samples`` copies with Gaussian noise of standard deviation ``noise`` times its
    range (max - min); the absolute gradients are averaged per channel over the copies (Captum's
    ``NoiseTunnel(Saliency)``, ``nt_type="smoothgrad"``), then reduced as `saliency`. The class of
    each image is the one of the image without noise.
    """
    if samples < 1 or noise < 0:
        raise ValueError(f"smoothgrad needs samples >= 1 and noise >= 0, got samples={samples}, noise={noise}")
    x = as_images(model, images)
    rng = np.random.default_rng(seed)
    _, classes = classified(model, x, target, batch_size)
    total = np.zeros_like(x)
    spread = (x.reshape(len(x), -1).max(axis=1) - x.reshape(len(x), -1).min(axis=1)).reshape(-1, 1, 1, 1)
    for _ in range(samples):
        noisy = x + (rng.standard_normal(x.shape) * (noise * spread)).astype(x.dtype)
        grads, _ = input_gradients(model, noisy, classes, batch_size)
        total += np.abs(grads)
    return (total / samples).max(axis=-1)


def path_points(steps: int, method: str = "gausslegendre") -> Tuple[np.ndarray, np.ndarray]:
    """Where Integrated Gradients evaluates the gradient between baseline and image (``alphas`` in
    [0, 1]) and the weight of each, as Captum's ``gausslegendre`` and ``riemann_*`` rules."""
    if steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1, got {steps}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        weights = np.full(steps, 1 / steps)  # Captum's: 1/steps, not 1/(steps - 1), halved at both ends
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}
    if method not in offsets:
        raise ValueError(f"method must be gausslegendre, riemann_trapezoid or one of {sorted(offsets)}, got {method!r}")
    return (np.arange(steps) + offsets[method]) / steps, np.full(steps, 1 / steps)


def integrated_gradients(
    model: Layer,
    images: Images,
    target: Target = None,
    *,
    baseline: Union[float, Array] = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int = 32,
    per_channel: bool = False,
) -> Array:
    """Integrated Gradients (Sundararajan et al., 2017), as Captum's ``IntegratedGradients``.

    ``(x - baseline) * integral over a in [0, 1] of d score / d x at baseline + a (x - baseline)``, the
    integral by ``method`` over ``steps`` points (`path_points`). The attributions of an image add
    up to its score minus the baseline's (completeness), up to the rule's error. ``baseline`` is a
    number (0: a black image, in the model's input scale) or an image. Summed over the channels
    (``per_channel=True``: ``(N, H, W, C)``, Captum's own layout, channels last).
    """
    x = as_images(model, images)
    base = np.broadcast_to(np.asarray(baseline, x.dtype), x.shape)
    alphas, weights = path_points(steps, method)
    _, classes = classified(model, x, target, batch_size)
    total = np.zeros(x.shape, np.float64)
    for alpha, weight in zip(alphas, weights):
        grads, _ = input_gradients(model, (base + alpha * (x - base)).astype(x.dtype), classes, batch_size)
        total += weight * grads
    attributions = (x - base) * total
    return (attributions if per_channel else attributions.sum(axis=-1)).astype(x.dtype)


def occlusion(
    model: Layer,
    images: Images,
    target: Target = None,
    *,
    window: Optional[int] = None,
    stride: Optional[int] = None,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> Array:
    """Occlusion (Zeiler & Fergus, 2014), as Captum's ``Occlusion`` over all channels.

    A ``window`` x ``window`` square of ``baseline`` slides over each image by ``stride``; every pixel
    gets the mean drop of the class score over the windows that covered it (0 where none did).
    Defaults: a window of an eighth of the image's side, half a window's stride. Costs one
    forward pass per position (64x64 photos and the defaults: 225 per image).
    """
    x = as_images(model, images)
    n, h, w = x.shape[:3]
    window = window or max(1, min(h, w) // 8)
    stride = stride or max(1, window // 2)
    if not 1 <= window <= min(h, w) or stride < 1:
        raise ValueError(
            f"occlusion needs 1 <= window <= {min(h, w)} and stride >= 1, got window={window}, stride={stride}"
        )
    corners = [(i, j) for i in range(0, h - window + 1, stride) for j in range(0, w - window + 1, stride)]
    drops, counts = np.zeros((n, h, w), np.float64), np.zeros((h, w), np.float64)
    for i, j in corners:
        counts[i : i + window, j : j + window] += 1
    with Probe(model) as probe:
        for image in range(n):
            raw = probe.outputs(x[image : image + 1])
            cls = probe.targets(raw, targets_of(target, slice(image, image + 1)))
            score = Probe.scores(raw, cls)[0]
            for start in range(0, len(corners), batch_size):
                chunk = corners[start : start + batch_size]
                occluded = np.repeat(x[image : image + 1], len(chunk), axis=0)
                for k, (i, j) in enumerate(chunk):
                    occluded[k, i : i + window, j : j + window, :] = baseline
                scores = Probe.scores(probe.outputs(occluded), np.repeat(cls, len(chunk)))
                for (i, j), s in zip(chunk, scores):
                    drops[image, i : i + window, j : j + window] += score - s
    return (drops / np.maximum(counts, 1)).astype(x.dtype)
