"""Where one training step spends its time: the seed's model phase by phase, or a network layer by layer.

Without ``--model``: the same loop as `nnlayers.fit` on the seed's model (shuffled batches of uint8
photos converted to float32 into one reused buffer, forward, loss, backward without the pixels'
gradient, SGD step, zero_grad), timed around each phase, next to the two bare first-layer products
that make the "BLAS limit".

With ``--model cnn`` (the small CNN of ``bench_cnn.py``), ``cnn-bn`` (with BatchNorm) or ``resnet``
(``bench_resnet.py``'s): each layer's forward and backward against its PyTorch twin, the bytes it
moves and its floor (`layer_profile`). With ``--model lstm`` or ``encoder`` (``bench_sequence.py``'s
steps): each part's forward and backward timed inside real training steps (`sequence_profile`).

    python benchmarks/profile_step.py [--data ../shared/data] [--batch-size 64] [--epochs 3]
    python benchmarks/profile_step.py --model cnn-bn [--batch-size 64] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import add_data_argument

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers import SGD, BCELoss, Dense, Sequential, Sigmoid, Tanh, load_image_folder  # noqa: E402
from nnlayers.data.batching import iter_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser, dest="shared")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--model", choices=("cnn", "cnn-bn", "resnet", "lstm", "encoder"), help="profile this network layer by layer"
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.model in ("lstm", "encoder"):
        from sequence_profile import profile_sequence

        return profile_sequence(args.model, args.repeat)
    if args.model:
        return profile_layers(args.model, args.batch_size, args.repeat)
    data = load_image_folder(args.shared / "dogs-vs-cats" / "train")
    images, labels = np.ascontiguousarray(data.images), data.labels
    model = Sequential([Dense(12288, 64, rng=0), Tanh(), Dense(64, 1, rng=1), Sigmoid()])
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=0.0005)
    rng = np.random.default_rng(0)

    def epoch_batches():  # what fit does: shuffled, one reused float32 buffer
        for x, chosen in iter_batches(images, rng.permutation(len(labels)), args.batch_size, reuse_buffer=True):
            yield x, labels[chosen].astype(np.float32).reshape(-1, 1)

    phases = dict.fromkeys(["batch", "forward", "loss", "backward", "step", "zero_grad"], 0.0)
    steps = 0
    # one untimed epoch first: the photos' pages are mapped from the cache file on first touch,
    # which is a cost of the first epoch, not of a step
    for x, y in epoch_batches():
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()
    for _ in range(args.epochs):
        batches = epoch_batches()
        while True:
            t0 = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                break
            t1 = time.perf_counter()
            pred = model(x)
            t2 = time.perf_counter()
            loss_fn(pred, y)
            grad = loss_fn.backward()
            t3 = time.perf_counter()
            model.backward(grad, input_grad=False)
            t4 = time.perf_counter()
            opt.step()
            t5 = time.perf_counter()
            opt.zero_grad()
            t6 = time.perf_counter()
            for name, start, end in zip(phases, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
                phases[name] += end - start
            steps += 1
    w = model[0].weight.data
    x = np.random.default_rng(0).random((args.batch_size, 12288), dtype=np.float32)
    g = np.ones((args.batch_size, 64), np.float32)
    start = time.perf_counter()
    for _ in range(100):
        x @ w.T
    forward_product = (time.perf_counter() - start) / 100
    start = time.perf_counter()
    for _ in range(100):
        g.T @ x
    gradient_product = (time.perf_counter() - start) / 100
    print(f"batch size {args.batch_size}, {steps} steps; milliseconds per step:")
    for name, seconds in phases.items():
        print(f"  {name:10s} {seconds / steps * 1e3:6.3f}")
    print(f"  {'total':10s} {sum(phases.values()) / steps * 1e3:6.3f}")
    print(f"bare products on a hot batch: x @ W.T {forward_product * 1e3:.3f}, g.T @ x {gradient_product * 1e3:.3f}")


def profile_layers(name: str, batch_size: int, repeat: int) -> None:
    import torch
    from layer_profile import print_rows, profile

    torch.set_num_threads(2)
    if name == "resnet":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from bench_resnet import WIDTHS
        from test_resnet_parity import torch_resnet

        from nnlayers.models import resnet

        ours = resnet(2, widths=WIDTHS, stem_stride=2, rng=0)
        theirs = torch_resnet(2, WIDTHS, 1, 2).float()
    else:
        from bench_cnn import nnlayers_cnn, torch_cnn

        ours, theirs = nnlayers_cnn(name == "cnn-bn"), torch_cnn(name == "cnn-bn")
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()}, strict=True)
    x = np.random.default_rng(0).random((batch_size, 64, 64, 3), dtype=np.float32)

    def to_torch(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, np.float32)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a))

    print(f"{name}, batch {batch_size}, medians of {repeat}; each layer on the input it gets in the model:")
    print_rows(profile(ours, theirs, x, to_torch, repeat))


if __name__ == "__main__":
    main()
