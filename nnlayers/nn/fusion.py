"""Layers run together: a convolution and its batch norm as one pass (predictions), ReLU after pooling.

**A convolution and the batch norm after it**, for predictions (`no_grad`, evaluation mode).

In evaluation a batch norm is a fixed map per channel, ``y * scale + shift`` with
``scale = weight / sqrt(running_var + eps)`` and ``shift = bias - running_mean * scale``. After a
convolution it folds into it: the same convolution with each output channel's weights multiplied
by its ``scale``, and ``shift`` added to the output. Each thread adds the shift (and a residual
block's shortcut, and applies the ReLU) to its own output rows right after their products, while
they are in the cache: three or four layers cost one pass and one hand-off to the threads.
The numbers are the layers' one by one up to rounding (the folded weights are rounded once more).

**ReLU, then max pooling, run as pooling, then ReLU** (training and predictions): a window's largest
value commutes with a function that keeps order, so ``pool(relu(x)) = relu(pool(x))`` exactly. The
gradients are the same too: where a window's maximum is positive it is the same entry, and where it
is not, both orders pass 0. So the ReLU works on the pooled quarter of the pixels. It writes over
the pooling's output, which the pooling keeps for its backward: there each window is compared with
``relu(max)`` instead of ``max``, which finds the same entry where the maximum is positive, and
elsewhere the ReLU's backward, which runs first, has made the gradient 0, which then goes to every
entry of the window. `run_order` gives the order, `chain` follows it, `run` runs a layer in it.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.types import Array
from .functional import conv2d, pad_hw
from .grad_mode import is_grad_enabled
from .layers.activation import ReLU
from .layers.conv import Conv2D
from .layers.normalization import BatchNorm2D
from .layers.pooling import MaxPool2D
from .module import Layer


def _plain(layer: Any, cls: type) -> bool:
    """``layer`` is an instance of the built-in ``cls`` itself, its methods its class's (a subclass may
    change the maths, a probe may replace an instance's ``forward`` or ``backward`` to watch it)."""
    return type(layer) is cls and not {"forward", "backward", "backward_params"} & vars(layer).keys()


def pools_before_relu(layers: Sequence[Layer], i: int) -> bool:
    """Whether ``layers[i], layers[i + 1]`` is a ``ReLU -> MaxPool2D`` that may run as pooling, then ReLU."""
    return i + 1 < len(layers) and _plain(layers[i], ReLU) and _plain(layers[i + 1], MaxPool2D)


def run(layers: Sequence[Layer], i: int, x: Any) -> Any:
    """``layers[i](x)``, or for a ReLU after its max pooling (`pools_before_relu`) in the pooling's output's memory."""
    if pools_before_relu(layers, i):
        return layers[i]._forward_in_place(x)  # type: ignore[attr-defined]
    return layers[i](x)


def run_order(layers: Sequence[Layer]) -> List[int]:
    """The indices of ``layers`` in the order to run them: each ``ReLU -> MaxPool2D`` swapped (see above)."""
    order, i = [], 0
    while i < len(layers):
        if pools_before_relu(layers, i):
            order += [i + 1, i]
            i += 2
        else:
            order.append(i)
            i += 1
    return order


def can_fuse(conv: Any, norm: Any, relu: Any = None) -> bool:
    """Whether ``conv -> norm (-> relu)`` may run as one pass: inside `no_grad`, the built-in classes
    themselves (`_plain`), in evaluation mode with running statistics, an ungrouped convolution, one
    float32 or float64 dtype."""
    pairs: List[Tuple[Any, type]] = [(conv, Conv2D), (norm, BatchNorm2D)] + ([(relu, ReLU)] if relu is not None else [])
    if is_grad_enabled() or not all(not layer.training and _plain(layer, cls) for layer, cls in pairs):
        return False
    dtype = conv.weight.dtype
    return (
        conv.groups == 1
        and norm.track_running_stats
        and norm.num_features == conv.out_channels
        and norm.running_mean.dtype == dtype
        and dtype in (np.float32, np.float64)
    )


def folded_batchnorm(norm: BatchNorm2D) -> Tuple[Array, Array]:
    """The evaluation-mode batch norm as ``(scale, shift)`` per channel (the layer's own formula)."""
    _, scale, offset = norm._normalisation(norm.running_var, norm.running_var.dtype)
    return scale, offset - norm.running_mean * scale


def conv_bn(conv: Conv2D, norm: BatchNorm2D, x: Array, relu: bool = False, residual: Optional[Array] = None) -> Array:
    """``norm(conv(x))``, plus ``residual`` if given, through a ReLU if ``relu``: in one pass (see above)."""
    x, out_hw = conv._checked(x)
    out_shape = (len(x), *out_hw, conv.out_channels)
    scale, shift = folded_batchnorm(norm)
    if conv.bias is not None:
        shift = shift + conv.bias.data * scale
    if residual is not None and np.shape(residual) != out_shape:
        raise ValueError(f"{conv} -> {norm}: the residual has shape {np.shape(residual)}, the output {out_shape}")
    shortcut = None if residual is None else np.asarray(residual).reshape(-1, conv.out_channels)

    def finish(rows: Array, where: slice) -> None:
        rows += shift
        if shortcut is not None:
            rows += shortcut[where]
        if relu:
            np.maximum(rows, 0, out=rows)

    xp = pad_hw(x, conv.padding, mode=conv.padding_mode)
    weight = conv._weight_matrix() * scale  # each output channel's column times its scale
    y = conv2d(xp, weight, conv.kernel_size, conv.stride, out_hw, conv.dilation, then=finish)
    return y.reshape(out_shape)


def chain(layers: Sequence[Layer], x: Any) -> Any:
    """A prediction: ``x`` through ``layers`` in order, each ``Conv2D -> BatchNorm2D (-> ReLU)`` that
    `can_fuse` as one pass, each other ``ReLU -> MaxPool2D`` as pooling, then ReLU."""
    i = 0
    while i < len(layers):
        if i + 1 < len(layers) and can_fuse(layers[i], layers[i + 1]):
            relu = i + 2 < len(layers) and can_fuse(layers[i], layers[i + 1], layers[i + 2])
            x = conv_bn(layers[i], layers[i + 1], x, relu=relu)  # type: ignore[arg-type]
            i += 3 if relu else 2
        elif pools_before_relu(layers, i):
            x = run(layers, i, layers[i + 1](x))
            i += 2
        else:
            x = layers[i](x)
            i += 1
    return x
