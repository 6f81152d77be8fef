"""Atomic file writing: a crash never leaves a half-written output, checkpoint or download."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from fastnst.errors import FastnstError


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


STALE_SECONDS = 3600  # a temporary file of ours untouched this long was left by a killed run
NAME_MAX = 255  # bytes in one file name, on the file systems fastnst writes to


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
    killed writes of fastnst left in the folder (older than STALE_SECONDS) are removed, and no
    others (see `_ours`). Failures of the file system that name the file raise WriteError
    naming `path`.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(dest.parent.absolute())
        tmp = _create_temporary(dest)
    except OSError as e:
        raise WriteError(e.errno, f"{os.fsdecode(dest)}: cannot write here ({e.strerror})"
                         ) from None
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


class OutputExists(WriteError, FileExistsError):
    """An output that exists and was kept: the command's overwrite option replaces it."""


def resolved(path: str | os.PathLike[str]) -> Path:
    """`path` with `~`, links and `..` resolved as far as it exists (to compare outputs with
    inputs)."""
    path = Path(path).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return path.absolute()


def check_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = (),
                 overwrite: bool = False, overwrite_with: str = "--overwrite",
                 within: str | os.PathLike[str] | None = None) -> None:
    """Raise unless `path` may be written now, before long work. WriteError when it is one of
    `inputs` (links and `..` resolved: an input is never replaced, even with `overwrite`), a
    folder or another thing that is not a file, not writable, or (unless `overwrite`) a broken
    link; OutputExists when it exists and `overwrite` is off (`overwrite_with` names the option
    that turns it on). With `overwrite` a link is replaced, never written through. `within`: a
    folder the output must stay in once links are resolved (a linked subfolder of `-o` that
    points elsewhere is refused)."""
    check_name_length(path)
    path = Path(path)
    name = os.fsdecode(path)
    if within is not None and not resolved(path.parent).is_relative_to(resolved(within)):
        raise WriteError(errno.EXDEV, f"{name}: its folder leads outside"
                                      f" {os.fsdecode(within)} (a link); not written")
    if any(resolved(path) == resolved(source) for source in inputs):
        raise WriteError(errno.EEXIST, f"{name}: is one of this run's inputs; give another"
                                       " output (an input is never replaced)")
    if path.is_symlink() and not path.exists() and not overwrite:
        with contextlib.suppress(OSError):
            name += f" (a link to {os.fsdecode(os.readlink(path))})"
        raise WriteError(errno.ENOENT, f"{name}: is a broken link; not written ({overwrite_with}"
                                       " replaces the link)")
    if (kind := not_regular(path)) is not None:
        raise WriteError(errno.EEXIST, f"{name}: is {kind}; not written (give a file name)")
    if path.exists() and not overwrite:
        raise OutputExists(errno.EEXIST, f"{name}: exists; kept ({overwrite_with} replaces it)")
    check_writable(path)


def check_name_length(path: str | os.PathLike[str]) -> None:
    """WriteError when a part of `path` is longer than a file name may be (NAME_MAX bytes), so
    that an output whose name cannot exist is refused in one line before any work."""
    for part in Path(path).parts:
        if (size := len(os.fsencode(part))) > NAME_MAX:
            raise WriteError(errno.ENAMETOOLONG, f"{os.fsdecode(part)[:40]}...: a name of {size}"
                                                 f" bytes; a file name has at most {NAME_MAX}")


def fit_name(stem: str, tail: str) -> str:
    """`stem + tail`, the stem cut (by characters, never inside one) so that the name fits in
    NAME_MAX bytes: the output of an input with a long name can still be written."""
    while stem and len(os.fsencode(stem + tail)) > NAME_MAX:
        stem = stem[:-1]
    return stem + tail


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
        raise OutputExists(errno.EEXIST, f"{os.fsdecode(dest)}: exists (written by another"
                                         " run meanwhile); kept") from None
    except OSError:  # a file system without hard links
        if dest.exists():
            raise OutputExists(errno.EEXIST, f"{os.fsdecode(dest)}: exists; kept") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


_CLEANED: set[Path] = set()  # folders already rid of stale temporary files by this process
# .<output name, cut to fit>.fastnst-<12 random hex><4 check hex>.tmp<output suffix>
_MARK = "fastnst-"
_TEMPORARY = re.compile(r"\..*\.fastnst-([0-9a-f]{12})([0-9a-f]{4})\.tmp(\.[^.]*)?", re.DOTALL)
_MAX_SUFFIX = 32  # bytes of the output's suffix kept in a temporary name


