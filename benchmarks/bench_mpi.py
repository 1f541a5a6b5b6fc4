"""Data-parallel training on one machine: images per second with 1 process (BLAS on every core)
against N processes over MPI (one BLAS thread each), and the share of a step spent in the Allreduce.

Same global batch in both runs (64), same model, random photos; the tutorial's dense network and
the small CNN. Needs ``pip install '.[mpi]'``.

    python benchmarks/bench_mpi.py [--processes 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import json, sys, time
import numpy as np
sys.path.insert(0, {repo!r})
from nnlayers import SGD, Adam, BCELoss, BCEWithLogitsLoss, fit
from nnlayers.training.distributed import Distributed, launched_with_mpi
from nnlayers.models import mlp, small_cnn

group = Distributed() if launched_with_mpi() else None
spent = [0.0]
if group is not None:  # time the collective call
    original = group.allreduce_gradients
    def timed(*args):
        start = time.perf_counter()
        original(*args)
        spent[0] += time.perf_counter() - start
    group.allreduce_gradients = timed
rng = np.random.default_rng(0)
arch, n, epochs = {arch!r}, {n}, {epochs}
images = rng.integers(0, 256, (n, 64, 64, 3)).astype(np.uint8)
labels = np.arange(n) % 2
if arch == "mlp":
    model, loss = mlp(12288, 64, rng=0), BCELoss()
    opt = SGD(model.parameters(), lr=0.0005, momentum=0.9)
else:
    model, loss = small_cnn(2, rng=0), BCEWithLogitsLoss()
    opt = Adam(model.parameters(), lr=0.001)
fit(model, loss, opt, (images, labels), epochs=1, batch_size=64, verbose=0, distributed=group)  # warm-up
spent[0] = 0.0
start = time.perf_counter()
fit(model, loss, opt, (images, labels), epochs=1 + epochs, batch_size=64, verbose=0, distributed=group)
seconds = time.perf_counter() - start
if group is None or group.is_root:
    print(json.dumps({{"images_per_second": epochs * n / seconds, "allreduce_share": spent[0] / seconds}}))
"""


def measure(arch: str, n: int, epochs: int, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER.format(repo=str(REPO), arch=arch, n=n, epochs=epochs))
        env = dict(os.environ)
        if processes == 1:
            env.pop("OPENBLAS_NUM_THREADS", None)  # BLAS on every core
            command = [sys.executable, str(script)]
        else:
            env["OPENBLAS_NUM_THREADS"] = "1"
            mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
            command = [mpiexec, "-n", str(processes), sys.executable, str(script)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; global batch 64; random 64x64x3 photos")
    print(
        f"| network | 1 process (BLAS threads: all cores) | {args.processes} processes (1 BLAS thread each) | speed-up | Allreduce share of the time |"
    )
    print("|---|---|---|---|---|")
    for arch, n in (("mlp", 6000), ("cnn", 640)):
        one = measure(arch, n, args.epochs, 1)
        many = measure(arch, n, args.epochs, args.processes)
        print(
            f"| {arch} | {one['images_per_second']:,.0f} img/s | {many['images_per_second']:,.0f} img/s | "
            f"{many['images_per_second'] / one['images_per_second']:.2f}x | {many['allreduce_share']:.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
