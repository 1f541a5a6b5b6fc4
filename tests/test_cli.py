"""The real ``nnlayers`` command, run in subprocesses (and once in a pseudo-terminal)."""

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from nnlayers import evaluate, predict_proba
from nnlayers.saving.serialize import load, read_checkpoint

from .conftest import copy_kaggle_photos

SCRIPT = Path(sys.executable).parent / "nnlayers"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "nnlayers"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "NNLAYERS_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}


def run(env, *args, cwd=None):
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_console_script_is_installed():
    if not SCRIPT.exists():
        pytest.skip("package not installed in this environment (pip install .): tests use python -m nnlayers")
    assert run(os.environ, "--version").stdout.startswith("nnlayers ")


@pytest.mark.parametrize(
    "command", [[], ["train"], ["evaluate"], ["predict"], ["explain"], ["serve"], ["info"], ["export"], ["cache"]]
)
def test_help(env, command):
    result = run(env, *command, "--help")
    assert result.returncode == 0 and "usage: nnlayers" in result.stdout


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """`nnlayers train` with no data folder: the built-in set, 12 epochs."""
    work = tmp_path_factory.mktemp("work")
    result = run(
        env,
        "train",
        "--epochs",
        "12",
        "--plot",
        "curves.png",
        "--history",
        "history.json",
        "--checkpoint-dir",
        "ckpt",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    return work, result


def test_train_on_the_builtin_set(trained):
    work, result = trained
    assert "No DATA_DIR given: training on nnlayers' built-in set of generated circles and squares" in result.stderr
    assert "epoch 12/12" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.startswith("validation accuracy ")
    accuracy = float(result.stdout.split()[2])
    assert accuracy >= 0.9
    model = load(work / "model.nnl")
    assert model.classes == ["circle", "square"] and model.preprocessing["size"] == [64, 64]
    assert (work / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((work / "history.json").read_text())["epochs"] == list(range(1, 13))
    assert {p.name for p in (work / "ckpt").iterdir()} == {"last.nnl", "best.nnl"}
    assert not (work / "model-checkpoints").exists()  # checkpoints only where asked for


def test_evaluate_and_predict_match_the_library(env, trained):
    from nnlayers.data import load_image_folder

    work, _ = trained
    data_dir = Path(env["NNLAYERS_CACHE_DIR"]) / "builtin-shapes-v2"
    model = load(work / "model.nnl")
    dataset = load_image_folder(data_dir, classes=model.classes, cache=False)
    expected = evaluate(model, dataset)

    result = run(env, "evaluate", work / "model.nnl", data_dir, "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["accuracy"] == expected["accuracy"] and scores["confusion_matrix"] == expected["confusion_matrix"]
    assert scores["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    text = run(env, "evaluate", work / "model.nnl", data_dir).stdout
    assert f"accuracy   {expected['accuracy']:.4f}" in text and "confusion matrix" in text

    photos = [
        data_dir / "circle" / "circle.3.jpg",
        data_dir / "square" / "square.4.jpg",
        data_dir / "square" / "square.9.jpg",
    ]
    result = run(env, "predict", work / "model.nnl", *photos, "--json", "--grid", work / "grid.png")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    proba = predict_proba(model, [str(p) for p in photos])
    for row, photo, p in zip(rows, photos, proba):
        assert row["path"] == str(photo) and row["p_square"] == pytest.approx(p, rel=1e-6)
        assert row["label"] == ("square" if p > 0.5 else "circle")
    assert (work / "grid.png").read_bytes()[:4] == b"\x89PNG"
    plain = run(env, "predict", work / "model.nnl", photos[0]).stdout.split("\t")
    assert plain[0] == str(photos[0]) and plain[1] in ("circle", "square")


def test_predict_grid_of_mistakes_is_capped_and_spread(env, trained, tmp_path):
    from PIL import Image

    work, _ = trained
    data_dir = Path(env["NNLAYERS_CACHE_DIR"]) / "builtin-shapes-v2"
    model = load(work / "model.nnl")
    folder = tmp_path / "square"  # circles filed as squares: each one the model gets right is a "mistake"
    folder.mkdir()
    for i in range(5):
        shutil.copy(data_dir / "circle" / f"circle.{i}.jpg", folder / f"a{i}.jpg")
        shutil.copy(data_dir / "square" / f"square.{i}.jpg", folder / f"b{i}.jpg")
    wrong = int(np.sum(predict_proba(model, sorted(str(p) for p in folder.iterdir())) <= 0.5))
    assert wrong >= 3  # the model tells circles from squares

    def grid(*options):
        result = run(env, "predict", work / "model.nnl", folder, "--grid", tmp_path / "g.png", "--mistakes", *options)
        assert result.returncode == 0, result.stderr
        return result.stderr, Image.open(tmp_path / "g.png").size

    text, size_all = grid()
    assert "drawing" not in text
    text, size_two = grid("--grid-max", "2")
    assert f"drawing 2 of {wrong} mistakes" in text
    assert size_two[0] < size_all[0]  # two photos a row instead of `wrong`


def test_info(env, trained):
    work, _ = trained
    result = run(env, "info", work / "model.nnl")
    assert result.returncode == 0
    assert "format version  1" in result.stdout and "parameters      786,561" in result.stdout
    assert (
        "['circle', 'square']" in result.stdout
        and "(0): Dense(in_features=12288, out_features=64, bias=True)" in result.stdout
    )
    checkpoint = run(env, "info", work / "ckpt" / "last.nnl")
    assert "checkpoint      epoch 12, SGD lr 0.0005 momentum 0.9" in checkpoint.stdout


def test_resume_from_the_command_line_is_bit_identical(env, tmp_path):
    args = ["--epochs", "4", "--lr", "0.002", "--quiet"]
    full_run = run(env, "train", *args, "--out", "full.nnl", "--checkpoint-dir", "full", cwd=tmp_path)
    assert full_run.returncode == 0, full_run.stderr
    stopped = run(
        env,
        "train",
        "--epochs",
        "2",
        "--lr",
        "0.002",
        "--quiet",
        "--out",
        "part.nnl",
        "--checkpoint-dir",
        "part",
        cwd=tmp_path,
    )
    assert stopped.returncode == 0
    resumed = run(
        env,
        "train",
        *args,
        "--out",
        "part.nnl",
        "--checkpoint-dir",
        "part",
        "--resume",
        tmp_path / "part" / "last.nnl",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    full, part = load(tmp_path / "full.nnl").state_dict(), load(tmp_path / "part.nnl").state_dict()
    for name in full:
        assert full[name].tobytes() == part[name].tobytes(), name
    assert read_checkpoint(tmp_path / "part" / "last.nnl")[1]["epoch"] == 4


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--lr", "-1"], 2, "argument --lr: expected a positive number, got -1"),
        (["train", "--epochs", "zero"], 2, "argument --epochs: expected a positive integer, got zero"),
        (["train", "--val-split", "1.5"], 2, "argument --val-split: expected a fraction from 0 (hold no photo out)"),
        (["train", "--arch", "cnn", "--save", "best"], 1, "--save best keeps the epoch with the lowest validation"),
        (["train", "--val-split", "0", "--patience", "2"], 1, "--patience stops on the validation loss, but"),
        (["train", "--val-dir", "a", "--val-split", "0.2"], 2, "not allowed with argument"),
        (["train", "no/such/folder"], 1, "nnlayers: error: image folder not found: no/such/folder"),
        (["evaluate", "missing.nnl", "."], 1, "nnlayers: error: model file not found: missing.nnl"),
        (["predict", "missing.nnl", "x.jpg"], 1, "nnlayers: error: model file not found"),
        (["info", __file__], 1, "is not an nnlayers model file"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_and_files_exit_non_zero_without_traceback(env, tmp_path, args, code, message):
    result = run(env, *args, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_predict_reports_unreadable_photos(env, trained, tmp_path):
    work, _ = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    result = run(env, "predict", work / "model.nnl", bad)
    assert result.returncode == 1 and "broken.jpg" in result.stderr and "Traceback" not in result.stderr


def test_diverging_run_stops_with_a_message(env, tmp_path):
    result = run(env, "train", "--lr", "1e6", "--epochs", "5", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("training diverged in epoch") == 1  # one message, not two
    assert "learning rate 1e+06" in result.stderr and "smaller learning rate (e.g. 100000)" in result.stderr
    assert "nnlayers: error: training diverged; no model file was written to model.nnl" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "model.nnl").exists()


def test_one_class_folder_is_a_clear_error(env, tmp_path):
    src = Path(env["NNLAYERS_CACHE_DIR"]) / "builtin-shapes-v2" / "circle"
    if not src.is_dir():
        pytest.skip("built-in set not made yet")
    shutil.copytree(src, tmp_path / "only")
    result = run(env, "train", tmp_path / "only", cwd=tmp_path)
    assert result.returncode == 1 and "holds only one class" in result.stderr


def test_progress_bar_in_a_real_terminal(env, tmp_path):
    """With stderr a terminal, training shows tqdm bars; piped, it prints plain lines (above)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a real terminal has a size
    process = subprocess.Popen(
        [*COMMAND, "train", "--epochs", "2", "--no-cache"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(terminal)
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    process.wait(timeout=60)
    os.close(controller)
    text = screen.decode(errors="replace")
    assert process.returncode == 0, text
    assert "loading images" in text and "img" in text  # the decoding bar
    assert "epoch 1/2:" in text and "batch" in text  # the training bar (tqdm's "desc: ...")
    assert "\r" in text.replace("\r\n", "")  # bars are redrawn in place


def test_three_classes_through_train_evaluate_and_predict(env, tmp_path):
    """Circles, squares and triangles: a softmax head without any new flag, then the K-class outputs."""
    from nnlayers.data.builtin import builtin_dataset

    folder = builtin_dataset(tmp_path / "shapes", per_class=80, kinds=("circle", "square", "triangle"))
    result = run(env, "train", folder, "--epochs", "20", "--quiet", "--out", "shapes.nnl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[2]) > 0.9  # validation accuracy on the held-out 20%
    model = load(tmp_path / "shapes.nnl")
    assert model.classes == ["circle", "square", "triangle"] and model[-1].out_features == 3

    scores = json.loads(run(env, "evaluate", tmp_path / "shapes.nnl", folder, "--json").stdout)
    assert scores["accuracy"] > 0.9 and np.array(scores["confusion_matrix"]).shape == (3, 3)
    assert [round(row["support"]) for row in scores["per_class"]] == [80, 80, 80]
    table = run(env, "evaluate", tmp_path / "shapes.nnl", folder).stdout
    assert "triangle" in table and "precision" in table and "macro" in table

    photos = [folder / "triangle" / "triangle.1.jpg", folder / "circle" / "circle.2.jpg"]
    rows = json.loads(run(env, "predict", tmp_path / "shapes.nnl", *photos, "--json", "--top-k", "2").stdout)
    proba = predict_proba(model, [str(p) for p in photos])
    for row, p in zip(rows, proba):
        assert row["label"] == model.classes[int(p.argmax())] and row["probability"] == pytest.approx(p.max(), rel=1e-6)
        assert [t["probability"] for t in row["top"]] == pytest.approx(sorted(p, reverse=True)[:2], rel=1e-6)
    listing = run(env, "predict", tmp_path / "shapes.nnl", folder / "circle")  # a folder: every photo inside
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 80


def test_the_builtin_set_trains_a_cnn_in_seconds(env, tmp_path):
    result = run(env, "train", "--arch", "cnn", "--quiet", "--history", "h.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the cnn's default: every photo trains (no hold-out), the last epoch is saved and its figures reported
    assert result.stdout.startswith("training accuracy ") and "no photo was held out" in result.stdout
    history = json.loads((tmp_path / "h.json").read_text())["history"]
    reported = float(result.stdout.split()[2])
    assert reported == pytest.approx(history["accuracy"][-1], abs=5e-5) and reported >= 0.9
    assert "val_loss" not in history and load(tmp_path / "model.nnl").metadata["saved_epoch"] == 6
    assert load(tmp_path / "model.nnl").metadata["train_settings"]["save"] == "last"
    model = load(tmp_path / "model.nnl")
    assert type(model[0]).__name__ == "Conv2D" and model.preprocessing["size"] == [32, 32]


def test_a_short_cnn_run_on_real_photos_learns(shared_data, env, tmp_path):
    """A few hundred Kaggle photos, through the command line: above chance, loss falling, files that reproduce."""
    photos = copy_kaggle_photos(shared_data, tmp_path / "photos", 200)
    test = shared_data / "dogs-vs-cats" / "test"
    args = ["train", photos, "--arch", "cnn", "--size", "32", "--epochs", "8", "--val-dir", test, "--save", "last"]
    result = run(env, *args, "--history", "h.json", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "h.json").read_text())["history"]
    assert history["loss"][-1] < 0.9 * history["loss"][0]  # learning: the training loss falls
    accuracy = float(result.stdout.split()[2])
    assert accuracy >= 0.6  # on the 1,000 held-out photos, clearly above chance (0.5)
    scores = json.loads(run(env, "evaluate", tmp_path / "model.nnl", test, "--json").stdout)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=5e-5)  # the file reproduces the run's figure
    photos_to_check = sorted(test.glob("*.jpg"))[:20]
    rows = json.loads(run(env, "predict", tmp_path / "model.nnl", *photos_to_check, "--json").stdout)
    model = load(tmp_path / "model.nnl")
    proba = predict_proba(model, [str(p) for p in photos_to_check])
    assert [r["p_dog"] for r in rows] == pytest.approx(proba.tolist(), rel=1e-6)


def test_a_vision_transformer_trains_from_the_command_line_and_its_file_is_used(shared_data, env, tmp_path):
    """--arch vit on a few hundred photos: it learns, and its file evaluates, predicts, explains and exports."""
    photos = copy_kaggle_photos(shared_data, tmp_path / "photos", 150)
    test = shared_data / "dogs-vs-cats" / "test"
    result = run(env, "train", photos, "--arch", "vit", "--size", "32", "--epochs", "4", "--history", "h.json", "--quiet",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "h.json").read_text())["history"]
    assert history["loss"][-1] < history["loss"][0]  # learning
    model = load(tmp_path / "model.nnl")
    names = [type(layer).__name__ for layer in model]
    assert names[:3] == ["Conv2D", "ImageToSequence", "ClassToken"] and "TransformerEncoder" in names
    scores = json.loads(run(env, "evaluate", tmp_path / "model.nnl", test, "--json").stdout)
    assert scores["n"] == 1000 and 0.0 <= scores["accuracy"] <= 1.0
    first = sorted(test.glob("*.jpg"))[:3]
    rows = json.loads(run(env, "predict", tmp_path / "model.nnl", *first, "--json").stdout)
    assert [r["p_dog"] for r in rows] == pytest.approx(predict_proba(model, [str(p) for p in first]).tolist(), rel=1e-5)
    explained = run(env, "explain", tmp_path / "model.nnl", first[0], "--method", "saliency", "--out", tmp_path / "why")
    assert explained.returncode == 0, explained.stderr
