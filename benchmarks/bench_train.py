"""Training speed: one epoch of the seed's model in nnlayers against the seed's own functions,
PyTorch, scikit-learn and the BLAS limit, on the same photos in one process.

Model ``12288-h-1`` (tanh, sigmoid, binary cross-entropy, plain SGD), the 6,002 shared photos at
64x64. Epoch time is the median of ``--repeat`` epochs; results are ratios measured in the same
run. The BLAS limit is only the first layer's two big products per batch (forward ``x @ W.T`` and
weight gradient ``g.T @ x``), bare numpy float32 on ready-made float32 batches.

    python benchmarks/bench_train.py [--data ../shared/data] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from common import add_data_argument

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers import SGD, BCELoss, Dense, Sequential, Sigmoid, Tanh, batches, fit  # noqa: E402
from nnlayers.data import load_image_folder, to_inputs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import bench_memory_folder, run_memory_child  # noqa: E402

LR = 0.001


def batch_orders(n: int, batch_size: int, seed: int = 0) -> List[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# --- the contenders -----------------------------------------------------------------------------


def nnlayers_epoch(images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: int) -> Callable[[], None]:
    """One epoch through `nnlayers.fit`, exactly as users train (shuffling, accuracy included)."""
    model = Sequential([Dense(images[0].size, hidden, rng=0), Tanh(), Dense(hidden, 1, rng=1), Sigmoid()])
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=LR)

    def epoch() -> None:
        fit(model, loss_fn, opt, (images, labels), epochs=1, batch_size=batch_size, verbose=0)

    return epoch


def readme_loop_epoch(images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: int) -> Callable[[], None]:
    """One epoch of the loop as the README writes it, over `nnlayers.batches` (a fresh batch array each step)."""
    model = Sequential([Dense(images[0].size, hidden, rng=0), Tanh(), Dense(hidden, 1, rng=1), Sigmoid()])
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=LR)
    epochs = iter(range(10**9))

    def epoch() -> None:
        for x, y in batches(images, labels, batch_size, rng=next(epochs)):
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
        assert np.isfinite(loss)

    return epoch


def nnlayers_full_batch(x: np.ndarray, labels: np.ndarray, hidden: int) -> Callable[[], None]:
    model = Sequential([Dense(x.shape[1], hidden, rng=0), Tanh(), Dense(hidden, 1, rng=1), Sigmoid()])
    loss_fn, opt = BCELoss(), SGD(model.parameters(), lr=LR)
    y = labels.astype(np.float32).reshape(-1, 1)

    def epoch() -> None:
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()

    return epoch


def seed_epoch(images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: Optional[int]) -> Callable[[], None]:
    """The tutorial's functions, float64, examples as columns: X is (12288, N) as prepare_data makes it."""
    X = images.reshape(len(images), -1).T / 255  # the seed's float64 copy
    Y = labels.reshape(1, -1).astype(np.float64)
    rng = np.random.RandomState(0)
    params = {
        "W1": rng.randn(hidden, X.shape[0]) * 0.01,
        "b1": np.zeros((hidden, 1)),
        "W2": rng.randn(1, hidden) * 0.01,
        "b2": np.zeros((1, 1)),
    }
    columns = [slice(None)] if batch_size is None else batch_orders(X.shape[1], batch_size)

    def step(Xb: np.ndarray, Yb: np.ndarray) -> None:
        m = Xb.shape[1]
        Z1 = np.dot(params["W1"], Xb) + params["b1"]
        A1 = np.tanh(Z1)
        Z2 = np.dot(params["W2"], A1) + params["b2"]
        A2 = 1 / (1 + np.exp(-Z2))
        logprobs = np.multiply(np.log(A2), Yb) + np.multiply(np.log(1 - A2), (1 - Yb))
        float(np.squeeze(-1 / m * np.sum(logprobs)))
        dZ2 = A2 - Yb
        dW2 = 1.0 / m * np.dot(dZ2, A1.T)
        db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
        dZ1 = np.dot(params["W2"].T, dZ2) * (1 - np.power(A1, 2))
        dW1 = 1.0 / m * np.dot(dZ1, Xb.T)
        db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
        for key, grad in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
            params[key] = params[key] - grad * LR

    def epoch() -> None:
        for cols in columns:
            step(X[:, cols], Y[:, cols])

    return epoch


def torch_epoch(
    images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: int, full: Optional[np.ndarray] = None
) -> Optional[Callable[[], None]]:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(images[0].size, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1), torch.nn.Sigmoid()
    )
    loss_fn, opt = torch.nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=LR)
    flat = torch.from_numpy(images.reshape(len(images), -1))
    targets = torch.from_numpy(labels.astype(np.float32).reshape(-1, 1))
    orders = [torch.from_numpy(idx) for idx in batch_orders(len(images), batch_size)]
    full_x = torch.from_numpy(full) if full is not None else None

    def epoch() -> None:
        for idx in [None] if full_x is not None else orders:
            x = full_x if idx is None else flat[idx].float().div_(255)
            y = targets if idx is None else targets[idx]
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

    return epoch


