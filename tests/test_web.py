"""fastnst-web: the page stylizes in a real (headless) Chromium, with ONNX Runtime Web, what
ONNX Runtime in Python gives for the same model and photo; bad input is a message on the page.
Needs Debian's chromium and chromium-driver, selenium and `npm ci --prefix fastnst/webpage`
(.ci/run installs them); skips without."""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import smooth_image, tiny_model
from PIL import Image

from fastnst.images import from_rgb_array, write_image
from fastnst.styles import find_model
from fastnst.web import ORT_DIST, ORT_FILES, Site, WebError, offered_models, serve


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e .[dev])")
    if not all((ORT_DIST / f).is_file() for f in ORT_FILES):
        pytest.skip(f"onnxruntime-web is not installed: npm ci --prefix {ORT_DIST.parents[2]}")
    from fastnst.web import headless_browser

    try:
        chrome = headless_browser()
    except WebError as e:
        pytest.skip(str(e))
    yield chrome
    chrome.quit()


@pytest.fixture
def page(browser, tmp_path):
    """The page served with a shipped fast network and a small multi-style model; returns a
    function that opens it and waits until it is ready."""
    multi = tiny_model(tmp_path / "blends.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b"))
    site = Site(offered_models(["mosaic-fast", str(multi)]))
    server = serve(site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def open_page():
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait_for(browser, ("ready", "error"))
        return browser

    yield open_page
    server.shutdown()
    server.server_close()


def wait_for(browser, states, timeout: float = 120) -> str:
    """Wait until the page's state is one of `states`; return its status line."""
    from selenium.webdriver.common.by import By

    end = time.monotonic() + timeout
    while browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") not in states:
        assert time.monotonic() < end, browser.find_element(By.ID, "status").text
        time.sleep(0.05)
    return browser.find_element(By.ID, "status").text


def canvas_pixels(browser, canvas: str = "result") -> np.ndarray:
    data = browser.execute_script(f"return document.getElementById('{canvas}').toDataURL()")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))
                                 ).convert("RGB"))


def python_result(model: Path, photo: np.ndarray, mix: list[float] | None = None) -> np.ndarray:
    """What ONNX Runtime in Python gives for the model's export and the photo, as uint8."""
    from fastnst.export import cached_onnx
    from fastnst.images import to_rgb_array
    from fastnst.stylizer import OnnxBackend

    backend = OnnxBackend(cached_onnx(model)[0], __import__("torch").device("cpu"))
    if mix is not None:
        backend = backend.mixed([(s, w) for s, w in zip(backend.styles, mix, strict=True)])
    return to_rgb_array(backend(from_rgb_array(photo)))


