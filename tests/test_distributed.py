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
