"""Shared fixtures: where the shared data lives, and a torch import that skips cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$NNLAYERS_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("NNLAYERS_SHARED_DATA", REPO.parent / "shared" / "data"))


def copy_kaggle_photos(shared_data: Path, folder: Path, per_class: int) -> Path:
    """``cat.0.jpg`` ... and ``dog.0.jpg`` ... (``per_class`` of each) from the shared training photos into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("cat", "dog"):
        for n in range(per_class):
            shutil.copy(shared_data / "dogs-vs-cats" / "train" / f"{kind}.{n}.jpg", folder)
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set NNLAYERS_SHARED_DATA)")
    return path


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 256 KB tmpfs: a disk that fills up (needs root to mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def step_both_optimizers(rng, ours, theirs, opt, topt, torch) -> None:
    """One step of our optimizer and torch's on the same random gradients (values that are not 1)."""
    for p, tp in zip(ours, theirs):
        g = rng.normal(size=p.shape) * rng.uniform(0.1, 3)
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    opt.step()
    opt.zero_grad()
    topt.step()
