"""Round three of hardening: hangs under MPI, files that overwrite each other, hostile model files,
resumes that change the run, and errors that said too little.

Each test reproduces one finding of the review (numbered as in the issue) and fails on the code
before the fix. Hangs run under a time limit in a child process; memory is measured in a child
process (its peak resident set), as in round two (`tests/test_hardening.py`).
"""

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BatchNorm1D,
    BatchNorm2D,
    BCEWithLogitsLoss,
    CosineAnnealingLR,
    Dense,
    GlobalAvgPool2D,
    ModelCheckpoint,
    RandomCrop,
    Sequential,
    Sigmoid,
    Tanh,
    clip_grad_norm,
    evaluate,
    fit,
    load,
    load_image_folder,
    save,
)
from nnlayers.data.builtin import builtin_dataset
from nnlayers.saving import serialize

from .test_hardening import baseline_mb, child_peak_mb, forged, run_cli


def write_photo(path: Path, pixels: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(pixels[..., ::-1]))  # cv2 writes BGR
    return path


def two_class_model(classes=("cat", "dog"), size=2):
    """The tutorial's network on size x size photos, with what a model file needs to predict."""
    model = Sequential([Dense(size * size * 3, 3, rng=0), Tanh(), Dense(3, 1, rng=1), Sigmoid()])
    model.classes, model.preprocessing = list(classes), {"size": [size, size], "layout": "NHWC, flattened"}
    return model


# --- 3, 4: files that overwrite each other ------------------------------------------------------------


def test_3_export_onto_its_own_model_is_refused_and_the_model_kept(tmp_path):
    path = save(two_class_model(), tmp_path / "m.nnl")
    before = path.read_bytes()
    os.symlink(path, tmp_path / "link.onnx")
    for out in (path, tmp_path / "link.onnx", tmp_path / "." / "m.nnl"):
        result = run_cli("export", path, out)
        assert result.returncode == 1 and "is the same file as MODEL" in result.stderr, result.stderr
    assert path.read_bytes() == before and load(path) is not None


