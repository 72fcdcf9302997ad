"""Layer 9.5: bad input and faults — nothing lost, nothing orphaned (docs/robustness.md).

Every row of the table in ``docs/robustness.md`` is a test: rows already covered by an
earlier layer name that test; the others are one parametrized case here. A CLI case runs
``python -m labkit ...`` in its own session with a unique marker in its environment and a
private ``TMPDIR``, under a timeout, then checks:

* the exit code and the one stderr line (its exact start);
* every file that existed before (inputs and earlier good outputs) is byte-identical and
  nothing was added: no partial output, no temporary file, nothing left in ``TMPDIR``;
* no process carrying the marker is left (pool workers, forkserver children, mpiexec and
  its ranks), and no shared-memory block of the run is left in ``/dev/shm``.

Unreadable and read-only paths need permission checks. Tests run as root in CI, where
``chmod`` does not stop reads or writes: as root the case runs with ``CAP_DAC_OVERRIDE``
and ``CAP_DAC_READ_SEARCH`` dropped from its bounding set (``prctl``), so root is held
to the file modes like any owner; if that is not allowed the case is skipped with the
reason. Root-proof provocations (a path under a regular file, ``/proc``, a dangling
symlink) run everywhere.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faults
import numpy as np
import psutil
import pytest

from labkit import backends, prep
from labkit.backends.mpi._world import THREAD_ENV, mpiexec_path
from labkit.errors import LabError
from labkit.io import open_stack, read_tile, write_geotiff
from labkit.sar.isce import write_isce_slc

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "robustness.md"  # the "Bad input and faults" table
TIMEOUT = 90  # s for any one subprocess: far above the 1-3 s each takes
DATES = ("20230105", "20230117", "20230129")
SLC_SHAPE = (40, 60)  # lines x samples of the test SLCs
N, ROWS, COLS = 4, 24, 20  # the good tile stack

pytestmark = pytest.mark.timeout(300)


# ---------------------------------------------------------------------------- data


def _tiles(folder: Path, n: int = N, rows: int = ROWS, cols: int = COLS, seed: int = 0,
           fill: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, :, 0] = np.nan  # zero-filled edge
    x[:, 3:5, 3:5] = (900 + rng.normal(0, 0.1, (n, 2, 2))).astype(np.float32)  # PS-like
    if fill is not None:
        x[...] = fill
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        write_geotiff(folder / f"202402{k + 1:02d}_int_crop.tif", x[k])
    return x


@dataclass(frozen=True)
class Lab:
    """Inputs shared by every case (never modified: cases copy what they break)."""

    root: Path
    tiles: Path  # N dates, ROWS x COLS
    big: Path  # 3 dates, 200 x 200 (outputs of 160 kB: bigger than the disk-full limit)
    slc: Path  # ISCE2 tree, DATES, SLC_SHAPE
    bigslc: Path  # ISCE2 tree, 2 dates, 400 x 400
    mean: bytes  # earlier good outputs of `tiles` (sequential)
    std: bytes
    prev_tiles: Path  # earlier good prep output of `slc` (crop 5,5,0,0, looks 4)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    root = tmp_path_factory.mktemp("robust")
    _tiles(root / "tiles")
    _tiles(root / "big", n=3, rows=200, cols=200, seed=1)
    rng = np.random.default_rng(2)
    for d in DATES:
        a = rng.standard_normal((*SLC_SHAPE, 2), dtype=np.float32).view(np.complex64)[..., 0]
        write_isce_slc(root / "slc", d, a)
    for d in DATES[:2]:
        a = rng.standard_normal((400, 400, 2), dtype=np.float32).view(np.complex64)[..., 0]
        write_isce_slc(root / "bigslc", d, a)
    backends.run("sequential", root / "tiles", root / "mean.tif", root / "std.tif")
    prep.prep_stack(root / "slc", root / "prev_tiles", (5, 5, 0, 0), 4, progress=False)
    return Lab(root, root / "tiles", root / "big", root / "slc", root / "bigslc",
               (root / "mean.tif").read_bytes(), (root / "std.tif").read_bytes(),
               root / "prev_tiles")


# ---------------------------------------------------------------------------- runner


_CHMODDED: list[tuple[Path, int]] = []  # (path, mode) a case set: see _snapshot


def _snapshot(*folders: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and symlink (target) under ``folders``, by path. Paths a case
    made unreadable are made readable for the look, then put back."""
    for path, _ in _CHMODDED:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        out: dict[str, bytes | str] = {}
        for folder in folders:
            for p in sorted(folder.rglob("*")):
                if p.is_symlink():
                    out[str(p)] = "-> " + os.readlink(p)
                elif p.is_file():
                    out[str(p)] = p.read_bytes()
                elif p.is_dir() and not any(p.iterdir()):
                    out[str(p)] = "empty dir"
        return out
    finally:
        for path, mode in _CHMODDED:
            path.chmod(mode)


def _marked(mark: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("LABKIT_ROBUST_MARK") == mark and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def assert_nothing_left(mark: str, timeout: float = 10.0) -> None:
    """No process of the run is left (waits a little: killed workers are reaped async)."""
    deadline = time.monotonic() + timeout
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(p.pid, p.name()) for p in _marked(mark)]
    for p in _marked(mark):  # do not leak them into later tests
        p.kill()
    assert left == [], f"processes left behind: {left}"


_libc = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac() -> None:
    """preexec_fn: as root, lose the capabilities that ignore file modes."""
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) not allowed")


def _file_size_limit(nbytes: int) -> Callable[[], None]:
    def limit() -> None:  # preexec_fn: writes past nbytes fail with EFBIG (not SIGXFSZ)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


