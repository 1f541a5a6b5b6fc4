"""Every example in the docs and the README runs, and the API reference covers every public name.

Each page's Python and shell blocks run in order, in a sandbox folder holding `photos/train`,
`photos/test` (Kaggle-named photos from the shared data, or generated pictures without it) and
`my_photo.jpg`. Shell lines that start with `nnlayers` run the real command; `pip` lines are
skipped (the test environment is already installed).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import nnlayers
from nnlayers.data.builtin import draw_shape

from .conftest import REPO, shared_data_dir
from .test_cli import COMMAND

DOCS = REPO / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def make_photos(root: Path) -> None:
    """photos/train (60 cats, 60 dogs) and photos/test (cat.3001-3030, dog.3001-3030)."""
    shared = shared_data_dir() / "dogs-vs-cats"
    rng = np.random.default_rng(0)
    for split, numbers in (("train", range(60)), ("test", range(3001, 3031))):
        folder = root / "photos" / split
        folder.mkdir(parents=True)
        for kind, shape in (("cat", "circle"), ("dog", "square")):
            for n in numbers:
                source = shared / split / f"{kind}.{n}.jpg"
                if source.exists():
                    shutil.copy(source, folder / source.name)
                else:  # no shared data: pictures that nnlayers draws itself
                    cv2.imwrite(str(folder / f"{kind}.{n}.jpg"), draw_shape(shape, rng)[:, :, ::-1])
    shutil.copy(root / "photos" / "test" / "cat.3002.jpg", root / "my_photo.jpg")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    make_photos(root)
    return root


def run_shell_line(line: str, cwd: Path, env: dict) -> None:
    words = shlex.split(line)
    if words[0] != "nnlayers":
        return
    result = subprocess.run([*COMMAND, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{line}\n{result.stderr}"


#: Pages whose examples need an optional extra: skipped without it, like the extra's own tests.
NEEDS = {
    "onnx.md": (("onnx", "pip install '.[onnx]'"), ("onnxruntime", "pip install '.[onnx]'")),
    "recurrent-networks.md": (("sklearn", "pip install scikit-learn: its 8x8 digits"),),
}


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, sandbox, monkeypatch):
    for module, how in NEEDS.get(page, ()):
        pytest.importorskip(module, reason=f"{page} needs {module} ({how})")
    text = (DOCS / page).read_text()
    env = {**os.environ, "NNLAYERS_CACHE_DIR": str(sandbox / "cache"), "PYTHONWARNINGS": "ignore"}
    monkeypatch.setenv("NNLAYERS_CACHE_DIR", env["NNLAYERS_CACHE_DIR"])
    monkeypatch.chdir(sandbox)
    namespace: dict = {"__name__": f"docs_{page}"}
    for language, code in BLOCK.findall(text):
        if language == "python":
            exec(compile(code, f"{page}", "exec"), namespace)  # noqa: S102 - running our own docs
        else:
            for line in code.splitlines():
                if line.strip():
                    run_shell_line(line, sandbox, env)


def test_readme_example_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "README.md").read_text()
    blocks = [code for language, code in BLOCK.findall(text) if language == "python"]
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102


def test_seed_both_ways_prints_the_same_costs(tmp_path):
    env = {**os.environ, "NNLAYERS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "seed_both_ways.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 6 and all(seed == layers for _, seed, layers in rows)
    assert "train accuracy: seed" in result.stdout


def test_docs_build_without_warnings_and_cover_the_api(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx not installed (pip install '.[docs]')")
    pytest.importorskip("myst_parser", reason="myst-parser not installed (pip install '.[docs]')")
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    api = (out / "api.html").read_text()
    missing = [name for name in nnlayers.__all__ if f'id="nnlayers.{name}"' not in api]
    assert not missing, f"not in the API reference: {missing}"
    for name in ("Dense", "Sequential", "BCELoss", "load_image_folder"):  # each shows its Shape section
        section = api[api.index(f'id="nnlayers.{name}"') :][:6000]
        assert "Shape" in section or name == "load_image_folder", name
