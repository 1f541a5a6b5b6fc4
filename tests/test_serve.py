"""``nnlayers serve``: a real server process, its page and JSON API, bad uploads, and concurrent requests."""

import json
import re
import threading

import cv2
import numpy as np
import pytest

from nnlayers import load, predict_proba, save
from nnlayers.explain import explain
from nnlayers.models import resnet

from .conftest import copy_kaggle_photos
from .serve_helpers import Server

pytest.importorskip("starlette", reason="the web stack is not installed (pip install '.[serve]')")
pytest.importorskip("uvicorn", reason="the web stack is not installed (pip install '.[serve]')")
pytest.importorskip("multipart", reason="the web stack is not installed (pip install '.[serve]')")

PREPROCESSING = {"size": [32, 32], "backend": "cv2", "interpolation": "cubic", "reduce": True, "scale": 1 / 255,
                 "channel_order": "RGB", "layout": "NHWC"}  # fmt: skip


@pytest.fixture(scope="module")
def site(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    photos = sorted(copy_kaggle_photos(shared_data, root / "photos", 4).glob("*.jpg"))
    save(
        resnet(3, widths=(4, 8), rng=0), root / "model.nnl", classes=["bird", "cat", "dog"], preprocessing=PREPROCESSING
    )
    spool = root / "tmp"
    spool.mkdir()
    server = Server(root / "model.nnl", "--max-upload-mb", "3", "--max-files", "4", tmpdir=spool, cwd=root)
    yield server, root, photos, spool
    server.stop()


def jpeg(path):
    return (path.name, path.read_bytes(), "image/jpeg")


def test_the_page_and_its_files_load_nothing_from_the_internet(site):
    server, *_ = site
    status, kind, html = server.get("/")
    assert status == 200 and kind.startswith("text/html") and b'<select id="method"' in html
    for asset in re.findall(rb'(?:src|href)="([^"]+)"', html):
        assert asset.startswith((b"/static/", b"data:")), asset  # nothing from another host
        if asset.startswith(b"data:"):
            continue
        status, _, body = server.get(asset.decode())
        assert status == 200 and b"http://" not in body and b"https://" not in body
    assert "127.0.0.1" in server.banner and "only this computer" in server.banner


def test_model_info_and_predictions_are_the_library_s(site):
    server, root, photos, _ = site
    status, _, body = server.get("/api/model")
    info = json.loads(body)
    assert status == 200 and info["classes"] == ["bird", "cat", "dog"] and info["input_size"] == [32, 32]
    assert info["cam_layer"] == "4" and info["methods"][:2] == ["gradcam", "gradcam++"]
    status, rows = server.send("/api/predict", [jpeg(p) for p in photos[:3]])
    assert status == 200 and [r["name"] for r in rows] == [p.name for p in photos[:3]]
    expected = predict_proba(load(root / "model.nnl"), [str(p) for p in photos[:3]])
    for row, p in zip(rows, expected):
        assert [t["probability"] for t in row["top"]] == pytest.approx(sorted(p, reverse=True), rel=1e-6)
        assert row["label"] == ["bird", "cat", "dog"][int(p.argmax())]


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_explanations_are_the_library_s_maps_and_a_png(site, method):
    server, root, photos, _ = site
    status, rows = server.send("/api/explain", [jpeg(p) for p in photos[:2]], method=method, target="dog")
    assert status == 200 and {r["explained"] for r in rows} == {"dog"}
    maps = explain(load(root / "model.nnl"), [str(p) for p in photos[:2]], method, target=2)
    np.testing.assert_allclose(np.array([r["map"] for r in rows]), maps, atol=1e-5)
    assert all(r["overlay"].startswith("data:image/png;base64,") for r in rows)
    status, png = server.send("/api/explain", [jpeg(photos[0])], method=method, format="png")
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    photo = cv2.imread(str(photos[0]))
    assert (
        status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n" and max(picture.shape[:2]) == min(320, max(photo.shape[:2]))
    )


def _bomb():
    """A PNG whose header claims 60,000 x 60,000 pixels: refused before anything is decoded."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


BAD = {
    "not an image": ([("notes.jpg", b"just some text, not a photo", "image/jpeg")], {}, 422, "not a readable image"),
    "0 bytes": ([("empty.jpg", b"", "image/jpeg")], {}, 422, "empty"),
    "truncated JPEG": ("truncated", {}, 422, "truncated JPEG"),
    "decompression bomb": ([("bomb.png", _bomb(), "image/png")], {}, 422, "decompression bomb"),
    "over the size limit": ([("big.jpg", b"\xff\xd8\xff" + bytes(3_200_000), "image/jpeg")], {}, 413, "over the limit"),
    "too many files": ("five", {}, 413, "Too many files"),
    "wrong content type of a part": ([("a.txt", b"hello", "text/plain")], {}, 415, "text/plain is not an image type"),
    "no photo": ([], {"method": "gradcam"}, 400, "no photo"),
    "unknown method": ("one", {"method": "magic"}, 400, "method must be one of"),
    "unknown target": ("one", {"target": "horse"}, 400, "target 'horse' is not one of the classes"),
    "png of two": ("two", {"format": "png"}, 400, "format=png answers one photo"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_upload_gets_a_4xx_with_a_message_and_the_next_request_works(site, case):
    server, _, photos, _ = site
    files, fields, status, message = BAD[case]
    good = [jpeg(p) for p in photos]
    if isinstance(files, str):  # made of the real photos
        files = {"truncated": [("cut.jpg", photos[0].read_bytes()[:2000], "image/jpeg")], "five": good[:5],
                 "one": good[:1], "two": good[:2]}[files]  # fmt: skip
    got, answer = server.send("/api/explain", files, **fields)
    assert got == status and message in answer["error"], answer
    assert server.send("/api/predict", good[:1])[0] == 200  # the server is still up and right


@pytest.mark.parametrize(
    "body, kind, status, message",
    [
        (b'{"files": []}', "application/json", 415, "multipart/form-data"),
        (b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\nno end", "multipart/form-data; boundary=x", 400, ""),
        (b"garbage", "multipart/form-data", 400, ""),
    ],
)  # fmt: skip
def test_a_malformed_body_gets_a_4xx_not_a_traceback(site, body, kind, status, message):
    server, _, photos, _ = site
    got, answer_type, data = server.post("/api/predict", body, kind)
    assert got == status and answer_type == "application/json" and message in json.loads(data)["error"]
    assert b"Traceback" not in data
    assert server.send("/api/predict", [jpeg(photos[0])])[0] == 200


def test_a_large_upload_spooled_to_disk_leaves_no_file_behind(site):
    server, _, _, spool = site
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3)).astype(np.uint8)
    ok, png = cv2.imencode(".png", noise)  # about 1.5 MB: over Starlette's 1 MB in memory
    assert ok and len(png) > 1024 * 1024
    status, rows = server.send("/api/predict", [("noise.png", png.tobytes(), "image/png")])
    assert status == 200 and rows[0]["name"] == "noise.png"
    assert list(spool.iterdir()) == []


def test_concurrent_requests_each_get_their_own_answer_among_hostile_ones(site):
    server, root, photos, _ = site
    model = load(root / "model.nnl")
    expected = {p.name: explain(model, [str(p)], "gradcam")[0] for p in photos}
    answers, errors = {}, []

    hostile = [BAD[case] for case in sorted(BAD) if isinstance(BAD[case][0], list) and BAD[case][0]]

    def ask(photo, k):
        try:
            bad_files, _, bad_status, _ = hostile[(k * len(photos) + photos.index(photo)) % len(hostile)]
            refused = server.send("/api/explain", bad_files)  # a hostile upload between the good ones
            status, rows = server.send("/api/explain", [jpeg(photo)], method="gradcam")
            answers[(photo.name, k)] = (status, rows[0])
            if refused[0] != bad_status:
                errors.append(refused)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(p, k)) for k in range(2) for p in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(answers) == 2 * len(photos)
    for (name, _), (status, row) in answers.items():
        assert status == 200 and row["name"] == name
        np.testing.assert_allclose(np.array(row["map"]), expected[name], atol=1e-5, err_msg=name)
