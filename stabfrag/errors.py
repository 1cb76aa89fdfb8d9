"""Every error stabfrag expects: one base class, one child per stage, one line each.

The command line turns any StabfragError into one line on stderr and its `exit_code`, which
a scheduler acts on: 2, the command was given something it cannot use (a flag, a value,
a file named on the command line: retrying will not help); 1, the run failed (a service
did not answer, a task failed: a retry may pass). Exit code 3 is not an error: the run
finished with rejects above --max-reject-share.
"""

from __future__ import annotations

from pathlib import Path

EXIT_FAILED = 1  # the run failed: a retry may pass
EXIT_USAGE = 2  # bad usage or an unusable input named on the command line
EXIT_REJECTS = 3  # done, with rejects above --max-reject-share


class StabfragError(Exception):
    """An expected failure whose message is one line fit for a user."""

    exit_code = EXIT_USAGE


class InputError(StabfragError):
    """An input that cannot be read at all; the message names the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


class ConfigError(StabfragError):
    """A setting that cannot be used."""


class ScenarioError(StabfragError):
    """A malformed scenario file: the message names the file, the scenario and the field."""


class ModelError(StabfragError):
    """An artefact that is missing, changed or does not fit this code."""


class SinkError(StabfragError):
    """A destination problem (database, output folder), with no secret in it."""


class ServiceError(SinkError):
    """A service the run needs (PostgreSQL, a Ray cluster) did not answer or refused the
    work: the run failed, and the same command may pass later."""

    exit_code = EXIT_FAILED


class QueryError(StabfragError):
    """A query that cannot be answered from the built output."""


class LabelError(StabfragError):
    """A labels file, or an evaluation request, that cannot be used."""


class RunError(StabfragError):
    """A run that could not finish: a task failed for good, its dates left unsealed."""

    exit_code = EXIT_FAILED


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name: a message
    may be empty or start with a blank line."""
    lines = (line.strip() for line in str(exc).splitlines())
    return next((line for line in lines if line), type(exc).__name__)
