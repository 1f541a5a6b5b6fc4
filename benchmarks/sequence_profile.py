"""Where a sequence model's training step spends its time, part by part (``profile_step.py --model lstm|encoder``).

The training steps of ``bench_sequence.py`` run unchanged, and each part is timed inside them:

- nnlayers: each part's ``forward`` and ``backward`` (or ``backward_params``) wrapped with a clock,
  so a part's time includes the parts inside it (self-attention's includes its output projection);
- PyTorch: the forward between the module's forward hooks; the backward from the first gradient
  that reaches one of the module's outputs to the next part's (autograd gives no hook where a
  module's backward ends when its input needs no gradient), the last part's until ``backward()``
  returns.

"rest" is the step's time outside the listed parts' forwards and backwards: the loss, the optimizer
and the glue between the parts (residual sums, reshapes).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: per model: (label, nnlayers module name, PyTorch module name or None), in the order of the forward
PARTS: Dict[str, List[Tuple[str, str, Optional[str]]]] = {
    "lstm": [("LSTM 2x128", "0", "lstm"), ("Dense head", "2", "head")],
    "encoder": [
        ("self-attention (with out_proj)", "self_attn", "self_attn"),
        ("norm1 (LayerNorm)", "norm1", "norm1"),
        ("linear1 (128 -> 512)", "linear1", "linear1"),
        ("activation (ReLU)", "activation", None),  # torch's layer calls F.relu: no module to hook
        ("linear2 (512 -> 128)", "linear2", "linear2"),
        ("norm2 (LayerNorm)", "norm2", "norm2"),
    ],
}


def _clocked(method: Callable[..., Any], totals: Dict[str, float], key: str, depth: List[int]) -> Callable[..., Any]:
    """``method`` with its time added to ``totals[key]``; a call from inside another of the module's
    clocked methods (``Dense.backward`` calls ``backward_params``) is not counted twice."""

    def run(*args: Any, **kwargs: Any) -> Any:
        depth[0] += 1
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            depth[0] -= 1
            if not depth[0]:
                totals[key] += time.perf_counter() - start

    return run


def _clock_ours(model: Any, parts: List[Tuple[str, str, Optional[str]]], totals: Dict[str, float]) -> None:
    modules = dict(model.named_modules())
    for label, name, _ in parts:
        module, depth = modules[name], [0]
        module.forward = _clocked(module.forward, totals, f"{label} fwd", depth)
        for method in ("backward", "backward_params"):
            setattr(module, method, _clocked(getattr(module, method), totals, f"{label} bwd", depth))


def _tensors(value: Any) -> List[Any]:
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return [value] if getattr(value, "requires_grad", False) else []


def _clock_theirs(
    model: Any, parts: List[Tuple[str, str, Optional[str]]], totals: Dict[str, float]
) -> Callable[[], None]:
    """Hooks on PyTorch's modules: the forward between the module's forward hooks; the backward from
    the first gradient of one of its outputs to the next part's. Returns what closes the last span."""
    modules = dict(model.named_modules())
    started: Dict[str, float] = {}
    running: List[str] = []  # the part whose backward is under way

    def close_backward() -> None:
        if running:
            totals[f"{running.pop()} bwd"] += time.perf_counter() - started["bwd"]

    def backward_begins(label: str) -> None:
        if running and running[-1] == label:
            return
        close_backward()
        started["bwd"] = time.perf_counter()
        running.append(label)

    def forward_ends(label: str, outputs: Any) -> None:
        totals[f"{label} fwd"] += time.perf_counter() - started[label]
        for tensor in _tensors(outputs):
            tensor.register_hook(lambda grad, label=label: backward_begins(label))

    for label, _, name in parts:
        if name is None:
            continue
        module = modules[name]
        module.register_forward_pre_hook(lambda m, i, label=label: started.__setitem__(label, time.perf_counter()))
        module.register_forward_hook(lambda m, i, o, label=label: forward_ends(label, o))
    return close_backward


def profile_sequence(name: str, repeat: int) -> None:
    import torch
    from bench_sequence import encoder_steps, lstm_steps

    torch.set_num_threads(2)
    parts = PARTS[name]
    ours_totals: Dict[str, float] = defaultdict(float)
    theirs_totals: Dict[str, float] = defaultdict(float)
    make = lstm_steps if name == "lstm" else encoder_steps
    ours_step, theirs_step = make(torch, np.random.default_rng(0))
    _clock_ours(_closed_over(ours_step, "ours"), parts, ours_totals)
    close = _clock_theirs(_closed_over(theirs_step, "theirs"), parts, theirs_totals)

    def theirs_closed() -> None:
        theirs_step()
        close()

    steps = {"ours": (ours_step, ours_totals), "theirs": (theirs_closed, theirs_totals)}
    whole: Dict[str, float] = defaultdict(float)
    timed: Dict[str, Dict[str, float]] = {who: defaultdict(float) for who in steps}
    for _ in range(repeat):
        for who, (step, totals) in steps.items():
            step()  # untimed: the same work just before (BLAS threads spin after the other framework's step)
            before = dict(totals)
            start = time.perf_counter()
            step()
            whole[who] += time.perf_counter() - start
            for key, value in totals.items():
                timed[who][key] += value - before.get(key, 0.0)
    print(f"{name} training step of bench_sequence.py, means of {repeat} (each after an untimed step):")
    print("| part | nnlayers fwd | bwd | PyTorch fwd | bwd (to the next part's) | nnlayers / PyTorch |")
    print("|---|---|---|---|---|---|")
    listed = {"ours": 0.0, "theirs": 0.0}
    for label, _, _ in parts:
        ours = [timed["ours"][f"{label} {k}"] / repeat for k in ("fwd", "bwd")]
        theirs = [timed["theirs"][f"{label} {k}"] / repeat for k in ("fwd", "bwd")]
        listed["ours"] += sum(ours)
        listed["theirs"] += sum(theirs)
        ratio = f"{sum(ours) / sum(theirs):.2f}x" if all(theirs) else "n/a"
        cells = " | ".join(f"{t * 1e3:.1f} ms" if t else "n/a" for t in ours + theirs)
        print(f"| {label} | {cells} | {ratio} |")
    mine, ref = whole["ours"] / repeat, whole["theirs"] / repeat
    print(f"| rest | {(mine - listed['ours']) * 1e3:.1f} ms | | {(ref - listed['theirs']) * 1e3:.1f} ms | | |")
    print(f"| whole step | {mine * 1e3:.1f} ms | | {ref * 1e3:.1f} ms | | {mine / ref:.2f}x |")


def _closed_over(step: Callable[[], None], who: str) -> Any:
    """The model a benchmark step closes over (``ours`` or ``theirs``)."""
    cells = dict(zip(step.__code__.co_freevars, (c.cell_contents for c in step.__closure__ or ())))
    return cells[who]