@pytest.mark.parametrize(
    "outputs, message",
    [
        (["--out", "F", "--history", "F"], "--history F is the same file as --out F"),
        (["--out", "F", "--plot", "F"], "--plot F is the same file as --out F"),
        (["--out", "ck/last.nnl", "--checkpoint-dir", "ck"], "--out ck/last.nnl is the same file as --checkpoint"),
        (["--history", "ck/best.nnl", "--checkpoint-dir", "ck"], "as --checkpoint-dir's best.nnl ck/best.nnl"),
    ],
)
def test_3_train_refuses_colliding_outputs_before_any_work(tmp_path, outputs, message):
    result = run_cli("train", "--epochs", "1", *outputs, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "epoch 1/1" not in result.stderr and not (tmp_path / "F").exists()
    assert not (tmp_path / "ck" / "last.nnl").exists()


def test_3_a_resumed_run_may_not_save_its_model_over_the_checkpoint(tmp_path):
    first = run_cli("train", "--epochs", "1", "--quiet", "--checkpoint-dir", "ck", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "ck" / "last.nnl").read_bytes()
    result = run_cli("train", "--epochs", "2", "--resume", "ck/last.nnl", "--out", "ck/last.nnl", cwd=tmp_path)
    assert result.returncode == 1 and "--out ck/last.nnl is the same file as" in result.stderr, result.stderr
    assert (tmp_path / "ck" / "last.nnl").read_bytes() == before
    again = run_cli("train", "--epochs", "2", "--resume", "ck/last.nnl", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the checkpoint is still one


def test_3_a_grid_may_not_overwrite_a_photo_it_draws(tmp_path):
    model_path = save(two_class_model(), tmp_path / "m.nnl")
    photo = write_photo(tmp_path / "cat.1.png", np.full((2, 2, 3), 200, np.uint8))
    before = photo.read_bytes()
    result = run_cli("predict", model_path, photo, "--grid", photo)
    assert result.returncode == 1 and "--grid" in result.stderr and "same file as IMAGE" in result.stderr
    assert photo.read_bytes() == before


def test_4_cache_clear_removes_only_the_cache_s_own_files(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    mine = {
        "notes.json": b'{"labels": [], "paths": []}',
        "weights.npy": b"\x93NUMPY",
        "0123456789abcdef0123456789abcdef.json": b'{"mine": true}',
        "nnl-notes.json": b"{}",
        "data.latest": b"nothing",
    }
    for name, data in mine.items():
        (project / name).write_bytes(data)
    shapes = builtin_dataset(tmp_path / "shapes", per_class=4)
    env = {"NNLAYERS_CACHE_DIR": str(project)}
    load_image_folder(shapes, size=8, cache=project, workers=1)
    assert len(list(project.glob("nnl-*.npy"))) == 1
    result = run_cli("cache", "clear", env=env)
    assert result.returncode == 0 and "removed 1 cached folder" in result.stdout, result.stdout
    assert sorted(p.name for p in project.iterdir()) == sorted(mine)  # the user's files, all of them
    assert all((project / name).read_bytes() == data for name, data in mine.items())


# --- 5, 6: hostile model files that cost unbounded time or memory ---------------------------------------


def test_5_loading_is_linear_in_the_number_of_layers_with_a_stated_limit(tmp_path):
    limit = getattr(serialize, "MAX_LAYERS", 100_000)  # (stated in docs/model-format.md)
    many = forged(tmp_path / "many.nnl", {"architecture": {"type": "Sequential", "layers": [{"type": "ReLU"}] * 20000}})
    code = f"""
        import time
        from nnlayers import load
        start = time.perf_counter()
        model = load({str(many)!r})
        print("LAYERS", len(model), time.perf_counter() - start)
        """
    out, _, seconds = child_peak_mb(code, timeout=60)  # quadratic: about 20 minutes
    assert "LAYERS 20000" in out and seconds < 30
    info = run_cli("info", many, timeout=60)
    assert info.returncode == 0 and "parameters      0" in info.stdout
    too_many = forged(
        tmp_path / "too-many.nnl", {"architecture": {"type": "Sequential", "layers": [{"type": "ReLU"}] * limit}}
    )
    for command in (["info"], ["predict"]):
        result = run_cli(*command, too_many, *(["x.jpg"] if command == ["predict"] else []), timeout=60)
        assert result.returncode == 1 and f"more than {limit:,} layers" in result.stderr, result.stderr


def test_6_a_tiny_file_claiming_a_huge_batchnorm_is_refused_before_allocating(tmp_path):
    layer = {"type": "BatchNorm1D", "config": {"num_features": 250_000_000}}
    path = forged(tmp_path / "bn.nnl", {"architecture": {"type": "Sequential", "layers": [layer]}})
    assert path.stat().st_size < 1200
    out, peak, _ = child_peak_mb(
        f"""
        from nnlayers import load, ModelFileError
        from nnlayers.cli.main import main
        try:
            load({str(path)!r})
        except ModelFileError as error:
            print("REFUSED", error)
        print("INFO EXIT", main(["info", {str(path)!r}]))
        """
    )
    assert "REFUSED cannot build BatchNorm1D" in out and "250,000,000 values, more than the 0" in out
    assert "INFO EXIT 1" in out
    assert peak < baseline_mb() + 50  # it reached about 2 GB
    # a real BatchNorm still loads, with its statistics
    model = Sequential([Dense(3, 4, rng=0), BatchNorm1D(4)])
    model(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32))
    save(model, tmp_path / "ok.nnl")
    np.testing.assert_array_equal(load(tmp_path / "ok.nnl")[1].running_var, model[1].running_var)


# --- 7: layers bound what their configuration may demand ----------------------------------------------


def test_7_a_convolution_padded_far_beyond_its_kernel_is_refused_at_load(tmp_path):
    conv = {
        "type": "Conv2D",
        "config": {"in_channels": 3, "out_channels": 3, "kernel_size": [1, 1], "padding": [30000, 30000]},
    }
    arrays = {"weights.0.weight": np.zeros((3, 3, 1, 1), np.float32), "weights.0.bias": np.zeros(3, np.float32)}
    path = forged(tmp_path / "pad.nnl", {"architecture": {"type": "Sequential", "layers": [conv]}}, arrays)
    assert path.stat().st_size < 1000
    out, peak, _ = child_peak_mb(
        f"""
        from nnlayers import load, ModelFileError
        try:
            load({str(path)!r})
        except ModelFileError as error:
            print("REFUSED", error)
        """
    )
    assert "REFUSED cannot build Conv2D" in out and "padding must be at most the kernel's extent" in out
    assert peak < baseline_mb() + 50
    with pytest.raises(ValueError, match="at most the kernel's extent, got \\(4, 0\\) for \\(3, 3\\)"):
        from nnlayers import Conv2D

        Conv2D(3, 3, 3, padding=(4, 0))


def test_7_a_pool_window_of_padding_is_refused_at_once_naming_the_layer(tmp_path):
    from nnlayers import MaxPool2D

    layers = [
        {"type": "MaxPool2D", "config": {"kernel_size": [3000, 3000], "padding": [1500, 1500]}},
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "config": {"in_features": 3, "out_features": 1}},
    ]
    arrays = {"weights.2.weight": np.zeros((1, 3), np.float32), "weights.2.bias": np.zeros(1, np.float32)}
    header = {"architecture": {"type": "Sequential", "layers": layers}, "classes": ["cat", "dog"],
              "preprocessing": {"size": [64, 64], "layout": "NHWC"}}  # fmt: skip
    path = forged(tmp_path / "pool.nnl", header, arrays)
    photo = write_photo(tmp_path / "cat.1.png", np.zeros((64, 64, 3), np.uint8))
    start = time.perf_counter()
    result = run_cli("predict", path, photo, timeout=60)
    assert result.returncode == 1 and "MaxPool2D got images of 64x64, smaller than its window" in result.stderr
    assert time.perf_counter() - start < 10  # it took 14 s a photo
    assert MaxPool2D(3, stride=1, padding=1)(np.ones((1, 2, 2, 1))).shape == (1, 2, 2, 1)  # the usual still works
    from nnlayers.cli.common import describe_error

    message = describe_error(MemoryError("Unable to allocate 40.0 GiB for an array with shape (1, 60001, 60001, 3)"))
    assert "40.0 GiB" in message and "a model whose layers need more than this machine has" in message


# --- 8, 9: a resumed run is the run it continues --------------------------------------------------------


def test_8_resuming_with_more_epochs_continues_down_the_longer_cosine(tmp_path):
    first = run_cli("train", "--epochs", "2", "--schedule", "cosine", "--lr", "0.002", "--quiet",
                    "--checkpoint-dir", "ck", cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    resumed = run_cli(
        "train", "--epochs", "6", "--resume", "ck/last.nnl", "--history", "h.json", "--quiet", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    rates = json.loads((tmp_path / "h.json").read_text())["history"]["lr"]
    cosine = lambda epoch, total: 0.002 * (1 + math.cos(math.pi * epoch / total)) / 2  # noqa: E731
    expected = [cosine(0, 2), cosine(1, 2)] + [cosine(e, 6) for e in range(2, 6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)  # it was 0.002, 0.001, 0.0, 0.001, 0.002, 0.001


def test_8_in_code_a_schedule_built_for_more_epochs_takes_over_from_the_checkpoint(tmp_path):
    import shutil

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)

    def run(epochs, t_max, resume=None):
        model = Sequential([Dense(3, 1, rng=0, dtype=np.float64)])
        opt = SGD(model.parameters(), lr=0.1)
        cb = [ModelCheckpoint(tmp_path / f"ck{epochs}")]
        history = fit(model, BCEWithLogitsLoss(), opt, (x, y), epochs=epochs, verbose=0, callbacks=cb,
                      scheduler=CosineAnnealingLR(opt, T_max=t_max), resume=resume)  # fmt: skip
        return history.history["lr"]

    run(2, 2)
    start = shutil.copy(tmp_path / "ck2" / "last.nnl", tmp_path / "after-2.nnl")
    longer = run(5, 5, resume=start)
    np.testing.assert_allclose(longer[2:], [0.05 * (1 + math.cos(math.pi * e / 5)) for e in range(2, 5)], rtol=1e-12)
    same = run(3, 2, resume=start)  # the same schedule: exactly where it was, on to its minimum
    assert same[:2] == [0.1, 0.05] and abs(same[2]) < 1e-15


def test_9_a_resumed_run_validates_on_the_same_photos(tmp_path):
    train = builtin_dataset(tmp_path / "train", per_class=12)
    val = builtin_dataset(tmp_path / "val", per_class=5)
    common = ["--size", "16", "--quiet", "--checkpoint-dir", "ck"]
    first = run_cli("train", train, "--val-dir", val, "--epochs", "1", *common, cwd=tmp_path)
    assert first.returncode == 0 and f"10 images, {val}" in first.stdout, first.stdout + first.stderr
    resumed = run_cli("train", train, "--epochs", "2", "--resume", "ck/last.nnl", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0 and f"10 images, {val}" in resumed.stdout, resumed.stdout + resumed.stderr
    changed = run_cli("train", train, "--epochs", "3", "--resume", "ck/last.nnl", "--val-split", "0.3", cwd=tmp_path)
    assert changed.returncode == 1 and "cannot change --val-split 0.3" in changed.stderr, changed.stderr
    split = run_cli("train", train, "--val-split", "0.25", "--epochs", "1", "--size", "16", "--quiet",
                    "--checkpoint-dir", "ck2", cwd=tmp_path)  # fmt: skip
    assert split.returncode == 0 and "6 images, held-out 25%" in split.stdout, split.stdout
    again = run_cli("train", train, "--epochs", "2", "--resume", "ck2/last.nnl", "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and "6 images, held-out 25%" in again.stdout, again.stdout


# --- 10: float16 -------------------------------------------------------------------------------------------


def test_10_batchnorm_in_float16_normalises_with_float32_statistics():
    rng = np.random.default_rng(0)
    rows = rng.normal(3, 2, (256, 4)).astype(np.float16)
    out = BatchNorm1D(4, dtype=np.float16)(rows)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float64).std(axis=0), 1, atol=2e-3)  # it was 1.25
    photos = rng.random((64, 64, 64, 3)).astype(np.float16)  # a batch of photos: 262,144 values a channel
    norm = BatchNorm2D(3, dtype=np.float16)
    out = norm(photos)
    assert np.isfinite(out).all() and np.isfinite(norm.running_mean).all()
    np.testing.assert_allclose(out.astype(np.float64).mean(axis=(0, 1, 2)), 0, atol=2e-3)
    np.testing.assert_allclose(norm.running_mean, 0.05, atol=1e-3)  # 0.1 of the batch mean 0.5
    grad = norm.backward((rng.normal(size=out.shape) / out.size).astype(np.float16))
    assert grad.dtype == np.float16 and np.isfinite(grad).all()


def test_10_training_in_float16_on_photos_does_not_diverge():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 64, 64, 3)).astype(np.uint8)
    labels = (images[..., 0].mean(axis=(1, 2)) > 127.5).astype(int)
    model = Sequential([BatchNorm2D(3, dtype=np.float16), GlobalAvgPool2D(), Dense(3, 1, rng=0, dtype=np.float16)])
    history = fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (images, labels), epochs=1, verbose=0)
    assert not history.diverged and np.isfinite(history.history["loss"]).all()