@pytest.mark.slow  # a browser, and ONNX exports
def test_the_page_stylizes_a_photo_as_onnx_runtime_does_and_blends(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = page()
    photo = np.asarray(Image.open(find_photo()).convert("RGB").resize((200, 150)))
    path = write_image(from_rgb_array(photo), tmp_path / "photo.png")  # PNG: no decoder drift
    Select(browser.find_element(By.ID, "style")).select_by_value("model:mosaic-fast")
    browser.find_element(By.ID, "photo").send_keys(str(path))
    assert wait_for(browser, ("done", "error")).startswith("Done: mosaic-fast")
    got = canvas_pixels(browser).astype(int)
    expected = python_result(find_model("mosaic-fast"), photo).astype(int)
    assert got.shape == expected.shape == (150, 200, 3)
    assert np.abs(got - expected).max() <= 3 and np.abs(got - expected).mean() < 0.5
    assert np.abs(got - photo).mean() > 10  # the result, not the photo
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
    # A multi-style model's blend: its two inputs, the same as in Python.
    Select(browser.find_element(By.ID, "style")).select_by_value("multi:a")
    Select(browser.find_element(By.ID, "style-b")).select_by_value("b")
    browser.execute_script("const s = document.getElementById('blend'); s.value = 40;"
                           " s.dispatchEvent(new Event('change'));")
    assert "a 60% + b 40%" in wait_for(browser, ("done", "error"))
    blended = canvas_pixels(browser).astype(int)
    expected = python_result(tmp_path / "blends.safetensors", photo, [0.6, 0.4]).astype(int)
    assert np.abs(blended - expected).max() <= 3


@pytest.mark.slow  # a browser, and an ONNX export
def test_the_stroke_slider_paints_as_python_does(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from fastnst.export import cached_onnx
    from fastnst.stylize_options import StylizeOptions
    from fastnst.stylizer import OnnxBackend, stylize_frame

    browser = page()
    photo = np.asarray(Image.open(find_photo()).convert("RGB").resize((400, 300)))
    path = write_image(from_rgb_array(photo), tmp_path / "photo.png")
    Select(browser.find_element(By.ID, "style")).select_by_value("model:mosaic-fast")
    browser.find_element(By.ID, "photo").send_keys(str(path))
    assert wait_for(browser, ("done", "error")).startswith("Done: mosaic-fast")
    default = canvas_pixels(browser).astype(int)  # stroke 1
    results = {}
    for stroke in (2, 4):
        browser.execute_script(f"const s = document.getElementById('stroke'); s.value = {stroke};"
                               " s.dispatchEvent(new Event('change'));")
        assert f"stroke {stroke}" in wait_for(browser, ("done", "error"))
        results[stroke] = canvas_pixels(browser).astype(int)
        assert results[stroke].shape == (300, 400, 3)
        backend = OnnxBackend(cached_onnx(find_model("mosaic-fast"))[0],
                              __import__("torch").device("cpu"))
        expected = stylize_frame(backend, np.ascontiguousarray(photo[..., ::-1]),
                                 StylizeOptions(stroke=stroke)).astype(int)
        # The browser shrinks the photo with its own filter, Python with OpenCV's area mean.
        assert np.abs(results[stroke] - expected).mean() < 6
    assert np.abs(results[2] - results[4]).mean() > 5 and np.abs(results[2] - default).mean() > 5


@pytest.mark.slow  # a browser, and the painter's export
def test_a_painting_dropped_on_the_page_paints_the_photo_as_python_does(
        vgg_weights, shipped_painter, page, tmp_path):
    from helpers import tinted
    from selenium.webdriver.common.by import By

    from fastnst.painting_onnx import cached_painter_onnx

    browser = page()
    photo = np.asarray(Image.open(find_photo()).convert("RGB").resize((200, 150)))
    browser.find_element(By.ID, "photo").send_keys(
        str(write_image(from_rgb_array(photo), tmp_path / "photo.png")))
    assert wait_for(browser, ("done", "error")).startswith("Done:")
    from fastnst.onnx_checks import new_session

    session = new_session(cached_painter_onnx()[1], ["CPUExecutionProvider"])
    results = {}
    for name, colour in (("red", (0.9, 0.25, 0.15)), ("blue", (0.15, 0.3, 0.9))):
        painting = tinted(colour, 64)  # under the painter's side: the page keeps its size
        path = write_image(painting, tmp_path / f"{name}.png")
        browser.find_element(By.ID, "painting").send_keys(str(path))
        assert wait_for(browser, ("done", "error")).startswith(f"Done: {name}.png")
        got = canvas_pixels(browser).astype(int)
        feeds = {"image": (photo.transpose(2, 0, 1)[None] / 255).astype(np.float32),
                 "painting": (np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)[None]
                              / 255).astype(np.float32)}
        expected = np.clip(session.run(["stylized"], feeds)[0][0].transpose(1, 2, 0) * 255
                           + 0.5, 0, 255).astype(int)
        assert got.shape == expected.shape == (150, 200, 3)
        assert np.abs(got - expected).max() <= 3 and np.abs(got - expected).mean() < 0.5
        results[name] = got
    # The painting decides the colours.
    assert results["red"][..., 0].mean() > results["blue"][..., 0].mean() + 25
    assert results["blue"][..., 2].mean() > results["red"][..., 2].mean() + 50


def find_photo() -> Path:
    from fastnst.shared_data import EVAL_DIR

    path = EVAL_DIR / "kodim23.jpg"
    if not path.is_file():
        pytest.skip(f"evaluation photos not found in {EVAL_DIR} (needs ../shared)")
    return path


@pytest.mark.slow  # a browser
def test_bad_input_is_a_message_on_the_page_not_a_blank_canvas(page, tmp_path):
    from selenium.webdriver.common.by import By

    browser = page()
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    browser.find_element(By.ID, "photo").send_keys(str(bad))
    assert "notes.jpg: cannot be decoded as an image" in wait_for(browser, ("error", "done"))
    # The same for a painting (the painter ships, so the page offers it).
    assert browser.find_element(By.ID, "painting-control").is_displayed()
    browser.execute_script("document.body.dataset.state = 'ready';")
    browser.find_element(By.ID, "painting").send_keys(str(bad))
    assert "notes.jpg: cannot be decoded as an image" in wait_for(browser, ("error",))
    # No camera permission: the page says so.
    browser.execute_script("navigator.mediaDevices.getUserMedia = () => Promise.reject("
                           "new DOMException('denied', 'NotAllowedError'));")
    browser.find_element(By.ID, "webcam").click()
    assert "no permission" in wait_for(browser, ("error",))
    # A model that fails to load.
    browser.execute_script("window.fastnst.models[0].url = 'models/missing.onnx';")
    write_image(smooth_image(40, 50), tmp_path / "ok.png")
    browser.find_element(By.ID, "photo").send_keys(str(tmp_path / "ok.png"))
    assert "failed to load" in wait_for(browser, ("error", "done"))


@pytest.mark.slow  # a browser, and seconds of frames
def test_the_webcam_shows_stylized_frames_and_their_rate(page):
    from selenium.webdriver.common.by import By

    browser = page()  # Chromium's fake camera: a moving test pattern
    browser.find_element(By.ID, "webcam").click()
    end = time.monotonic() + 60
    while "frames/s" not in browser.find_element(By.ID, "status").text:
        assert time.monotonic() < end and browser.find_element(
            By.TAG_NAME, "body").get_attribute("data-state") != "error", \
            browser.find_element(By.ID, "status").text
        time.sleep(0.1)
    assert canvas_pixels(browser).std() > 5  # a picture, not a blank canvas
    browser.find_element(By.ID, "webcam").click()
    assert wait_for(browser, ("done",)) == "Webcam stopped."


def test_the_server_hands_out_only_its_files_and_says_what_is_missing(tmp_path, capsys):
    import urllib.error
    import urllib.request

    from fastnst import web

    with pytest.raises(WebError, match=r"onnxruntime-web is not installed .*npm ci --prefix"):
        Site({}, ort_dist=tmp_path)
    assert web.main(["--port", "0", "--style", str(tmp_path / "none.safetensors")]) == 1
    assert "none.safetensors: no such file" in capsys.readouterr().err
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_FILES:
        (dist / name).write_text("// ort")
    (tmp_path / "secret.txt").write_text("secret")
    model = tiny_model(tmp_path / "tiny.safetensors")
    server = serve(Site({"tiny": model}, ort_dist=dist), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with urllib.request.urlopen(base) as r:
            assert b"fastnst" in r.read()
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(base + "models.json") as r:
            assert b'"url": "models/tiny.onnx"' in r.read()
        with urllib.request.urlopen(base + "models/tiny.onnx") as r:
            assert r.headers["Content-Type"] == "application/octet-stream" and len(r.read()) > 1000
        for path in ("ort/../secret.txt", "..%2Fsecret.txt", "models/other.onnx",
                     "webpage/app.js", "ort/ort.min.js.map"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(base + path)
        with pytest.raises(urllib.error.HTTPError, match="501"):  # GET only: no HEAD, no POST
            urllib.request.urlopen(urllib.request.Request(base + "secret.txt", method="HEAD"))
    finally:
        server.shutdown()
        server.server_close()


def test_the_page_offers_models_as_style_strings_mean_them(tmp_path):
    from fastnst.errors import UsageError
    from fastnst.model_files import shipped_models

    assert offered_models(["multi", "mosaic-fast"]) == {
        "multi": shipped_models()["multi"], "mosaic-fast": shipped_models()["mosaic-fast"]}
    with pytest.raises(UsageError, match="a blend; the page offers models"):
        offered_models(["mosaic:0.5,udnie:0.5"])
    with pytest.raises(UsageError, match="a painting; the page offers models"):
        offered_models([str(tmp_path / "painting.jpg")])


@pytest.mark.slow  # a browser
def test_a_multi_style_model_offered_alone_starts_on_its_newest_style(browser, tmp_path):
    from selenium.webdriver.common.by import By

    multi = tiny_model(tmp_path / "grown.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b", "c"))
    server = serve(Site(offered_models([str(multi)])), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        assert wait_for(browser, ("ready", "error")).startswith("Ready: 1 models")
        assert browser.find_element(By.ID, "style").get_attribute("value") == "multi:c"
        assert browser.find_element(By.ID, "blend-controls").is_displayed()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tiny_site(tmp_path):
    """A server of a tiny model with stand-in onnxruntime-web files, serving; yields (base URL,
    the model's path, the server)."""
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_FILES:
        (dist / name).write_text("// ort")
    model = tiny_model(tmp_path / "tïny.safetensors")  # a name that is not ASCII
    server = serve(Site({"tiny": model}, ort_dist=dist), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", model, server
    server.shutdown()
    server.server_close()


def raw_request(base: str, request: bytes, timeout: float = 5) -> bytes:
    """Send `request` as it is to the server of `base`; return all it answers."""
    import socket

    host, port = base.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_server_answers_only_its_own_host_names(tiny_site):
    base, _, server = tiny_site
    port = server.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        answer = raw_request(base, f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 200"), host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", ""):
        answer = raw_request(base, f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 421") and b"fastnst" not in answer, host
    answer = raw_request(base, b"GET / HTTP/1.0\r\n\r\n")  # no Host header at all
    assert answer.startswith(b"HTTP/1.0 421")


def test_idle_connections_are_dropped_and_cannot_crowd_out_a_request(tiny_site, monkeypatch):
    import socket
    import urllib.request

    from fastnst import web

    base, _, server = tiny_site
    host, port = server.server_address[:2]
    idle = [socket.create_connection((host, port)) for _ in range(web.MAX_CONNECTIONS + 20)]
    try:
        time.sleep(0.5)
        start = time.monotonic()
        while True:  # a request gets through once the idle ones time out, within the limit
            try:
                with urllib.request.urlopen(base, timeout=2) as r:
                    assert r.status == 200
                break
            except OSError:
                assert time.monotonic() - start < web.IDLE_SECONDS + 5
        idle[0].settimeout(web.IDLE_SECONDS + 5)
        assert idle[0].recv(10) == b""  # the server closed it
    finally:
        for s in idle:
            s.close()


def test_a_model_gone_or_an_export_error_is_an_answer_not_a_dropped_request(tiny_site, capsys):
    base, model, _ = tiny_site
    model.unlink()  # deleted after the server started; the error names it, not in ASCII
    answer = raw_request(base, b"GET /models/tiny.onnx HTTP/1.0\r\nHost: "
                         + base.split("//")[1].rstrip("/").encode() + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 500") and "tïny.safetensors".encode() in answer
    assert "tïny.safetensors" in capsys.readouterr().err


def test_a_port_out_of_range_is_a_usage_error(capsys):
    from fastnst import web

    for port in ("99999", "-1", "http"):
        with pytest.raises(SystemExit) as e:
            web.main(["--port", port])
        assert e.value.code == 2
        assert "a port is 0..65535" in capsys.readouterr().err
