"""ipyparallel MPI engines for the notebook (05_mpi): start, run the MPI backend, stop.

``ipp.Cluster(engines="mpi", n=n)`` starts a controller and ``mpiexec.gforker -n n``
engines (MPICH's single-node launcher, which opens no TCP port; Hydra's ``mpiexec`` where
gforker is missing), all on the loopback interface (``127.0.0.1``, MPI traffic included:
:data:`LOOPBACK_ENV`) with a private, temporary profile folder. The
engines form one MPI world, so the MPI backend's SPMD function
(:func:`labkit.backends.mpi.spmd.spmd`) runs on them exactly as under ``mpiexec`` — but the
interpreters stay warm between runs, so a run pays no start-up.

>>> with start_cluster(2) as cluster:          # doctest: +SKIP
...     result = cluster.run("data/intens_1024x1024", split="rows")
...     print(cluster.mpiexec_command("data/intens_1024x1024", "mean.tif", "std.tif"))

A cluster is always stopped: by :meth:`MpiCluster.stop` (or leaving the ``with`` block),
when an engine dies or a run times out or is interrupted, and at interpreter exit as a
last resort. :meth:`MpiCluster.stop` checks with psutil that no engine, ``mpiexec`` or
controller process is left.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit import interrupts
from labkit.backends._group import alive, kill_processes
from labkit.backends._result import Result
from labkit.backends.mpi._world import THREAD_ENV, mpiexec_path
from labkit.config import ENGINE_POLL_S, ENGINE_RUN_TIMEOUT_S, ENGINE_STOP_TIMEOUT_S
from labkit.errors import Interrupted, LabError
from labkit.filters import LeeFilter
from labkit.io import TileStack

__all__ = ["LOOPBACK_ENV", "RUN_TIMEOUT_S", "MpiCluster", "run_on_engines", "start_cluster"]

RUN_TIMEOUT_S = ENGINE_RUN_TIMEOUT_S  # s a run on the engines may take before the stop
# The hub announces an engine only after a heartbeat cycle (default 3000 ms: ~7 s start-up
# on 2 cores); 500 ms gives ~3 s. 20 misses (10 s) before an engine is declared dead.
HEARTBEAT_MS = 500
HEARTBEAT_MISSES = 20
# MPI traffic between engines on the loopback interface only (UCX and libfabric TCP)
LOOPBACK_ENV = {"UCX_NET_DEVICES": "lo", "FI_TCP_IFACE": "lo", "FI_SOCKETS_IFACE": "lo"}


def _engine_info() -> tuple[int, int, int]:
    """(MPI rank, world size, pid) of the engine it runs on."""
    import os

    from mpi4py import MPI

    return MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size, os.getpid()


def _engine_run(paths: list[str], split: str, block_rows: int | None, ddof: int,
                min_count: int | None, kernel: str | None,
                filt: LeeFilter | None = None) -> Result:
    """Engine side of a run: the SPMD function on the engines' ``COMM_WORLD``."""
    from mpi4py import MPI

    from labkit.backends.mpi.spmd import spmd

    return spmd(MPI.COMM_WORLD, paths, split=split, block_rows=block_rows, ddof=ddof,
                min_count=min_count, kernel=kernel, filter=filt)


