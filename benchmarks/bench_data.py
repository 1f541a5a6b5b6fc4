"""Image loading: nnlayers' `load_image_folder`, cold and warm, against the seed's loop.

The seed's loop is ``cv2.imread`` + ``cv2.resize(..., INTER_CUBIC)`` over the files, in one
process. Cold is ``load_image_folder(folder)`` with its defaults as shipped (the cache on, into an
empty cache folder: decoding and writing the cache); "no cache" is ``cache=False``; warm reads the
filled cache as a later run does (after ``os.sync()``, untimed: the cache is written without
fsync, and right after a cold load the kernel is still writing it back). Two sets: the shared photos (stored at 200x200) and the same photos re-encoded at
500x375, the typical size of the original Kaggle files (made here, in a temporary folder).
Also the peak memory of loading 25,000 photos. Figures are ratios measured in the same run.

    python benchmarks/bench_data.py [--data ../shared/data] [--repeat 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import cv2
from common import add_data_argument

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnlayers.data import load_image_folder  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "nnlayers-bench"


def seed_loop(paths):
    """The seed's prepare_data, minus its float copy: imread + cubic resize, one process."""
    for path in paths:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        cv2.resize(img, (64, 64), interpolation=cv2.INTER_CUBIC)


def median_seconds(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reencoded(source: Path, size=(500, 375)) -> Path:
    """The shared photos upscaled to 500x375 JPEGs (quality 90), made once and reused."""
    target = WORK / f"photos-{size[0]}x{size[1]}"
    files = sorted(source.iterdir())
    if target.is_dir() and len(list(target.iterdir())) == len(files):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(target / path.name), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return target


def bench_set(name: str, folder: Path, repeat: int) -> dict:
    """Rounds of seed loop, cold, no cache and warm, interleaved (this machine's load drifts), medians of each."""
    paths = [str(p) for p in sorted(folder.iterdir())]
    n = len(paths)
    runs = {
        "seed": lambda: seed_loop(paths),
        "cold": lambda: load_with_defaults(folder, fresh_cache=True),
        "no_cache": lambda: load_image_folder(folder, cache=False),
        "warm": lambda: load_with_defaults(folder, fresh_cache=False),
    }
    times: dict = {key: [] for key in runs}
    for run in runs.values():  # each timed after an untimed call of itself
        run()
    for _ in range(repeat):
        for key, run in runs.items():
            if key == "warm":  # a later run: the cache the cold load wrote is on disk by then, not being written
                os.sync()
            times[key].append(median_seconds(run, 3 if key == "warm" else 1))
    return {"set": name, "n": n, **{key: n / statistics.median(values) for key, values in times.items()}}


def load_with_defaults(folder: Path, fresh_cache: bool) -> None:
    """``load_image_folder(folder)`` as shipped (cache on), into an empty cache folder (cold) or a filled one (warm)."""
    cache = WORK / "cache-defaults"
    if fresh_cache and cache.exists():
        shutil.rmtree(cache)
    os.environ["NNLAYERS_CACHE_DIR"] = str(cache)  # the default cache place, moved out of the user's
    load_image_folder(folder)


MEMORY_CHILD = """
import resource, sys
sys.path.insert(0, {repo!r})
from nnlayers.data import load_image_folder
d = load_image_folder({folder!r}, cache=False)
self_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))  # this process only
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(len(d), self_kb, child_kb)
"""


def bench_memory_folder(source: Path, count: int = 25_000) -> Path:
    """A folder of ``count`` photos: the shared ones, linked over and over under new names."""
    folder = WORK / f"photos-{count}"
    if not folder.is_dir() or len(os.listdir(folder)) != count:
        folder.mkdir(parents=True, exist_ok=True)
        files = sorted(source.iterdir())
        for i in range(count):
            src = files[i % len(files)]
            link = folder / f"{src.name.split('.')[0]}.{i}.jpg"
            if not link.exists():
                os.symlink(src, link)
    return folder


def run_memory_child(script: str, folder: Path) -> List[int]:
    """Run ``script`` (formatted with this repository and ``folder``) alone; return the ints it prints."""
    repo = str(Path(__file__).resolve().parents[1])
    command = [sys.executable, "-c", script.format(repo=repo, folder=str(folder))]
    return [int(v) for v in subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()]


def bench_memory(source: Path, count: int = 25_000) -> dict:
    """Peak RSS of loading ``count`` photos."""
    n, self_kb, child_kb = run_memory_child(MEMORY_CHILD, bench_memory_folder(source, count))
    return {"n": n, "main_mb": self_kb / 1024, "worker_mb": child_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser, dest="shared")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    source = args.shared / "dogs-vs-cats" / "train"
    if not source.is_dir():
        sys.exit(f"shared photos not found at {source} (pass --data DIR, a folder holding dogs-vs-cats/train)")
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"cv2 {cv2.__version__}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    rows = [
        bench_set("200x200 (shared)", source, args.repeat),
        bench_set("500x375 (re-encoded)", reencoded(source), args.repeat),
    ]
    print(
        "\n| set | images | seed loop img/s | cold img/s | cold / seed | no cache / seed | warm img/s | warm / seed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['n']} | {r['seed']:,.0f} | {r['cold']:,.0f} | {r['cold'] / r['seed']:.2f}x "
            f"| {r['no_cache'] / r['seed']:.2f}x | {r['warm']:,.0f} | {r['warm'] / r['seed']:.0f}x |"
        )
    if not args.skip_memory:
        mem = bench_memory(source)
        print(
            f"\npeak RSS loading {mem['n']:,} photos: main process {mem['main_mb']:.0f} MB, largest worker {mem['worker_mb']:.0f} MB"
        )
    print(f"(peak RSS of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
