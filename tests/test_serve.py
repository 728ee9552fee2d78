"""gsc serve: the job queue, the HTTP API (bad inputs, 5 requests at once) and the page in a real headless Chromium.

The server runs in its own process on 127.0.0.1 and a free port; every wait is bounded. The browser test fails,
never skips, when Chromium or its driver is missing: a skipped browser test would hide a broken page.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.serve.jobs import JobQueue, QueueFull

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
SRC = Path(__file__).resolve().parents[1] / "src"


# -- the queue, without the codec ------------------------------------------------------------------------
def _wait(queue: JobQueue, jobs, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while any(j.state in ("queued", "running") for j in jobs):
        assert time.monotonic() < end, [queue.state(j) for j in jobs]
        time.sleep(0.01)


def test_queue_runs_one_job_at_a_time_in_order_and_keeps_serving_after_failures():
    gate, running, seen = threading.Event(), [], []

    def run(job, progress):
        running.append(job.id)
        assert len(running) - len(seen) == 1          # never two at once
        progress(f"working on {job.params['n']}")
        gate.wait(5)
        seen.append(job.id)
        if job.params["n"] == 1:
            raise GSCError("bad input, one line")
        if job.params["n"] == 2:
            raise ZeroDivisionError("a bug\nwith a second line")
        return {"n": job.params["n"]}, {"f.bin": (b"x" * job.params["n"], "application/octet-stream")}

    queue = JobQueue(run, max_waiting=3, keep=2)
    try:
        jobs = [queue.submit("k", {"n": n}) for n in range(3)]
        end = time.monotonic() + 5
        while jobs[0].state != "running":
            assert time.monotonic() < end
            time.sleep(0.01)
        assert [queue.position(j) for j in jobs] == [0, 1, 2]
        assert queue.state(jobs[0])["step"] == "working on 0"
        jobs.append(queue.submit("k", {"n": 3}))
        with pytest.raises(QueueFull, match="already waiting"):
            queue.submit("k", {"n": 4})
        gate.set()
        _wait(queue, jobs)
        assert seen == ["1", "2", "3", "4"] and [j.order for j in jobs] == [1, 2, 3, 4]
        assert [j.state for j in jobs] == ["done", "failed", "failed", "done"]
        assert jobs[1].error == "bad input, one line"
        assert jobs[2].error == "internal error: ZeroDivisionError: a bug"
        assert jobs[3].result == {"n": 3} and jobs[3].params == {}      # the upload is dropped once done
        assert [queue.get(j.id) for j in jobs[:2]] == [None, None]      # only the last `keep` are kept
        assert queue.get("4") is jobs[3]
    finally:
        gate.set()
        queue.close()


def test_serve_command_refuses_a_bad_port_in_one_line(capsys):
    from gsc.cli import main

    assert main(["serve", "--port", "70000"]) == 1
    assert capsys.readouterr().err.strip() == "error: --port must be 0..65535, got 70000"


# -- a real server ---------------------------------------------------------------------------------------
class Server:
    def __init__(self, proc: subprocess.Popen, url: str, output: list[str]):
        self.proc, self.url, self.output = proc, url, output   # output: its lines so far

    def request(self, path: str, data: bytes | None = None, timeout: float = 30):
        """(status, body) of GET (or POST with ``data``) ``path``."""
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, path: str, data: bytes | None = None):
        status, body = self.request(path, data)
        return status, json.loads(body)

    def declared_only(self, path: str, length: int):
        """(status, JSON) of a POST that declares ``length`` bytes and sends none: refused from its header."""
        import http.client
        from urllib.parse import urlsplit

        url = urlsplit(self.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            conn.putrequest("POST", "/" + path)
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        end = time.monotonic() + timeout
        while True:
            status, state = self.json(f"api/jobs/{job_id}")
            assert status == 200, state
            if state["state"] in ("done", "failed"):
                return state
            assert time.monotonic() < end, f"job {job_id} not done after {timeout} s: {state}"
            time.sleep(0.3)

    def peak_rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc")


def _start(code: str, timeout: float = 60) -> Server:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    end = time.monotonic() + timeout
    while not any("http://" in line for line in lines):
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            pytest.fail(f"gsc serve did not start: {''.join(lines)}")
        time.sleep(0.1)
    url = next(line for line in lines if "http://" in line).split()[2]
    assert url.startswith("http://127.0.0.1:")
    return Server(proc, url, lines)


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server():
    """``gsc serve --port 0``, as a user runs it."""
    s = _start("import sys; from gsc.cli import main; sys.exit(main(['serve', '--port', '0']))")
    yield s
    _stop(s)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (its pixel data is a small image's): refused unread."""
    import struct
    import zlib

    data = bytearray(_png(np.zeros((16, 16, 3), np.uint8)))
    ihdr = bytearray(data[12:29])                   # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_bad_inputs_get_one_line_and_the_server_keeps_serving(server):
    from gsc.testing.fuzz import hostile_streams

    ok = _png(np.full((64, 64, 3), 128, np.uint8))
    cases = {
        "api/compare?name=notes.txt": (b"not an image at all\n", "notes.txt is not an image"),
        "api/compare?name=empty.png": (b"", "empty.png is empty"),
        "api/compare?name=big.png": (_huge_png_header(10000, 10000), "10000×10000 (100.0 Mpx); this server takes "
                                                                     "images of at most 16.8 Mpx"),
        "api/compare?name=a.png&bpp=0.2": (ok, "budget must be 0.002–0.05 bpp, got 0.2"),
        "api/compare?name=a.png&bpp=0.001": (ok, "budget must be 0.002–0.05 bpp, got 0.001"),
        "api/compare?name=a.png&bpp=lots": (ok, "budget must be a number"),
        "api/compare?name=a.png&caption_policy=maybe": (ok, "caption policy must be one of keep, drop, auto"),
    }
    for path, (body, expected) in cases.items():
        status, answer = server.json(path, body)
        assert status == 400 and expected in answer["error"] and "\n" not in answer["error"], (path, answer)
    streams = {"garbage.gsc": os.urandom(40), "cut.gsc": b"\xb1\x00", "empty.gsc": b"",
               **{f"hostile{i}.gsc": s for i, s in enumerate(hostile_streams().values())}}
    for name, body in streams.items():
        status, answer = server.json(f"api/decode?name={name}", body)
        assert status == 202, answer
        state = server.wait(answer["id"], timeout=30)
        assert state["state"] == "failed" and state["error"] and "\n" not in state["error"], (name, state)
        assert not state["error"].startswith("internal error"), (name, state)
    status, answer = server.declared_only("api/decode?name=big.gsc", 2 * 2**20)   # over the format's 1 MiB
    assert status == 400 and answer["error"] == "big.gsc is 2097152 bytes; this server takes at most 1048576 bytes"
    assert server.json("api/jobs/999999")[0] == 404
    status, page = server.request("")
    assert status == 200 and b"<title>gsc" in page
    assert b"http://" not in page and b"https://" not in page          # nothing fetched from elsewhere


