"""The photo classifier end to end: the documented command on the Kaggle photos, for several seeds.

Runs, for each seed, exactly what the README tells a user to run, with nothing else but the seed::

    nnlayers train TRAIN --arch ARCH --seed S --out model-S.nnl
    nnlayers evaluate model-S.nnl TEST --json

(``--arch cnn`` and ``--arch resnet`` train on all 6,002 photos of ``TRAIN`` and keep the last
epoch; the 1,000 photos of ``TEST`` are seen only by ``evaluate``) and reports the test accuracy,
the wall time of the training command and its peak memory.

``--watch`` adds ``--val-dir TEST --save last``: the test photos are then evaluated after every
epoch for the learning curves (``--plot`` draws the first seed's), still never used to choose the
weights, which are the same as without it.

    python benchmarks/bench_photos.py [--data ../shared/data] [--seeds 0 1 2] [--arch cnn|resnet|vit] [--watch] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from common import add_data_argument

REPO = Path(__file__).resolve().parents[1]


def nnlayers(*args: str, cwd: Path) -> Tuple[str, str, float]:
    """Run ``python -m nnlayers ARGS``; return its stdout, stderr and peak resident memory in MB."""
    command = [sys.executable, "-m", "nnlayers", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=cwd, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode:
        sys.exit(f"nnlayers {' '.join(args)} failed:\n{stderr}")
    return stdout, stderr, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plot", type=Path, help="write the first seed's learning curves here")
    parser.add_argument("--arch", default="cnn", choices=("cnn", "resnet", "vit"))
    parser.add_argument("--watch", action="store_true", help="evaluate the test photos after every epoch")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for nnlayers train")
    args = parser.parse_args()
    train, test = args.data / "dogs-vs-cats" / "train", args.data / "dogs-vs-cats" / "test"
    if not train.is_dir() or not test.is_dir():
        sys.exit(f"photos not found under {args.data} (pass --data DIR holding dogs-vs-cats/train and /test)")
    rows: List[dict] = []
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        nnlayers(
            "train", str(train), "--arch", args.arch, "--epochs", "1", "--quiet", "--out", "warm.nnl", cwd=work
        )  # fills the image cache
        for i, seed in enumerate(args.seeds):
            out = f"model-{seed}.nnl"
            watched = ["--val-dir", str(test), "--save", "last"] if args.watch or args.plot else []
            command = ["train", str(train), "--arch", args.arch, *watched, "--seed", str(seed), "--out", out]
            command += ["--history", f"history-{seed}.json", *args.extra]
            if i == 0 and args.plot:
                command += ["--plot", str(args.plot.resolve())]
            start = time.perf_counter()
            _, stderr, peak = nnlayers(*command, cwd=work)
            seconds = time.perf_counter() - start
            scores = json.loads(nnlayers("evaluate", out, str(test), "--json", cwd=work)[0])
            history = json.loads((work / f"history-{seed}.json").read_text())["history"]
            rows.append({"seed": seed, "accuracy": scores["accuracy"], "seconds": seconds, "peak_mb": peak})
            curve = history.get("val_accuracy")
            watched_note = f", test accuracy by epoch {[round(a, 3) for a in curve]}" if curve else ""
            print(f"seed {seed}: test accuracy {scores['accuracy']:.4f}, {seconds / 60:.1f} min, peak {peak:.0f} MB"
                  f"{watched_note}", flush=True)  # fmt: skip
    print("\n| seed | test accuracy (1,000 photos) | training wall time | peak memory |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['seed']} | {row['accuracy']:.3f} | {row['seconds'] / 60:.1f} min | {row['peak_mb']:.0f} MB |")
    print(f"\nmean accuracy {sum(r['accuracy'] for r in rows) / len(rows):.3f}; "
          f"slowest run {max(r['seconds'] for r in rows) / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
