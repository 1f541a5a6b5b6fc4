"""Speed of the ResNet of ``nnlayers train --arch resnet`` against PyTorch (CPU), in the same run.

``models.resnet(widths=(32, 64, 128, 256), stem_stride=2)`` on 64x64x3 photos, batch 64, binary
cross-entropy on logits, AdamW; PyTorch's twin is the ``torch.nn.Sequential`` of torchvision-style
``BasicBlock``s that the parity tests load the same weights into (channels first). Each timing is
taken right after an untimed call of the same step (BLAS threads keep spinning for a moment after
numpy's last call and would steal a core from whatever runs next), rounds alternate between the two,
and the medians of ``--repeat`` rounds are reported with their ratio.

    python benchmarks/bench_resnet.py [--repeat 7] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from nnlayers import AdamW, BCEWithLogitsLoss, no_grad  # noqa: E402
from nnlayers.models import resnet  # noqa: E402

WIDTHS = (32, 64, 128, 256)


def timed(step: Callable[[], None]) -> float:
    step()  # untimed: the same work just before, so both frameworks start warm
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import torch
    from test_resnet_parity import torch_resnet

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 64, 64, 3), dtype=np.float32)
    y = (rng.random((args.batch_size, 1)) > 0.5).astype(np.float32)
    ours = resnet(2, widths=WIDTHS, stem_stride=2, rng=0)
    theirs = torch_resnet(2, WIDTHS, 1, 2).float()
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()}, strict=True)
    loss_fn, opt = BCEWithLogitsLoss(), AdamW(ours.parameters(), lr=1e-3)
    topt = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y)

    def ours_train() -> None:
        ours.train()
        loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()

    def theirs_train() -> None:
        theirs.train()
        topt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(theirs(xt), yt).backward()
        topt.step()

    def ours_infer() -> None:
        ours.eval()
        with no_grad():  # as torch.no_grad below: nothing kept for backward, convolution and batch norm fused
            ours(x)

    def theirs_infer() -> None:
        theirs.eval()
        with torch.no_grad():
            theirs(xt)

    times: Dict[str, List[float]] = {name: [] for name in ("train", "torch train", "infer", "torch infer")}
    for _ in range(args.repeat):
        times["train"].append(timed(ours_train))
        times["torch train"].append(timed(theirs_train))
        times["infer"].append(timed(ours_infer))
        times["torch infer"].append(timed(theirs_infer))
    m = {name: statistics.median(values) for name, values in times.items()}
    print(f"ResNet {'-'.join(map(str, WIDTHS))} (stride-2 stem), batch {args.batch_size}, medians of {args.repeat}:")
    print(f"  training step  nnlayers {m['train'] * 1e3:7.1f} ms  torch {m['torch train'] * 1e3:7.1f} ms  "
          f"ratio {m['train'] / m['torch train']:.2f}x")  # fmt: skip
    print(f"  inference      nnlayers {m['infer'] * 1e3:7.1f} ms  torch {m['torch infer'] * 1e3:7.1f} ms  "
          f"ratio {m['infer'] / m['torch infer']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
