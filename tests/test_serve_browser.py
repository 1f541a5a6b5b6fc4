"""The page of ``nnlayers serve`` in a real browser: the operating system's Chromium, headless, driven by
Selenium through its chromedriver (skipped where either is missing: ``apt-get install chromium
chromium-driver``, ``pip install selenium``).

The docs' screenshot of the page comes from here::

    NNLAYERS_SCREENSHOT=docs/_static/serve-page.png NNLAYERS_SCREENSHOT_MODEL=model.nnl \
        python -m pytest tests/test_serve_browser.py -k photos_in
"""

import json
import os
import shutil

import pytest

from nnlayers import save
from nnlayers.models import resnet

from .conftest import copy_kaggle_photos
from .serve_helpers import Server
from .test_serve import PREPROCESSING

pytest.importorskip("starlette", reason="the web stack is not installed (pip install '.[serve]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    pytest.skip("no Chromium and chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def page(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    photos = sorted(copy_kaggle_photos(shared_data, root / "photos", 2).glob("*.jpg"))
    trained = os.environ.get("NNLAYERS_SCREENSHOT_MODEL")  # the docs' screenshot: a model trained on the photos
    if trained:
        shutil.copy(trained, root / "model.nnl")
    else:
        save(resnet(2, widths=(4, 8), rng=0), root / "model.nnl", classes=["cat", "dog"], preprocessing=PREPROCESSING)
    (root / "tmp").mkdir()
    server = Server(root / "model.nnl", tmpdir=root / "tmp", cwd=root)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    browser.get(server.url + "/")
    yield browser, server, root, photos
    browser.quit()
    server.stop()


def wait(browser, condition, seconds=60):
    # the page replaces its cards when an answer comes: an element found a moment ago may be gone
    return WebDriverWait(browser, seconds, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def texts(browser, selector):
    """The text of every element that ``selector`` finds, read in one step in the page."""
    return browser.execute_script(f"return Array.from(document.querySelectorAll('{selector}')).map(e => e.textContent)")


def overlays_loaded(count):
    """The ``src`` of the ``count`` overlay images once all are drawn (else ``False``)."""

    def check(browser):
        return browser.execute_script(
            "const images = Array.from(document.querySelectorAll('.card img.overlay'));"
            "return images.length === arguments[0] && images.every(i => i.complete && i.naturalWidth > 0)"
            " ? images.map(i => i.src) : false;",
            count,
        )

    return check


def test_photos_in_probabilities_and_maps_out(page):
    browser, server, _, photos = page
    wait(browser, ready.text_to_be_present_in_element((By.ID, "model-summary"), "2 classes (cat, dog)"))
    assert [o.text for o in Select(browser.find_element(By.ID, "method")).options][:2] == ["gradcam", "gradcam++"]
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in photos[:3]))
    wait(browser, overlays_loaded(3))
    status, predicted = server.send("/api/predict", [(p.name, p.read_bytes(), "image/jpeg") for p in photos[:3]])
    labels = texts(browser, ".card .label")
    assert labels == [f"{r['label']} {r['probability']:.3f}" for r in predicted]
    shown = [float(t) for t in texts(browser, ".card .bar .probability")]
    assert shown == pytest.approx([t["probability"] for r in predicted for t in r["top"]], abs=6e-4)
    if os.environ.get("NNLAYERS_SCREENSHOT"):  # the picture of the page in "Why did it say dog?"
        browser.execute_script("return new Promise(r => setTimeout(r, 500))")  # the images drawn
        browser.save_screenshot(os.environ["NNLAYERS_SCREENSHOT"])


def test_another_method_redraws_the_maps(page):
    browser, *_ = page
    before = wait(browser, overlays_loaded(3))
    Select(browser.find_element(By.ID, "method")).select_by_value("saliency")
    wait(browser, lambda b: (names := texts(b, ".card .name")) and all("saliency" in name for name in names))
    after = wait(browser, overlays_loaded(3))
    assert after != before and all(a.startswith("data:image/png;base64,") for a in after)


def test_a_bad_photo_shows_the_server_s_message_and_the_page_keeps_working(page):
    browser, _, root, photos = page
    broken = root / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:500])
    browser.find_element(By.ID, "files").clear()
    browser.find_element(By.ID, "files").send_keys(str(broken))
    error = wait(browser, ready.visibility_of_element_located((By.ID, "error")))
    assert "broken.jpg: truncated JPEG" in error.text
    chooser = browser.find_element(By.ID, "files")
    chooser.clear()  # (a multiple file input adds what send_keys sends to what it holds)
    chooser.send_keys(str(photos[1]))
    wait(browser, overlays_loaded(1))
    assert not browser.find_element(By.ID, "error").is_displayed()
    info = json.loads(browser.execute_script("return fetch('/api/model').then(r => r.text())"))
    assert info["classes"] == ["cat", "dog"]
