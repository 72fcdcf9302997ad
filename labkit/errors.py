"""The one exception type users see: a clear, one-line message (CLI exit code 2)."""

from __future__ import annotations

__all__ = ["LabError", "Interrupted"]


class LabError(Exception):
    """Bad input or a clean failure.

    The message is one line that says what was wrong and what is valid. The CLI prints
    it as ``labkit: error: <message>`` and exits with code 2; notebook panels show it.
    """


class Interrupted(LabError):
    """The run was stopped (Ctrl-C / SIGINT) and cleaned up; CLI exit code 130."""
