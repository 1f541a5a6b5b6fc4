"""The image loader on real photos and on a folder of awkward files built here; cache; splits; batches."""

import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from nnlayers.data import ImageLoadError, batches, load_image, load_image_folder, split_indices, train_test_split
from nnlayers.data import dataset as data

SEED_SIZE = 64


def seed_read_image(file_path):
    """The seed's read_image, verbatim (BGR, full decode, INTER_CUBIC)."""
    img = cv2.imread(file_path, cv2.IMREAD_COLOR)
    return cv2.resize(img, (SEED_SIZE, SEED_SIZE), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def photos(shared_data):
    path = shared_data / "dogs-vs-cats" / "train"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def test_shared_training_folder_labels_shapes_and_seed_fidelity(photos, tmp_path):
    dataset = load_image_folder(photos, backend="cv2", reduce=False, interpolation="cubic", cache=tmp_path)
    assert dataset.images.shape == (6002, 64, 64, 3) and dataset.images.dtype == np.uint8
    assert dataset.labels.dtype == np.int64 and dataset.classes == ["cat", "dog"]
    assert dataset.class_counts() == {"cat": 3001, "dog": 3001}
    for path, label in zip(dataset.paths, dataset.labels):  # the seed's rule: 'dog' in the name -> 1
        assert label == (1 if "dog" in Path(path).name.lower() else 0), path
    assert not dataset.skipped
    rng = np.random.default_rng(0)
    for i in rng.choice(len(dataset), 60, replace=False):
        expected = seed_read_image(dataset.paths[i])[:, :, ::-1]  # BGR -> RGB
        np.testing.assert_array_equal(dataset.images[i], expected, err_msg=dataset.paths[i])


def test_fast_defaults_stay_close_to_the_seed(photos):
    files = sorted(photos.iterdir())[:20]
    for path in files:
        fast = load_image(path).astype(int)  # reduced decode + cubic
        exact = seed_read_image(str(path))[:, :, ::-1].astype(int)
        assert np.corrcoef(fast.ravel(), exact.ravel())[0, 1] > 0.95, path  # same picture, other resampling


def write_jpeg(path, rgb, **kwargs):
    Image.fromarray(rgb).save(path, "JPEG", quality=92, **kwargs)


def gradient_image(height=120, width=160):
    """Red on the left half, blue on the right: orientation is easy to check."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (220, 30, 30)
    img[:, width // 2 :] = (30, 30, 220)
    return img


@pytest.fixture()
def awkward_folder(tmp_path, photos):
    """One subfolder per class, with every kind of file a real folder holds."""
    root = tmp_path / "pets"
    cat, dog = root / "cat", root / "dog"
    cat.mkdir(parents=True)
    dog.mkdir()
    cat_photos = sorted(photos.glob("cat.*.jpg"))[:3]
    dog_photos = sorted(photos.glob("dog.*.jpg"))[:3]
    for src in cat_photos:
        shutil.copy(src, cat / src.name)
    for src in dog_photos:
        shutil.copy(src, dog / src.name)
    shutil.copy(cat_photos[0], cat / "chat_été_猫.jpg")  # non-ASCII name
    rgb = np.asarray(Image.open(dog_photos[0]).convert("RGB"))
    Image.fromarray(rgb).convert("L").save(dog / "gray.jpg")
    Image.fromarray(rgb).convert("RGBA").save(dog / "rgba.png")
    Image.fromarray(rgb).convert("P").save(dog / "palette.png", transparency=0)
    Image.fromarray(rgb).convert("CMYK").save(dog / "cmyk.jpg")
    cv2.imwrite(str(dog / "deep16.png"), (rgb[:, :, ::-1].astype(np.uint16) * 257))  # 16-bit
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    write_jpeg(dog / "phone.jpg", gradient_image(), exif=exif.tobytes())
    good = (dog / dog_photos[1].name).read_bytes()
    (dog / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (dog / "empty.jpg").write_bytes(b"")
    (dog / "fake.png").write_bytes(b"this is not a png at all")
    (dog / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / ".hidden.jpg").write_bytes(good)
    (cat / ".ipynb_checkpoints").mkdir()
    shutil.copy(cat_photos[0], cat / ".ipynb_checkpoints" / "copy.jpg")
    return root


@pytest.mark.parametrize("backend", ["cv2", "pil"])
def test_awkward_folder_loads_good_files_and_reports_bad_ones(awkward_folder, backend):
    with pytest.warns(UserWarning) as caught:
        dataset = load_image_folder(awkward_folder, size=(32, 48), backend=backend, cache=False, workers=1)
    names = [Path(p).name for p in dataset.paths]
    assert sorted(names) == sorted(
        [p.name for p in (awkward_folder / "cat").iterdir() if p.suffix == ".jpg" and not p.name.startswith(".")]
        + [p.name for p in (awkward_folder / "dog").iterdir() if p.name.startswith("dog.")]
        + ["gray.jpg", "rgba.png", "palette.png", "cmyk.jpg", "deep16.png", "phone.jpg"]
    )
    assert "chat_été_猫.jpg" in names
    assert dataset.images.shape == (len(names), 32, 48, 3) and dataset.images.dtype == np.uint8
    assert dataset.classes == ["cat", "dog"]
    skipped = {Path(p).name: reason for p, reason in dataset.skipped}
    assert set(skipped) == {"truncated.jpg", "empty.jpg", "fake.png"}
    assert "truncated" in skipped["truncated.jpg"] and "empty file" in skipped["empty.jpg"]
    assert "not a readable image" in skipped["fake.png"]
    warned = " ".join(str(w.message) for w in caught)
    assert all(name in warned for name in skipped)
    assert dataset.ignored["hidden"] == 3 and dataset.ignored["non-image"] == 1

    image = dict(zip(names, dataset.images))
    gray = image["gray.jpg"].astype(int)
    assert np.abs(gray[:, :, 0] - gray[:, :, 1]).max() <= 2  # grey stays grey, in three channels
    reference = image[sorted(n for n in names if n.startswith("dog."))[0]].astype(int)
    for name in ("rgba.png", "deep16.png", "cmyk.jpg"):  # same photo, other encodings
        assert np.abs(image[name].astype(int) - reference).mean() < 12, name
    # the EXIF-rotated photo is upright: rotated clockwise, its red left half is now on top
    phone = image["phone.jpg"].astype(int)
    assert phone[2, 24, 0] > 150 and phone[2, 24, 2] < 100, "top should be red"
    assert phone[-3, 24, 2] > 150 and phone[-3, 24, 0] < 100, "bottom should be blue"


def test_both_backends_agree_on_orientation_and_content(awkward_folder):
    kwargs = dict(size=32, cache=False, workers=1, interpolation="area")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_image_folder(awkward_folder, backend="cv2", **kwargs)
        b = load_image_folder(awkward_folder, backend="pil", **kwargs)
    assert a.paths == b.paths
    diff = np.abs(a.images.astype(int) - b.images.astype(int)).reshape(len(a), -1).mean(axis=1)
    assert diff.max() < 10, dict(zip(a.paths, diff))


def test_on_error_raise_names_the_first_bad_file(awkward_folder):
    with pytest.raises(ImageLoadError, match=r"cmyk|empty\.jpg|fake\.png|truncated\.jpg") as info:
        load_image_folder(awkward_folder, on_error="raise", cache=False, workers=1)
    assert "empty.jpg: empty file" in str(info.value)  # files go in sorted order; empty.jpg is the first bad one


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
    header += (50_000).to_bytes(4, "big") + (50_000).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0]) + b"\0\0\0\0"
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(header + b"\0" * 64)
    with pytest.raises(ImageLoadError, match=r"bomb\.png: refused, 50000x50000 = 2,500,000,000 pixels"):
        load_image(bomb)
    small = tmp_path / "small.jpg"
    write_jpeg(small, gradient_image())
    with pytest.raises(ImageLoadError, match="over max_pixels=1,000"):
        load_image(small, max_pixels=1000)


def test_pil_16_bit_grayscale_scaled_like_opencv(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    cv2.imwrite(str(path), ramp)
    a = load_image(path, 64, backend="cv2", interpolation="nearest")
    b = load_image(path, 64, backend="pil", interpolation="nearest")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and a.max() > 200


def make_flat_folder(root, photos, n_per_class=40):
    root.mkdir()
    for prefix in ("cat", "dog"):
        for src in sorted(photos.glob(f"{prefix}.*.jpg"))[:n_per_class]:
            shutil.copy(src, root / src.name)
    return root


def test_cache_hits_and_reloads_on_changes(photos, tmp_path, monkeypatch):
    folder = make_flat_folder(tmp_path / "flat", photos)
    cache = tmp_path / "cache"
    calls = []
    real_decode_all = data._decode_all
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: calls.append(1) or real_decode_all(*a, **k))

    first = load_image_folder(folder, cache=cache, workers=1)
    second = load_image_folder(folder, cache=cache, workers=1)
    assert len(calls) == 1  # the second load came from the cache
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.paths == second.paths and first.classes == second.classes

    load_image_folder(folder, size=32, cache=cache, workers=1)
    assert len(calls) == 2  # another option, another entry

    victim = folder / "cat.0.jpg"
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched
    load_image_folder(folder, cache=cache, workers=1)
    assert len(calls) == 3

    shutil.copy(folder / "dog.0.jpg", folder / "cat.0.jpg")  # content replaced
    replaced = load_image_folder(folder, cache=cache, workers=1)
    assert len(calls) == 4
    i = replaced.paths.index(str(victim))
    assert not np.array_equal(replaced.images[i], first.images[i])

    (folder / "dog.1.jpg").unlink()  # removed
    assert len(load_image_folder(folder, cache=cache, workers=1)) == len(first) - 1
    shutil.copy(photos / "dog.2999.jpg", folder / "dog.2999.jpg")  # added
    assert len(load_image_folder(folder, cache=cache, workers=1)) == len(first)
    assert len(calls) == 6


def test_cache_survives_a_corrupt_entry(photos, tmp_path):
    folder = make_flat_folder(tmp_path / "flat", photos, 5)
    cache = tmp_path / "cache"
    first = load_image_folder(folder, cache=cache, workers=1)
    for npy in cache.glob("*.npy"):
        npy.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="was damaged .*; decoding the folder again"):
        again = load_image_folder(folder, cache=cache, workers=1)
    np.testing.assert_array_equal(first.images, again.images)


def test_workers_give_the_same_result_in_the_same_order(photos, tmp_path):
    folder = make_flat_folder(tmp_path / "flat", photos, 60)
    one = load_image_folder(folder, cache=False, workers=1)
    two = load_image_folder(folder, cache=False, workers=2)
    assert one.paths == two.paths
    np.testing.assert_array_equal(one.images, two.images)


def test_filename_and_folder_layouts_and_auto(photos, tmp_path):
    flat = make_flat_folder(tmp_path / "flat", photos, 3)
    assert load_image_folder(flat, labels="auto", cache=False).classes == ["cat", "dog"]
    nested = tmp_path / "nested"
    for name in ("ants", "bees", "cats"):
        (nested / name).mkdir(parents=True)
        for src in sorted(flat.iterdir())[:2]:
            shutil.copy(src, nested / name / f"x{src.name}")
    dataset = load_image_folder(nested, cache=False)
    assert dataset.classes == ["ants", "bees", "cats"] and dataset.class_counts() == {"ants": 2, "bees": 2, "cats": 2}
    assert "0=ants (2), 1=bees (2), 2=cats (2)" in dataset.describe()


def test_explicit_classes_fix_the_mapping(photos, tmp_path):
    flat = make_flat_folder(tmp_path / "flat", photos, 2)
    for p in flat.glob("cat.*"):
        p.unlink()
    dataset = load_image_folder(flat, classes=["cat", "dog"], cache=False)  # only dogs, a model's classes
    assert dataset.classes == ["cat", "dog"] and set(dataset.labels) == {1}
    with pytest.raises(ValueError, match=r"holds classes \['dog'\] that are not among the expected \['ant', 'bee'\]"):
        load_image_folder(flat, classes=["ant", "bee"], cache=False)


def test_verbose_prints_mapping_and_counts(photos, tmp_path, capsys):
    flat = make_flat_folder(tmp_path / "flat", photos, 2)
    load_image_folder(flat, cache=False, verbose=True)
    assert "4 images of 2 classes: 0=cat (2), 1=dog (2)" in capsys.readouterr().err


def test_clear_errors_for_bad_folders(tmp_path, photos):
    with pytest.raises(FileNotFoundError, match="image folder not found: .*missing"):
        load_image_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"no images found in .*empty \(found 1 non-image\)"):
        load_image_folder(empty)
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(photos / "cat.0.jpg", single / "cat.0.jpg")
    with pytest.raises(ValueError, match=r"holds only one class, 'cat' \(1 images\); a classifier needs at least two"):
        load_image_folder(single, cache=False)
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    shutil.copy(photos / "cat.0.jpg", unnamed / "001.jpg")
    shutil.copy(photos / "dog.0.jpg", unnamed / "dog.0.jpg")
    with pytest.raises(ValueError, match=r"cannot infer labels .*\['001.jpg'\].*labels='folders'"):
        load_image_folder(unnamed, cache=False)
    with pytest.raises(ValueError, match="backend must be one of"):
        load_image_folder(unnamed, backend="skimage")
    with pytest.raises(ValueError, match="size must be a positive int"):
        load_image_folder(unnamed, size=(0, 64))


def test_split_is_stratified_seeded_and_disjoint():
    labels = np.array([0] * 70 + [1] * 30)
    train, test = split_indices(labels, 0.2, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 100
    assert np.bincount(labels[test]).tolist() == [14, 6]  # 20% of each class
    again, _ = split_indices(labels, 0.2, seed=3)
    other, _ = split_indices(labels, 0.2, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    x = np.arange(100)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, labels, 0.2, seed=3)
    assert np.array_equal(x_te.ravel(), test) and np.array_equal(y_tr, labels[train])
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        split_indices(labels, 1.5)


def test_batches_cover_every_example_once_in_a_seeded_order():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (103, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 103)
    seen = []
    for x, y in batches(images, labels, 16, shuffle=True, rng=7):
        assert x.dtype == np.float32 and y.dtype == np.float32 and x.shape[1] == 48 and y.shape == (len(x), 1)
        assert 0.0 <= x.min() and x.max() <= 1.0
        for row, target in zip(x, y):
            match = np.flatnonzero((images.reshape(103, -1) == np.rint(row * 255)).all(axis=1))
            assert labels[match[0]] == target[0]
            seen.append(match[0])
    assert sorted(seen) == list(range(103))  # each exactly once
    order = [np.rint(x * 255).astype(np.uint8)[0, 0] for x, _ in batches(images, labels, 16, rng=7)]
    again = [np.rint(x * 255).astype(np.uint8)[0, 0] for x, _ in batches(images, labels, 16, rng=7)]
    other = [np.rint(x * 255).astype(np.uint8)[0, 0] for x, _ in batches(images, labels, 16, rng=8)]
    assert order == again and order != other
    x0, _ = next(batches(images, labels, 5, shuffle=False))
    np.testing.assert_array_equal(x0, images[:5].reshape(5, -1) / np.float32(255))


def test_batches_with_indices_and_drop_last():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=3)
    labels = np.arange(10) % 2
    got = [
        np.rint(x[:, 0] * 255).astype(int).tolist()
        for x, _ in batches(images, labels, 3, shuffle=False, indices=np.array([1, 4, 7, 9]))
    ]
    assert got == [[1, 4, 7], [9]]
    assert [len(x) for x, _ in batches(images, labels, 4, drop_last=True, rng=0)] == [4, 4]
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        next(batches(images, labels, 0))
    with pytest.raises(ValueError, match="differ in length"):
        next(batches(images, labels[:5], 2))


def test_load_image_rejects_bad_options(tmp_path):
    path = tmp_path / "a.jpg"
    write_jpeg(path, gradient_image())
    with pytest.raises(ValueError, match="interpolation must be one of"):
        load_image(path, interpolation="bicubic-ish")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.jpg")
    assert load_image(path, 16).shape == (16, 16, 3)


def test_to_inputs_matches_the_seed_scaling_and_fills_a_buffer():
    from nnlayers.data import to_inputs

    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    expected = (images.reshape(2, -1) / 255).astype(np.float32)  # the seed's /255, in float64
    np.testing.assert_array_equal(to_inputs(images), expected)
    buffer = np.full((5, 12), -1.0, np.float32)
    out = to_inputs(images, out=buffer)
    assert np.shares_memory(out, buffer) and out.shape == (2, 12)
    np.testing.assert_array_equal(out, expected)
    assert to_inputs(images, np.float64).dtype == np.float64


def test_workers_do_not_hang_after_the_parent_used_opencv(photos, tmp_path):
    """Regression: configuring OpenCV threads in forked workers hung them forever."""
    import subprocess
    import sys
    import textwrap

    folder = make_flat_folder(tmp_path / "flat", photos, 40)
    script = textwrap.dedent(
        f"""
        import sys, cv2, numpy as np
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        for _ in range(50):  # the seed's loop in the parent first: OpenCV starts its thread pool
            cv2.resize(np.zeros((200, 200, 3), np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
        from nnlayers import load_image_folder
        for _ in range(3):
            print(len(load_image_folder({str(folder)!r}, cache=False, workers=2)))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["80", "80", "80"], result.stderr


GUARD_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from nnlayers import load_image_folder
{guard}
    data = load_image_folder({folder!r}, cache=False, workers=2)
    print("loaded", len(data))
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_spawned_workers_without_a_main_guard_get_a_clear_message(tmp_path, guarded):
    """macOS and Windows spawn workers, which import the script again (forced here with NNLAYERS_START_METHOD)."""
    import subprocess
    import sys

    from nnlayers.data.builtin import builtin_dataset

    from .conftest import REPO

    folder = builtin_dataset(tmp_path / "shapes", per_class=40)
    guard = 'if __name__ == "__main__":' if guarded else "if True:"
    script = tmp_path / "script.py"
    script.write_text(GUARD_SCRIPT.format(repo=str(REPO), folder=str(folder), guard=guard))
    env = {**os.environ, "NNLAYERS_START_METHOD": "spawn"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    if guarded:
        assert result.returncode == 0 and "loaded 80" in result.stdout, result.stderr
    else:
        assert result.returncode != 0
        assert 'must be under `if __name__ == "__main__":` (or pass workers=1)' in result.stderr
        assert "crashed on a file" not in result.stderr  # no good photo is blamed