def _check_digits(token: str) -> str:
    return hashlib.sha256(f"fastnst temporary {token}".encode()).hexdigest()[:4]


def _create_temporary(dest: Path) -> Path:
    """Create (exclusively, mode 0600) and return a temporary file beside `dest` whose name no
    user would pick: a random token with check digits, `_ours` recognises it. The name is cut
    to fit NAME_MAX bytes, so an output name of any legal length can be written."""
    suffix = dest.suffix if len(os.fsencode(dest.suffix)) <= _MAX_SUFFIX else ""
    for _ in range(100):
        token = secrets.token_hex(6)
        tail = f".{_MARK}{token}{_check_digits(token)}.tmp{suffix}"
        head = dest.name  # cut by characters, so that a multi-byte one is never split
        while head and len(os.fsencode(f".{head}{tail}")) > NAME_MAX:
            head = head[:-1]
        tmp = dest.parent / f".{head}{tail}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, f"{os.fsdecode(dest)}: no free temporary name")


def _ours(entry: os.DirEntry[str]) -> bool:
    """True for a temporary file that atomic_path made and a killed write left: its name (with
    valid check digits), and what it is: a regular file, not a link, of this user, private
    (0600, as created) and with one name. A user's own `.notes.tmp` never matches."""
    match = _TEMPORARY.fullmatch(entry.name)
    if not match or _check_digits(match.group(1)) != match.group(2):
        return False
    info = entry.stat(follow_symlinks=False)
    return (stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
            and info.st_nlink == 1 and info.st_uid == getattr(os, "getuid", lambda: info.st_uid)())


def _remove_stale(folder: Path) -> None:
    """Remove the temporary files of atomic_path's making (`_ours`) in `folder` that nothing
    touched for STALE_SECONDS: what killed writes left behind. Once per folder and process (a
    folder of 10,000 outputs is listed once, not 10,000 times)."""
    import time

    if folder in _CLEANED:
        return
    _CLEANED.add(folder)
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if _ours(entry) and \
                        now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)


def files_under(root: Path, suffixes: Collection[str]) -> list[Path]:
    """Everything under the folder `root` (recursive, sorted) whose lower-case suffix is in
    `suffixes`; hidden names are skipped. Entries that cannot be opened (broken or looping
    links, no permission) are kept, so that reading them reports the problem by name instead
    of dropping the file without a word; folders named like files are only searched."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes
                  and not p.name.startswith(".") and not p.is_dir())


class FileProblem(FastnstError, OSError):
    """An input file that cannot be read as asked; the message is the problem alone (callers
    put the file's name in front)."""

    def __str__(self) -> str:
        return str(self.args[0])


def os_problem(error: OSError) -> str:
    """What an OSError from opening or reading an input says, in words: a missing file is
    "no such file", one without permission "not readable (permission denied)"."""
    return {errno.ENOENT: "no such file", errno.EACCES: "not readable (permission denied)",
            errno.EPERM: "not readable (permission denied)",
            errno.EISDIR: "a directory, not a file", errno.ELOOP: "a link that loops",
            errno.ENOTDIR: "no such file (a part of its path is not a folder)",
            }.get(error.errno or 0, f"cannot read it ({error.strerror})")


def megabytes(size: int) -> str:
    """`size` bytes as "12.3 MB" (10^6 bytes)."""
    return f"{size / 1e6:.1f} MB"


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole of the regular file `path`, read once (so that what a caller checks is what
    it uses), refused by its size before anything is read: FileProblem ("no such file", "not
    readable (permission denied)", "a directory", "2.1 GB, more than the 256.0 MB a file of
    this kind may have", ...). `limit` in bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO cannot hang us
    except OSError as e:
        raise FileProblem(os_problem(e)) from None
    mode, size = os.fstat(fd).st_mode, os.fstat(fd).st_size
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise FileProblem(f"not a file ({not_regular(Path(path)) or 'not a regular file'})")
    with os.fdopen(fd, "rb") as f:
        if size > limit:
            raise FileProblem(f"{megabytes(size)}, more than the {megabytes(limit)} a file of"
                              " this kind may have")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise FileProblem(os_problem(e)) from None
    if len(data) > limit:  # it grew while it was read
        raise FileProblem(f"more than the {megabytes(limit)} a file of this kind may have")
    return data


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
