"""`nnlayers explain` on 100 photos, and Grad-CAM of one photo: wall time and peak memory.

Runs ``nnlayers explain MODEL FOLDER --method M --out DIR --grid grid.png`` on a folder of
``--photos`` shared test photos for each method asked, timing the command and reading its peak
memory (the child's own ``ru_maxrss``); then times Grad-CAM of one photo in the library
(``grad_cam(model, [photo])``, median of 7 after an untimed call) and through the command line.

    python benchmarks/bench_explain.py MODEL [--data ../shared/data] [--photos 100] [--methods gradcam saliency]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_data_argument

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nnlayers import load  # noqa: E402
from nnlayers.explain import grad_cam  # noqa: E402


def command(*args: str, cwd: Path):
    """Run ``python -m nnlayers ARGS``: wall seconds and the child's peak resident memory in MB."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nnlayers", *args], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"nnlayers {' '.join(args)} failed: {process.stderr.read().decode()}")
    process.stderr.close()
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    add_data_argument(parser)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "saliency", "gradient_x_input"])
    args = parser.parse_args()
    model = args.model.resolve()
    photos = sorted((args.data / "dogs-vs-cats" / "test").glob("*.jpg"))[: args.photos]
    print("| command | photos | wall time | per photo | peak memory |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "photos"
        folder.mkdir()
        for photo in photos:
            shutil.copy(photo, folder / photo.name)
        for method in args.methods:
            seconds, peak = command("explain", str(model), "photos", "--method", method, "--out", f"out-{method}",
                                    "--grid", f"grid-{method}.png", cwd=work)  # fmt: skip
            print(f"| `nnlayers explain --method {method}` | {len(photos)} | {seconds:.1f} s | "
                  f"{1000 * seconds / len(photos):.0f} ms | {peak:.0f} MB |")  # fmt: skip
        seconds, peak = command("explain", str(model), str(photos[0]), "--out", "one", cwd=work)
        print(f"| `nnlayers explain` (gradcam), one photo | 1 | {seconds:.2f} s | | {peak:.0f} MB |")
    loaded = load(model)
    grad_cam(loaded, [str(photos[0])])
    times = []
    for _ in range(7):
        start = time.perf_counter()
        grad_cam(loaded, [str(photos[0])])
        times.append(time.perf_counter() - start)
    print(f"\n`grad_cam(model, [photo])` in the library: {1000 * statistics.median(times):.0f} ms (median of 7)")


if __name__ == "__main__":
    main()
