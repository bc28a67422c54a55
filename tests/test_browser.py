"""The HTML pages open in a real browser: `show`'s task report and `report`'s run report, loaded by headless Chromium
from a localhost server, with no console error, every image loaded and not blank, and a screenshot saved under the
test's temp folder. Skipped with the reason where no Chromium and chromedriver are installed (.ci/run installs them
from the distribution's packages when it can: `apt-get install chromium chromium-driver`).

The browser is driven through chromedriver's W3C WebDriver HTTP API with the standard library (a few requests), so
no browser-automation package is needed.
"""
import base64
import contextlib
import functools
import http.server
import io
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from arcsolver.cli import main
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.training.train import train

from conftest import BUNDLED, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no headless browser here (apt-get install chromium chromium-driver)")

# Flags for a sandboxless, offline, throw-away profile (root in a container, no GPU, nothing phoned home).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1600"]

# Runs in the page: every <img> loaded and not one flat colour, every <canvas> not blank.
CHECK_PICTURES = """
const problems = [];
const probe = document.createElement('canvas');
for (const img of document.images) {
  if (!img.complete || img.naturalWidth === 0) { problems.push('not loaded: ' + img.src.slice(0, 80)); continue; }
  probe.width = img.naturalWidth; probe.height = img.naturalHeight;
  const ctx = probe.getContext('2d'); ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, probe.width, probe.height).data;
  let flat = true;
  for (let i = 4; i < px.length && flat; i += 4) flat = px[i] === px[0] && px[i+1] === px[1] && px[i+2] === px[2];
  if (flat) problems.push('blank image: ' + (img.alt || img.src.slice(0, 80)));
}
for (const c of document.querySelectorAll('canvas')) {
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  if (!px.some(v => v !== 0)) problems.push('empty canvas');
}
return {images: document.images.length, problems: problems};
"""


class WebDriver:
    """The few WebDriver commands the test needs, over HTTP to a chromedriver it starts."""

    def __init__(self, profile: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([DRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            with contextlib.suppress(OSError):
                if self._call("GET", "/status")["value"]["ready"]:
                    break
            time.sleep(0.05)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": FLAGS + [f"--user-data-dir={profile}"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["value"]["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def open(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})
        # lazy images load when scrolled to: walk down the page, then wait for the load event and every image
        self.cmd("POST", "/execute/sync", {"script": "window.scrollTo(0, document.body.scrollHeight);", "args": []})
        self.cmd("POST", "/execute/async", {"script": """
            const done = arguments[0];
            const wait = () => Array.from(document.images).every(i => i.complete) ? done() : setTimeout(wait, 50);
            wait();""", "args": []})
        self.cmd("POST", "/execute/sync", {"script": "window.scrollTo(0, 0);", "args": []})

    def console(self) -> list[dict]:
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call("DELETE", f"/session/{self.session}")
        self.proc.terminate()
        self.proc.wait(timeout=30)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def served(folder: Path):
    """A localhost HTTP server for `folder` (one origin: the page may read its own images' pixels)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = WebDriver(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.close()


def check_page(browser, folder: Path, shot: Path) -> dict:
    """Open folder/index.html; fail on a console error or a missing or blank picture; save a screenshot."""
    with served(folder) as url:
        browser.console()  # drop what earlier pages said
        browser.open(f"{url}/index.html")
        pictures = browser.cmd("POST", "/execute/sync", {"script": CHECK_PICTURES, "args": []})
        errors = [e["message"] for e in browser.console() if e["level"] == "SEVERE"]
        shot.write_bytes(base64.b64decode(browser.cmd("GET", "/screenshot")))
    assert not errors, errors
    assert pictures["images"] > 0 and not pictures["problems"], pictures
    img = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert len(img.getcolors(maxcolors=1 << 24)) > 16, "the screenshot is blank"
    return pictures


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-run")
    build(root / "data", [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=2, seed=1, canvas=10)
    train(build_config("tiny-cpu", ["max_steps=4", "log_every=1", "eval_interval_steps=2", "eval_max_batches=1"],
                       data=str(root / "data"), out=str(root / "run")), cpu=True, quiet=True)
    return root / "run"


def test_the_show_report_opens_cleanly_in_chromium(browser, tmp_path):
    r = CliRunner().invoke(main, ["show", "--tasks", str(BUNDLED), "--out", str(tmp_path / "show")])
    assert r.exit_code == 0, r.output
    pictures = check_page(browser, tmp_path / "show", tmp_path / "show.png")
    assert pictures["images"] == len(load_tasks(BUNDLED))


def test_the_run_report_opens_cleanly_in_chromium(browser, run, tmp_path):
    r = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "report"), "--cpu",
                                  "--gallery-tasks", "2", "--versions", "2"])
    assert r.exit_code == 0, r.output
    pictures = check_page(browser, tmp_path / "report", tmp_path / "report.png")
    assert pictures["images"] == 5 + 2  # five curves, two gallery tasks


def test_the_check_fails_on_a_missing_image(browser, tmp_path):
    """The check itself can fail: a page whose picture is missing is caught (console error and unloaded image)."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.html").write_text('<!DOCTYPE html><html><body><p>x</p><img src="nowhere.png">'
                                                 "</body></html>")
    with pytest.raises(AssertionError, match="nowhere.png|404"):
        check_page(browser, tmp_path / "bad", tmp_path / "bad.png")
