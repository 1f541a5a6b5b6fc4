"""A load test of `nnlayers serve` on 127.0.0.1: concurrent clients, right answers, hostile uploads mixed in.

Starts the server as a user does (``nnlayers serve MODEL --port 0``), sends ``--requests`` predict
requests of one shared test photo each from ``--clients`` threads, with ``--hostile`` bad uploads
mixed in (not an image, truncated JPEG, 0 bytes, a decompression bomb, over the size limit, a text
part, a body that is not multipart), and checks every answer: each prediction equal to `nnlayers
predict` on the same photo, each hostile upload a 4xx, the server alive at the end. Reports the
predict requests' latency (p50, p95), the throughput and the server's peak memory (VmHWM).

    python benchmarks/bench_serve.py MODEL [--data ../shared/data] [--requests 200] [--clients 8] [--hostile 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from common import add_data_argument

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from serve_helpers import Server, multipart  # noqa: E402


def hostile_uploads(photo: bytes):
    """``(name, body, content type, expected status)`` of each kind of bad request."""
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + header
        + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    cases = [
        ("text", [("a.jpg", b"not a photo at all", "image/jpeg")], 422),
        ("truncated", [("cut.jpg", photo[: len(photo) // 3], "image/jpeg")], 422),
        ("empty", [("empty.jpg", b"", "image/jpeg")], 422),
        ("bomb", [("bomb.png", bomb, "image/png")], 422),
        ("oversize", [("big.jpg", b"\xff\xd8\xff" + bytes(2_200_000), "image/jpeg")], 413),
        ("text part", [("a.txt", b"hello", "text/plain")], 415),
    ]
    out = [(name, *multipart(files), status) for name, files, status in cases]
    out.append(("not multipart", b'{"files": []}', "application/json", 415))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    add_data_argument(parser)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--hostile", type=int, default=50)
    parser.add_argument("--photos", type=int, default=40, help="distinct test photos the requests cycle through")
    args = parser.parse_args()
    photos = sorted((args.data / "dogs-vs-cats" / "test").glob("*.jpg"))[:: 1000 // args.photos][: args.photos]
    expected = {
        Path(row["path"]).name: row
        for row in json.loads(subprocess.run([sys.executable, "-m", "nnlayers", "predict", str(args.model), *map(str, photos),
                                              "--json"], capture_output=True, text=True, check=True).stdout)
    }  # fmt: skip
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-serve-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    server = Server(args.model.resolve(), "--max-upload-mb", "2", tmpdir=work, cwd=work)
    jobs = [("predict", photos[i % len(photos)]) for i in range(args.requests)]
    bad = hostile_uploads(photos[0].read_bytes())
    jobs += [("hostile", bad[i % len(bad)]) for i in range(args.hostile)]
    random.Random(0).shuffle(jobs)
    latencies, wrong, lock = [], [], threading.Lock()

    def client(mine):
        for kind, item in mine:
            start = time.perf_counter()
            if kind == "predict":
                status, rows = server.send("/api/predict", [(item.name, item.read_bytes(), "image/jpeg")])
                seconds = time.perf_counter() - start
                want = expected[item.name]
                ok = (
                    status == 200
                    and rows[0]["label"] == want["label"]
                    and abs(rows[0]["probability"] - want["probability"]) < 1e-6
                )
                with lock:
                    latencies.append(seconds)
                    wrong.extend([] if ok else [(item.name, status, rows)])
            else:
                name, body, content_type, status_wanted = item
                status, _, data = server.post("/api/predict", body, content_type)
                if status != status_wanted or b"Traceback" in data:
                    with lock:
                        wrong.append((name, status, data[:200]))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(jobs[k :: args.clients],)) for k in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    alive = server.get("/api/model")[0] == 200
    peak = next(line.split()[1] for line in open(f"/proc/{server.process.pid}/status") if line.startswith("VmHWM"))
    server.stop()
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(0.95 * (len(latencies) - 1))]
    print("| requests | clients | hostile | wrong answers | p50 | p95 | throughput | server peak memory | alive |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.requests} predict | {args.clients} | {args.hostile} | {len(wrong)} | {p50 * 1000:.0f} ms | "
          f"{p95 * 1000:.0f} ms | {args.requests / elapsed:.1f} /s | {int(peak) / 1024:.0f} MB | {alive} |")  # fmt: skip
    for item in wrong[:10]:
        print("wrong:", item)
    sys.exit(1 if wrong or not alive else 0)


if __name__ == "__main__":
    main()