_DAC_PROBE: list[str | None] = []


def dac_skip_reason() -> str | None:
    """Why chmod-based cases cannot run here (None: they can)."""
    if not _DAC_PROBE:
        reason = None
        if os.geteuid() == 0:
            try:
                subprocess.run(["true"], preexec_fn=_drop_dac, check=True, timeout=10)
            except (OSError, subprocess.SubprocessError) as exc:
                reason = (f"running as root and cannot drop CAP_DAC_OVERRIDE ({exc}): "
                          "chmod does not block root")
        _DAC_PROBE.append(reason)
    return _DAC_PROBE[0]


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    pid: int


def labkit(argv: list[str | Path], cwd: Path, *, env: dict[str, str] | None = None,
           nodac: bool = False, fsize: int | None = None, mpiexec: int | None = None,
           sigint: Callable[[subprocess.Popen], None] | None = None,
           fault: str | None = None) -> Outcome:
    """Run ``[mpiexec -n N] python -m labkit ARGV`` as a user would; leave nothing behind.

    ``nodac``: permission checks apply even to root; ``fsize``: a file-size limit (bytes);
    ``sigint``: called with the running process, sends SIGINT when the run is mid-way;
    ``fault``: a fault put in place in the run (:mod:`faults`).
    """
    mark = uuid.uuid4().hex
    tmp = cwd / "tmpdir"
    tmp.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PMI_", "PMIX_", "HYDI_", "OMPI_"))}
    full_env.update(THREAD_ENV, LABKIT_ROBUST_MARK=mark, TMPDIR=str(tmp), **(env or {}))
    cmd = faults.command(fault, *argv) if fault else [sys.executable, "-m", "labkit", *argv]
    cmd = list(map(str, cmd))
    if mpiexec:
        cmd = [mpiexec_path(), "-n", str(mpiexec), *cmd]
    hooks = ([_drop_dac] if nodac and os.geteuid() == 0 else []) + \
        ([_file_size_limit(fsize)] if fsize else [])

    def preexec() -> None:
        for hook in hooks:
            hook()

    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=preexec if hooks else None)
    try:
        if sigint is not None:
            sigint(proc)
        out, err = proc.communicate(timeout=TIMEOUT)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        assert_nothing_left(mark, timeout=1)
        raise
    assert_nothing_left(mark)
    assert list(tmp.iterdir()) == [], f"temporary files left in TMPDIR: {list(tmp.iterdir())}"
    tmp.rmdir()
    assert glob.glob(f"/dev/shm/labkit_{proc.pid}_*") == []
    return Outcome(proc.returncode, out, err, proc.pid)


