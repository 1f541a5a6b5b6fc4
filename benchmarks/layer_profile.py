"""Per-layer times of one training step, nnlayers against PyTorch, layer by layer (``profile_step.py --model``).

Each layer's forward and backward are timed on the input the layer gets inside the model (the
previous layer's real output), each right after an untimed call of itself; PyTorch's twin layer
gets the same input (channels first) and its backward is ``torch.autograd.grad`` of its output for
the same output gradient. ``bytes`` is what the layer must at least read and write (its input,
output and their gradients, float32); ``floor`` is the larger of its products at the measured
BLAS rate and its bytes at the measured memory bandwidth.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, List, Tuple

import numpy as np

Row = Tuple[str, float, float, float, float, float, float]


def best_of(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        run()  # untimed: the same work just before
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_rates(repeat: int) -> Tuple[float, float]:
    """(GFLOPS of a large float32 product, GB/s of a large float32 copy-and-add) on this machine now."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    flops = 2 * 2048**3 / best_of(lambda: a @ a, repeat) / 1e9
    big = np.ones(32 * 2**20 // 4, np.float32)
    out = np.empty_like(big)
    bandwidth = 3 * big.nbytes / best_of(lambda: np.add(big, big, out=out), repeat) / 1e9  # two reads, one write
    return flops, bandwidth


def products_flops(layer: Any, x: np.ndarray, y: np.ndarray) -> float:
    """The FLOPs of a layer's matrix products in forward and backward (convolutions and dense layers)."""
    name = type(layer).__name__
    if name == "Conv2D":
        kh, kw = layer.kernel_size
        return 3 * 2.0 * y.size * kh * kw * layer.in_channels / layer.groups
    if name == "Dense":
        return 3 * 2.0 * x.size * layer.out_features
    return 0.0


def profile(ours: Any, theirs: Any, x: np.ndarray, to_torch: Callable[[np.ndarray], Any], repeat: int) -> List[Row]:
    """Rows ``(layer, ours fwd, ours bwd, torch fwd, torch bwd, bytes, floor)`` for two Sequentials of twin layers."""
    flops_rate, bandwidth = machine_rates(repeat)
    rows: List[Row] = []
    ours.train()
    theirs.train()
    for index, (layer, twin) in enumerate(zip(ours, theirs)):
        y = layer(x)
        grad = np.random.default_rng(index).standard_normal(np.shape(y)).astype(np.float32)
        fwd, bwd = _times(layer, x, grad, repeat)
        t_fwd, t_bwd = _torch_times(twin, to_torch(x), to_torch(grad), repeat)
        moved = 4.0 * 2 * (np.size(x) + np.size(y))
        floor = max(products_flops(layer, x, y) / flops_rate / 1e9, moved / bandwidth / 1e9)
        rows.append((f"{index} {type(layer).__name__}", fwd, bwd, t_fwd, t_bwd, moved, floor))
        x = y
    return rows


def _times(layer: Any, x: np.ndarray, grad: np.ndarray, repeat: int) -> Tuple[float, float]:
    """A layer's forward time, and its backward's (a forward and a backward, less the forward)."""

    def backward() -> None:
        layer(x)
        layer.backward(grad)

    fwd = best_of(lambda: layer(x), repeat)
    return fwd, max(best_of(backward, repeat) - fwd, 0.0)


def _torch_times(twin: Any, tx: Any, tgrad: Any, repeat: int) -> Tuple[float, float]:
    import torch

    tx = tx.requires_grad_(True)
    params = [p for p in twin.parameters() if p.requires_grad]

    def backward() -> None:
        torch.autograd.grad(twin(tx), [tx, *params], tgrad)

    fwd = best_of(lambda: twin(tx), repeat)
    return fwd, max(best_of(backward, repeat) - fwd, 0.0)


def print_rows(rows: List[Row]) -> None:
    print("| layer | nnlayers fwd | bwd | PyTorch fwd | bwd | ratio | bytes moved | floor (fwd+bwd) |")
    print("|---|---|---|---|---|---|---|---|")
    totals = np.zeros(5)
    for name, fwd, bwd, t_fwd, t_bwd, moved, floor in rows:
        ratio = (fwd + bwd) / max(t_fwd + t_bwd, 1e-9)
        print(f"| {name} | {fwd * 1e3:.1f} ms | {bwd * 1e3:.1f} ms | {t_fwd * 1e3:.1f} ms | {t_bwd * 1e3:.1f} ms | "
              f"{ratio:.2f}x | {moved / 2**20:.0f} MB | {floor * 1e3:.1f} ms |")  # fmt: skip
        totals += (fwd, bwd, t_fwd, t_bwd, floor)
    fwd, bwd, t_fwd, t_bwd, floor = totals
    print(f"| total | {fwd * 1e3:.1f} ms | {bwd * 1e3:.1f} ms | {t_fwd * 1e3:.1f} ms | {t_bwd * 1e3:.1f} ms | "
          f"{(fwd + bwd) / (t_fwd + t_bwd):.2f}x | | {floor * 1e3:.1f} ms |")  # fmt: skip
