"""Atomic file writing: a crash never leaves a half-written output, checkpoint or download."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the destination folder (same file system, so the rename is
    atomic) and keeps the destination's suffix so that format sniffing by extension works.
    On any exception the temporary file is removed and the destination is left untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}",
                                    dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes a private (0600) file; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def files_under(root: Path, suffixes: Collection[str]) -> list[Path]:
    """Everything under the folder `root` (recursive, sorted) whose lower-case suffix is in
    `suffixes`; hidden names are skipped. Entries that cannot be opened (broken or looping
    links, no permission) are kept, so that reading them reports the problem by name instead
    of dropping the file without a word; folders named like files are only searched."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes
                  and not p.name.startswith(".") and not p.is_dir())