def _layered_stream() -> tuple[bytes, list[int]]:
    """A 3-layer flux-tiny stream (v4; channel groups of 2, 3 and 1) of a 64×48 picture, and its layers' ends."""
    from gsc.format.layered import read
    from gsc.testing.fuzz import sample_layered_stream

    stream = sample_layered_stream(size=(64, 48))
    ends = [end for _, end, _ in read(stream).report.layers]
    assert len(ends) == 3 and ends[-1] == len(stream)
    return stream, ends


def _picture(server: Server, job_id: str, name: str) -> np.ndarray:
    status, body = server.request(f"api/jobs/{job_id}/files/{name}")
    assert status == 200, body
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """The same 8-bit picture, give or take one level (two processes' float sums may round apart)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= 1


def test_a_layered_upload_shows_each_layer_and_a_cut_one_says_what_it_lost(server):
    from gsc.codec import Codec
    from gsc.format.layered import read
    from gsc.image import to_uint8

    stream, ends = _layered_stream()
    cut = stream[:ends[1] - 2]                  # ends inside layer 2: layer 1 arrived whole
    jobs = {}
    for name, data in {"layered.gsc": stream, "cut.gsc": cut}.items():
        status, answer = server.json(f"api/decode?name={name}", data)
        assert status == 202, answer
        jobs[name] = answer["id"]
    states = {name: server.wait(job_id, timeout=240) for name, job_id in jobs.items()}
    assert [s["state"] for s in states.values()] == ["done", "done"], states

    result = states["layered.gsc"]["result"]
    assert result["report"] is None and result["layers"][-1]["src"] == result["tiles"][0]["src"]
    assert [layer["bytes"] for layer in result["layers"]] == ends
    assert [layer["decoded"] for layer in result["layers"]] == [1, 2, 3]
    assert [layer["bpp"] for layer in result["layers"]] == pytest.approx([end * 8 / (64 * 48) for end in ends])
    shown = [_picture(server, jobs["layered.gsc"], layer["src"]) for layer in result["layers"]]
    codec = Codec()
    for end, picture in zip(ends, shown):
        assert _close(picture, to_uint8(codec.decode(stream[:end]))), end
    assert not _close(shown[0], shown[-1])      # the layers after the first change the picture

    result = states["cut.gsc"]["result"]
    assert result["report"] == read(cut).report.line() and "inside layer 2" in result["report"]
    assert [(layer["bytes"], layer["decoded"]) for layer in result["layers"]] == [(len(cut), 1)]
    assert _close(_picture(server, jobs["cut.gsc"], result["layers"][0]["src"]), shown[0])


@pytest.mark.slow
@pytest.mark.shared_data("kodak")
def test_five_requests_at_once_complete_in_order_with_bounded_memory():
    server = _start("from gsc.serve import serve; serve('127.0.0.1', 0, echo=lambda s: print(s, flush=True), "
                    "max_waiting=5, keep=3)")
    try:
        budget = 0.05
        images = []
        for k in range(5):            # small crops (the issue asks for Kodak only in the browser test)
            with Image.open(KODAK / f"kodim{k + 1:02d}.png") as im:
                images.append(np.asarray(im.convert("RGB"))[100:228, 200:392])

        def send(k):
            return server.json(f"api/compare?name=crop{k}.png&bpp={budget}", _png(images[k]))

        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(send, range(5)))
        assert all(status == 202 for status, _ in answers), answers
        t0 = time.monotonic()
        assert server.request("api/limits")[0] == 200
        assert time.monotonic() - t0 < 2.0          # the server answers while the worker codes
        by_id = sorted((int(a["id"]), a) for _, a in answers)
        assert [a["position"] for _, a in by_id] == [0, 1, 2, 3, 4]   # each saw its place in the queue
        results = {}
        end = time.monotonic() + 300
        while len(results) < 5:        # poll all: finished jobs beyond `keep` are forgotten
            for i, _ in by_id:
                if i not in results:
                    status, state = server.json(f"api/jobs/{i}")
                    assert status == 200, state
                    if state["state"] in ("done", "failed"):
                        results[i] = state
                        if state["state"] == "done":
                            gsc = state["result"]["tiles"][1]
                            stem = Path(state["result"]["name"]).stem
                            status, stream = server.request(f"api/jobs/{i}/files/{stem}.gsc")
                            assert status == 200 and len(stream) == gsc["bytes"]
            assert time.monotonic() < end, results
            time.sleep(0.3)
        ids = [i for i, _ in by_id]
        assert [results[i]["state"] for i in ids] == ["done"] * 5, [results[i]["error"] for i in ids]
        assert [results[i]["order"] for i in ids] == [1, 2, 3, 4, 5]   # started, and so finished, in order
        assert sorted(results[i]["result"]["name"] for i in ids) == [f"crop{k}.png" for k in range(5)]
        for i in ids:
            r = results[i]["result"]
            assert (r["width"], r["height"]) == (192, 128)
            original, gsc, webp = r["tiles"]
            assert 0 < gsc["bytes"] <= budget * 192 * 128 / 8 and gsc["bytes"] == r["info"]["total_bytes"]
            assert webp["bytes"] is None or webp["bytes"] <= gsc["bytes"]
            assert gsc["psnr"] > 12 and 0 <= gsc["st_lpips"] <= 1 and gsc["colour_drift"] >= 0
        assert server.json(f"api/jobs/{ids[0]}")[0] == 404            # forgotten: only the last 3 are kept
        peak = server.peak_rss_bytes()
        print(f"gsc serve peak RSS after 5 jobs: {peak / 2**20:.0f} MiB")
        assert peak < 3 * 2**30
    finally:
        _stop(server)


# -- the page in a browser -------------------------------------------------------------------------------
def _browser(download_dir: Path):
    """Headless Debian Chromium through its chromedriver; fails (never skips) when either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[test]'")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1250"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(driver), options=options)