# --- 11, 12, 13, 15: what a model file and a folder say is what is used -------------------------------------


def test_11_predict_takes_the_class_from_the_folder_as_training_does(tmp_path):
    from nnlayers.cli.model_commands import _expand

    photo = np.zeros((2, 2, 3), np.uint8)
    for path in ("pets/dog/cat.999.jpg", "pets/cat/cat.1.jpg", "ab/b/a1.jpg", "ab/a/a2.jpg", "flat/cat.3.jpg"):
        write_photo(tmp_path / path, photo)
    files, truth, _ = _expand([str(tmp_path / "pets")], ["cat", "dog"])
    assert dict(zip((Path(f).name for f in files), truth)) == {"cat.999.jpg": 1, "cat.1.jpg": 0}
    assert load_image_folder(tmp_path / "pets", size=2, cache=False).labels.tolist() == [0, 1]  # training agrees
    files, truth, _ = _expand([str(tmp_path / "ab" / "b" / "a1.jpg"), str(tmp_path / "ab")], ["a", "b"])
    assert truth == [1, 0, 1]  # b/a1.jpg is a b, named alone or in its folder
    assert _expand([str(tmp_path / "flat" / "cat.3.jpg")], ["cat", "dog"])[1] == [0]  # Kaggle names still count
    model = two_class_model(("a", "b"))
    model[2].weight.data[...] = 0
    model[2].bias.data[...] = -5  # always "a"
    path = save(model, tmp_path / "ab.nnl")
    result = run_cli("predict", path, tmp_path / "ab", "--grid", tmp_path / "grid.png", "--mistakes")
    assert result.returncode == 0 and "no mistakes" not in result.stderr, result.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0  # b/a1.jpg predicted a: a mistake to draw


