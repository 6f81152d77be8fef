"""Benchmark the web page: ms per frame of the fast networks in headless Chromium (ONNX Runtime
Web, WebAssembly), and a screenshot of the page at work.

    python scripts/bench_web.py [--models starry_night-fast multi] [--sizes 640x480]
                                [--painter] [--screenshot docs/web.png --photo kodim23.jpg
                                                           [--painting painting.jpg]]

Serves the page as fastnst-web does, opens it in headless Chromium (fastnst.web.
headless_browser) and times `session.run` on a random image (median of --runs after a warm-up),
with the threads ONNX Runtime Web takes on this machine (the page is cross-origin isolated).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from common import EVAL_DIR, machine, use_shared_data

from fastnst.images import from_rgb_array, read_image, resize_long_side, write_image
from fastnst.web import Site, headless_browser, offered_models, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["starry_night-fast"],
                        help="shipped model names or files")
    parser.add_argument("--sizes", nargs="+", default=["640x480"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--screenshot", type=Path, help="also save the page with a result")
    parser.add_argument("--photo", default="kodim23.jpg", help="an evaluation photo for it")
    parser.add_argument("--painter", action="store_true", help="also time the painter's graph"
                        " (any painting: fastnst.painting_onnx), with a random painting")
    parser.add_argument("--painting", type=Path, help="with --screenshot: paint with this"
                        " painting (dropped on the page) instead of a model")
    args = parser.parse_args()
    use_shared_data()
    site = Site(offered_models(args.models))
    server = serve(site, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = headless_browser()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        end = time.monotonic() + 60
        while browser.execute_script("return document.body.dataset.state") != "ready":
            if time.monotonic() > end:
                status = browser.execute_script("return document.getElementById('status')"
                                                ".textContent")
                raise SystemExit(f"the page did not load: {status}")
            time.sleep(0.1)
        agent = browser.execute_script(r"return navigator.userAgent.match(/Chrome\/[0-9.]+/)[0]")
        threads = browser.execute_script("return ort.env.wasm.numThreads || 'auto'")
        isolated = browser.execute_script("return crossOriginIsolated")
        print(machine())
        print(f"\nheadless {agent}; ONNX Runtime Web (WebAssembly), threads {threads},"
              f" cross-origin isolated: {isolated}; median of {args.runs} runs\n")
        print("| model | " + " | ".join(f"{s} ms" for s in args.sizes) + " |")
        print("|---|" + "---|" * len(args.sizes))
        for name in [*site.models, *(["painting"] if args.painter else [])]:
            cells = []
            for size in args.sizes:
                w, h = (int(v) for v in size.split("x"))
                ms = browser.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    f" window.fastnst.bench({name!r}, {w}, {h}, {args.runs})"
                    ".then(done, (e) => done(String(e)))")
                cells.append(f"{ms:.1f}" if isinstance(ms, (int, float)) else str(ms))
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        if args.screenshot:
            photo = Path(tempfile.mkdtemp()) / "photo.png"
            write_image(resize_long_side(read_image(EVAL_DIR / args.photo), 320), photo)
            browser.find_element("id", "photo").send_keys(str(photo))
            if args.painting:
                while browser.execute_script("return document.body.dataset.state") not in (
                        "done", "error"):
                    time.sleep(0.1)
                browser.find_element("id", "painting").send_keys(str(args.painting.resolve()))
                done = f"Done: {args.painting.name}"
                while not browser.execute_script("return document.getElementById('status')"
                                                 ".textContent").startswith((done, "Stylizing f")):
                    time.sleep(0.1)
            while browser.execute_script("return document.body.dataset.state") not in (
                    "done", "error"):
                time.sleep(0.1)
            png = np.frombuffer(browser.get_screenshot_as_png(), np.uint8)
            rgb = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            write_image(from_rgb_array(rgb), args.screenshot, quality=85)
            print(f"wrote {args.screenshot}")
    finally:
        browser.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
