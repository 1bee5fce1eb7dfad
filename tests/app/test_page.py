"""The web page (`fgbg app`) as a person and as an API client use it: a real server started as a
subprocess on 127.0.0.1, a headless Chromium (Debian's chromium + chromedriver, driven by
selenium), gradio_client. Marked `app`: `make test-app` installs what they need and runs them.

The browser test saves a screenshot of the finished page to tests/out/app.png (gitignored)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.app, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "tests" / "out" / "app.png"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WARP = "warp (weight-free preview)"
SAMPLE_FRAMES = 48  # fgbg.sample.make_sample's default, what the page's sample has


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`fgbg app` on a free port with its own app folder -> (url, app folder)."""
    pytest.importorskip("gradio")
    app_dir = tmp_path_factory.mktemp("app")
    port = _free_port()
    env = {**os.environ, "FGBG_APP_DIR": str(app_dir), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(app_dir / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fgbg.cli", "app", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=app_dir)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"fgbg app did not start:\n{(app_dir / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url, app_dir
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    assert "Traceback" not in (app_dir / "server.log").read_text()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1900", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _open(driver, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#fgbg-run"))


def _upload(driver, component: str, path: Path) -> None:
    """Put a file into a gradio upload area as the file chooser would."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{component} input[type=file]")
    field.send_keys(str(path))


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#fgbg-status").text


def _wait(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT.with_name("app-timeout.png")))
        pytest.fail(f"{what} did not happen in {timeout} s; status: {_status(driver)!r}; "
                    f"screenshot {SCREENSHOT.with_name('app-timeout.png')}")


def _probe_url(url: str, folder: Path):
    from fgbg.video import probe

    path = folder / "fetched.mp4"
    with urllib.request.urlopen(url, timeout=60) as r, open(path, "wb") as f:
        shutil.copyfileobj(r, f)
    return probe(path)


def test_browser_upload_sample_and_run_warp(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, app_dir = server
    sample = app_dir / "sample"
    assert (sample / "driving.mp4").is_file() and (sample / "person.png").is_file()
    _open(browser, url)
    _upload(browser, "fgbg-video", sample / "driving.mp4")
    _upload(browser, "fgbg-photo", sample / "person.png")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#fgbg-video video")
          and d.find_elements(By.CSS_SELECTOR, "#fgbg-photo img"), 60, "the uploads")
    # warp is the generator chosen at first
    assert browser.find_element(By.CSS_SELECTOR, "#fgbg-generator input").get_attribute("value") == WARP
    t0 = time.perf_counter()
    browser.find_element(By.CSS_SELECTOR, "#fgbg-run").click()
    video = _wait(browser, lambda d: [v for v in d.find_elements(By.CSS_SELECTOR, "#fgbg-output video")
                                      if v.get_attribute("src")], 300, "the output video")[0]
    _wait(browser, lambda d: "done in" in _status(d), 60, "the summary")
    seconds = time.perf_counter() - t0
    status = _status(browser)
    for stage in ("ref", "pose", "segment", "track-bg", "generate", "stitch"):
        assert stage in status
    # the previews are shown too
    for name in ("pose", "segment", "track-bg"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#fgbg-preview-{name} video"), name
    assert browser.find_elements(By.CSS_SELECTOR, "#fgbg-download a"), "no download link"
    info = _probe_url(video.get_attribute("src"), tmp_path)
    assert info.num_frames == SAMPLE_FRAMES and (info.width, info.height) == (256, 256)
    assert info.has_audio
    # the browser shows the video: it has loaded its first frame
    _wait(browser, lambda d: d.execute_script("return arguments[0].readyState", video) >= 2, 30,
          "the video's first frame")
    # the whole page in one picture: the window as tall as the document
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height + 200)
    time.sleep(1.0)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1400, 1900)
    print(f"\nfirst run {seconds:.1f} s; screenshot: {SCREENSHOT}")
    # a second click with the same inputs is answered from the cache
    t0 = time.perf_counter()
    browser.find_element(By.CSS_SELECTOR, "#fgbg-run").click()
    _wait(browser, lambda d: "everything cached" in _status(d), 60, "the cached rerun")
    print(f"cached rerun {time.perf_counter() - t0:.1f} s")


def test_client_runs_the_same_endpoint(server, tmp_path):
    from gradio_client import Client, handle_file

    from fgbg.video import probe

    url, app_dir = server
    sample = app_dir / "sample"
    client = Client(url, verbose=False, download_files=str(tmp_path))
    args = (handle_file(str(sample / "driving.mp4")), handle_file(str(sample / "person.png")), WARP,
            25, 3.5, 0, "auto")
    out, download, pose, mask, tracks, status = client.predict(*args, api_name="/generate")
    assert "done in" in status, status
    info = probe(out)
    assert info.num_frames == SAMPLE_FRAMES and info.has_audio
    assert Path(download).read_bytes() == Path(out).read_bytes()
    for preview in (pose, mask, tracks):
        assert probe(preview).num_frames == SAMPLE_FRAMES
    t0 = time.perf_counter()
    again = client.predict(*args, api_name="/generate")
    assert "everything cached" in again[-1], again[-1]
    assert time.perf_counter() - t0 < 10
    assert Path(again[0]).read_bytes() == Path(out).read_bytes()


def test_jobs_queue_one_at_a_time(server):
    """Two clicks at once: the second waits in the queue (its place shown) until the first ends."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    url, app_dir = server
    sample = app_dir / "sample"
    client = Client(url, verbose=False)

    def submit(seed):
        return client.submit(handle_file(str(sample / "driving.mp4")), handle_file(str(sample / "person.png")),
                             WARP, 25, 3.5, seed, "128", api_name="/generate")

    jobs = [submit(11), submit(12)]  # which reaches the server first is up to the threads
    seen = []
    deadline = time.monotonic() + 300
    while not all(j.done() for j in jobs) and time.monotonic() < deadline:
        seen.append(tuple((j.status().code, j.status().rank, j.done()) for j in jobs))
        time.sleep(0.05)
    for j in jobs:
        assert "done in" in j.result()[-1]
    # one waited with its place shown while the other had not finished ...
    assert any(code == Status.IN_QUEUE and rank == 0 and not other[2]
               for now in seen for (code, rank, _), other in (now, now[::-1])), seen
    # ... and they never reported progress at the same time
    assert not any(all(code == Status.PROGRESS for code, _, _ in now) for now in seen)


@pytest.mark.parametrize("name", ["notes.mp4", "notes.txt"])
def test_bad_video_shows_error_cause_hint(server, browser, tmp_path, name):
    """A text file as the video. Named .mp4 it reaches fgbg, which cannot decode it; named .txt
    the browser's upload area refuses it, and the click says that no video was given."""
    from selenium.webdriver.common.by import By

    url, app_dir = server
    notes = tmp_path / name
    notes.write_text("not a video\n" * 50)
    _open(browser, url)
    _upload(browser, "fgbg-video", notes)
    _upload(browser, "fgbg-photo", app_dir / "sample" / "person.png")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#fgbg-photo img"), 60, "the photo upload")
    time.sleep(1.0)
    browser.find_element(By.CSS_SELECTOR, "#fgbg-run").click()
    _wait(browser, lambda d: "error:" in _status(d), 120, "the error text")
    status = _status(browser)
    what = "error: cannot read video" if name.endswith(".mp4") else "cause: no driving video was given"
    assert what in status and "cause:" in status and "hint:" in status, status
    assert "Traceback" not in browser.find_element(By.CSS_SELECTOR, "body").text
    assert not [v for v in browser.find_elements(By.CSS_SELECTOR, "#fgbg-output video") if v.get_attribute("src")]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT.with_name(f"app-error-{Path(name).suffix[1:]}.png")))


