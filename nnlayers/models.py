"""Ready-made networks, returned as plain `Sequential` models you can print, change and subclass.

- `mlp`: the tutorial's network, ``Dense(12288, h) -> Tanh -> Dense(h, 1) -> Sigmoid``.
- `small_cnn`: the convolutional network that ``nnlayers train --arch cnn`` trains: blocks of
  ``Conv2D 3x3 -> BatchNorm2D -> ReLU -> MaxPool2D 2``, then global average pooling, dropout and
  a dense head.
- `resnet`: a small residual network for 64x64 photos (``nnlayers train --arch resnet``): a stem,
  stages of `BasicBlock` with projection shortcuts, global average pooling and a dense head.
- `vit`: a small Vision Transformer (``nnlayers train --arch vit``): patches embedded by a strided
  `Conv2D`, a class token, learned positions, pre-norm encoder layers and a dense head.

A binary head has one output (a probability after `Sigmoid` for `mlp`, as the tutorial; a raw
score for `small_cnn`, trained with `BCEWithLogitsLoss`); K classes get K raw scores, trained with
`CrossEntropyLoss`. `loss_for` picks the matching loss.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np  # noqa: F401 - the examples use it

from .nn.blocks import BasicBlock
from .nn.container import Sequential
from .nn.layers.activation import ReLU, Sigmoid, Tanh
from .nn.layers.conv import Conv2D
from .nn.layers.dropout import Dropout
from .nn.layers.embedding import PositionalEmbedding
from .nn.layers.linear import Dense
from .nn.layers.normalization import BatchNorm2D, LayerNorm
from .nn.layers.pooling import GlobalAvgPool2D, MaxPool2D
from .nn.layers.sequence import ClassToken, ImageToSequence, TakeStep
from .nn.layers.transformer import TransformerEncoder, TransformerEncoderLayer
from .nn.losses import loss_for
from .nn.module import Layer
from .utils.checks import check_positive_int
from .utils.types import RandomSource

__all__ = ["loss_for", "mlp", "resnet", "small_cnn", "vit"]

ACTIVATIONS = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}


def _seed(rng: Union[None, int, RandomSource], offset: int) -> Union[None, int, RandomSource]:
    """Distinct int seeds for each layer from one seed (a generator is shared as it is)."""
    return rng + offset if isinstance(rng, int) else rng


def mlp(
    in_features: int = 12288,
    hidden: int = 64,
    num_classes: int = 2,
    *,
    activation: str = "tanh",
    init: Optional[str] = None,
    rng: Union[None, int, RandomSource] = None,
) -> Sequential:
    """The tutorial's 2-layer network: ``Dense(in, hidden) -> activation -> Dense(hidden, 1) -> Sigmoid``.

    Args:
        in_features: Inputs per example (64 x 64 x 3 = 12288 for the tutorial's photos).
        hidden: Hidden units.
        num_classes: 2 for the tutorial's sigmoid output; K > 2 for K raw scores (softmax).
        activation: ``"tanh"`` (the tutorial's), ``"relu"`` or ``"sigmoid"``.
        init: Weight initialiser of both layers (default: He for ReLU, Xavier otherwise;
            ``"normal"`` is the tutorial's ``randn * 0.01``).
        rng: An int seed (each layer gets its own) or a generator.

    Examples:
        >>> mlp(12288, 64, rng=0)
        Sequential(
          (0): Dense(in_features=12288, out_features=64, bias=True)
          (1): Tanh()
          (2): Dense(in_features=64, out_features=1, bias=True)
          (3): Sigmoid()
        )
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    num_classes = check_positive_int("num_classes", num_classes)
    first_init = init or ("he_normal" if activation == "relu" else "xavier_uniform")
    layers: List[Layer] = [
        Dense(in_features, hidden, init=first_init, rng=_seed(rng, 0)),
        ACTIVATIONS[activation](),
    ]
    if num_classes <= 2:
        return Sequential([*layers, Dense(hidden, 1, init=init or "xavier_uniform", rng=_seed(rng, 1)), Sigmoid()])
    return Sequential([*layers, Dense(hidden, num_classes, init=init or "xavier_uniform", rng=_seed(rng, 1))])


def small_cnn(
    num_classes: int = 2,
    *,
    channels: Sequence[int] = (32, 64, 128, 128),
    in_channels: int = 3,
    dropout: float = 0.3,
    rng: Union[None, int, RandomSource] = None,
) -> Sequential:
    """A small convolutional network for RGB photos: what ``nnlayers train --arch cnn`` trains.

    Each entry of ``channels`` is a block ``Conv2D(3x3, same) -> BatchNorm2D -> ReLU ->
    MaxPool2D(2)``; then ``GlobalAvgPool2D -> Dropout -> Dense`` to one raw score (binary) or
    ``num_classes`` raw scores. Global pooling makes it work at any image size that survives the
    poolings (at least ``2 ** len(channels)`` pixels a side).

    Args:
        num_classes: 2 (one output, for `BCEWithLogitsLoss`) or K > 2 (K outputs, for
            `CrossEntropyLoss`).
        channels: Filters of each block.
        in_channels: 3 for RGB images.
        dropout: Dropout probability before the head.
        rng: An int seed (each layer gets its own) or a generator.

    Examples:
        >>> model = small_cnn(2, channels=(8, 16), rng=0)
        >>> [type(layer).__name__ for layer in model]  # doctest: +NORMALIZE_WHITESPACE
        ['Conv2D', 'BatchNorm2D', 'ReLU', 'MaxPool2D', 'Conv2D', 'BatchNorm2D', 'ReLU', 'MaxPool2D',
         'GlobalAvgPool2D', 'Dropout', 'Dense']
    """
    num_classes = check_positive_int("num_classes", num_classes)
    layers: List[Layer] = []
    previous = check_positive_int("in_channels", in_channels)
    for i, width in enumerate(channels):
        width = check_positive_int("channels", width)
        layers += [
            Conv2D(previous, width, 3, padding="same", bias=False, rng=_seed(rng, i)),  # BatchNorm has the bias
            BatchNorm2D(width),
            ReLU(),
            MaxPool2D(2),
        ]
        previous = width
    outputs = 1 if num_classes <= 2 else num_classes
    head = [GlobalAvgPool2D(), Dropout(dropout, rng=_seed(rng, 100)), Dense(previous, outputs, rng=_seed(rng, 101))]
    return Sequential(layers + head)


def resnet(
    num_classes: int = 2,
    *,
    widths: Sequence[int] = (16, 32, 64, 128),
    blocks: Union[int, Sequence[int]] = 1,
    stem_stride: int = 1,
    in_channels: int = 3,
    rng: Union[None, int, RandomSource] = None,
) -> Sequential:
    """A small ResNet (He et al., 2015) for photos: what ``nnlayers train --arch resnet`` trains.

    ``Conv2D 3x3 (stride stem_stride) -> BatchNorm2D -> ReLU``, then one stage per entry of
    ``widths``: ``blocks`` `BasicBlock` layers, the first of each stage after the first with stride
    2 and a projection shortcut (1x1 convolution and BatchNorm); then ``GlobalAvgPool2D -> Dense``
    to one raw score (binary, for `BCEWithLogitsLoss`) or ``num_classes`` raw scores.

    The model is a `Sequential`: stem at ``0``-``2``, stage ``s`` at ``3 + s`` (a `Sequential` of
    blocks with torchvision's keys inside, ``3.0.conv1.weight``, ...), then the pooling and the
    head. Its state dict loads strictly into the ``torch.nn.Sequential`` of the same layers.

    Args:
        num_classes: 2 (one output) or K > 2.
        widths: Channels of each stage.
        blocks: Blocks per stage (an int for all, or one per stage).
        stem_stride: 1 keeps the photo's size for the first stage; 2 halves it (4x less work).
        in_channels: 3 for RGB.
        rng: An int seed (each layer gets its own) or a generator.

    Examples:
        >>> model = resnet(2, widths=(8, 16), rng=0)
        >>> model(np.zeros((2, 16, 16, 3), np.float32)).shape
        (2, 1)
        >>> [type(layer).__name__ for layer in model]
        ['Conv2D', 'BatchNorm2D', 'ReLU', 'Sequential', 'Sequential', 'GlobalAvgPool2D', 'Dense']
    """
    num_classes = check_positive_int("num_classes", num_classes)
    counts = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
    if len(counts) != len(widths) or not widths:
        raise ValueError(f"blocks must be an int or one count per stage ({len(widths)}), got {blocks!r}")
    first = check_positive_int("widths", widths[0])
    layers: List[Layer] = [
        Conv2D(
            check_positive_int("in_channels", in_channels),
            first,
            3,
            stem_stride,
            padding=1,
            bias=False,
            rng=_seed(rng, 0),
        ),  # fmt: skip
        BatchNorm2D(first),
        ReLU(),
    ]
    previous = first
    for s, (width, count) in enumerate(zip(widths, counts)):
        width = check_positive_int("widths", width)
        stage = [BasicBlock(previous if b == 0 else width, width, 2 if s > 0 and b == 0 else 1,
                            rng=_seed(rng, 10 * (s + 1) + b))  # fmt: skip
                 for b in range(check_positive_int("blocks", count))]  # fmt: skip
        layers.append(Sequential(stage))
        previous = width
    outputs = 1 if num_classes <= 2 else num_classes
    return Sequential(layers + [GlobalAvgPool2D(), Dense(previous, outputs, rng=_seed(rng, 100))])


def vit(
    num_classes: int = 2,
    *,
    image_size: int = 64,
    patch_size: int = 8,
    dim: int = 96,
    depth: int = 4,
    heads: int = 4,
    mlp_dim: int = 192,
    dropout: float = 0.1,
    in_channels: int = 3,
    rng: Union[None, int, RandomSource] = None,
) -> Sequential:
    """A small Vision Transformer (Dosovitskiy et al., 2020): what ``nnlayers train --arch vit`` trains.

    ``Conv2D(in_channels, dim, patch_size, stride=patch_size)`` cuts the photo into patches and
    embeds each (`ImageToSequence` makes them a sequence, row by row); a `ClassToken` goes first and
    `PositionalEmbedding` adds where each patch was; ``depth`` pre-norm `TransformerEncoderLayer`
    (GELU) and a final `LayerNorm` follow; the class token's features (``TakeStep(0)``) go to a
    `Dense` head: one raw score (binary) or ``num_classes``.

    Args:
        num_classes: 2 (one output) or K > 2.
        image_size: The photos' side; a multiple of ``patch_size``.
        patch_size: The side of each patch (64 / 8: 64 patches and the class token).
        dim, depth, heads, mlp_dim: The width, the encoder layers, the heads and the feed-forward width.
        dropout: In the encoder layers and after the positions.
        in_channels: 3 for RGB.
        rng: An int seed (each layer gets its own) or a generator.

    Examples:
        >>> model = vit(2, image_size=16, patch_size=4, dim=8, depth=1, heads=2, mlp_dim=16, rng=0)
        >>> model(np.zeros((2, 16, 16, 3), np.float32)).shape
        (2, 1)
    """
    num_classes = check_positive_int("num_classes", num_classes)
    patch = check_positive_int("patch_size", patch_size)
    side = check_positive_int("image_size", image_size)
    if side % patch:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    dim = check_positive_int("dim", dim)
    block = TransformerEncoderLayer(
        dim, heads, mlp_dim, dropout, "gelu", layer_norm_eps=1e-6, norm_first=True, rng=_seed(rng, 3)
    )
    encoder = TransformerEncoder(block, check_positive_int("depth", depth), LayerNorm(dim, 1e-6))
    # each encoder layer draws its own starting weights (torch's copies start equal; a ViT's do not)
    for index, layer in enumerate(encoder.layers):
        fresh = TransformerEncoderLayer(
            dim, heads, mlp_dim, dropout, "gelu", layer_norm_eps=1e-6, norm_first=True, rng=_seed(rng, 10 + index)
        )
        layer.load_state_dict(fresh.state_dict())
    outputs = 1 if num_classes <= 2 else num_classes
    return Sequential(
        [
            Conv2D(check_positive_int("in_channels", in_channels), dim, patch, patch, rng=_seed(rng, 0)),
            ImageToSequence(),
            ClassToken(dim),
            PositionalEmbedding((side // patch) ** 2 + 1, dim, rng=_seed(rng, 1)),
            Dropout(dropout, rng=_seed(rng, 2)),
            encoder,
            TakeStep(0),
            Dense(dim, outputs, rng=_seed(rng, 100)),
        ]
    )
