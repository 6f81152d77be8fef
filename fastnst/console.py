"""What every command-line entry point does to its console before printing anything."""

from __future__ import annotations

import sys


def tolerate_undecodable_names() -> None:
    """Print file names that are not valid UTF-8 with backslash escapes instead of crashing.

    Python keeps the undecodable bytes of such names as surrogates, which a strict UTF-8
    stdout or stderr (the default for pipes, log files and most terminals) refuses to write.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
