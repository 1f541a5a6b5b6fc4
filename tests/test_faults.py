"""Faults: SIGKILL during training and during a save, a full disk, a read-only folder.

A killed training run leaves its last checkpoint loadable, and resuming from it ends bit for bit
where an uninterrupted run ends. A killed save leaves the previous model file loadable. A full
disk or a read-only folder is a clear OSError and the previous file is kept.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nnlayers import Dense, Sequential, Sigmoid, Tanh, load, save
from nnlayers.saving.serialize import read_checkpoint

from .conftest import REPO
from .test_cli import COMMAND


def train_args(directory: Path, epochs: int):
    return [
        *COMMAND,
        "train",
        "--epochs",
        str(epochs),
        "--quiet",
        "--no-cache",
        "--out",
        str(directory / "model.nnl"),
        "--checkpoint-dir",
        str(directory / "ck"),
    ]


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "NNLAYERS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore"}


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(read_checkpoint(path)[1]["epoch"])
    except (OSError, ValueError):
        return 0


def test_sigkill_during_training_then_resume_is_bit_identical(tmp_path, env):
    epochs = 12
    full = tmp_path / "full"
    full.mkdir()
    assert subprocess.run(train_args(full, epochs), env=env, capture_output=True, timeout=600).returncode == 0

    killed = tmp_path / "killed"
    killed.mkdir()
    process = subprocess.Popen(
        train_args(killed, epochs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while checkpoint_epoch(killed / "ck" / "last.nnl") < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.05)  # somewhere inside a later epoch (or a checkpoint write)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.nnl").exists()

    last = killed / "ck" / "last.nnl"
    stopped_at = checkpoint_epoch(last)
    assert 3 <= stopped_at < epochs  # loadable, and mid-run
    load(last)
    resumed = subprocess.run(
        [*train_args(killed, epochs), "--resume", str(last)], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = load(full / "model.nnl").state_dict(), load(killed / "model.nnl").state_dict()
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name


SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from nnlayers import Dense, Sequential, save
    model = Sequential([Dense(4096, 512, rng=0)])  # 8 MB: a save takes a while
    i = 0
    while True:
        for p in model.parameters():
            p.data[...] = i % 2
        save(model, {path!r})
        print(i, flush=True)
        i += 1
    """
)


def test_sigkill_during_save_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "model.nnl"
    rng = np.random.default_rng(0)
    for attempt in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", SAVER.format(repo=str(REPO), path=str(path))], stdout=subprocess.PIPE, text=True
        )
        process.stdout.readline()  # at least one complete save
        time.sleep(float(rng.uniform(0.0, 0.3)))  # then kill at a random point, often mid-write
        process.send_signal(signal.SIGKILL)
        process.wait()
        model = load(path)  # never half-written
        weights = model.state_dict()["0.weight"]
        assert weights.min() == weights.max() and weights.flat[0] in (0.0, 1.0), f"attempt {attempt}: mixed contents"


def small_model():
    return Sequential([Dense(8, 4, rng=0), Tanh(), Dense(4, 1, rng=1), Sigmoid()])


def test_full_disk_is_a_clear_error_and_keeps_the_previous_file(tiny_disk):
    path = tiny_disk / "model.nnl"
    save(small_model(), path)
    before = path.read_bytes()
    with pytest.raises(
        OSError, match=r"cannot save .*model.nnl: No space left on device; the previous file is unchanged"
    ):
        save(Sequential([Dense(512, 256, rng=0)]), path)  # 512 KB of weights: does not fit
    assert path.read_bytes() == before and load(path) is not None
    assert [p.name for p in tiny_disk.iterdir()] == ["model.nnl"]  # no temporary file left behind


def test_read_only_folder_is_a_clear_error_and_keeps_the_previous_file(tmp_path):
    source, view = tmp_path / "src", tmp_path / "ro"
    source.mkdir()
    view.mkdir()
    save(small_model(), source / "model.nnl")
    if subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(view)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only bind mount here (needs root)")
    try:
        before = (view / "model.nnl").read_bytes()
        with pytest.raises(OSError, match="cannot save .*: Read-only file system; the previous file is unchanged"):
            save(Sequential([Dense(8, 2, rng=5)]), view / "model.nnl")
        assert (view / "model.nnl").read_bytes() == before
        cli = subprocess.run(
            [
                *COMMAND,
                "train",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(view / "model.nnl"),
                "--checkpoint-dir",
                str(tmp_path / "ck"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "NNLAYERS_CACHE_DIR": str(tmp_path / "cache")},
        )
        assert cli.returncode == 1 and "Read-only file system" in cli.stderr and "Traceback" not in cli.stderr
        assert (view / "model.nnl").read_bytes() == before
    finally:
        subprocess.run(["umount", str(view)], check=False)
