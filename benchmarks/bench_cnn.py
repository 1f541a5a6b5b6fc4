"""Speed of a small CNN in nnlayers against PyTorch (CPU) in the same run, and against its BLAS limit.

The network of the convolution issue: three blocks of Conv2D 3x3 (padding 1) + ReLU + MaxPool2D 2
with 32, 64 and 128 channels, then Flatten, Dense(8192, 128), ReLU, Dense(128, 1); 64x64x3
images, batch 64, binary cross-entropy on logits, SGD with momentum. ``--batchnorm`` adds a
BatchNorm2D after each convolution. Timed, median of ``--repeat`` rounds across the contenders (so
that a noisy moment hits them all alike), each timing right after an untimed call of the same step:

- a training step (forward, loss, backward, optimizer step) and inference (evaluation mode);
- the BLAS limit: only the matrix products the step needs (each convolution's im2col product,
  weight-gradient product and, but for the first, input-gradient product; the dense layers'),
  bare numpy float32 on ready-made matrices;
- the peak memory (``VmHWM``) of a process that runs 5 training steps, for each framework.

    python benchmarks/bench_cnn.py [--repeat 7] [--batch-size 64] [--image-size 64] [--batchnorm]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers import SGD, BatchNorm2D, BCEWithLogitsLoss, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, no_grad  # noqa: E402

CHANNELS = (32, 64, 128)
SIZE = 64


def nnlayers_cnn(batchnorm: bool) -> Sequential:
    layers: list = []
    c_in = 3
    for i, c in enumerate(CHANNELS):
        layers += (
            [Conv2D(c_in, c, 3, padding=1, rng=i)] + ([BatchNorm2D(c)] if batchnorm else []) + [ReLU(), MaxPool2D(2)]
        )
        c_in = c
    side = SIZE // 2 ** len(CHANNELS)
    return Sequential([*layers, Flatten(), Dense(c_in * side * side, 128, rng=8), ReLU(), Dense(128, 1, rng=9)])


def torch_cnn(batchnorm: bool):  # type: ignore[no-untyped-def]
    import torch

    layers: list = []
    c_in = 3
    for c in CHANNELS:
        layers += [torch.nn.Conv2d(c_in, c, 3, padding=1)] + ([torch.nn.BatchNorm2d(c)] if batchnorm else [])
        layers += [torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        c_in = c
    side = SIZE // 2 ** len(CHANNELS)
    return torch.nn.Sequential(
        *layers, torch.nn.Flatten(), torch.nn.Linear(c_in * side * side, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1)
    )


def batch(batch_size: int) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, SIZE, SIZE, 3), dtype=np.float32)
    y = (np.arange(batch_size) % 2).astype(np.float32).reshape(-1, 1)
    return x, y


def nnlayers_steps(batch_size: int, batchnorm: bool) -> Dict[str, Callable[[], None]]:
    x, y = batch(batch_size)
    model = nnlayers_cnn(batchnorm)
    loss_fn, opt = BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train() -> None:
        model.train()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()

    def infer() -> None:
        model.eval()
        with no_grad():  # as torch.no_grad below: nothing kept for backward, convolution and batch norm fused
            model(x)

    return {"train": train, "infer": infer}


def torch_steps(batch_size: int, batchnorm: bool) -> Optional[Dict[str, Callable[[], None]]]:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    x, y = batch(batch_size)
    tx, ty = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
    model = torch_cnn(batchnorm)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train() -> None:
        model.train()
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(tx), ty).backward()
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(tx)

    return {"train": train, "infer": infer}


def blas_limit(batch_size: int) -> Callable[[], None]:
    """The step's matrix products alone: per convolution (M x K) @ (K x C) forward, its weight gradient
    and (but for the first layer) its input gradient; the dense layers likewise."""
    rng = np.random.default_rng(0)
    products = []
    side, c_in = SIZE, 3
    for i, c in enumerate(CHANNELS):
        m, k = batch_size * side * side, 9 * c_in
        cols, w, g = (rng.random(s, dtype=np.float32) for s in ((m, k), (k, c), (m, c)))
        products += [(cols, w), (cols.T, g)] + ([(g, w.T)] if i else [])
        side, c_in = side // 2, c
    for d_in, d_out in ((c_in * side * side, 128), (128, 1)):
        a, w, g = (rng.random(s, dtype=np.float32) for s in ((batch_size, d_in), (d_in, d_out), (batch_size, d_out)))
        products += [(a, w), (a.T, g), (g, w.T)]

    def step() -> None:
        for left, right in products:
            left @ right

    return step


def interleaved_medians(contenders: Dict[str, Callable[[], None]], repeat: int) -> Dict[str, float]:
    """Rounds over the contenders, each timed right after an untimed call of itself: BLAS threads spin for
    about 0.1 s after numpy's last call and would steal a core from whatever runs next (a strict
    round-robin flatters whoever follows torch)."""
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            run()  # untimed: the same work just before
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


MEMORY_CHILD = """
import sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {here!r})
import bench_cnn
bench_cnn.SIZE = {size}
steps = getattr(bench_cnn, {maker!r})({batch_size}, {batchnorm})
for _ in range(5):
    steps["train"]()
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def peak_memory_mb(maker: str, batch_size: int, batchnorm: bool) -> float:
    here = Path(__file__).resolve().parent
    script = MEMORY_CHILD.format(
        repo=str(here.parent), here=str(here), maker=maker, batch_size=batch_size, batchnorm=batchnorm, size=SIZE
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batchnorm", action="store_true", help="a BatchNorm2D after each convolution")
    parser.add_argument("--image-size", type=int, default=SIZE, help="square images of this side (a multiple of 8)")
    args = parser.parse_args()
    if args.image_size < 8 or args.image_size % 8:
        parser.error(f"--image-size must be a multiple of 8, got {args.image_size}")
    SIZE = args.image_size
    ours = nnlayers_steps(args.batch_size, args.batchnorm)
    theirs = torch_steps(args.batch_size, args.batchnorm)
    contenders = {"nnlayers train": ours["train"], "nnlayers infer": ours["infer"], "blas": blas_limit(args.batch_size)}
    if theirs is not None:
        contenders.update({"torch train": theirs["train"], "torch infer": theirs["infer"]})
    medians = interleaved_medians(contenders, args.repeat)
    label = f"CNN 32/64/128{' + BatchNorm' if args.batchnorm else ''}, {SIZE}x{SIZE}x3, batch {args.batch_size}"
    print(f"{label}; median of {args.repeat} rounds")
    print("| | nnlayers | PyTorch | nnlayers / PyTorch | BLAS limit | nnlayers / BLAS |")
    print("|---|---|---|---|---|---|")
    for what in ("train", "infer"):
        mine, ref = medians[f"nnlayers {what}"], medians.get(f"torch {what}")
        ratio = f"**{mine / ref:.2f}x**" if ref else "n/a"
        blas = f"{medians['blas'] * 1e3:.0f} ms | {mine / medians['blas']:.2f}x" if what == "train" else "| "
        print(f"| {what} step | {mine * 1e3:.0f} ms | {ref * 1e3 if ref else float('nan'):.0f} ms | {ratio} | {blas} |")
    memory = {"nnlayers": peak_memory_mb("nnlayers_steps", args.batch_size, args.batchnorm)}
    if theirs is not None:
        memory["PyTorch"] = peak_memory_mb("torch_steps", args.batch_size, args.batchnorm)
    print("peak memory of 5 training steps: " + ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items()))


if __name__ == "__main__":
    main()
