"""The screenshot of `nnlayers serve` in "Why did it say dog?": the real page in headless Chromium.

Starts `nnlayers serve MODEL` on a free port, opens the page in the operating system's Chromium
(Selenium and chromedriver: `apt-get install chromium chromium-driver`, `pip install selenium`),
drops three photos on it and saves what the browser shows.

    python docs/examples/screenshot_page.py MODEL PHOTO... [--out docs/_static/serve-page.png]
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("photos", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("serve-page.png"))
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "nnlayers", "serve", str(args.model), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = "http://" + server.stdout.readline().split("http://", 1)[1].split("/", 1)[0]
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        for _ in range(100):
            try:
                browser.get(url + "/")
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        WebDriverWait(browser, 30).until(lambda b: "classes" in b.find_element(By.ID, "model-summary").text)
        browser.find_element(By.ID, "files").send_keys("\n".join(str(p.resolve()) for p in args.photos))
        WebDriverWait(browser, 120).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card img.overlay")) == len(args.photos)
        )
        time.sleep(1)  # the images' decoding
        browser.save_screenshot(str(args.out))
        print(f"wrote {args.out} ({url})")
    finally:
        browser.quit()
        server.terminate()


if __name__ == "__main__":
    main()