def test_12_the_header_s_scale_and_channel_order_are_honoured(tmp_path):
    model = two_class_model()
    model[0].weight.data[...] = 0
    model[0].weight.data[0, 0::3] = 1  # the first hidden unit sees the first channel of each pixel
    model[2].weight.data[...] = [[1.0, 0.0, 0.0]]
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 10, 250  # little red, much blue
    photo = write_photo(tmp_path / "cat.1.png", pixels)

    def predicted(preprocessing):
        model.preprocessing = {"size": [2, 2], "layout": "NHWC, flattened", **preprocessing}
        result = run_cli("predict", save(model, tmp_path / "m.nnl"), photo, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]["p_dog"]

    def expected(first_channel):
        return float(model(np.full((1, 12), first_channel, np.float32) * np.tile([1, 0, 0], 4))[0, 0])

    assert predicted({}) == pytest.approx(expected(10 / 255), rel=1e-5)
    assert predicted({"scale": 1.0}) == pytest.approx(expected(10.0), rel=1e-5)
    assert predicted({"channel_order": "BGR"}) == pytest.approx(expected(250 / 255), rel=1e-5)
    for bad, message in (({"channel_order": "BRG"}, "channel_order must be one of"), ({"scale": -1}, "scale must be"),
                         ({"layout": "NCHW"}, "layout must be one of")):  # fmt: skip
        model.preprocessing = {"size": [2, 2], **bad}
        result = run_cli("predict", save(model, tmp_path / "bad.nnl"), photo)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    model.preprocessing = {"size": [2, 2], "layout": "NHWC"}  # the model takes rows
    info = run_cli("predict", save(model, tmp_path / "layout.nnl"), photo)
    assert info.returncode == 1 and "its layers take 'NHWC, flattened'" in info.stderr, info.stderr


