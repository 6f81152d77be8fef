"""The user cache and checked downloads (progress bar, md5, atomic write)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fastnst.errors import FastnstError
from fastnst.files import atomic_path


class DownloadError(FastnstError, RuntimeError):
    """A download that failed or whose checksum differs; the message names the URL."""


def cache_dir() -> Path:
    """`$FASTNST_CACHE`, else `$XDG_CACHE_HOME/fastnst`, else `~/.cache/fastnst`."""
    if env := os.environ.get("FASTNST_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fastnst"


def md5sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike[str], md5: str | None = None,
             timeout: float = 30.0) -> Path:
    """Download `url` to `dest` with a progress bar; check `md5`; write atomically.

    Raises DownloadError naming the URL when the download fails or the checksum differs;
    `dest` is then left as it was.
    """
    dest = Path(dest)
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}",
                          disable=None) as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
            if md5 is not None and (got := md5sum(tmp)) != md5:
                raise DownloadError(f"{url}: md5 {got} does not match the expected {md5}")
    except OSError as e:
        raise DownloadError(f"{url}: download failed ({e})") from e
    return dest
