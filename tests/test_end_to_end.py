"""End to end on the real photos: the README's command on dogs-vs-cats, then evaluate and predict."""

import json
import subprocess

import numpy as np
import pytest

from nnlayers.data import load_image_folder
from nnlayers.saving.serialize import load
from nnlayers.training import evaluate, predict_proba

from .test_cli import COMMAND


def test_train_on_kaggle_photos_reaches_060_and_files_agree(shared_data, tmp_path):
    train_dir, test_dir = shared_data / "dogs-vs-cats" / "train", shared_data / "dogs-vs-cats" / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        pytest.skip("dogs-vs-cats photos not found")
    env_cache = {"NNLAYERS_CACHE_DIR": str(tmp_path / "cache")}
    import os

    env = {**os.environ, **env_cache}
    result = subprocess.run(
        [*COMMAND, "train", str(train_dir), "--val-dir", str(test_dir), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    reported = float(result.stdout.split()[2])  # "validation accuracy 0.6xx (...)"
    assert reported >= 0.60, result.stdout

    model = load(tmp_path / "model.nnl")
    test_set = load_image_folder(test_dir, classes=model.classes, cache=False)
    in_memory = evaluate(model, test_set)
    assert in_memory["accuracy"] == pytest.approx(reported, abs=5e-5)

    cli = subprocess.run(
        [*COMMAND, "evaluate", "model.nnl", str(test_dir), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert json.loads(cli.stdout)["accuracy"] == in_memory["accuracy"]

    photos = [test_set.paths[i] for i in range(0, len(test_set), 50)]
    rows = json.loads(
        subprocess.run(
            [*COMMAND, "predict", "model.nnl", *photos, "--json"], capture_output=True, text=True, cwd=tmp_path, env=env
        ).stdout
    )
    expected = predict_proba(model, test_set.images[::50])
    np.testing.assert_allclose([r["p_dog"] for r in rows], expected, rtol=1e-6)
    assert [r["label"] for r in rows] == [model.classes[int(p > 0.5)] for p in expected]
