"""Hostile and broken files: mutated model files are always refused; mutated photos never crash
or hang the loader, and every bad one is reported.

The model-file cases run in this process (loading is pure Python and numpy). The image cases are
decoded in a child process with a time limit, so that a crash or hang inside a C decoder would
fail the test instead of taking the test run down.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlayers import Dense, ModelFileError, Sequential, Sigmoid, Tanh, load, save
from nnlayers.builtin import draw_shape

from .conftest import REPO

ORIGINAL_MODEL = None


def original_model_bytes() -> bytes:
    global ORIGINAL_MODEL
    if ORIGINAL_MODEL is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = save(
                Sequential([Dense(6, 3, rng=0), Tanh(), Dense(3, 1, rng=1), Sigmoid()]),
                Path(tmp) / "m.nnl",
                classes=["a", "b"],
            )
            ORIGINAL_MODEL = path.read_bytes()
    return ORIGINAL_MODEL


@st.composite
def mutations(draw):
    """A list of edits: flip bits, overwrite bytes, cut the file, insert bytes, delete bytes."""
    data = bytearray(original_model_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:  # cut to nothing: nothing more to edit
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(mutated=mutations())
def test_mutated_model_files_are_always_refused(mutated, tmp_path):
    if mutated == original_model_bytes():
        return
    path = tmp_path / "mutated.nnl"
    path.write_bytes(mutated)
    with pytest.raises(ModelFileError):
        load(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.dictionaries(
        st.sampled_from(["format", "format_version", "architecture", "arrays", "training", "classes"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_forged_headers_with_valid_checksums_are_refused(header, tmp_path):
    """A stranger can write any header and a matching checksum: still only ModelFileError."""
    import hashlib

    raw = json.dumps(header).encode()
    body = b"NNLAYERS" + len(raw).to_bytes(8, "little") + raw
    path = tmp_path / "forged.nnl"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ModelFileError):
        load(path)


def seed_images(folder: Path) -> list:
    """One JPEG and one PNG of each shape, as the bytes the mutations start from."""
    rng = np.random.default_rng(0)
    seeds = []
    for shape in ("circle", "square"):
        rgb = draw_shape(shape, rng)
        for ext, params in ((".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]), (".png", [])):
            ok, encoded = cv2.imencode(ext, rgb[:, :, ::-1], params)
            assert ok
            seeds.append((ext, encoded.tobytes()))
    return seeds


CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    sys.path.insert(0, {repo!r})
    warnings.simplefilter("ignore")
    from nnlayers import load_image_folder
    d = load_image_folder({folder!r}, labels="folders", backend={backend!r}, workers={workers}, cache=False)
    print(json.dumps({{"loaded": len(d), "skipped": d.skipped}}))
    """
)


@pytest.mark.parametrize("backend, workers", [("cv2", 1), ("pil", 1), ("cv2", 2)])
def test_mutated_photos_never_crash_or_hang_the_loader(tmp_path, backend, workers):
    rng = np.random.default_rng({"cv2": 1, "pil": 2}[backend] + workers)
    seeds = seed_images(tmp_path)
    cases = 0
    for label in ("a", "b"):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i in range(100):
            ext, data = seeds[rng.integers(len(seeds))]
            data = bytearray(data)
            for _ in range(rng.integers(1, 20)):  # flips, overwrites and cuts anywhere in the file
                at = int(rng.integers(len(data)))
                choice = rng.integers(3)
                if choice == 0:
                    data[at] ^= 1 << int(rng.integers(8))
                elif choice == 1:
                    data[at] = int(rng.integers(256))
                elif len(data) > 16:
                    del data[max(at, 16) :]
            (folder / f"{label}{i}{ext}").write_bytes(bytes(data))
            cases += 1
    script = CHILD.format(repo=str(REPO), folder=str(tmp_path / "photos"), backend=backend, workers=workers)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"the loader crashed (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] + len(report["skipped"]) == cases  # every file accounted for
    assert all(reason for _, reason in report["skipped"])  # and every skip has a reason
