"""``nnlayers explain`` in subprocesses, on real JPEGs: pictures, grids and numbers that the library reproduces."""

import json

import cv2
import numpy as np
import pytest

from nnlayers import Dense, Sequential, Tanh, save
from nnlayers.explain import explain
from nnlayers.models import resnet

from .conftest import copy_kaggle_photos
from .test_cli import run

PREPROCESSING = {"size": [32, 32], "backend": "cv2", "interpolation": "cubic", "reduce": True, "scale": 1 / 255,
                 "channel_order": "RGB", "layout": "NHWC"}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import os

    return {**os.environ, "NNLAYERS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def work(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    copy_kaggle_photos(shared_data, root / "photos", 3)
    model = resnet(2, widths=(4, 8), rng=0)
    save(model, root / "resnet.nnl", classes=["cat", "dog"], preprocessing=PREPROCESSING)
    dense = Sequential([Dense(32 * 32 * 3, 4, rng=0), Tanh(), Dense(4, 1, rng=1)])
    save(
        dense, root / "dense.nnl", classes=["cat", "dog"], preprocessing={**PREPROCESSING, "layout": "NHWC, flattened"}
    )
    return root


def test_one_picture_per_photo_with_the_predicted_class_and_the_photo_s_proportions(env, work):
    result = run(env, "explain", "resnet.nnl", "photos", "--out", "maps", "--grid", "grid.png", cwd=work)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 6 and all(len(line) == 4 for line in lines)
    predicted = json.loads(run(env, "predict", "resnet.nnl", "photos", "--json", cwd=work).stdout)
    assert [line[1] for line in lines] == [row["label"] for row in predicted]
    for path, _, _, picture in lines:
        drawn, photo = cv2.imread(str(work / picture)), cv2.imread(str(work / path))
        assert drawn is not None and max(drawn.shape[:2]) == min(320, max(photo.shape[:2]))
        assert abs(drawn.shape[0] / drawn.shape[1] - photo.shape[0] / photo.shape[1]) < 0.02  # not squashed
        assert drawn[:8].mean() < photo[:8].mean() or photo[:8].mean() < 30  # the caption's dark band
    sheet = cv2.imread(str(work / "grid.png"))
    assert sheet.shape == (2 * 192 + 4, 4 * 192 + 3 * 4, 3)


def test_json_maps_are_the_library_s_maps(env, work):
    files = sorted(str(p) for p in (work / "photos").glob("*.jpg"))
    for method in ("gradcam", "saliency"):
        result = run(env, "explain", "resnet.nnl", *files, "--method", method, "--target", "dog", "--json",
                     "--out", "json-maps", cwd=work)  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [r["explained"] for r in rows] == ["dog"] * len(files) and {r["method"] for r in rows} == {method}
        from nnlayers import load

        maps = explain(load(work / "resnet.nnl"), files, method, target=1)
        np.testing.assert_allclose(np.array([r["map"] for r in rows]), maps, atol=1e-5)
        if method == "gradcam":
            assert {r["layer"] for r in rows} == {"4"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["resnet.nnl", "photos", "--target", "bird"], "--target bird: not one of the model's classes ['cat', 'dog']"),
        (["resnet.nnl", "photos", "--layer", "9.9"], "the model has no layer named '9.9'"),
        (["resnet.nnl", "photos", "--method", "saliency", "--layer", "4"], "--layer is for gradcam and gradcam++"),
        (["dense.nnl", "photos"], "Grad-CAM needs a layer whose output is a map"),
        (["resnet.nnl", "photos", "--alpha", "3"], "--alpha must be between 0 and 1"),
    ],
)
def test_bad_options_are_one_line_errors(env, work, args, message):
    result = run(env, "explain", *args, cwd=work)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_dense_model_explains_with_gradients_and_a_broken_photo_is_reported(env, work):
    broken = work / "broken.jpg"
    broken.write_bytes((work / "photos" / "cat.0.jpg").read_bytes()[:300])
    result = run(env, "explain", "dense.nnl", "photos/cat.0.jpg", broken, "--method", "integrated_gradients",
                 "--out", "dense-maps", cwd=work)  # fmt: skip
    assert result.returncode == 1 and "broken.jpg" in result.stderr and "truncated" in result.stderr
    assert len(list((work / "dense-maps").glob("*.png"))) == 1  # the good photo is still drawn
