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
from nnlayers.data.builtin import draw_shape

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
    from nnlayers import load_image_folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = len(load_image_folder({folder!r}, labels="folders", backend={backend!r}, workers={workers}, cache=False))
        except ValueError as error:  # every file unreadable: a clear error, after a warning for each
            assert "could be read" in str(error), error
            loaded = 0
    skipped = [str(w.message) for w in caught if str(w.message).startswith("skipped ")]
    print(json.dumps({{"loaded": loaded, "skipped": skipped}}))
    """
)


edit = st.tuples(st.integers(0, 2), st.floats(0, 1, exclude_max=True), st.integers(0, 255))
photo_mutation = st.tuples(st.integers(0, 3), st.lists(edit, min_size=1, max_size=10))


def mutate(data: bytes, edits) -> bytes:
    """Apply (kind, where, value) edits: flip a bit, overwrite a byte, or cut the file there."""
    out = bytearray(data)
    for kind, where, value in edits:
        at = int(where * len(out))
        if kind == 0:
            out[at] ^= 1 << (value % 8)
        elif kind == 1:
            out[at] = value
        elif at > 16:
            del out[at:]
    return bytes(out)


@pytest.mark.parametrize("backend, workers", [("cv2", 1), ("pil", 1), ("cv2", 2)])
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutations=st.lists(photo_mutation, min_size=100, max_size=100))
def test_mutated_photos_never_crash_or_hang_the_loader(backend, workers, mutations):
    """Hypothesis draws 100 mutated JPEG/PNG files per example; a child process decodes them all."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seeds = seed_images(root)
        for i, (seed, edits) in enumerate(mutations):
            ext, data = seeds[seed]
            folder = root / "photos" / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}{ext}").write_bytes(mutate(data, edits))
        script = CHILD.format(repo=str(REPO), folder=str(root / "photos"), backend=backend, workers=workers)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"the loader crashed (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] + len(report["skipped"]) == len(mutations)  # every file accounted for
    assert all(": " in message for message in report["skipped"])  # "skipped PATH: reason", each named
