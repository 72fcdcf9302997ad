"""The shared-memory block of the ``mem`` backend: made, kept with a pool, attached by
workers, released whatever happens.

One :class:`multiprocessing.shared_memory.SharedMemory` block laid out as
``(n_dates + 2, rows, cols)`` float32 holds the dates, then the mean and std outputs. Its
name starts with :data:`~labkit.config.SHM_PREFIX` and the parent's pid, so a leftover is
easy to spot in ``/dev/shm``. A block kept with a pool is unlinked when the pool is closed
or terminated, when it is collected, or at interpreter exit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import weakref
from collections.abc import Iterator
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

from labkit import interrupts
from labkit.backends._pool import Pool
from labkit.config import MEM_HEADROOM, SHM_PREFIX
from labkit.errors import LabError

__all__ = ["attach", "check_fits", "create", "pool_block", "release", "run_block"]

_GIB = 2.0**30  # bytes
_CACHE_KEY = "mem"  # Pool.cache entry: [SharedMemory, lock, finalizer]
_attached: dict[str, Any] = {}  # in a worker: the block it keeps attached ("name", "shm")


def check_fits(nbytes: int) -> None:
    """Raise :class:`LabError` unless a shared block of ``nbytes`` bytes fits in memory.

    Checks ``psutil.virtual_memory().available`` and, on Linux, the free space of
    ``/dev/shm`` (where shared memory lives; containers often make it small).
    """
    import psutil

    avail = psutil.virtual_memory().available
    if nbytes > MEM_HEADROOM * avail:
        raise LabError(f"stack needs {nbytes / _GIB:.3g} GiB, {avail / _GIB:.3g} GiB available:"
                       " use threads or sequential")
    if os.path.isdir("/dev/shm"):
        free = shutil.disk_usage("/dev/shm").free
        if nbytes > MEM_HEADROOM * free:
            raise LabError(f"stack needs {nbytes / _GIB:.3g} GiB of shared memory, /dev/shm has "
                           f"{free / _GIB:.3g} GiB free: use threads or sequential")


def attach(name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Worker side: block ``name`` as a float32 array of ``shape``, kept attached between
    tasks and runs (attaching and faulting its pages in again would cost more than a small
    run); a block of another name replaces it.
    """
    if _attached.get("name") != name:
        old = _attached.pop("shm", None)
        _attached.clear()
        if old is not None:
            with contextlib.suppress(BufferError):  # no view of it left in this process
                old.close()
        _attached["shm"] = shared_memory.SharedMemory(name=name)
        _attached["name"] = name
    shm = _attached["shm"]
    return np.ndarray(shape, np.float32, buffer=shm.buf)


def create(nbytes: int) -> shared_memory.SharedMemory:
    """A new block named ``labkit_<pid>_<random>`` (LabError if the system refuses it)."""
    name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    # registered first: if creation fails, SharedMemory unregisters the name, and an
    # unknown name makes CPython's resource tracker print a KeyError traceback
    if os.name == "posix":
        resource_tracker.register(f"/{name}", "shared_memory")
    try:
        return shared_memory.SharedMemory(name=name, create=True, size=nbytes)
    except OSError as exc:  # e.g. a file-size limit (ulimit -f) also caps /dev/shm
        raise LabError(f"cannot create a {nbytes / _GIB:.3g} GiB shared-memory block: "
                       f"{exc.strerror}; use threads or sequential") from None


def release(shm: shared_memory.SharedMemory) -> None:
    """Close and unlink ``shm`` (idempotent)."""
    with contextlib.suppress(BufferError):  # a view still alive (e.g. in a traceback)
        shm.close()
    with contextlib.suppress(FileNotFoundError):
        shm.unlink()


def pool_block(pool: Pool, nbytes: int
               ) -> tuple[shared_memory.SharedMemory, bool, threading.Lock] | None:
    """The block kept with ``pool`` (made or enlarged as needed), whether it is new, and
    its lock, acquired for this run; None if another run holds it (the caller makes its
    own block).
    """
    entry = pool.cache.get(_CACHE_KEY)
    if entry is None:
        entry = pool.cache[_CACHE_KEY] = [None, threading.Lock(), None]
    shm, lock, finalizer = entry
    if not lock.acquire(blocking=False):
        return None
    try:
        if shm is not None and shm.size >= nbytes:
            return shm, False, lock
        if finalizer is not None:  # too small: free it before making a bigger one
            finalizer()
            entry[0] = entry[2] = None
        check_fits(nbytes)
        shm = create(nbytes)
        # unlinked by pool.close()/terminate(), or when the pool is collected or Python exits
        entry[0], entry[2] = shm, weakref.finalize(pool, release, shm)
        pool.on_close.append(entry[2])
        return shm, True, lock
    except BaseException:
        lock.release()
        raise


@contextlib.contextmanager
def run_block(pool: Any, workers: int, nbytes: int
              ) -> Iterator[tuple[shared_memory.SharedMemory, str]]:
    """The block of one run and how it came (``run``: made for it, ``new``/``reused``:
    kept with ``pool``). A block made for the run is released on leaving; a pool's block
    is handed back to the pool. No Ctrl-C between making a block and owning it.
    """
    reuse = isinstance(pool, Pool) and pool.kind == "process" and not pool.closed
    got = shm = None
    try:
        with interrupts.deferred():
            got = pool_block(pool, nbytes) if reuse and workers <= pool.workers else None
            if got is None:
                check_fits(nbytes)
                shm, how = create(nbytes), "run"
            else:
                shm, how = got[0], "new" if got[1] else "reused"
        yield shm, how
    finally:
        with interrupts.deferred():
            if got is not None:
                got[2].release()
            elif shm is not None:
                release(shm)
