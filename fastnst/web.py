"""fastnst-web: serve the web page that stylizes photos and the webcam in the browser.

    fastnst-web [--port 8000] [--host 127.0.0.1] [--style NAME_OR_FILE ...]

The page (fastnst/webpage/) runs the exported ONNX models with ONNX Runtime Web, from files this
server hands out: the page itself, onnxruntime-web's scripts and WebAssembly (installed by
`npm ci --prefix fastnst/webpage`; no CDN), `models.json` (the models offered: by default every
shipped fast network and the multi-style model) and `models/<name>.onnx`, exported on first
request and cached (export.cached_onnx), and `painter.onnx`, the graph that paints with any
painting dropped on the page (fastnst.painting_onnx), made on first request too. The page is
cross-origin isolated (COOP/COEP headers), which lets ONNX Runtime use several WebAssembly
threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fastnst.console import prepare_console, shown
from fastnst.errors import FastnstError, print_error

PAGE = Path(__file__).resolve().parent / "webpage"
ORT_DIST = PAGE / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.all.min.js", "ort-wasm-simd-threaded.jsep.mjs",
             "ort-wasm-simd-threaded.jsep.wasm", "ort-wasm-simd-threaded.mjs",
             "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "style.css")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
         ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json",
         ".onnx": "application/octet-stream"}


class WebError(FastnstError, RuntimeError):
    """The page cannot be served (onnxruntime-web not installed, a model that will not load)."""


def offered_models(specs: Sequence[str] = ()) -> dict[str, Path]:
    """`{name: model file}` the page offers: `specs` (resolved as `--style` is:
    fastnst.styles), else every shipped fast network and the shipped multi-style model. A
    style of a multi-style model offers that model, whose styles the page lists and blends; a
    blend or a painting is a one-line UsageError (the page blends with its slider)."""
    from fastnst.errors import UsageError
    from fastnst.model_files import FAST_SUFFIX, shipped_models, style_label
    from fastnst.style_mix import MULTI_MODEL
    from fastnst.styles import Blend, Painting, resolve_style

    if specs:
        offered = {}
        for spec in specs:
            choice = resolve_style(spec)
            if isinstance(choice, (Blend, Painting)):
                kind = "a blend" if isinstance(choice, Blend) else "a painting"
                raise UsageError(f"--style {spec}: {kind}; the page offers models (it blends the"
                                 f" styles of a multi-style model with its slider: --style"
                                 f" {MULTI_MODEL})")
            offered[style_label(choice.path.stem)] = choice.path
        return offered
    shipped = shipped_models()
    return {name: path for name, path in sorted(shipped.items())
            if name.endswith(FAST_SUFFIX) or name == MULTI_MODEL}


PAINTER_URL = "painter.onnx"  # the painter's graph (fastnst.painting_onnx): any painting


class Site:
    """What the server hands out; ONNX files are exported once, on first request. With
    `painter` (and a painting decoder installed) the page also takes any painting, through
    the painter's graph."""

    def __init__(self, models: dict[str, Path], ort_dist: Path = ORT_DIST,
                 painter: bool = True) -> None:
        from fastnst.model_files import read_metadata
        from fastnst.universal import PAINTING_SIDE, shipped_painter
        from fastnst.upsample import page_settings

        missing = [f for f in ORT_FILES if not (ort_dist / f).is_file()]
        if missing:
            raise WebError(f"{ort_dist}: onnxruntime-web is not installed ({missing[0]} missing);"
                           f" run `npm ci --prefix {PAGE}`")
        self.ort_dist = ort_dist
        self.models = models
        self.painter = painter and shipped_painter() is not None
        self.index = {"models": [{"name": name, "url": f"models/{name}.onnx",
                                  "styles": read_metadata(path).get("styles", [])}
                                 for name, path in models.items()],
                      "painter": {"name": "painting", "url": PAINTER_URL, "styles": [],
                                  "side": PAINTING_SIDE} if self.painter else None,
                      "stroke": page_settings()}
        self._lock = threading.Lock()

    def file(self, url_path: str) -> tuple[bytes, str] | None:
        """The body and content type for `url_path`, or None (not found)."""
        from fastnst.export import cached_onnx

        name = url_path.split("?", 1)[0].lstrip("/") or "index.html"
        if name in PAGE_FILES:
            return (PAGE / name).read_bytes(), TYPES[Path(name).suffix]
        if name == "models.json":
            return json.dumps(self.index).encode(), TYPES[".json"]
        if name.startswith("ort/") and name[4:] in ORT_FILES:
            return (self.ort_dist / name[4:]).read_bytes(), TYPES[Path(name).suffix]
        if name == PAINTER_URL and self.painter:
            from fastnst.painting_onnx import cached_painter_onnx

            with self._lock:
                return cached_painter_onnx()[1], TYPES[".onnx"]
        if name.startswith("models/") and name.endswith(".onnx"):
            model = self.models.get(name[len("models/"):-len(".onnx")])
            if model is None:
                return None
            with self._lock:  # one export at a time
                return cached_onnx(model)[1], TYPES[".onnx"]
        return None