def assert_one_line(res: Outcome, code: int, start: str) -> None:
    """Exit ``code`` and exactly one stderr line, starting with ``start``."""
    lines = res.err.strip().splitlines()
    assert res.code == code, (res.code, res.err)
    assert len(lines) == 1, res.err
    assert lines[0].startswith(start), (lines[0], start)
    assert "Traceback" not in res.err + res.out


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One row: ``make(case_dir, lab)`` breaks something and returns the CLI arguments."""

    id: str
    make: Callable[[Path, Lab], list[str | Path]]
    start: str  # the stderr line starts with this (after setup, {case} is the case dir)
    code: int = 2
    nodac: bool = False  # needs file modes to bind (chmod cases)
    fsize: int | None = None  # file-size limit in bytes (disk full)
    mpiexec: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # a fault put in place in the run (tests/faults.py)
    extra_lines: str | None = None  # regex of library text allowed besides labkit's line


LIBTIFF = r"_tiff\w+Proc: ?|File too large\.?"  # libtiff's own stderr on EFBIG


def _run(src: Path | str, *extra: str | Path, backend: str = "sequential"
         ) -> list[str | Path]:
    return ["run", backend, src, "out/mean.tif", "out/std.tif", *extra]


def _copy(src: Path, case: Path, name: str) -> Path:
    dest = case / name
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _chmod(path: Path, mode: int) -> Path:
    path.chmod(mode)
    _CHMODDED.append((path, mode))
    return path


def _first_tile(folder: Path) -> Path:
    return sorted(folder.glob("*_int_crop.tif"))[0]


def _prep(src: Path | str, dest: Path | str = "dest", *extra: str) -> list[str | Path]:
    return ["prep", src, dest, "--crop", "5,5,0,0", *extra]


def _dangling(case: Path, lab: Lab) -> Path:
    t = _copy(lab.tiles, case, "t")
    (t / "20240209_int_crop.tif").symlink_to(case / "gone" / "20240209_int_crop.tif")
    return t


def _tile_folder(case: Path, lab: Lab) -> Path:
    t = _copy(lab.tiles, case, "t")
    (t / "20240209_int_crop.tif").mkdir()
    return t


def _xml_disagrees(case: Path, lab: Lab) -> Path:
    s = _copy(lab.slc, case, "s")
    xml = s / DATES[1] / f"{DATES[1]}.slc.xml"
    text = xml.read_text()
    text = re.sub(r'(<property name="length">\s*<value>)40(</value>)', r"\g<1>36\2", text)
    xml.write_text(text)
    return s


def _vrt_elsewhere(case: Path, lab: Lab) -> Path:
    s = _copy(lab.slc, case, "s")
    vrt = s / DATES[2] / f"{DATES[2]}.slc.vrt"
    vrt.write_text(vrt.read_text().replace(
        f'<SourceFilename relativeToVRT="1">{DATES[2]}.slc',
        f'<SourceFilename relativeToVRT="0">/nonexistent/{DATES[2]}.slc'))
    return s


def _vrt_float(case: Path, lab: Lab) -> Path:
    s = _copy(lab.slc, case, "s")
    for vrt in s.glob("*/*.slc.vrt"):
        vrt.write_text(vrt.read_text().replace('dataType="CFloat32"', 'dataType="Float32"')
                       .replace("<PixelOffset>8</PixelOffset>", "<PixelOffset>4</PixelOffset>"))
    return s


def _vrt_garbage(case: Path, lab: Lab) -> Path:
    s = _copy(lab.slc, case, "s")
    (s / DATES[1] / f"{DATES[1]}.slc.vrt").write_text("<VRTDataset garbage")
    return s


def _regular_file(case: Path) -> Path:
    f = case / "afile"
    f.write_text("a regular file\n")
    return f


def _readonly_out(case: Path, lab: Lab) -> list[str | Path]:
    _chmod(case / "out", 0o555)
    return _run(lab.tiles)


def _readonly_mean(case: Path, lab: Lab) -> list[str | Path]:
    _chmod(case / "out" / "mean.tif", 0o444)
    return _run(lab.tiles)


def _readonly_dest_parent(case: Path, lab: Lab) -> list[str | Path]:
    _chmod(case / "ro", 0o555)
    return _prep(lab.slc, case / "ro" / "tiles")


CASES = [
    # -- paths -----------------------------------------------------------------------------
    Case("prep-src-is-a-file", lambda c, lab: _prep(_regular_file(c)),
         "labkit: error: {case}/afile is a file: give the folder that holds the SLCs"),
    Case("run-tile-folder-unreadable",
         lambda c, lab: _run(_chmod(_copy(lab.tiles, c, "t"), 0o000)),
         "labkit: error: tile folder {case}/t is not readable", nodac=True),
    Case("run-one-tile-unreadable",
         lambda c, lab: _run(_chmod(_first_tile(_copy(lab.tiles, c, "t")), 0o000).parent),
         "labkit: error: tile {case}/t/20240201_int_crop.tif is not readable (permission "
         "denied)",
         nodac=True),
    Case("run-tile-dangling-symlink", lambda c, lab: _run(_dangling(c, lab)),
         "labkit: error: tile {case}/t/20240209_int_crop.tif is a dangling symlink"),
    Case("run-tile-is-a-folder", lambda c, lab: _run(_tile_folder(c, lab)),
         "labkit: error: tile {case}/t/20240209_int_crop.tif is not a file"),
    Case("prep-slc-folder-unreadable",
         lambda c, lab: _prep(_chmod(_copy(lab.slc, c, "s"), 0o000)),
         "labkit: error: SLC folder {case}/s is not readable", nodac=True),
    Case("prep-date-folder-unreadable",
         lambda c, lab: _prep(_chmod(_copy(lab.slc, c, "s") / DATES[1], 0o000).parent),
         f"labkit: error: SLC folder {{case}}/s/{DATES[1]} is not readable (Permission denied)",
         nodac=True),
    Case("run-output-folder-read-only", _readonly_out,
         "labkit: error: cannot write out/mean.tif: folder out is not writable", nodac=True),
    Case("run-output-file-read-only", _readonly_mean,
         "labkit: error: cannot write out/mean.tif: the file exists and is read-only",
         nodac=True),
    Case("prep-dest-parent-read-only", _readonly_dest_parent,
         "labkit: error: cannot create output folder {case}/ro/tiles: {case}/ro is not "
         "writable", nodac=True),
    Case("prep-dest-read-only", lambda c, lab: _prep(lab.slc, _chmod(c / "dest", 0o555)),
         "labkit: error: output folder {case}/dest is not writable", nodac=True),
    Case("run-output-under-a-file",
         lambda c, lab: ["run", "sequential", lab.tiles, _regular_file(c) / "mean.tif",
                         "out/std.tif"],
         "labkit: error: cannot write {case}/afile/mean.tif: {case}/afile is a file, "
         "not a folder"),
    Case("run-output-in-proc",
         lambda c, lab: ["run", "sequential", lab.tiles, "/proc/labkit-mean.tif",
                         "out/std.tif"],
         "labkit: error: cannot write /proc/labkit-mean.tif: folder /proc is not writable"),
    Case("prep-dest-under-a-file", lambda c, lab: _prep(lab.slc, _regular_file(c) / "tiles"),
         "labkit: error: cannot create output folder {case}/afile/tiles: {case}/afile is a "
         "file, not a folder"),
    Case("prep-dest-in-proc", lambda c, lab: _prep(lab.slc, "/proc/labkit-tiles"),
         "labkit: error: cannot create output folder /proc/labkit-tiles"),
    Case("run-output-is-a-symlink-to-an-input",
         lambda c, lab: ["run", "sequential", lab.tiles, c / "link.tif", "out/std.tif"],
         "labkit: error: output {case}/link.tif is one of the input tiles"),
    # -- SLCs ------------------------------------------------------------------------------
    Case("prep-xml-and-vrt-disagree", lambda c, lab: _prep(_xml_disagrees(c, lab)),
         f"labkit: error: {DATES[1]}.slc.xml says 36x60 (lines x samples) but "
         f"{DATES[1]}.slc.vrt says 40x60: the headers disagree"),
    Case("prep-vrt-points-nowhere", lambda c, lab: _prep(_vrt_elsewhere(c, lab)),
         f"labkit: error: VRT {{case}}/s/{DATES[2]}/{DATES[2]}.slc.vrt points to raw file "
         f"/nonexistent/{DATES[2]}.slc, which does not exist"),
    Case("prep-vrt-not-complex", lambda c, lab: _prep(_vrt_float(c, lab)),
         f"labkit: error: {{case}}/s/{DATES[0]}/{DATES[0]}.slc.vrt holds float32 samples: "
         "expected a complex SLC"),
    Case("prep-one-date-vrt-garbage", lambda c, lab: _prep(_vrt_garbage(c, lab)),
         f"labkit: error: {{case}}/s/{DATES[1]}/{DATES[1]}.slc.vrt is not a readable VRT"),
    Case("prep-one-date-raw-unreadable",
         lambda c, lab: _prep(_chmod(_copy(lab.slc, c, "s") / DATES[1] / f"{DATES[1]}.slc",
                                     0o000).parent.parent),
         f"labkit: error: raw file {{case}}/s/{DATES[1]}/{DATES[1]}.slc is not readable",
         nodac=True),
    # -- tiles -----------------------------------------------------------------------------
    Case("run-single-date-ddof-1",
         lambda c, lab: _run(_single(c), "--ddof", "1"),
         "labkit: error: ddof=1 needs more dates than 1: valid is 0..0"),
    # -- parameters ------------------------------------------------------------------------
    Case("run-workers-not-a-number", lambda c, lab: _run(lab.tiles, "--workers", "two"),
         "labkit: error: argument --workers: 'two' is not a whole number ≥ 1"),
    Case("run-block-rows-zero", lambda c, lab: _run(lab.tiles, "--block-rows", "0"),
         "labkit: error: argument --block-rows: 0 is not ≥ 1"),
    Case("run-block-rows-not-a-number", lambda c, lab: _run(lab.tiles, "--block-rows", "1e3"),
         "labkit: error: argument --block-rows: '1e3' is not a whole number ≥ 1"),
    Case("run-ddof-negative", lambda c, lab: _run(lab.tiles, "--ddof", "-1"),
         "labkit: error: argument --ddof: -1 is not ≥ 0"),
    Case("run-mpiexec-ddof-too-big",
         lambda c, lab: _run(lab.tiles, "--ddof", "4", backend="mpi"),
         "labkit: error: ddof=4 needs more dates than 4: valid is 0..3", mpiexec=2),
    Case("prep-looks-not-a-number", lambda c, lab: _prep(lab.slc, "dest", "--looks", "four"),
         "labkit: error: argument --looks: looks 'four' must be N or AZxRG"),
    Case("prep-looks-three-numbers", lambda c, lab: _prep(lab.slc, "dest", "--looks", "2x3x4"),
         "labkit: error: argument --looks: looks '2x3x4' must be ≥ 1 (N or AZxRG"),
    Case("prep-crop-three-numbers",
         lambda c, lab: ["prep", lab.slc, "dest", "--crop", "5,5,0"],
         "labkit: error: argument --crop: crop '5,5,0' must be four whole numbers W,H,R0,C0"),
    Case("prep-crop-negative",
         lambda c, lab: ["prep", lab.slc, "dest", "--crop=5,5,-1,0"],
         "labkit: error: argument --crop: crop '5,5,-1,0': width and height must be ≥ 1, "
         "first row/column ≥ 0"),
    Case("prep-jobs-not-a-number", lambda c, lab: _prep(lab.slc, "dest", "--jobs", "2.5"),
         "labkit: error: argument --jobs: '2.5' is not a whole number ≥ 1"),
    # -- faults ----------------------------------------------------------------------------
    Case("run-disk-full-during-write", lambda c, lab: _run(lab.big),
         "labkit: error: cannot write out/mean.tif: the data did not reach the disk",
         fsize=50_000, extra_lines=LIBTIFF),
    Case("run-disk-full-multiprocessing",
         lambda c, lab: _run(lab.big, "--workers", "2", backend="multiprocessing"),
         "labkit: error: cannot write out/mean.tif: the data did not reach the disk",
         fsize=50_000, extra_lines=LIBTIFF),
    Case("prep-disk-full-during-write",
         lambda c, lab: ["prep", lab.bigslc, "dest", "--crop", "400,400,0,0", "--looks", "1",
                         "--jobs", "2"],
         "labkit: error: cannot write dest/20230", fsize=50_000,
         extra_lines=LIBTIFF),
    Case("run-mem-shared-memory-refused", lambda c, lab: _run(lab.big, backend="mem"),
         "labkit: error: cannot create a 0.000745 GiB shared-memory block: File too large; "
         "use threads or sequential", fsize=50_000),
    Case("run-mpi-rank-killed",
         lambda c, lab: _run(lab.tiles, "--workers", "2", "--block-rows", "8", backend="mpi"),
         "labkit: error: an MPI rank died during the run (Killed (signal 9)); mpiexec -n 2 "
         "stopped every rank, no output was written", fault="kill-rank"),
]


def _single(case: Path) -> Path:
    t = case / "one"
    _tiles(t, n=1)
    return t


def _prepare_case(case: Path, lab: Lab) -> None:
    """Earlier good outputs at the usual destinations, and places cases break."""
    (case / "out").mkdir()
    (case / "out" / "mean.tif").write_bytes(lab.mean)
    (case / "out" / "std.tif").write_bytes(lab.std)
    shutil.copytree(lab.prev_tiles, case / "dest")
    (case / "ro").mkdir()
    (case / "link.tif").symlink_to(_first_tile(lab.tiles))


def _restore_modes() -> None:
    for path, _ in _CHMODDED:
        path.chmod(0o755 if path.is_dir() else 0o644)
    _CHMODDED.clear()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_case(case: Case, lab: Lab, tmp_path: Path) -> None:
    """Exit code, one line, nothing written, earlier outputs byte-identical, nothing left."""
    if case.nodac and (reason := dac_skip_reason()):
        pytest.skip(reason)
    _prepare_case(tmp_path, lab)
    _CHMODDED.clear()
    try:
        argv = case.make(tmp_path, lab)
        before = _snapshot(tmp_path, lab.root)
        res = labkit(argv, tmp_path, env=case.env, nodac=case.nodac, fsize=case.fsize,
                     fault=case.fault, mpiexec=case.mpiexec)
        after = _snapshot(tmp_path, lab.root)
    finally:
        _restore_modes()
    start = case.start.replace("{case}", str(tmp_path))
    if case.extra_lines is not None:  # libtiff's own text (workers' may interleave)
        text = re.sub(case.extra_lines, "", res.err)
        lines = [ln for ln in text.splitlines() if ln.strip(" .")]
        res = Outcome(res.code, res.out, "\n".join(lines) + "\n", res.pid)
    assert_one_line(res, case.code, start)
    assert res.out == ""
    assert after == before  # nothing written, nothing lost


# ---------------------------------------------------------------------------- tiles: valid
# edge cases that must *run*


def test_all_nan_stack_runs_and_gives_nan(lab: Lab, tmp_path: Path) -> None:
    """Strict NaN: every date NaN -> all-NaN mean and std, exit 0, no warning line."""
    t = tmp_path / "nan"
    _tiles(t, fill=np.nan)
    for extra in ([], ["--min-count", "1"]):
        res = labkit(["run", "threads", t, "m.tif", "s.tif", "--workers", "2", *extra],
                     tmp_path)
        assert res.code == 0 and res.err == "", res.err
        assert res.out.startswith("threads x2: wall ")
        for name in ("m.tif", "s.tif"):
            a = read_tile(tmp_path / name)
            assert a.shape == (ROWS, COLS) and np.isnan(a).all()


@pytest.mark.parametrize("backend, opts", [
    ("sequential", {}), ("threads", {"workers": 2}), ("mem", {"workers": 2}),
    ("multiprocessing", {"workers": 2}), ("mpi", {"workers": 1, "split": "dates"})],
    ids=["sequential", "threads", "mem", "multiprocessing", "mpi-1-rank"])
def test_all_nan_and_single_date_every_backend(backend: str, opts: dict, tmp_path: Path
                                                ) -> None:
    """All-NaN stack -> all NaN; one date: ddof=0 gives std exactly 0, ddof=1 is refused."""
    nan_dir, one_dir = tmp_path / "nan", tmp_path / "one"
    _tiles(nan_dir, fill=np.nan)
    x = _tiles(one_dir, n=1)
    with np.errstate(all="raise"):  # no RuntimeWarning either
        r = backends.compute(backend, nan_dir, **opts)
    assert np.isnan(r.mean).all() and np.isnan(r.std).all()
    r = backends.compute(backend, one_dir, **opts)
    assert np.array_equal(r.mean, x[0], equal_nan=True)
    assert np.array_equal(np.isnan(r.std), np.isnan(x[0])) and (r.std[~np.isnan(x[0])] == 0).all()
    with pytest.raises(LabError, match=r"ddof=1 needs more dates than 1: valid is 0\.\.0"):
        backends.compute(backend, one_dir, ddof=1, **opts)


def test_block_rows_beyond_the_tile_and_workers_beyond_rows(lab: Lab) -> None:
    """Out-of-range but valid sizes are clamped, not errors: same result as sequential."""
    seq = backends.compute("sequential", lab.tiles)
    for backend, opts in [("sequential", {"block_rows": 10_000}),
                          ("threads", {"workers": 2, "block_rows": 10_000}),
                          ("threads", {"workers": 64})]:
        r = backends.compute(backend, lab.tiles, **opts)
        assert np.array_equal(r.mean, seq.mean, equal_nan=True)
        assert np.array_equal(r.std, seq.std, equal_nan=True)


def test_prep_into_the_slc_folder_leaves_the_slcs_alone(lab: Lab, tmp_path: Path) -> None:
    """DEST = SRC is allowed: tiles are *_int_crop.tif, never an input name."""
    s = _copy(lab.slc, tmp_path, "s")
    before = _snapshot(s)
    res = labkit(_prep(s, s), tmp_path)
    assert res.code == 0, res.err
    after = _snapshot(s)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(Path(k).name for k in after if k not in before) == \
        [f"{d}_int_crop.tif" for d in DATES]
    again = labkit(_prep(s, tmp_path / "o2"), tmp_path)  # the tiles in s/ are not SLCs
    assert again.code == 0 and again.out.startswith("prep: 3 of 3 dates")


# ---------------------------------------------------------------------------- API rows


API = [
    ("compute-workers-zero", lambda t: backends.compute("threads", t, workers=0),
     "workers must be a whole number ≥ 1, got 0"),
    ("compute-workers-float", lambda t: backends.compute("mem", t, workers=2.5),
     "workers must be a whole number ≥ 1, got 2.5"),
    ("compute-block-rows-zero", lambda t: backends.compute("sequential", t, block_rows=0),
     "block rows must be a whole number ≥ 1, got 0"),
    ("compute-unknown-backend", lambda t: backends.compute("opencl", t),
     "unknown backend 'opencl': valid are sequential, multiprocessing, mem, threads, mpi"),
    ("compute-min-count-zero", lambda t: backends.compute("threads", t, min_count=0),
     "min_count=0 out of range: valid is 1..4"),
    ("compute-ddof-equals-dates", lambda t: backends.compute("sequential", t, ddof=4),
     "ddof=4 needs more dates than 4: valid is 0..3"),
    ("prep-stack-looks-zero",
     lambda t: prep.prep_stack(t.parent / "slc", t.parent / "x", (5, 5, 0, 0), 0,
                               progress=False),
     "looks 0 must be ≥ 1"),
    ("prep-stack-crop-not-numbers",
     lambda t: prep.prep_stack(t.parent / "slc", t.parent / "x", ("a", 5, 0, 0),
                               progress=False),
     "crop ('a', 5, 0, 0) must be four whole numbers W,H,R0,C0"),
    ("prep-stack-jobs-bool",
     lambda t: prep.prep_stack(t.parent / "slc", t.parent / "x", (5, 5, 0, 0), jobs=True,
                               progress=False),
     "jobs True must be a whole number ≥ 1"),
    ("make-pool-workers-zero", lambda t: backends.make_pool("mem", 0),
     "workers must be a whole number ≥ 1, got 0"),
    ("ensure-tiles-bad-side", lambda t: prep.ensure_tiles("tiny", 100, root=t.parent / "x",
                                                           progress=False),
     "tile 100 does not suit preset tiny: valid sides are 16, 32, 64"),
]


@pytest.mark.parametrize("make, message", [a[1:] for a in API], ids=[a[0] for a in API])
def test_api_case(make: Callable[[Path], object], message: str, lab: Lab) -> None:
    """The same checks from Python (notebooks): LabError with the one-line message."""
    before = _snapshot(lab.root)
    with pytest.raises(LabError) as info:
        make(lab.tiles)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert _snapshot(lab.root) == before and not (lab.root / "x").exists()


# ---------------------------------------------------------------------------- Ctrl-C


def _wait(cond: Callable[[], bool], proc: subprocess.Popen, what: str,
          timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _grandchildren(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [k for k in kids if k.ppid() != proc.pid]


def _sigint_when(ready: Callable[[subprocess.Popen], bool], group: bool = False
                 ) -> Callable[[subprocess.Popen], None]:
    def send(proc: subprocess.Popen) -> None:
        _wait(lambda: ready(proc), proc, "the run to be under way")
        time.sleep(0.5)  # tasks submitted and sleeping (the slow-tasks/slow-ranks fault)
        if group:  # a terminal's Ctrl-C reaches the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
    return send


def _threads_started(proc: subprocess.Popen) -> bool:
    try:
        return psutil.Process(proc.pid).num_threads() >= 3  # main + 2 pool threads
    except psutil.Error:
        return False


def _ranks_idle() -> Callable[[subprocess.Popen], bool]:
    """A check: both ranks exist and used no CPU for 1 s (asleep: the slow-ranks fault)."""
    state: dict[str, float] = {}

    def idle(proc: subprocess.Popen) -> bool:
        ranks = [k for k in _grandchildren(proc) if "hydra" not in k.name()]
        if len(ranks) < 2:
            return False
        try:
            cpu = sum(sum(r.cpu_times()[:2]) for r in ranks)
        except psutil.Error:
            return False
        now = time.monotonic()
        if state.get("cpu") != cpu:
            state.update(cpu=cpu, since=now)
            return False
        return cpu > 0.3 and now - state["since"] > 1.5
    return idle


SIGINT_CASES = {
    "run-threads": (lambda lab: _run(lab.tiles, "--workers", "2", "--block-rows", "4",
                                     backend="threads"),
                    None, lambda: _sigint_when(_threads_started)),
    "prep-jobs-2": (lambda lab: _prep(lab.slc, "dest", "--jobs", "2"), None,
                    lambda: _sigint_when(lambda p: len(_grandchildren(p)) >= 2)),
    "run-mpi-launcher": (lambda lab: _run(lab.tiles, "--workers", "2", "--block-rows", "8",
                                          backend="mpi"),
                         None, lambda: _sigint_when(lambda p: len(_grandchildren(p)) >= 3)),
    "run-under-mpiexec": (lambda lab: _run(lab.tiles, "--block-rows", "8", backend="mpi"),
                          2, lambda: _sigint_when(_ranks_idle(), group=True)),
}


@pytest.mark.parametrize("name", list(SIGINT_CASES))
def test_sigint_mid_run(name: str, lab: Lab, tmp_path: Path) -> None:
    """Ctrl-C: exit 130, 'labkit: interrupted', earlier outputs intact, nothing left."""
    make, mpiexec, sender = SIGINT_CASES[name]
    _prepare_case(tmp_path, lab)
    before = _snapshot(tmp_path, lab.root)
    fault = "slow-ranks" if "mpi" in name else "slow-tasks"
    res = labkit(make(lab), tmp_path, fault=fault, mpiexec=mpiexec, sigint=sender())
    assert res.code == 130, res.err
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    if mpiexec:  # every rank got SIGINT and says so; MPICH adds "Abort(130) ..." lines
        assert lines[0].startswith("labkit: interrupted: "), res.err
        assert all(ln.startswith(("labkit: interrupted: ", "Abort(130)")) for ln in lines), \
            res.err
    else:
        assert len(lines) == 1 and lines[0].startswith("labkit: interrupted: "), res.err
    assert _snapshot(tmp_path, lab.root) == before


# ---------------------------------------------------------------------------- panels


def _workers_left(before: set[int]) -> list[int]:
    me = psutil.Process()
    left = []
    for c in me.children(recursive=True):
        try:
            helper = c.ppid() == me.pid and "multiprocessing" in " ".join(c.cmdline())
            if not helper and c.pid not in before and c.status() != psutil.STATUS_ZOMBIE:
                left.append(c.pid)
        except psutil.Error:
            pass
    return left


def _assert_no_workers(before: set[int], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _workers_left(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers_left(before) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("panels") / "data"
    prep.ensure_tiles("tiny", root=root, progress=False)
    return root


def test_panel_killed_worker(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    """A worker SIGKILLed mid-run: one red line in the panel, pools dropped, no process
    left, the panel works again; the CSV gets no row from the failed run."""
    pytest.importorskip("ipywidgets")
    from labkit.ui import ControlPanel

    before = {c.pid for c in psutil.Process().children(recursive=True)}
    csv = tmp_path / "bench.csv"
    panel = ControlPanel("tiny", root=tiny, csv=csv, backend="multiprocessing", workers=2,
                         repeats=1)
    try:
        faults.inject("kill-workers", monkeypatch)  # each worker dies at its first task
        assert panel.run() is None
        assert panel.error.startswith("a worker process died (killed?) during the run")
        assert "color:#b00020" in panel.status.value and not panel.run_button.disabled
        assert panel.pools == {} and not csv.exists()
        _assert_no_workers(before)
        monkeypatch.undo()
        assert panel.run() is not None and panel.error is None
        assert len(panel.results) == 1 and csv.exists()
    finally:
        panel.close()
    _assert_no_workers(before)


@pytest.mark.parametrize("kind", ["control", "prep"])
def test_panel_unwritable_data_root(kind: str, tmp_path: Path) -> None:
    """Data root under a regular file: the panel says so in one line and writes nothing."""
    pytest.importorskip("ipywidgets")
    from labkit.ui import ControlPanel, PrepPanel

    afile = _regular_file(tmp_path)
    panel = (ControlPanel("tiny", root=afile, csv=tmp_path / "b.csv", workers=1, repeats=1)
             if kind == "control" else PrepPanel("tiny", root=afile, workers=1))
    try:
        assert panel.run() is None
        assert panel.error == f"cannot create {afile}/tiny/slc: Not a directory"
        assert "color:#b00020" in panel.status.value
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    finally:
        panel.close()


def test_panel_unwritable_csv(tiny: Path, tmp_path: Path) -> None:
    """The benchmark CSV cannot be written: the panel says so, results are not half-kept."""
    pytest.importorskip("ipywidgets")
    from labkit.ui import ControlPanel

    afile = _regular_file(tmp_path)
    panel = ControlPanel("tiny", root=tiny, csv=afile / "bench.csv", workers=1, repeats=1)
    try:
        assert panel.run() is None
        assert panel.error == f"cannot create folder {afile}: File exists", panel.error
        assert panel.results == [] and afile.read_text() == "a regular file\n"
    finally:
        panel.close()


# ---------------------------------------------------------------------------- MPI engines


def _listeners(procs: list[psutil.Process]) -> list[tuple[int, str, str, int]]:
    out = []
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.append((p.pid, p.name(), c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return out


@pytest.mark.timeout(180)
def test_engines_listen_on_loopback_and_a_killed_engine_reaches_the_panel(
        tiny: Path, tmp_path: Path) -> None:
    """Controller, launcher and engines (incl. MPI's own sockets) listen on 127.0.0.1 only;
    the connection files say 127.0.0.1. Then a SIGKILLed engine: one line in MpiPanel, the
    cluster stopped, no engine, mpiexec or controller process left."""
    pytest.importorskip("ipywidgets")
    from labkit.ui import MpiPanel

    panel = MpiPanel("tiny", root=tiny, csv=False, workers=2, repeats=1, timeout=60)
    try:
        assert panel.run() is not None, panel.error
        cluster = panel.cluster
        procs = list(cluster._procs)
        listen = _listeners(procs)
        assert {pid for pid, *_ in listen} >= set(cluster.engine_pids)  # engines checked
        wide = [x for x in listen if x[2] not in ("127.0.0.1", "::1")]
        gforker = Path(mpiexec_path()).with_name("mpiexec.gforker").is_file()
        if wide and not gforker:
            pytest.xfail(f"Hydra's mpiexec PMI port binds 0.0.0.0 (no gforker): {wide}")
        assert wide == [], f"sockets listening beyond loopback: {wide}"
        files = list(Path(cluster.profile_dir).glob("security/*.json"))
        assert files
        for f in files:
            info = json.loads(f.read_text())
            if "interface" in info:
                assert info["interface"] == "tcp://127.0.0.1", (f.name, info)

        cluster.view.execute(faults.engine_code("kill-rank"))  # rank 1 dies after a block
        assert panel.run() is None
        assert panel.error.startswith("MPI engine process ") or \
            panel.error.startswith("an MPI engine died"), panel.error
        assert "the MPI cluster was stopped" in panel.error
        assert panel.cluster is None and cluster.stopped
        left = [p.pid for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == []
        assert not Path(cluster.profile_dir).exists()
    finally:
        panel.close()


def test_make_lab_keeps_token_auth_on_loopback() -> None:
    """`make lab`: JupyterLab bound to 127.0.0.1 with a non-empty token, also when
    JUPYTER_TOKEN is empty (``${VAR:-default}``)."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "no lab target"
    body = recipe.group(1).replace("\\\n", " ")
    assert "--ServerApp.ip=127.0.0.1" in body
    assert not re.search(r"token=(''|\"\"|\s)", body) and "disable_check_xsrf" not in body
    m = re.search(r'--IdentityProvider\.token="([^"]+)"', body)
    assert m, body
    expr = m.group(1).replace("$$", "$").replace("$(BIN)", str(Path(sys.executable).parent))
    for value in ({}, {"JUPYTER_TOKEN": ""}, {"JUPYTER_TOKEN": "mine"}):
        env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
        token = subprocess.run(["bash", "-c", f'echo "{expr}"'], env={**env, **value},
                               capture_output=True, text=True, timeout=30).stdout.strip()
        assert token == value.get("JUPYTER_TOKEN") or re.fullmatch(r"[0-9a-f]{32}", token), \
            (value, token)


# ---------------------------------------------------------------------------- concurrency


def _expected(src: Path) -> tuple[np.ndarray, np.ndarray]:
    r = backends.compute("sequential", src)
    return r.mean, r.std


def _is_one_of(a: np.ndarray, options: list[np.ndarray]) -> bool:
    return any(a.shape == o.shape and np.array_equal(a, o, equal_nan=True) for o in options)


class _Reader(threading.Thread):
    """Reads ``path`` in a loop: every read must be one of ``options`` exactly."""

    def __init__(self, path: Path, options: list[np.ndarray]) -> None:
        super().__init__(daemon=True)
        self.path, self.options = path, options
        self.stop = threading.Event()
        self.reads = 0
        self.bad: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            if self.path.exists():
                try:
                    a = read_tile(self.path)
                except (LabError, OSError) as exc:
                    self.bad.append(str(exc))
                    continue
                self.reads += 1
                if not _is_one_of(a, self.options):
                    self.bad.append("a read matched neither writer")


@pytest.mark.timeout(240)
def test_concurrent_runs_to_one_destination_last_writer_wins_whole(tmp_path: Path) -> None:
    """Two `labkit run` to the same MEAN/STD, several rounds, a reader polling all along:
    every file read and the final files are exactly one writer's output, no temporaries."""
    a, b = tmp_path / "a", tmp_path / "b"
    _tiles(a, n=6, rows=300, cols=300, seed=10)
    _tiles(b, n=6, rows=300, cols=300, seed=11)
    ea, eb = _expected(a), _expected(b)
    out = tmp_path / "out"
    out.mkdir()
    reader = _Reader(out / "mean.tif", [ea[0], eb[0]])
    reader.start()
    mark = uuid.uuid4().hex
    env = {**os.environ, **THREAD_ENV, "LABKIT_ROBUST_MARK": mark}
    try:
        for _ in range(5):
            procs = [subprocess.Popen([sys.executable, "-m", "labkit", "run", backend, src,
                                       out / "mean.tif", out / "std.tif", "--quiet"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for backend, src in (("sequential", a), ("threads", b))]
            for p in procs:
                _, err = p.communicate(timeout=TIMEOUT)
                assert p.returncode == 0, err
            assert _is_one_of(read_tile(out / "mean.tif"), [ea[0], eb[0]])
            assert _is_one_of(read_tile(out / "std.tif"), [ea[1], eb[1]])
            assert sorted(x.name for x in out.iterdir()) == ["mean.tif", "std.tif"]
    finally:
        reader.stop.set()
        reader.join(10)
    assert reader.bad == [] and reader.reads > 0
    assert oct(os.stat(out / "mean.tif").st_mode & 0o777) == oct(0o666 & ~_umask())
    assert_nothing_left(mark)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.timeout(240)
def test_concurrent_preps_to_one_folder_last_writer_wins_whole(lab: Lab, tmp_path: Path
                                                                ) -> None:
    """Two `labkit prep` of different crops into one folder: each tile is exactly one of
    the two crops' tiles (never a mix, never short), no temporaries."""
    crops = ("100,100,0,0", "100,100,0,300")
    refs = []
    for k, crop in enumerate(crops):
        w, h, r0, c0 = map(int, crop.split(","))
        s = prep.prep_stack(lab.bigslc, tmp_path / f"ref{k}", (w, h, r0, c0), 1,
                            progress=False)
        refs.append([read_tile(p) for p in s.outputs])
    dest = tmp_path / "dest"
    mark = uuid.uuid4().hex
    env = {**os.environ, **THREAD_ENV, "LABKIT_ROBUST_MARK": mark}
    for _ in range(4):
        procs = [subprocess.Popen([sys.executable, "-m", "labkit", "prep", lab.bigslc, dest,
                                   "--crop", crop, "--looks", "1"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for crop in crops]
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT)
            assert p.returncode == 0, err
        tiles = sorted(dest.iterdir())
        assert [t.name for t in tiles] == [f"{d}_int_crop.tif" for d in ("20230105",
                                                                          "20230117")]
        for k, t in enumerate(tiles):
            assert _is_one_of(read_tile(t), [refs[0][k], refs[1][k]])
    assert open_stack(dest).shape == (2, 100, 100)
    assert_nothing_left(mark)


# ---------------------------------------------------------------------------- the doc


def _doc_rows() -> list[list[str]]:
    rows = []
    text = DOC.read_text()
    table = text[text.index("<!-- robustness-table:start"):text.index("<!-- robustness-table:end")]
    for line in table.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
    return [r for r in rows if r[0] != "case"]  # without the header rows


def test_the_table_names_a_test_for_every_row() -> None:
    """docs/robustness.md: every row names an existing test; every case has a row."""
    rows = _doc_rows()
    assert rows
    here = Path(__file__).read_text()
    ids = {c.id for c in CASES} | set(SIGINT_CASES) | {a[0] for a in API}
    named = set()
    for row in rows:
        assert len(row) == 5, row
        refs = re.findall(r"`(tests/test_\w+\.py)::(\w+)(?:\[([^\]]+)\])?`", row[4])
        assert refs, f"row without a test id: {row}"
        for path, func, param in refs:
            text = here if path.endswith(Path(__file__).name) else (REPO / path).read_text()
            assert f"def {func}(" in text, (path, func)
            if param and path.endswith(Path(__file__).name):
                assert param in ids or param in text, (func, param)
                named.add(param)
    assert ids <= named, f"cases without a row: {sorted(ids - named)}"
