"""A real ``nnlayers serve`` process for the tests, and multipart bodies written by hand (so that the
tests can also send broken ones)."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

COMMAND = [sys.executable, "-m", "nnlayers"]


class Server:
    """``nnlayers serve MODEL --port 0 ...`` in a subprocess, until `stop`; ``url`` once it answers."""

    def __init__(self, model: Path, *options: str, tmpdir: Path, cwd: Path) -> None:
        env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen([*COMMAND, "serve", str(model), "--port", "0", *options], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.banner = self.process.stdout.readline()
        if "http://" not in self.banner:
            self.stop()
            raise RuntimeError(f"nnlayers serve did not start: {self.banner}{self.process.stderr.read()}")
        self.url = self.banner.split("http://", 1)[1].split("/", 1)[0]
        self.url = f"http://{self.url}"
        for _ in range(200):
            try:
                self.get("/api/model")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nnlayers serve never answered")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.status, response.headers.get("content-type"), response.read()

    def post(self, path: str, body: bytes, content_type: str):
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers.get("content-type"), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("content-type"), error.read()

    def send(self, path: str, files, **fields):
        """POST a multipart form: ``files`` as ``(name, bytes, content type)``; answers ``(status, JSON or bytes)``."""
        body, kind = multipart(files, fields)
        status, answer_type, data = self.post(path, body, kind)
        return status, json.loads(data) if answer_type == "application/json" else data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


def multipart(files, fields=None, boundary=None):
    boundary = boundary or uuid.uuid4().hex
    parts = []
    for key, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    for name, data, kind in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