def _until(condition, timeout: float, what: str):
    """``condition()``'s first true value, polled; an element not on the page yet counts as false."""
    from selenium.common.exceptions import NoSuchElementException

    end = time.monotonic() + timeout
    while True:
        try:
            if value := condition():
                return value
        except NoSuchElementException:
            pass
        assert time.monotonic() < end, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.shared_data("kodak")
def test_page_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shots = Path(os.environ.get("GSC_SCREENSHOTS", tmp_path))
    image = KODAK / "kodim23.png"
    browser = _browser(downloads)
    try:
        browser.get(server.url)
        find = lambda css: browser.find_element(By.CSS_SELECTOR, css)  # noqa: E731
        _until(lambda: find("#caption-policy option"), 60, "the page to load its limits")
        find("#file").send_keys(str(image))
        find("#bpp").clear()
        find("#bpp").send_keys("0.01")
        find("#go").click()
        statuses = set()

        def finished():
            statuses.add(find("#status").text)
            return find("#status").text.startswith("done") or find("#error").text

        _until(finished, 180, "the comparison")
        assert not find("#error").text, find("#error").text
        assert any("s so far" in s for s in statuses), statuses          # progress was shown while it worked
        _until(lambda: browser.execute_script(
            "return [...document.images].every((i) => i.complete && i.naturalWidth > 0)"), 15, "the pictures")
        labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "figcaption .label")]
        assert labels[0] == "original" and labels[1].startswith("gsc lite") and labels[2].startswith("WebP")
        shown = [int(e.text) for e in browser.find_elements(By.CSS_SELECTOR, "figcaption .bytes")]
        assert len(shown) == 2 and shown[0] <= 0.01 * 768 * 512 / 8 and shown[1] <= shown[0]
        for text in ("PSNR", "colour drift", "ST-LPIPS"):
            assert text in find("#tile-1 figcaption").text
        img = find("#tile-0 img")             # click the red parrot's eye: every zoom shows it
        ActionChains(browser).move_to_element_with_offset(
            img, round((508 / 768 - 0.5) * img.size["width"]), round((171 / 512 - 0.5) * img.size["height"])
        ).click().perform()
        zooms = browser.execute_script("return [...document.querySelectorAll('.zoom')].map((z) => "
                                       "[z.style.backgroundPosition, z.style.backgroundSize, z.dataset.src])")
        assert len(zooms) == 3 and len({(p, s) for p, s, _ in zooms}) == 1, zooms
        assert zooms[0][1] == "1536px 1024px"                           # 2× by default
        browser.save_screenshot(str(shots / "serve.png"))

        find("#download-stream").click()
        stream = downloads / "kodim23.gsc"
        _until(lambda: stream.exists() and not list(downloads.glob("*.crdownload")), 20, "the .gsc download")
        assert len(stream.read_bytes()) == shown[0]
        out = tmp_path / "decoded.png"
        done = subprocess.run([sys.executable, "-m", "gsc", "decode", str(stream), "-o", str(out), "-q"],
                              capture_output=True, text=True, timeout=180,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
        assert done.returncode == 0, done.stderr
        src = find("#tile-1 img").get_attribute("src")
        with urllib.request.urlopen(src, timeout=10) as r:
            page_image = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), page_image)

        find("#file").send_keys(str(stream))          # the page decodes a .gsc and shows gsc info's fields
        find("#go").click()
        _until(lambda: find("#status").text.startswith("done") or find("#error").text, 180, "the decode")
        assert not find("#error").text, find("#error").text
        info = dict(tuple(row.text.split(" ", 1)) for row in browser.find_elements(By.CSS_SELECTOR, "#info tr"))
        assert info["total_bytes"] == str(shown[0]) and info["width"] == "768" and info["preset"] == '"lite"'
        src = _until(lambda: browser.execute_script(
            "const i = document.querySelector('#tile-0 img'); return i && i.complete && i.naturalWidth && i.src"),
            15, "the decoded picture")
        with urllib.request.urlopen(src, timeout=10) as r:
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB")), page_image)

        text_file = tmp_path / "notes.txt"
        text_file.write_text("a shopping list, not a picture\n")
        find("#file").send_keys(str(text_file))
        find("#go").click()
        error = _until(lambda: find("#error").text, 30, "the error line")
        assert error == "notes.txt is not an image this server reads (PNG, JPEG, WebP, …)"
        browser.save_screenshot(str(shots / "serve-error.png"))
    finally:
        browser.quit()