def test_13_evaluate_refuses_a_model_whose_outputs_are_not_its_classes(tmp_path):
    shapes = builtin_dataset(tmp_path / "shapes", per_class=3)
    model = Sequential([Dense(2 * 2 * 3, 3, rng=0)])  # three outputs
    model.classes, model.preprocessing = ["circle", "square"], {"size": [2, 2]}
    path = save(model, tmp_path / "m.nnl")
    result = run_cli("evaluate", path, shapes)
    assert result.returncode == 1 and "gives 3 outputs for 2 classes" in result.stderr, result.stdout + result.stderr
    assert "macro" not in result.stdout
    data = load_image_folder(shapes, size=2, cache=False)
    with pytest.raises(ValueError, match="gives 3 outputs for 2 classes"):
        evaluate(model, data)


def test_15_predict_says_which_entries_of_a_folder_it_left_out(tmp_path):
    folder = tmp_path / "photos"
    write_photo(folder / "cat.1.png", np.zeros((2, 2, 3), np.uint8))
    os.mkfifo(folder / "cat.2.jpg")
    os.symlink(folder / "gone.jpg", folder / "dog.3.jpg")
    result = run_cli("predict", save(two_class_model(), tmp_path / "m.nnl"), folder, timeout=60)
    assert result.returncode == 0 and "cat.1.png" in result.stdout, result.stderr
    assert "skipped" in result.stderr and "cat.2.jpg: not a regular file" in result.stderr
    assert "dog.3.jpg: broken link" in result.stderr


# --- 16, 17: errors that say what was wrong --------------------------------------------------------------


def bn_model():
    return Sequential([Dense(4, 3, rng=0, dtype=np.float64), BatchNorm1D(3, dtype=np.float64), Tanh(),
                       Dense(3, 1, rng=1, dtype=np.float64)])  # fmt: skip


