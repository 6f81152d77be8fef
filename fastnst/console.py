"""What every command-line entry point does to its console: what it prints, and the signals it
treats as Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import unicodedata

# Control characters (newlines, escape codes), format characters (bidirectional overrides) and
# line or paragraph separators: what can forge lines or restyle a terminal.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def prepare_console() -> None:
    """Call first in every entry point: file names that are not valid UTF-8 print with
    backslash escapes instead of crashing, and SIGTERM acts as Ctrl-C (`sigterm_as_ctrl_c`).

    Python keeps the undecodable bytes of such names as surrogates, which a strict UTF-8
    stdout or stderr (the default for pipes, log files and most terminals) refuses to write.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    sigterm_as_ctrl_c()
    shown_in_logs()


def shown_in_logs() -> None:
    """Every log record's message and every warning's text is made `shown` as it is made, so
    that no file name (a painting's, a photo's, a model's) reaches the terminal raw, whichever
    library logs it (Lightning, Hydra, fastnst)."""
    import logging
    import warnings

    make = logging.getLogRecordFactory()
    if getattr(make, "fastnst_shown", False):
        return

    def record(*args: object, **kwargs: object) -> logging.LogRecord:
        entry = make(*args, **kwargs)
        with contextlib.suppress(Exception):  # a message that does not format: logging says so
            entry.msg, entry.args = shown(entry.getMessage()), None
        return entry

    record.fastnst_shown = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)
    format_warning = warnings.formatwarning

    def warning_text(message, category, filename, lineno, line=None) -> str:
        return format_warning(shown(message), category, filename, lineno, line)

    warnings.formatwarning = warning_text


def sigterm_as_ctrl_c() -> None:
    """SIGTERM (`kill`, a closing terminal, a service manager) raises KeyboardInterrupt, so it
    runs the same clean-up as Ctrl-C: temporary files removed, finished work reported."""

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def shown(text: object) -> str:
    """`text` (a file name, a message, metadata) made safe for one line of a terminal or log:
    control and format characters become backslash escapes (`\\n`, `\\x1b`, `\\u202e`)."""
    text = os.fsdecode(text) if isinstance(text, (bytes, os.PathLike)) else str(text)
    if all(unicodedata.category(c) not in _UNPRINTABLE for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in _UNPRINTABLE else c for c in text)