def _to_fixed(x: float, digits: int = 4) -> str:
    """JavaScript's ``x.toFixed(digits)``: an exact half rounds up (Python's format rounds it to even)."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


@pytest.mark.slow
def test_bytes_received_slider_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = Path(os.environ.get("GSC_SCREENSHOTS", tmp_path))
    stream, ends = _layered_stream()
    (tmp_path / "layered.gsc").write_bytes(stream)
    (tmp_path / "cut.gsc").write_bytes(stream[:ends[1] - 2])
    browser = _browser(tmp_path)
    try:
        browser.get(server.url)
        find = lambda css: browser.find_element(By.CSS_SELECTOR, css)  # noqa: E731

        def decode(path: Path) -> None:
            find("#file").send_keys(str(path))
            find("#go").click()
            _until(lambda: find("#status").text.startswith("done") or find("#error").text, 240, path.name)
            assert not find("#error").text, find("#error").text

        def picture() -> np.ndarray:
            src = _until(lambda: browser.execute_script(
                "const i = document.querySelector('#tile-0 img'); return i.complete && i.naturalWidth && i.src"),
                15, "the picture")
            with urllib.request.urlopen(src, timeout=10) as r:
                return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))

        _until(lambda: find("#caption-policy option"), 60, "the page to load its limits")
        decode(tmp_path / "layered.gsc")
        slider = find("#layers")
        assert find("#layers-row").is_displayed() and slider.get_attribute("max") == "2"
        assert not find("#report").is_displayed()
        shown, pictures = [find("#layer-bytes").text], [picture()]
        for _ in ends[1:]:
            slider.send_keys(Keys.ARROW_LEFT)           # one layer fewer: the picture at fewer bytes received
            shown.append(find("#layer-bytes").text)
            pictures.append(picture())
        assert shown == [f"{end} B ({_to_fixed(end * 8 / (64 * 48))} bpp), {k} layer{'s' * (k > 1)} decoded"
                         for k, end in zip((3, 2, 1), ends[::-1])], shown
        assert find("#tile-0 img").get_attribute("src").endswith(f"layered-{ends[0]}B.png")
        assert find("#tile-0 figcaption .bytes").text == str(ends[0])     # its caption follows the slider
        assert not _close(pictures[0], pictures[-1])
        zoom = browser.execute_script("return document.querySelector('.zoom').style.backgroundImage")
        assert f"layered-{ends[0]}B.png" in zoom, zoom          # the zoom shows the same layer
        browser.save_screenshot(str(shots / "serve-layers.png"))

        decode(tmp_path / "cut.gsc")
        assert not find("#layers-row").is_displayed()           # one picture: nothing to slide
        assert find("#report").is_displayed()
        assert find("#report").text.startswith("layer 1 of 3 decoded; stream ends at byte"), find("#report").text
        browser.save_screenshot(str(shots / "serve-cut.png"))
    finally:
        browser.quit()


def test_ctrl_c_stops_the_server_at_once_even_mid_job():
    import signal

    server = _start("import sys; from gsc.cli import main; sys.exit(main(['serve', '--port', '0']))")
    try:
        status, answer = server.json("api/compare?name=grey.png", _png(np.full((256, 256, 3), 90, np.uint8)))
        assert status == 202, answer
        _until(lambda: server.json(f"api/jobs/{answer['id']}")[1]["state"] == "running", 30, "the job to start")
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=15) == 130
        time.sleep(0.5)                               # the reader thread takes the last lines
        out = "".join(server.output)
        assert "the running job was abandoned" in out and "terminate called" not in out, out
    finally:
        if server.proc.poll() is None:
            _stop(server)