class MpiCluster:
    """A running ipyparallel cluster of ``n`` MPI engines; a context manager.

    Make one with :func:`start_cluster`. Pass it as ``pool=`` to
    ``labkit.backends.compute("mpi", ...)`` or call :meth:`run`.

    Attributes
    ----------
    n : int
        Engines (= MPI ranks).
    client : ipyparallel.Client
    view : ipyparallel.DirectView
        Blocking view on all engines.
    startup_s : float
        Seconds it took to start the controller and the engines and see them all.
    stop_s : float or None
        Seconds :meth:`stop` took (None while running).
    engine_pids : list of int
        Process id of each engine, by MPI rank.
    timeout : float
        Seconds a run may take (default :data:`RUN_TIMEOUT_S`).
    """

    def __init__(self, cluster: Any, client: Any, n: int, startup_s: float,
                 profile_dir: str, engine_pids: list[int], procs: list[Any]) -> None:
        self.cluster = cluster
        self.client = client
        self.n = n
        self.startup_s = startup_s
        self.stop_s: float | None = None
        self.profile_dir = profile_dir
        self.engine_pids = engine_pids
        self.timeout = RUN_TIMEOUT_S
        self._procs = procs  # psutil.Process of controller, mpiexec and engines
        self.view = client[:]
        self.view.block = True
        atexit.register(self.stop)

    # process and thread pools have .startup and .close(); so does this
    @property
    def startup(self) -> float:
        """Same as :attr:`startup_s`."""
        return self.startup_s

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` ran."""
        return self.stop_s is not None

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"<labkit MpiCluster {self.n} MPI engines, {state}, startup {self.startup_s:.1f} s>"

    def __enter__(self) -> MpiCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def run(self, src: str | Path | TileStack, *, split: str = "rows",
            block_rows: int | None = None, ddof: int = 0, min_count: int | None = None,
            timeout: float | None = None, filter: LeeFilter | str | None = None) -> Result:
        """Mean and std of the tiles in ``src`` on the engines (MPI backend).

        Parameters
        ----------
        src : folder or TileStack
            The intensity tiles.
        split : {"rows", "dates"}, default "rows"
            Split the work by rows or by dates over the engines.
        block_rows, ddof, min_count, filter
            As for :func:`labkit.backends.compute`.
        timeout : float, optional
            Seconds before the run is abandoned and the cluster stopped (default
            :attr:`timeout`).

        Returns
        -------
        Result
            Rank 0's result: full maps, phase timings, ``meta["per_rank"]``.

        Raises
        ------
        LabError
            Bad input (the cluster keeps running), or an engine died / the run timed out
            (the cluster is stopped).
        """
        from labkit.backends import compute

        old = self.timeout
        self.timeout = old if timeout is None else timeout
        try:
            return compute("mpi", src, workers=self.n, split=split, block_rows=block_rows,
                           ddof=ddof, min_count=min_count, pool=self, filter=filter)
        finally:
            self.timeout = old

    def mpiexec_command(self, src: str | Path, mean: str | Path, std: str | Path,
                        split: str = "rows") -> str:
        """The same run as a terminal command: ``mpiexec -n N labkit run mpi ...``."""
        script = Path(sys.executable).parent / "labkit"
        prog = [str(script)] if script.is_file() else [sys.executable, "-m", "labkit"]
        return shlex.join([mpiexec_path(), "-n", str(self.n), *prog, "run", "mpi", str(src),
                           str(mean), str(std), "--split", split])

    def stop(self) -> None:
        """Stop engines and controller; kill what is left; check nothing survives.

        Safe to call twice. Raises :class:`LabError` if a process could not be killed.
        """
        if self.stopped:
            return
        t0 = time.perf_counter()
        atexit.unregister(self.stop)
        try:
            left = _shutdown(self.cluster, self.client, self._procs, self.profile_dir,
                             fast=interrupts.stopping() or interrupts.taken())
        finally:
            self.stop_s = time.perf_counter() - t0
        if left:
            raise LabError(f"could not stop MPI engine/controller processes {left}: "
                           "kill them by hand")

    close = stop


def _shutdown(cluster: Any, client: Any, procs: list[Any], profile_dir: str,
              fast: bool = False) -> list[int]:
    """Close the client, stop engines then controller, kill leftovers; return pids alive.

    Engines first, then the controller: stopping both at once (``stop_cluster``) takes
    seconds longer because the engines then wait for a controller that is gone. After a
    Ctrl-C (``fast``, or one that comes meanwhile) that polite stop (≈2 s) is skipped: every
    process is killed at once and the engines' MPICH shared memory removed.
    """
    segments = interrupts.mpich_segments([p.pid for p in procs])  # while they run
    try:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if not fast:
            with contextlib.suppress(Exception):
                cluster.stop_engines_sync()
            with contextlib.suppress(Exception):
                cluster.stop_controller_sync()
    finally:
        with interrupts.deferred():
            grace = 0.0 if fast or interrupts.stopping() else ENGINE_STOP_TIMEOUT_S
            procs = _with_children(procs)  # engines that started since procs was taken
            left = kill_processes(procs, grace, ENGINE_STOP_TIMEOUT_S, segments)
            with contextlib.suppress(Exception):  # ipyparallel's own exit handler: done
                cluster.shutdown_atexit = False
            shutil.rmtree(profile_dir, ignore_errors=True)
    return left


def _with_children(procs: list[Any]) -> list[Any]:
    """``procs`` and every process now under one of them."""
    import psutil

    seen = {p.pid: p for p in procs}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            for child in p.children(recursive=True):
                seen.setdefault(child.pid, child)
    return list(seen.values())


def _processes(cluster: Any) -> list[Any]:
    """psutil.Process of the controller, every engine-set launcher and their children."""
    import psutil

    procs = []
    launchers = [cluster.controller, *cluster.engines.values()]
    for launcher in launchers:
        proc = getattr(launcher, "process", None)
        if proc is None:
            continue
        with contextlib.suppress(psutil.Error):
            procs.append(proc)
            procs.extend(proc.children(recursive=True))
    return procs


def _engine_output(cluster: Any) -> str:
    """Last non-empty line of the engines' (mpiexec's) output, for error messages."""
    with contextlib.suppress(Exception):
        for es in cluster.engines.values():
            lines = [ln.strip() for ln in es.get_output().splitlines() if ln.strip()]
            if lines:
                return lines[-1]
    return ""


def start_cluster(n: int, *, timeout: float = 60) -> MpiCluster:
    """Start an ipyparallel cluster of ``n`` MPI engines on this machine (loopback only).

    Parameters
    ----------
    n : int
        Engines (MPI ranks), ≥ 1.
    timeout : float, default 60
        Seconds to wait for all engines to register.

    Returns
    -------
    MpiCluster
        Running; ``.startup_s`` holds the measured start-up in seconds.

    Raises
    ------
    LabError
        If the engines do not all come up in time (everything started is stopped).
    """
    if not isinstance(n, int) or n < 1:
        raise LabError(f"engines must be a whole number ≥ 1, got {n!r}")
    import ipyparallel as ipp
    from traitlets.config import Config

    cfg = Config()
    # gforker (single-node, pipes) opens no TCP port; Hydra's PMI port binds 0.0.0.0
    gforker = Path(mpiexec_path()).with_name("mpiexec.gforker")
    cfg.MPIEngineSetLauncher.mpi_cmd = [str(gforker) if gforker.is_file() else mpiexec_path()]
    profile_dir = tempfile.mkdtemp(prefix="labkit-ipp-")
    private = {"IPYTHONDIR": profile_dir}  # no user startup files on the engines
    cfg.MPIEngineSetLauncher.environment = {**THREAD_ENV, **LOOPBACK_ENV, **private}
    cfg.LocalControllerLauncher.environment = private
    t0 = time.perf_counter()
    cluster = ipp.Cluster(engines="mpi", n=n, controller_ip="127.0.0.1",
                          controller_args=[f"--HeartMonitor.period={HEARTBEAT_MS}",
                                           f"--HeartMonitor.max_heartmonitor_misses="
                                           f"{HEARTBEAT_MISSES}"],
                          profile_dir=profile_dir, config=cfg, delay=0,
                          # ERROR: a notebook cell shows no engine logs when they stop
                          log_level=logging.ERROR)
    client = None
    try:
        cluster.start_cluster_sync()
        client = cluster.connect_client_sync()
        client.wait_for_engines(n, timeout=timeout, interactive=False)
        view = client[:]
        info = sorted(view.apply_sync(_engine_info))
        if [r for r, _, _ in info] != list(range(n)) or any(s != n for _, s, _ in info):
            raise LabError(f"the {n} engines do not form one MPI world of {n} ranks: {info}")
        startup = time.perf_counter() - t0
        return MpiCluster(cluster, client, n, startup, profile_dir,
                          [pid for _, _, pid in info], _processes(cluster))
    except BaseException as exc:
        ctrl_c = isinstance(exc, KeyboardInterrupt)
        why = "" if ctrl_c else _engine_output(cluster)
        _shutdown(cluster, client, _processes(cluster), profile_dir, fast=ctrl_c)
        if ctrl_c:
            raise Interrupted("cluster start stopped by Ctrl-C; nothing left running") from None
        if isinstance(exc, LabError):
            raise
        detail = f": {why}" if why else f" ({type(exc).__name__}: {exc})"
        raise LabError(f"could not start {n} MPI engines within {timeout:g} s{detail}") from None


def _remote_message(exc: Exception) -> str:
    """One line from an ipyparallel RemoteError/CompositeError raised on the engines."""
    elist = getattr(exc, "elist", None)
    if elist:
        ename, evalue = elist[0][0], elist[0][1]
    else:
        ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = str(evalue if evalue is not None else exc).strip().splitlines()
    msg = text[0] if text else ""
    return msg if ename == "LabError" else f"{ename or type(exc).__name__}: {msg}"


def run_on_engines(pool: Any, stack: TileStack, *, split: str = "rows",
                   block_rows: int | None = None, ddof: int = 0,
                   min_count: int | None = None, kernel: str | None = None,
                   filter: LeeFilter | None = None) -> Result:
    """Run the MPI backend on the engines of ``pool`` (an :class:`MpiCluster`, or an
    ipyparallel ``Client`` / ``Cluster`` whose engines were started with ``mpi``).

    Engines are watched while the run lasts: if one dies, or the run outlasts the
    cluster's ``timeout``, or Ctrl-C, an :class:`MpiCluster` is stopped and
    :class:`LabError` / :class:`Interrupted` raised.
    """
    import ipyparallel as ipp
    import psutil

    own_client = None
    if isinstance(pool, MpiCluster):
        if pool.stopped:
            raise LabError("this MPI cluster is stopped: start a new one with start_cluster(n)")
        view, timeout, procs = pool.view, pool.timeout, pool._procs
        engine_procs = [p for p in procs if p.pid in pool.engine_pids]
    elif isinstance(pool, (ipp.Client, ipp.Cluster)):
        client = pool if isinstance(pool, ipp.Client) else pool.connect_client_sync()
        own_client = None if client is pool else client
        view, timeout, engine_procs = client[:], RUN_TIMEOUT_S, []
        with contextlib.suppress(psutil.Error):
            engine_procs = [psutil.Process(pid) for _, _, pid in view.apply_sync(_engine_info)]
    else:
        raise LabError(f"pool for mpi must be an MpiCluster from start_cluster (labkit."
                       f"backends.mpi.engines) or an ipyparallel Client, got "
                       f"{type(pool).__name__}")
    paths = [str(p) for p in stack.paths]
    failure: str | None = None
    try:
        ar = view.apply_async(_engine_run, paths, split, block_rows, ddof, min_count, kernel,
                              filter)
        deadline = time.monotonic() + timeout
        while not ar.ready():
            dead = [p.pid for p in engine_procs if not alive(p)]
            if dead:
                failure = f"MPI engine process {dead[0]} died during the run"
                break
            if time.monotonic() > deadline:
                failure = f"the run on the MPI engines took longer than {timeout:g} s"
                break
            ar.wait(ENGINE_POLL_S)
        if failure is None:
            try:
                results = ar.get()
            except ipp.error.CompositeError as exc:
                if any(e[0] == "EngineError" for e in exc.elist):
                    failure = "an MPI engine died during the run"
                else:
                    raise LabError(_remote_message(exc)) from None
            except ipp.error.RemoteError as exc:
                raise LabError(_remote_message(exc)) from None
            except ipp.error.EngineError:
                failure = "an MPI engine died during the run"
    except KeyboardInterrupt:
        if isinstance(pool, MpiCluster):
            pool.stop()
        raise Interrupted("stopped by Ctrl-C: the MPI cluster was stopped") from None
    finally:
        if own_client is not None:
            own_client.close()
    if failure is not None:
        if isinstance(pool, MpiCluster):
            with contextlib.suppress(LabError):
                pool.stop()
            failure += (f"; the MPI cluster was stopped: start a new one with "
                        f"start_cluster({pool.n})")
        raise LabError(failure)
    root = next(r for r in results if r.meta.get("rank") == 0)
    root.meta["engines"] = len(results)
    if isinstance(pool, MpiCluster):
        root.meta["cluster_startup"] = pool.startup_s
    return root