IDLE_SECONDS = 10  # a connection that sends nothing for this long is closed
MAX_CONNECTIONS = 64  # connections served at once; more are closed unanswered
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class Handler(BaseHTTPRequestHandler):
    """GET only, from a Site (nothing else on disk, no other method), to requests that name
    this server in their Host header; cross-origin isolated; quiet unless something fails."""

    timeout = IDLE_SECONDS  # socket timeout: half-open and idle connections are dropped

    def __init__(self, *args, site: Site, hosts: frozenset[str] | None, **kwargs) -> None:
        self.site = site
        self.hosts = hosts
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").lower()
        if self.hosts is not None and host not in self.hosts:
            # DNS rebinding: a page of another site that resolves its name to this address
            # may not read from it.
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST, explain=f"not a host this server"
                            f" serves: {host or '(none)'}")
            return
        try:
            found = self.site.file(self.path)
        except (FastnstError, OSError) as e:  # a model deleted since start, an export error
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, explain=str(e))
            print(f"fastnst-web: {shown(self.path)}: {shown(e)}", file=sys.stderr)
            return
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body, kind = found
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        if args and str(args[1]).startswith(("4", "5")):
            sys.stderr.write(shown(f"{self.address_string()} - {format % args}") + "\n")


class Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them: the rest are closed at once,
    so a flood of idle connections cannot use up the process's files."""

    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def served_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers a server on host:port answers: its own address and, on loopback, the
    loopback names, each with the port (and without it on port 80). None (any) when it
    listens on every address (0.0.0.0, ::), where the names it is reached by are not known."""
    if host in ("", "0.0.0.0", "::"):
        return None
    names = {host.lower(), f"[{host.lower()}]" if ":" in host else host.lower()}
    if host in ("127.0.0.1", "::1", "localhost"):
        names.update(LOOPBACK_NAMES)
    with_port = {f"{name}:{port}" for name in names}
    return frozenset(with_port | (names if port == 80 else set()))


def serve(site: Site, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for `site` on host:port (0: any free port), not yet serving."""
    server = Server((host, port), partial(Handler, site=site, hosts=None))
    bound = server.server_address[1]
    server.RequestHandlerClass = partial(Handler, site=site, hosts=served_hosts(host, bound))
    return server


def port_number(text: str) -> int:
    """argparse type of --port: 0..65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 0..65535 (0: any free port)")
    return port


CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def headless_browser(fake_camera: bool = True):  # -> selenium.webdriver.Chrome
    """Headless Chromium under Selenium, for the tests and scripts/bench_web.py: Debian's
    `chromium` and `chromium-driver` (nothing downloaded), with a fake camera that needs no
    permission prompt. WebError when either is missing."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser = next((p for p in CHROMIUM if Path(p).is_file()), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER if Path(p).is_file()), shutil.which("chromedriver"))
    if not browser or not driver:
        raise WebError("headless Chromium needs the chromium and chromium-driver packages"
                       " (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1000,800",
                *(("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
                  if fake_camera else ())):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_script_timeout(300)
    return chrome


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: `fastnst-web` / `python -m fastnst.web`."""
    prepare_console()
    parser = argparse.ArgumentParser(prog="fastnst-web", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=port_number, default=8000, help="0: any free port")
    parser.add_argument("--style", action="append", default=[],
                        help="a model to offer (shipped name or file); repeat; default: the"
                             " shipped fast networks and the multi-style model")
    args = parser.parse_args(argv)
    try:
        site = Site(offered_models(args.style))
        server = serve(site, args.host, args.port)
    except (FastnstError, OSError) as e:
        return print_error("fastnst-web", e if isinstance(e, FastnstError) else WebError(
            f"cannot listen on {args.host}:{args.port} ({e.strerror or e})"))
    host, port = server.server_address[:2]
    print(f"fastnst-web: open http://{host}:{port}/ (Ctrl-C stops); {len(site.models)} models,"
          f" exported to ONNX on first use", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("fastnst-web: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
