"""Atomic file writing: a crash never leaves a half-written output, checkpoint or download."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from fastnst.errors import FastnstError


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


STALE_SECONDS = 3600  # a temporary file of ours untouched this long was left by a killed run


class WriteError(FastnstError, OSError):
    """An output that cannot be written; the message names the output, not a temporary file."""

    def __str__(self) -> str:  # the message alone, without "[Errno N]", safe to print
        from fastnst.console import shown

        return shown(self.strerror)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the destination folder (same file system, so the rename is
    atomic) and keeps the destination's suffix so that format sniffing by extension works.
    On any exception the temporary file is removed and the destination is left untouched.
    With `replace=False` an existing `path` is never replaced, even one that appeared while the
    block ran (another process): FileExistsError, and the result is dropped (on file systems
    without hard links, FAT for one, only checked just before the rename). Temporary files that
    killed writes left in the folder (older than STALE_SECONDS) are removed. Failures of the
    file system that name the file raise WriteError naming `path`.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(dest.parent.absolute())
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}",
                                        dir=dest.parent)
        os.close(fd)
    except OSError as e:
        raise WriteError(e.errno, f"{os.fsdecode(dest)}: cannot write here ({e.strerror})"
                         ) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes a private (0600) file; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        if replace:
            os.replace(tmp, dest)
        else:
            _create_exclusively(tmp, dest)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        # Errors naming the temporary file (a rename refused, ...) are about the output.
        if isinstance(e, OSError) and not isinstance(e, (WriteError, FileExistsError)) \
                and e.filename in (str(tmp), tmp, str(dest), dest):
            raise WriteError(e.errno, f"{os.fsdecode(dest)}: cannot write"
                                      f" ({e.strerror or e})") from None
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise WriteError unless a file could be written at `path`: not a folder, and the nearest
    folder of it that exists can be written in. For checking outputs before long work."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(errno.EISDIR, f"{os.fsdecode(path)}: is a folder; give a file name")
    folder = path.absolute().parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise WriteError(errno.ENOTDIR, f"{os.fsdecode(path)}: cannot write here"
                                        f" ({os.fsdecode(folder)} is not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(errno.EACCES, f"{os.fsdecode(path)}: cannot write here (no permission"
                                       f" to write in {os.fsdecode(folder)})")


def _create_exclusively(tmp: Path, dest: Path) -> None:
    """Move `tmp` to `dest` unless `dest` exists (FileExistsError): a hard link fails
    atomically when its name is taken, where checking first and renaming would race."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"{os.fsdecode(dest)}: exists (written by another"
                                            " run meanwhile); kept") from None
    except OSError:  # a file system without hard links
        if dest.exists():
            raise FileExistsError(errno.EEXIST, f"{os.fsdecode(dest)}: exists; kept") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


_CLEANED: set[Path] = set()  # folders already rid of stale temporary files by this process
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp(\.[^.]+)?")  # .<name>.XXXXXXXX.tmp<suffix>


def _ours(name: str) -> bool:
    """True for a temporary file name of atomic_path's making (suffix = the output's suffix)."""
    match = _TEMPORARY.fullmatch(name)
    return bool(match) and (match.group(2) or "") == Path(match.group(1)).suffix


def _remove_stale(folder: Path) -> None:
    """Remove the temporary files of atomic_path's naming in `folder` that nothing touched for
    STALE_SECONDS: what killed writes left behind. Once per folder and process (a folder of
    10,000 outputs is listed once, not 10,000 times)."""
    import time

    if folder in _CLEANED:
        return
    _CLEANED.add(folder)
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if not _ours(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)


def files_under(root: Path, suffixes: Collection[str]) -> list[Path]:
    """Everything under the folder `root` (recursive, sorted) whose lower-case suffix is in
    `suffixes`; hidden names are skipped. Entries that cannot be opened (broken or looping
    links, no permission) are kept, so that reading them reports the problem by name instead
    of dropping the file without a word; folders named like files are only searched."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes
                  and not p.name.startswith(".") and not p.is_dir())


def not_regular(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file ("a directory", "a FIFO", "a
    character device", ...), following links; None for a regular file or a missing path."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing, a broken link...: opening it reports that
    for test, kind in ((stat.S_ISREG, None), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"