def test_16_a_last_batch_of_one_is_named_before_training_and_drop_last_leaves_it_out():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(65, 4)), rng.integers(0, 2, 65)
    model = bn_model()
    before = model.state_dict()
    with pytest.raises(
        ValueError, match="the last batch of each epoch holds 1 example .65 examples in batches of 64.*drop_last=True"
    ):
        fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, verbose=0)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())  # refused before training
    opt = SGD(model.parameters(), lr=0.1)
    history = fit(model, BCEWithLogitsLoss(), opt, (x, y), epochs=3, verbose=0, drop_last=True)
    assert opt.step_count == 3 and len(history.epochs) == 3  # one batch of 64 an epoch
    # the batch drawn is the first 64 of the epoch's order: the same first step as 64 examples in one batch
    a, b = bn_model(), bn_model()
    fit(a, BCEWithLogitsLoss(), SGD(a.parameters(), lr=0.1), (x, y), epochs=1, verbose=0, drop_last=True)
    order = np.random.default_rng(0).permutation(65)[:64]
    fit(b, BCEWithLogitsLoss(), SGD(b.parameters(), lr=0.1), (x[order], y[order]), epochs=1, verbose=0,
        batch_size=64, seed=1)  # fmt: skip
    for key, value in a.state_dict().items():
        np.testing.assert_allclose(value, b.state_dict()[key], rtol=1e-12, atol=1e-15, err_msg=key)
    with pytest.raises(ValueError, match="leaves no batch to train on"):
        fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.1), (x[:10], y[:10]), verbose=0, drop_last=True)


def test_17_a_crop_wider_than_the_image_shifts_it_out_of_view():
    rng = np.random.default_rng(0)
    batch = rng.random((50, 2, 3, 1))
    out = RandomCrop(4, fill=-1.0)(batch.copy(), np.random.default_rng(1))
    shifts = np.random.default_rng(1).integers(-4, 5, size=(50, 2))
    for image, crop, (dy, dx) in zip(batch, out, shifts):  # pad by 4 with the fill, cut the window at (4+dy, 4+dx)
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), constant_values=-1.0)
        np.testing.assert_array_equal(crop, padded[4 + dy : 6 + dy, 4 + dx : 7 + dx])


def test_17_train_refuses_a_size_the_network_cannot_take_before_decoding(tmp_path):
    photos = builtin_dataset(tmp_path / "shapes", per_class=4)
    result = run_cli("train", photos, "--arch", "cnn", "--size", "8", "--no-cache")
    assert result.returncode == 1 and "--arch cnn cannot take photos of --size 8" in result.stderr, result.stderr
    assert "decod" not in result.stderr.lower()


def test_17_clip_norm_type_global_pool_of_nothing_and_a_resume_that_does_not_fit():
    from nnlayers import Parameter

    p = Parameter(np.zeros(2))
    p.grad[:] = [3.0, 4.0]
    for bad in (0, -1, "2", True):
        with pytest.raises(ValueError, match="norm_type must be a positive number"):
            clip_grad_norm([p], 1.0, norm_type=bad)
    assert clip_grad_norm([p], 10.0, norm_type=1) == 7.0
    with pytest.raises(ValueError, match="empty images of 0x0"):
        GlobalAvgPool2D()(np.zeros((2, 0, 0, 3)))


def test_17_a_resume_whose_optimizer_state_does_not_fit_leaves_the_weights(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.integers(0, 2, 30)
    model = bn_model()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, BCEWithLogitsLoss(), opt, (x, y), epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path)])
    other = bn_model()
    before = other.state_dict()
    params = other.parameters()
    reordered = SGD(params[::-1], lr=0.1, momentum=0.9)  # as many parameters, other shapes
    with pytest.raises(ValueError, match="does not match parameter"):
        fit(other, BCEWithLogitsLoss(), reordered, (x, y), epochs=2, verbose=0, resume=tmp_path / "last.nnl",
            callbacks=[ModelCheckpoint(tmp_path / "new")])  # fmt: skip
    assert all(np.array_equal(v, other.state_dict()[k]) for k, v in before.items())