def sklearn_epoch(images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: int) -> Optional[Callable[[], None]]:
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    x = images.reshape(len(images), -1).astype(np.float32) / 255  # scikit-learn wants the whole float set
    clf = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="tanh",
        solver="sgd",
        batch_size=batch_size,
        learning_rate_init=LR,
        momentum=0.0,
        random_state=0,
        shuffle=True,
    )
    classes = np.array([0, 1])

    def epoch() -> None:
        clf.partial_fit(x, labels, classes=classes)

    return epoch


def blas_limit(
    images: np.ndarray, hidden: int, batch_size: Optional[int], full: Optional[np.ndarray] = None
) -> Callable[[], None]:
    """Only the first layer's forward product and weight-gradient product, float32, ready batches."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((hidden, images[0].size)).astype(np.float32)
    batches = (
        [full]
        if full is not None
        else [to_inputs(images[idx]) for idx in batch_orders(len(images), batch_size or len(images))]
    )
    grads = [rng.standard_normal((len(b), hidden)).astype(np.float32) for b in batches]

    def epoch() -> None:
        for x, g in zip(batches, grads):
            x @ w.T
            g.T @ x

    return epoch


# --- the runs -----------------------------------------------------------------------------------


def run_config(
    images: np.ndarray, labels: np.ndarray, hidden: int, batch_size: Optional[int], repeat: int
) -> Dict[str, float]:
    """Median epoch seconds for each contender at one configuration (None batch = full batch)."""
    if batch_size is None:
        full = to_inputs(images)
        contenders = {
            "blas": blas_limit(images, hidden, None, full),
            "nnlayers": nnlayers_full_batch(full, labels, hidden),
            "seed": seed_epoch(images, labels, hidden, None),
            "torch": torch_epoch(images, labels, hidden, len(images), full),
        }
    else:
        contenders = {
            "blas": blas_limit(images, hidden, batch_size),
            "nnlayers": nnlayers_epoch(images, labels, hidden, batch_size),
            "readme": readme_loop_epoch(images, labels, hidden, batch_size),
            "seed": seed_epoch(images, labels, hidden, batch_size),
            "torch": torch_epoch(images, labels, hidden, batch_size),
            "sklearn": sklearn_epoch(images, labels, hidden, batch_size),
        }
    return interleaved_medians({name: epoch for name, epoch in contenders.items() if epoch is not None}, repeat)


def interleaved_medians(epochs: Dict[str, Callable[[], None]], repeat: int) -> Dict[str, float]:
    """Median seconds of each, timed round-robin so that a noisy moment hits them all alike."""
    times: Dict[str, List[float]] = {name: [] for name in epochs}
    for round_ in range(repeat + 1):
        for name, epoch in epochs.items():
            start = time.perf_counter()
            epoch()
            if round_:  # the first round warms caches, the allocator and the BLAS threads
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def scaling(images: np.ndarray, labels: np.ndarray, repeat: int) -> Dict[str, Dict[int, float]]:
    """nnlayers epoch time against N (h = 64) and against h (N = all), batch 64."""
    n_total = len(images)
    ns = (n_total // 4, n_total // 2, 3 * n_total // 4, n_total)
    by_n = interleaved_medians({str(n): nnlayers_epoch(images[:n], labels[:n], 64, 64) for n in ns}, repeat)
    by_h = interleaved_medians({str(h): nnlayers_epoch(images, labels, h, 64) for h in (32, 64, 96, 128)}, repeat)
    return {"n": {int(k): v for k, v in by_n.items()}, "h": {int(k): v for k, v in by_h.items()}}


def linearity(points: Dict[int, float]) -> float:
    """Largest relative deviation of the points from their least-squares straight line."""
    xs, ys = np.array(list(points), float), np.array(list(points.values()))
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(np.max(np.abs(ys - (slope * xs + intercept)) / ys))


MEMORY_CHILD = """
import resource, sys, numpy as np
sys.path.insert(0, {repo!r})
from nnlayers import Sequential, Dense, Tanh, Sigmoid, BCELoss, SGD, fit
from nnlayers.data import load_image_folder
data = load_image_folder({folder!r}, cache=False)
model = Sequential([Dense(12288, 64, rng=0), Tanh(), Dense(64, 1, rng=1), Sigmoid()])
fit(model, BCELoss(), SGD(model.parameters(), lr=0.001, momentum=0.9), data, epochs=1, validation=0.2, verbose=0)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))  # this process only
print(len(data), hwm)
"""


def memory_25k(folder: Path) -> Dict[str, float]:
    n, kb = run_memory_child(MEMORY_CHILD, folder)
    return {"n": n, "peak_mb": kb / 1024}


def plot(raw: Dict[str, object], path: Path) -> None:
    """Bars: epoch time per contender and configuration; lines: nnlayers against N and h."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [k for k in raw if k not in ("scaling", "memory")]
    names = ["blas", "nnlayers", "readme", "torch", "sklearn", "seed"]
    labels = {
        "blas": "BLAS limit",
        "nnlayers": "nnlayers fit",
        "readme": "README loop",
        "torch": "PyTorch",
        "sklearn": "scikit-learn",
        "seed": "seed (float64)",
    }
    scaling_data = raw.get("scaling")
    fig, axes = plt.subplots(1, 2 if scaling_data else 1, figsize=(12 if scaling_data else 7, 4), squeeze=False)
    ax = axes[0, 0]
    width = 0.14
    for i, name in enumerate(names):
        values = [raw[c].get(name, 0) for c in configs]  # type: ignore[attr-defined]
        ax.bar(np.arange(len(configs)) + (i - 2.5) * width, values, width, label=labels[name])
    ax.set_xticks(np.arange(len(configs)), configs)
    ax.set_ylabel("seconds per epoch (6,002 photos)")
    ax.set_title("one epoch of 12288-h-1, lower is better")
    ax.legend()
    if scaling_data:
        ax2 = axes[0, 1]
        by_n, by_h = scaling_data["n"], scaling_data["h"]  # type: ignore[index]
        ax2.plot(list(by_n), list(by_n.values()), "o-", label="against N (h = 64)")
        ax2.set_xlabel("N (examples)")
        ax2.set_ylabel("seconds per epoch")
        twin = ax2.twiny()
        twin.plot(list(by_h), list(by_h.values()), "s--", color="tab:orange", label="against h (N = 6,002)")
        twin.set_xlabel("h (hidden units)")
        ax2.set_title("nnlayers, batch 64", pad=28)
        ax2.legend(loc="upper left")
        twin.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def machine() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
    except ImportError:
        blas = "see numpy.show_config()"
    versions = [f"numpy {np.__version__}"]
    for module in ("torch", "sklearn"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}, BLAS: {blas}; {', '.join(versions)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser, dest="shared")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the scaling and memory runs")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--plot", type=Path, help="also draw the results as a PNG (needs matplotlib)")
    args = parser.parse_args()
    source = args.shared / "dogs-vs-cats" / "train"
    if not source.is_dir():
        sys.exit(f"shared photos not found at {source} (pass --data DIR, a folder holding dogs-vs-cats/train)")
    data = load_image_folder(source)
    images, labels = np.ascontiguousarray(data.images), data.labels
    print(machine())

    raw: Dict[str, object] = {}
    print(
        "\n| configuration | BLAS limit | nnlayers fit | README loop | seed (float64) | PyTorch | scikit-learn | fit / BLAS | fit / PyTorch | README loop / PyTorch | fit / seed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, hidden, batch in (
        ("h=64, batch 64", 64, 64),
        ("h=64, batch 256", 64, 256),
        ("h=7, full batch (6,002)", 7, None),
    ):
        r = run_config(images, labels, hidden, batch, args.repeat)
        raw[label] = r

        def cell(name: str, r: Dict[str, float] = r) -> str:
            return f"{r[name]:.3f} s" if name in r else "n/a"

        def ratio(name: str, r: Dict[str, float] = r, ours: str = "nnlayers") -> str:
            return f"{r[ours] / r[name]:.2f}x" if name in r and ours in r else "n/a"

        print(
            f"| {label} | {cell('blas')} | {cell('nnlayers')} | {cell('readme')} | {cell('seed')} | {cell('torch')} | {cell('sklearn')} | {ratio('blas')} | {ratio('torch')} | {ratio('torch', ours='readme')} | {ratio('seed')} |"
        )

    if not args.quick:
        scale = scaling(images, labels, max(3, args.repeat // 2))
        raw["scaling"] = scale
        print("\nnnlayers epoch time, batch 64:")
        print("| N (h = 64) | " + " | ".join(f"{n:,}" for n in scale["n"]) + " | deviation from a line |")
        print("|---|" + "---|" * (len(scale["n"]) + 1))
        print(
            "| seconds | " + " | ".join(f"{t:.3f}" for t in scale["n"].values()) + f" | {linearity(scale['n']):.1%} |"
        )
        print("| h (N = 6,002) | " + " | ".join(str(h) for h in scale["h"]) + " | |")
        print(
            "| seconds | " + " | ".join(f"{t:.3f}" for t in scale["h"].values()) + f" | {linearity(scale['h']):.1%} |"
        )
        mem = memory_25k(bench_memory_folder(source))
        raw["memory"] = mem
        print(
            f"\npeak RSS of loading {mem['n']:,} photos and training one epoch (batch 64, 20% validation): {mem['peak_mb']:.0f} MB"
        )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    if args.plot:
        plot(raw, args.plot)
    print(f"(this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
