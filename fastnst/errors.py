"""The errors a user should see as one line, and how every command prints them.

A FastnstError's message names the file or option and the problem; the commands print it as
`<prog>: error: <message>` and exit with its `exit_status` (1: something failed, 2: a usage
error). Anything else (a bug in fastnst or torch) keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fastnst.console import shown


class FastnstError(Exception):
    """A problem with the user's input, files or machine, told in one line: exit status 1."""

    exit_status = 1


class UsageError(FastnstError, ValueError):
    """A command asked for something that cannot be (an unknown style, an option out of range,
    a missing argument): exit status 2."""

    exit_status = 2


def print_error(prog: str, error: BaseException) -> int:
    """Print `error` as one line on stderr, prefixed by the command's name; return the exit
    status it calls for."""
    print(f"{prog}: error: {shown(error)}", file=sys.stderr)
    return getattr(error, "exit_status", 1)


@contextmanager
def exit_on_error(prog: str) -> Iterator[None]:
    """Inside it, a FastnstError prints one line (print_error) and exits with its status."""
    try:
        yield
    except FastnstError as e:
        sys.exit(print_error(prog, e))
