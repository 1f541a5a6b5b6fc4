"""A convolution, the batch norm after it and a ReLU in one pass, when the batch norm uses its
running statistics (evaluation mode).

There a batch norm is a per-channel ``x * scale + offset``. Applied to each block of the
convolution's output while the block is in the cache, and the ReLU right after it, the separate
passes of the two layers over the activations are gone. Each layer still keeps what its backward
needs (a saliency map or Grad-CAM runs backward through an evaluation-mode model), and the numbers
are those of the layers run one by one, to the last bit.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.types import Array
from .layers.activation import ReLU
from .layers.conv import Conv2D
from .layers.normalization import BatchNorm2D
from .module import Layer


def fusable(layers: Sequence[Layer], i: int) -> int:
    """How many layers from ``layers[i]`` one fused pass runs: 3 (Conv2D, BatchNorm2D, ReLU), 2 (no
    ReLU), or 0 where it does not apply (training statistics, groups, other dtypes, subclasses, or a
    forward replaced on the instance)."""
    if i + 1 >= len(layers):
        return 0
    conv, bn = layers[i], layers[i + 1]
    if type(conv) is not Conv2D or type(bn) is not BatchNorm2D or conv.groups != 1:
        return 0
    dtype = conv.weight.dtype
    if bn.training or not bn.track_running_stats or bn.num_features != conv.out_channels:
        return 0
    if dtype == np.float16 or any(a.dtype != dtype for a in (bn.running_mean, bn.running_var)):
        return 0
    if bn.weight is not None and (bn.weight.dtype != dtype or bn.bias is None or bn.bias.dtype != dtype):
        return 0
    count = 3 if i + 2 < len(layers) and type(layers[i + 2]) is ReLU else 2
    if any("forward" in vars(layer) for layer in layers[i : i + count]):  # a hook (Grad-CAM's) sees each one
        return 0
    return count


def run_fused(layers: Sequence[Layer], x: Any) -> Tuple[Array, List[Tuple[int, ...]]]:
    """``layers`` (what `fusable` counted) on ``x`` in one pass; also each layer's input shape."""
    conv, bn = layers[0], layers[1]
    assert isinstance(conv, Conv2D) and isinstance(bn, BatchNorm2D)
    relu: Optional[Layer] = layers[2] if len(layers) == 3 else None
    scale, offset = bn.running_affine(conv.weight.dtype)
    n, h, w = np.shape(x)[:3]
    result = np.empty((n, *conv.output_hw((h, w)), conv.out_channels), conv.weight.dtype)
    rows = result.reshape(-1, conv.out_channels)

    def finish(first_row: int, block: Array) -> None:
        part = rows[first_row : first_row + len(block)]
        np.multiply(block, scale, out=part)  # the batch norm's x * scale + offset, as its own forward
        part += offset
        if relu is not None:
            np.maximum(part, 0, out=part)

    y = conv.forward(x, epilogue=finish)
    bn.keep_running(y.reshape(-1, bn.num_features), y.shape)
    if relu is not None:
        relu.save_for_backward(y=result)  # what ReLU's own forward keeps: its output
    return result, [np.shape(x), y.shape] + ([y.shape] if relu is not None else [])


def chain(layers: Sequence[Layer], x: Any) -> Array:
    """``layers`` applied in order, fused where `fusable` allows."""
    i = 0
    while i < len(layers):
        count = fusable(layers, i)
        if count:
            x, _ = run_fused(layers[i : i + count], x)
            i += count
        else:
            x = layers[i](x)
            i += 1
    return x
