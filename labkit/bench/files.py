"""Whole-or-nothing text files: the benchmark outputs never appear half written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from labkit.errors import LabError

__all__ = ["default_mode", "write_text_atomic"]


def default_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual ``0666 & ~umask`` mode.

    Parameters
    ----------
    path : path
        The file to change.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file whole or not at all (temp file in the same folder + rename).

    Parameters
    ----------
    path : path
        The file to write; its folder is created when missing.
    text : str
        The whole content (UTF-8).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LabError
        The folder cannot be created.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create folder {p.parent}: {exc.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        default_mode(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
