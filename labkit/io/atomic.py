"""Files written whole or not at all: a temporary beside the target, renamed into place.

A reader sees the old file or the new one, never half of one; the last writer wins
whole. The one helper the lab writes files with (GeoTIFFs, CSV, HTML, notebooks, JSON).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from labkit import interrupts
from labkit.errors import LabError

__all__ = ["atomic_file", "atomic_outputs", "check_writable", "default_mode",
           "write_failed", "write_text_atomic"]

_UMASK = os.umask(0o022)  # read the process umask once (os.umask sets and returns it)
os.umask(_UMASK)


def default_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual ``0666 & ~umask`` mode."""
    os.chmod(path, 0o666 & ~_UMASK)


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be written (its folder exists and is writable).

    Returns the path as a :class:`~pathlib.Path`. Nothing visible is created: the folder
    is probed with an anonymous temporary file (``os.access`` says yes to root everywhere,
    even in ``/proc`` or on a read-only mount).
    """
    p = Path(path)
    if p.is_dir():
        raise LabError(f"output {p} is a folder: give a file name such as {p / 'mean.tif'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists():
            raise LabError(f"cannot write {p}: {parent} is a file, not a folder")
        raise LabError(f"cannot write {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LabError(f"cannot write {p}: folder {parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise LabError(f"cannot write {p}: the file exists and is read-only")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise LabError(f"cannot write {p}: folder {parent} is not writable ({exc.strerror})"
                       ) from None
    return p


def write_failed(target: Path) -> LabError:
    """One line for data that did not reach the disk (disk full, file-size limit)."""
    try:
        free = f"{shutil.disk_usage(target.parent).free / 1e6:.0f} MB free there"
    except OSError:
        free = "free space unknown"
    return LabError(f"cannot write {target}: the data did not reach the disk ({free}; disk "
                    "full or a file-size limit?); nothing was replaced")


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``paths``; on success rename each onto its target.

    The targets are checked first (:func:`check_writable`). On any error (including
    Ctrl-C) the temporaries are removed and the targets are left as they were; the
    renames themselves are never cut in half by a Ctrl-C (:func:`labkit.interrupts.commit`).
    Outputs get the usual permissions (``0o666`` minus the umask), not the temporaries'
    ``0o600``.
    """
    with _replacing([check_writable(p) for p in paths]) as temps:
        yield temps


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (its folder made if missing); when the
    ``with`` body ends without error it is renamed onto ``path``, else removed.

    For writers that want a file name (``savefig``, rasterio, ``csv``); like
    :func:`atomic_outputs` for one file, without checking the target beforehand.

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
    with _replacing([p]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def _replacing(targets: Sequence[Path]) -> Iterator[list[Path]]:
    """The one place files are replaced: a temporary beside each target, renamed onto
    it when the body ends without error (all or none), removed otherwise.
    """
    temps: list[Path] = []
    try:
        for t in targets:
            try:
                fd, name = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".tmp",
                                            dir=t.parent or ".")
            except OSError as exc:
                raise LabError(f"cannot write {t}: {exc.strerror}") from None
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
            os.close(fd)
            temps.append(Path(name))
        yield temps
        with interrupts.commit():  # all renamed or none: a Ctrl-C waits for the last one
            for tmp, t in zip(temps, targets, strict=True):
                os.replace(tmp, t)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


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
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
