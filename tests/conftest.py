"""Shared fixtures (helpers.py holds the plain functions). Tests needing the VGG19 weights or
the shared photos skip without ../shared."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import STYLE_DIR, VGG19_FILE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (marked `slow`: subprocesses, DDP, kills, exports) run after the others, so
    that a failure in the fast ones shows within a minute. `-m "not slow"` skips them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads the user's cache or environment, and none can start an 80 MB download."""
    monkeypatch.setenv("FASTNST_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("FASTNST_VGG19", raising=False)
    monkeypatch.delenv("FASTNST_STYLE_DIR", raising=False)
    torch.manual_seed(0)


@pytest.fixture
def vgg_weights(monkeypatch) -> Path:
    """The real VGG19 .h5 file, also exported as FASTNST_VGG19; skips when it is absent."""
    if not VGG19_FILE.is_file():
        pytest.skip(f"VGG19 weights not found at {VGG19_FILE} (needs ../shared or FASTNST_VGG19)")
    monkeypatch.setenv("FASTNST_VGG19", str(VGG19_FILE))
    return VGG19_FILE


@pytest.fixture
def style_dir(monkeypatch) -> Path:
    """The shared paintings, also exported as FASTNST_STYLE_DIR; skips when absent."""
    if not (STYLE_DIR / "starry_night.jpg").is_file():
        pytest.skip(f"paintings not found in {STYLE_DIR} (needs ../shared)")
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(STYLE_DIR))
    return STYLE_DIR


@pytest.fixture
def ctrl_c_enabled():
    """Ctrl-C raises KeyboardInterrupt in this process during the test, as in a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def reap():
    """`reap(proc)` registers a child process; one still running when the test ends (a failed
    assertion) is killed, so that it cannot go on using the CPU for the rest of the run."""
    procs: list[subprocess.Popen] = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def shipped_painter() -> Path:
    """The painting decoder fastnst ships; fails (not skips) when it or the decoders are absent."""
    from fastnst.universal import shipped_decoders, shipped_painter

    if not shipped_decoders() or shipped_painter() is None:
        pytest.fail("no decoders ship in models/decoders/ (python -m fastnst.train_decoder)")
    return shipped_painter()