def test_client_bad_inputs_keep_the_page_usable(server, tmp_path):
    """A text file as the video, a photo with no person: error/cause/hint lines, then a good run."""
    from gradio_client import Client, handle_file

    url, app_dir = server
    sample = app_dir / "sample"
    client = Client(url, verbose=False, download_files=str(tmp_path))
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50)
    *outs, status = client.predict(handle_file(str(notes)), handle_file(str(sample / "person.png")), WARP,
                                   25, 3.5, 0, "auto", api_name="/generate")
    assert outs == [None] * 5 and "error: cannot read video" in status and "hint:" in status, status
    import numpy as np

    from fgbg.video import write_image

    empty = tmp_path / "wall.png"
    write_image(empty, np.full((256, 256, 3), 200, np.uint8))
    *outs, status = client.predict(handle_file(str(sample / "driving.mp4")), handle_file(str(empty)), WARP,
                                   25, 3.5, 0, "auto", api_name="/generate")
    assert outs == [None] * 5 and "error: no person found in the reference photo" in status, status
    assert "hint:" in status and "Traceback" not in status
    *outs, status = client.predict(handle_file(str(sample / "driving.mp4")), handle_file(str(sample / "person.png")),
                                   WARP, 25, 3.5, 0, "auto", api_name="/generate")
    assert outs[0] is not None and "done in" in status
