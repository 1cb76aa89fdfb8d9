"""stabfrag's log lines: one logger tree ("stabfrag"), written to stderr.

The command line sets the level (-v each task's steps, -q warnings only); a library user
configures `logging` as they like, and nothing is printed unless they do.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("stabfrag")


class _Stderr(logging.Handler):
    """Each line to the sys.stderr of the moment (a test runner or a notebook swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def configure(*, verbose: int = 0, quiet: bool = False) -> None:
    """Progress at the default level, each task's steps with `verbose`, warnings only
    with `quiet`."""
    LOGGER.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _Stderr) for h in LOGGER.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("stabfrag: %(message)s"))
        LOGGER.addHandler(handler)
    LOGGER.propagate = False


def verbose() -> bool:
    """Whether each task's steps are logged (a Ray worker is told to log them too)."""
    return LOGGER.isEnabledFor(logging.DEBUG)
