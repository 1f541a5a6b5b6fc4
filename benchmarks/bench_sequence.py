"""Speed of the sequence layers against PyTorch (CPU), in the same run: an LSTM and a Transformer encoder layer.

- LSTM: 2 layers, hidden 128, input 128, T=50, batch 64, a linear head on the last state,
  cross-entropy, Adam: one training step.
- Transformer encoder layer: d=128, 4 heads, feed-forward 512, T=64, batch 64, post-norm, dropout 0,
  a loss on every position, Adam: one training step.

Both models hold the same weights (our state dicts load strictly into torch's modules), float32, two
threads each. Each timing is taken right after an untimed call of the same step (BLAS threads keep
spinning a moment after numpy's last call and would steal a core from whatever runs next); rounds
alternate between the two frameworks and the medians of ``--repeat`` rounds are reported with their ratio.

    python benchmarks/bench_sequence.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers import LSTM, Adam, CrossEntropyLoss, Dense, FinalState, Sequential, TransformerEncoderLayer  # noqa: E402


def timed(step: Callable[[], None]) -> float:
    step()  # untimed: the same work just before, so both frameworks start warm
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def lstm_steps(torch, rng) -> Tuple[Callable[[], None], Callable[[], None]]:
    batch, steps, features, hidden, classes = 64, 50, 128, 128, 10
    x = rng.standard_normal((batch, steps, features), dtype=np.float32)
    y = rng.integers(0, classes, batch)
    ours = Sequential([LSTM(features, hidden, num_layers=2, rng=0), FinalState(), Dense(hidden, classes, rng=1)])
    loss_fn, opt = CrossEntropyLoss(), Adam(ours.parameters(), lr=1e-3)

    class TorchLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(features, hidden, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(hidden, classes)

        def forward(self, x):
            return self.head(self.lstm(x)[1][0][-1])

    theirs = TorchLSTM()
    state = ours.state_dict()
    theirs.lstm.load_state_dict(
        {k.split(".", 1)[1]: torch.from_numpy(v) for k, v in state.items() if k.startswith("0.")}
    )
    theirs.head.load_state_dict(
        {k.split(".", 1)[1]: torch.from_numpy(v) for k, v in state.items() if k.startswith("2.")}
    )
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours_step() -> None:
        loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()

    def theirs_step() -> None:
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(xt), yt).backward()
        topt.step()

    return ours_step, theirs_step


def encoder_steps(torch, rng) -> Tuple[Callable[[], None], Callable[[], None]]:
    batch, steps, d = 64, 64, 128
    x = rng.standard_normal((batch, steps, d), dtype=np.float32)
    target = rng.standard_normal((batch, steps, d), dtype=np.float32)
    ours = TransformerEncoderLayer(d, 4, 512, dropout=0.0, rng=0)
    opt = Adam(ours.parameters(), lr=1e-3)
    theirs = torch.nn.TransformerEncoderLayer(d, 4, 512, dropout=0.0, batch_first=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)

    def ours_step() -> None:
        out = ours(x)
        # the mean squared error's gradient; x needs none (torch computes none), as a model's first layer
        ours.backward_params((out - target) * np.float32(2 / out.size))
        opt.step()
        opt.zero_grad()

    def theirs_step() -> None:
        topt.zero_grad()
        torch.nn.functional.mse_loss(theirs(xt), tt).backward()
        topt.step()

    return ours_step, theirs_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    cases = {
        "LSTM 2x128, T=50, batch 64": lstm_steps(torch, rng),
        "Transformer encoder layer d=128, 4 heads, T=64, batch 64": encoder_steps(torch, rng),
    }
    print(f"training steps, medians of {args.repeat}:")
    for name, (ours_step, theirs_step) in cases.items():
        times: Dict[str, List[float]] = {"ours": [], "torch": []}
        for _ in range(args.repeat):
            times["ours"].append(timed(ours_step))
            times["torch"].append(timed(theirs_step))
        ours_ms, torch_ms = (statistics.median(times[k]) * 1e3 for k in ("ours", "torch"))
        print(f"  {name:58s} nnlayers {ours_ms:7.1f} ms  torch {torch_ms:7.1f} ms  ratio {ours_ms / torch_ms:.2f}x")


if __name__ == "__main__":
    main()
