"""Data-parallel training over MPI with 2 processes (skipped without mpi4py and mpiexec).

The reference is the single-process run with the same global batch: the weights must agree
after 20 steps (1e-12 in float64, 1e-5 relative in float32), and process 0's metrics with it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, copy_kaggle_photos

pytest.importorskip("mpi4py", reason="mpi4py not installed (pip install 'nnlayers[mpi]')")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec (pip install 'nnlayers[mpi]' brings MPICH's)", allow_module_level=True)

SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from distributed_case import run
weights, history = run({case!r}, distributed=True)
from mpi4py import MPI
if MPI.COMM_WORLD.Get_rank() == 0:
    np.savez({out!r}, **weights)
    json.dump(history, open({out!r} + ".json", "w"))
"""


def mpirun(n, *args, env=None, timeout=300, **kwargs):
    command = [MPIEXEC, "-n", str(n), *map(str, args)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)


@pytest.mark.parametrize("case", ["tutorial float64", "tutorial float32", "cnn float64", "weighted ce float64"])
def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path, case):
    sys.path.insert(0, str(Path(__file__).parent))
    from distributed_case import run

    out = tmp_path / "weights.npz"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(repo=str(REPO), tests=str(Path(__file__).parent), case=case, out=str(out)))
    result = mpirun(2, sys.executable, script)
    assert result.returncode == 0, result.stderr
    two = np.load(out)
    one, history = run(case, distributed=False)
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if "64" in case else {"rtol": 1e-5, "atol": 1e-6}
    for key, value in one.items():
        np.testing.assert_allclose(two[key], value, err_msg=key, **tolerance)
    two_history = json.loads((tmp_path / "weights.npz.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # metrics summed over the processes
        np.testing.assert_allclose(two_history[key], history[key], rtol=1e-5 if "32" in case else 1e-12, err_msg=key)


@pytest.fixture()
def photos(shared_data, tmp_path):
    return copy_kaggle_photos(shared_data, tmp_path / "photos", 60)


def test_the_cli_under_mpiexec_writes_one_model_that_evaluate_reads(photos, tmp_path):
    env = {"NNLAYERS_CACHE_DIR": str(tmp_path / "cache")}
    work = tmp_path / "work"
    work.mkdir()
    result = mpirun(2, sys.executable, "-m", "nnlayers", "train", photos, "--epochs", "3", "--checkpoint-dir", "ck",
                    "--history", "h.json", env={**env, "PYTHONPATH": str(REPO)}, cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["ck", "h.json", "model.nnl"]  # written once, by process 0
    assert result.stdout.count("validation accuracy") == 1 and result.stderr.count("epoch 3/3") == 1
    scores = subprocess.run([sys.executable, "-m", "nnlayers", "evaluate", work / "model.nnl", photos, "--json"],
                            capture_output=True, text=True, env={**os.environ, **env, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert scores.returncode == 0 and json.loads(scores.stdout)["n"] == 120


def test_a_resnet_trains_under_mpiexec_and_its_file_evaluates(photos, tmp_path):
    """--arch resnet (BatchNorm everywhere, residual blocks, no validation by default) over 2 processes."""
    env = {"NNLAYERS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    result = mpirun(2, sys.executable, "-m", "nnlayers", "train", photos, "--arch", "resnet", "--size", "32",
                    "--epochs", "2", "--quiet", "--out", "r.nnl", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("training accuracy") == 1  # one process speaks
    from nnlayers import load

    model = load(tmp_path / "r.nnl")
    assert type(model[3][0]).__name__ == "BasicBlock" and int(model[1].num_batches_tracked) > 0
    scores = subprocess.run([sys.executable, "-m", "nnlayers", "evaluate", tmp_path / "r.nnl", photos, "--json"],
                            capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
    assert scores.returncode == 0 and json.loads(scores.stdout)["n"] == 120


def _rank_pids(launcher: int) -> dict:
    """Process id of each MPI rank started under ``launcher`` (read from /proc)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"nnlayers" in cmdline and b"mpiexec" not in cmdline:
            for item in environ:
                if item.startswith(b"PMI_RANK="):
                    ranks[int(item.split(b"=")[1])] = int(entry.name)
    return ranks


def test_a_killed_process_ends_the_run_with_an_error_and_the_checkpoint_stays_loadable(tmp_path):
    from nnlayers import load

    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "NNLAYERS_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    command = [
        MPIEXEC,
        "-n",
        "2",
        sys.executable,
        "-m",
        "nnlayers",
        "train",
        "--epochs",
        "400",
        "--checkpoint-dir",
        "ck",
        "--quiet",
    ]
    launcher = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not (tmp_path / "ck" / "last.nnl").exists():
        assert time.time() < deadline and launcher.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    time.sleep(1)
    ranks = _rank_pids(launcher.pid)
    assert 1 in ranks, ranks
    os.kill(ranks[1], signal.SIGKILL)
    start = time.time()
    _, stderr = launcher.communicate(timeout=120)  # a hang fails here
    assert launcher.returncode != 0 and time.time() - start < 60
    assert load(tmp_path / "ck" / "last.nnl") is not None  # written atomically by process 0


# --- round three of hardening: an error on one process ends them all; each draws its own numbers -----------


def _timed_mpirun(*args, **kwargs):
    start = time.time()
    result = mpirun(2, *args, timeout=60, **kwargs)  # a hang fails here (it waited for ever)
    return result, time.time() - start


def test_an_output_path_refused_on_one_process_ends_both(tmp_path):
    env = {"NNLAYERS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    result, seconds = _timed_mpirun(sys.executable, "-m", "nnlayers", "train", "--epochs", "1", "--out",
                                    "missing/m.nnl", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0 and seconds < 30
    assert "folder missing does not exist" in result.stderr, result.stderr


RAISING = """
import sys
import numpy as np
sys.path.insert(0, {repo!r})
from mpi4py import MPI
from nnlayers import SGD, BatchNorm1D, BCEWithLogitsLoss, Dense, Layer, Sequential, fit

class FailsOnProcessOne(Layer):
    takes_images = None
    calls = 0
    def forward(self, x):
        self.calls += 1
        if MPI.COMM_WORLD.Get_rank() == 1 and self.calls == 3:
            raise RuntimeError("a failure on process 1 only")
        return x
    def backward(self, grad_y):
        return grad_y

case = {case!r}
rng = np.random.default_rng(0)
if case == "batchnorm":  # 9 examples in batches of 3: the last batch is dealt 2 + 1
    x, y = rng.normal(size=(9, 4)), rng.integers(0, 2, 9)
    model = Sequential([Dense(4, 3, rng=0), BatchNorm1D(3), Dense(3, 1, rng=1)])
    batch = 3
else:
    x, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    model = Sequential([Dense(4, 3, rng=0), FailsOnProcessOne(), Dense(3, 1, rng=1)])
    batch = 8
fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=batch, verbose=0,
    distributed=True)
"""


@pytest.mark.parametrize(
    "case, message",
    [
        ("one process", "a failure on process 1 only"),
        ("batchnorm", "a process's part of every batch holds 1 example (9 examples in batches of 3 over 2 processes)"),
    ],
)
def test_an_error_on_one_process_ends_every_process_within_seconds(tmp_path, case, message):
    script = tmp_path / "script.py"
    script.write_text(RAISING.format(repo=str(REPO), case=case))
    result, seconds = _timed_mpirun(sys.executable, script)
    assert result.returncode != 0 and seconds < 30, result.stderr
    assert message in result.stderr, result.stderr


STREAMS = """
import json, sys
import numpy as np
sys.path.insert(0, {repo!r})
from mpi4py import MPI
from nnlayers import SGD, BCEWithLogitsLoss, Dense, Dropout, Flatten, Layer, Sequential, fit

class Record(Layer):
    takes_images = None
    def __init__(self):
        super().__init__()
        self.seen = []
    def forward(self, x):
        if self.training:
            self.seen.append(np.array(x).tolist())
        return x
    def backward(self, grad_y):
        return grad_y

image = np.random.default_rng(0).integers(0, 256, (4, 4, 3)).astype(np.uint8)
x, y = np.repeat(image[None], 16, axis=0), np.array([0, 1] * 8)  # one photo: only the random changes differ
flips, drops = Record(), Record()
model = Sequential([flips, Flatten(), Dropout(0.5, rng=0), drops, Dense(48, 1, rng=1)])
fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.01), (x, y), epochs=2, batch_size=8, verbose=0,
    augment="flip,crop", distributed=True)
seen = MPI.COMM_WORLD.gather((flips.seen, drops.seen), root=0)
if MPI.COMM_WORLD.Get_rank() == 0:
    json.dump(seen, open({out!r}, "w"))
"""


def test_each_process_draws_its_own_masks_flips_and_crops(tmp_path):
    script = tmp_path / "script.py"
    out = tmp_path / "seen.json"
    script.write_text(STREAMS.format(repo=str(REPO), out=str(out)))
    result, _ = _timed_mpirun(sys.executable, script)
    assert result.returncode == 0, result.stderr
    (flips0, drops0), (flips1, drops1) = json.loads(out.read_text())
    assert len(flips0) == len(flips1) == 4  # 2 epochs of 2 batches, 4 examples each per process
    for a, b in zip(flips0, flips1):  # the same photo, changed differently on each process
        assert not np.array_equal(a, b)
    for a, b in zip(drops0, drops1):
        assert not np.array_equal(np.array(a) == 0, np.array(b) == 0)
    assert not np.array_equal(flips1[0], flips1[2])  # and differently in each epoch
