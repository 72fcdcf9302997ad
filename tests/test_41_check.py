"""labkit.check: a student's function checked against the lab's (right bitwise or within
1 ulp, wrong with where and by how much, crashed with the student's line), timed against
the lab's backend; every task's model answer passes (tiny preset); exercise cells of a
notebook run with their solutions or as written.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from labkit import check
from labkit.errors import LabError
from labkit.io import read_block, read_tile

# ---- model answers (what the notebooks' hidden solutions do) ------------------------


def seq_stats(paths):
    first = read_tile(paths[0]).astype(np.float64)
    s = np.zeros_like(first)
    ss = np.zeros_like(first)
    for p in paths:
        d = read_tile(p).astype(np.float64) - first
        s += d
        ss += d * d
    n = len(paths)
    mean = first + s / n
    var = np.maximum((ss - s * s / n) / n, 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def two_pass_stats(paths):
    """NumPy's own float64 mean and (two-pass) std: other sums, other rounding."""
    x = np.stack([read_tile(p) for p in paths]).astype(np.float64)
    return x.mean(axis=0).astype(np.float32), x.std(axis=0).astype(np.float32)


def one_pass_float32(paths):
    """The tempting one: Σx and Σx² in float32, var = E[x²] − E[x]²."""
    s = ss = None
    for p in paths:
        x = read_tile(p)
        s = x.copy() if s is None else s + x
        ss = x * x if ss is None else ss + x * x
    n = np.float32(len(paths))
    mean = s / n
    return mean, np.sqrt(np.maximum(ss / n - mean * mean, 0)).astype(np.float32)


def per_file_stats(paths, workers):
    with ProcessPoolExecutor(workers, mp_context=check.mp_context()) as pool:
        images = list(pool.map(read_tile, paths))
    first = images[0].astype(np.float64)
    s = np.zeros_like(first)
    ss = np.zeros_like(first)
    for x in images:
        d = x.astype(np.float64) - first
        s += d
        ss += d * d
    n = len(images)
    var = np.maximum((ss - s * s / n) / n, 0.0)
    return (first + s / n).astype(np.float32), np.sqrt(var).astype(np.float32)


def partitioned_stats(paths, workers):
    groups = [[paths[i] for i in idx] for idx in np.array_split(np.arange(len(paths)), workers)
              if len(idx)]
    with ProcessPoolExecutor(len(groups), mp_context=check.mp_context()) as pool:
        partials = list(pool.map(check.partial_stats, groups))
    n, mean, m2 = partials[0]
    for nb, mean_b, m2_b in partials[1:]:
        total = n + nb
        delta = mean_b - mean
        wb = nb / total
        mean = mean + delta * wb
        m2 = m2 + m2_b + delta * delta * n * wb
        n = total
    return mean.astype(np.float32), np.sqrt(np.maximum(m2 / n, 0.0)).astype(np.float32)


def shared_memory_stats(paths, workers):
    rows, cols = read_tile(paths[0]).shape
    shape = (len(paths) + 2, rows, cols)
    block = shared_memory.SharedMemory(create=True, size=4 * int(np.prod(shape)))
    try:
        step = -(-rows // workers)
        slabs = [(block.name, shape, paths, r0, min(rows, r0 + step))
                 for r0 in range(0, rows, step)]
        with ProcessPoolExecutor(workers, mp_context=check.mp_context()) as pool:
            list(pool.map(check.slab_stats, *zip(*slabs, strict=True)))
        planes = np.ndarray(shape, np.float32, buffer=block.buf)
        mean, std = planes[-2].copy(), planes[-1].copy()
        del planes
    finally:
        block.close()
        block.unlink()
    return mean, std


def thread_stats(paths, workers):
    rows, cols = read_tile(paths[0]).shape
    mean = np.empty((rows, cols), np.float32)
    std = np.empty_like(mean)
    step = -(-rows // workers)

    def slab(r0):
        x = read_block(paths, r0, min(rows, r0 + step) - r0).astype(np.float64)
        mean[r0:r0 + step] = x.mean(axis=0)
        std[r0:r0 + step] = x.std(axis=0)

    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(slab, range(0, rows, step)))
    return mean, std


def _gather(comm, local, rows, cols):
    from mpi4py import MPI

    size = comm.size
    counts = [(rows * (r + 1) // size - rows * r // size) * cols for r in range(size)]
    displs = [rows * r // size * cols for r in range(size)]
    out = []
    for a in local:
        full = np.empty((rows, cols), np.float32) if comm.rank == 0 else None
        comm.Gatherv(a, [full, counts, displs, MPI.FLOAT] if comm.rank == 0 else None, root=0)
        out.append(full)
    return (out[0], out[1]) if comm.rank == 0 else None


def mpi_stats(paths, comm):
    rows, cols = read_tile(paths[0]).shape
    lo, hi = rows * comm.rank // comm.size, rows * (comm.rank + 1) // comm.size
    x = read_block(paths, lo, hi - lo).astype(np.float64)
    return _gather(comm, (x.mean(0).astype(np.float32), x.std(0).astype(np.float32)),
                   rows, cols)


def halo_stats(paths, comm, lee):
    from mpi4py import MPI

    rows, cols = read_tile(paths[0]).shape
    rank, size, h = comm.rank, comm.size, lee.halo
    lo, hi = rows * rank // size, rows * (rank + 1) // size
    slab = read_block(paths, lo, hi - lo)
    up = rank - 1 if rank > 0 else MPI.PROC_NULL
    down = rank + 1 if rank < size - 1 else MPI.PROC_NULL
    above = np.empty((len(paths), h, cols), np.float32)
    below = np.empty_like(above)
    comm.Sendrecv(np.ascontiguousarray(slab[:, -h:]), dest=down, recvbuf=above, source=up)
    comm.Sendrecv(np.ascontiguousarray(slab[:, :h]), dest=up, recvbuf=below, source=down)
    x = lee(slab, above if rank > 0 else None, below if rank < size - 1 else None)
    x = x.astype(np.float64)
    return _gather(comm, (x.mean(0).astype(np.float32), x.std(0).astype(np.float32)),
                   rows, cols)


def rank_one_fails(paths, comm):
    if comm.rank == 1:
        raise ValueError("rank one read the wrong rows")
    comm.Barrier()  # rank 0 waits here for ever: the checker must stop the engines
    return None


def reduce_a_list(paths, comm):
    comm.Reduce([1, 2, 3], None, root=0)  # upper-case Reduce needs a buffer: mpi4py raises
    return None


def rank_one_dies(paths, comm):
    if comm.rank == 1:
        os._exit(3)  # as a crash in compiled code would: no exception, no reply
    comm.Barrier()
    return None


# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(lab_home):
    from labkit import backends, prep

    return backends.compute("sequential", prep.ensure_tiles("tiny", progress=False))


def _exercise(task, fn, **kw):
    kw.setdefault("repeats", 1)
    return check.exercise(task, fn, "tiny", **kw)


# ---- right -------------------------------------------------------------------------


def test_right_bitwise_with_timings(lab_home):
    r = _exercise("sequential", seq_stats, repeats=2)
    assert r.ok and r.verdict == "right" and r.exact is True
    assert r.max_abs_diff == 0 and r.n_bad == 0 and r.n_pixels == 64 * 64
    assert r.student_s > 0 and r.lab_s > 0 and r.repeats == 2 and r.lab == "sequential"
    assert "bitwise identical" in r.message and "median of 2" in r.message
    assert repr(r) == r.message and bool(r)
    html = r._repr_html_()
    assert "right" in html and "<div" in html


def test_right_within_one_ulp_says_so(lab_home, reference):
    def nudged(paths):  # the lab's maps, one ulp up at every third pixel
        mean, std = reference.mean.copy(), reference.std.copy()
        mean.flat[::3] = np.nextafter(mean.flat[::3], np.float32(np.inf))
        std.flat[1::3] = np.nextafter(std.flat[1::3], np.float32(-np.inf))
        return mean, std

    r = _exercise("sequential", nudged)
    assert r.ok and r.exact is False and r.max_ulps is not None and r.max_ulps <= 1
    assert "within 1 float32 ulp" in r.message and "not bitwise" in r.message
    assert "order" in r.message


def test_numpy_two_pass_is_right(lab_home):
    r = _exercise("sequential", two_pass_stats)
    assert r.ok, r.message


# ---- wrong -------------------------------------------------------------------------


def test_wrong_says_where_and_by_how_much(lab_home, reference):
    r = _exercise("sequential", one_pass_float32)
    assert not r.ok and r.verdict == "wrong" and r.student_s is None
    assert r.n_bad and r.n_bad > 0 and r.max_abs_diff > 0 and r.max_ulps > 1
    label, row, col, yours, lab = r.example
    assert label in ("mean", "std")
    assert lab == float(getattr(reference, label)[row, col]) and yours != lab
    assert "max |Δ|" in r.message and "pixels" in r.message
    assert f"{label}[{row}, {col}]" in r.message


@pytest.mark.parametrize("answer, words", [
    (lambda paths: None, "returned NoneType"),
    (lambda paths: (np.zeros((64, 64), np.float32),), "returned a tuple of 1 items"),
    (lambda paths: (np.zeros((32, 64), np.float32),) * 2, "shape (32, 64)"),
    (lambda paths: (np.zeros((64, 64)),) * 2, "float64, not float32"),
    (lambda paths: ([[0.0]], np.zeros((64, 64), np.float32)), "mean is a list"),
])
def test_wrong_shape_dtype_or_value_said_plainly(lab_home, answer, words):
    r = _exercise("sequential", answer)
    assert r.verdict == "wrong" and words in r.message, r.message


def test_nan_in_other_places_is_wrong(lab_home, reference):
    def holes(paths):
        mean, std = reference.mean.copy(), reference.std.copy()
        mean[5, 7] = np.nan
        return mean, std

    r = _exercise("sequential", holes)
    assert r.verdict == "wrong" and r.n_bad == 1 and r.example[:3] == ("mean", 5, 7)


# ---- crashed -----------------------------------------------------------------------


def _helper(x):
    return x / 0  # ZeroDivisionError, in the student's own helper


def crashes_in_own_code(paths):
    total = 0
    for p in paths:
        total += _helper(len(str(p)))
    return total


def crashes_inside_labkit(paths):
    return read_tile(Path(paths[0]).with_name("no_such_tile.tif"))


def test_crash_shows_the_students_line_not_labkit(lab_home):
    r = _exercise("sequential", crashes_in_own_code)
    assert not r.ok and r.verdict == "crashed"
    assert r.error.startswith("ZeroDivisionError")
    assert "return x / 0" in r.message and "test_41_check.py" in r.message
    assert "_helper" in r.student_line
    assert "labkit" not in r.message.replace("labkit.", "")


def test_crash_inside_labkit_points_at_the_students_call(lab_home):
    r = _exercise("sequential", crashes_inside_labkit)
    assert r.verdict == "crashed" and r.error.startswith("LabError: cannot read tile")
    assert "read_tile(Path(paths[0])" in r.student_line
    assert "/labkit/" not in r.message and "line" in r.message


def test_unfilled_skeleton_crashes(lab_home):
    def skeleton(paths):
        s = 0.0
        for _p in paths:
            d = ...  # the student has not written this yet
            s += d
        return s

    r = _exercise("sequential", skeleton)
    assert r.verdict == "crashed" and "TypeError" in r.error and "s += d" in r.message
    first = skeleton.__code__.co_firstlineno
    assert f"blanks still to fill in: the ... on line {first + 3}" in r.message


# ---- every task's model answer -------------------------------------------------------


@pytest.mark.parametrize("task, fn, lab", [
    ("per-file", per_file_stats, "multiprocessing (per-file)"),
    ("partitioned", partitioned_stats, "multiprocessing (partitioned)"),
    ("shared-memory", shared_memory_stats, "mem"),
    ("threads", thread_stats, "threads"),
])
def test_process_and_thread_model_answers(lab_home, task, fn, lab):
    r = _exercise(task, fn, workers=2)
    assert r.ok, r.message
    assert r.lab == lab and r.workers == 2 and r.student_s > 0 and r.lab_s > 0
    assert "2 workers" in r.message


def test_pool_worker_error_names_the_students_call(lab_home):
    def bad_pool(paths, workers):
        with ProcessPoolExecutor(workers, mp_context=check.mp_context()) as pool:
            return list(pool.map(read_tile, [str(p) + ".missing" for p in paths]))

    r = _exercise("per-file", bad_pool)
    assert r.verdict == "crashed" and "cannot read tile" in r.error
    assert "pool.map(read_tile" in r.student_line


def _cell_function(path):
    return path


def test_notebook_function_in_a_pool_is_explained(lab_home, monkeypatch):
    """A function defined in a notebook lives in the kernel's __main__, which a
    forkserver/spawn worker does not have: the worker dies, the executor says so."""
    import sys

    monkeypatch.setattr(_cell_function, "__module__", "__main__")
    monkeypatch.setattr(_cell_function, "__qualname__", "cell_function")
    monkeypatch.setattr(sys.modules["__main__"], "cell_function", _cell_function,
                        raising=False)

    def uses_a_cell_function(paths, workers):
        with ProcessPoolExecutor(workers, mp_context=check.mp_context()) as pool:
            return list(pool.map(_cell_function, paths))

    r = _exercise("per-file", uses_a_cell_function)
    assert r.verdict == "crashed" and r.error.startswith("BrokenProcessPool")
    assert "can only run functions they can import" in r.message
    assert "pool.map(_cell_function" in r.student_line
    assert r.student_s is None and r.lab_s is None


@pytest.fixture(scope="module")
def cluster(lab_home):
    from labkit.backends.mpi.engines import start_cluster

    c = start_cluster(2, timeout=60)
    yield c
    c.stop()


@pytest.mark.slow
def test_mpi_and_halo_model_answers(cluster):
    r = _exercise("mpi", mpi_stats, cluster=cluster)
    assert r.ok and r.exact, r.message
    assert r.lab == "mpi (rows)" and r.workers == 2 and "2 ranks" in r.message
    h = _exercise("halo", halo_stats, cluster=cluster)
    assert h.ok, h.message
    assert "lee:5" in h.message and not cluster.stopped


@pytest.mark.slow
def test_mpi_rank_that_raises_stops_its_own_engines(lab_home):
    r = _exercise("mpi", rank_one_fails, timeout=60)
    assert r.verdict == "crashed" and r.error.startswith("rank 1: ValueError")
    assert 'raise ValueError("rank one read the wrong rows")' in r.message
    assert "engines were stopped" in r.message


@pytest.mark.slow
def test_mpi_engine_that_dies_is_reported_not_waited_for(lab_home):
    import time

    t0 = time.monotonic()
    r = _exercise("mpi", rank_one_dies, timeout=60)
    assert r.verdict == "crashed", r.message
    assert "engine process" in r.message and "died during the run" in r.message, r.message
    assert time.monotonic() - t0 < 45  # not the 60 s timeout


def test_halo_lee_matches_the_whole_image_filter(lab_home):
    from labkit.filters import lee

    rng = np.random.default_rng(3)
    img = rng.gamma(4.0, 1.0, (2, 30, 17)).astype(np.float32)
    f = check.HaloLee(5, 4.0)
    whole = np.stack([lee(d, 5, 4.0) for d in img])
    h = f.halo
    top, bottom = img[:, :12], img[:, 12:]
    assert np.array_equal(f(top, None, bottom[:, :h]), whole[:, :12])
    assert np.array_equal(f(bottom, top[:, -h:], None), whole[:, 12:])
    assert np.array_equal(f(img, None, None), whole)
    with pytest.raises(LabError, match="halo above has shape"):
        f(bottom, top[:, -1:], None)


# ---- bad calls ---------------------------------------------------------------------


def test_bad_task_or_function_is_one_clear_line(lab_home):
    with pytest.raises(LabError, match="unknown exercise task 'seq': valid are sequential, "
                                       "per-file"):
        check.exercise("seq", seq_stats)
    with pytest.raises(LabError, match=r"needs a function fn\(paths\)"):
        check.exercise("sequential", 42)
    with pytest.raises(LabError, match=r"does not fit the per-file task: it is called as "
                                       r"fn\(paths, workers\)"):
        check.exercise("per-file", seq_stats)
    with pytest.raises(LabError, match="workers must be a whole number"):
        check.exercise("threads", thread_stats, workers=0)


# ---- notebooks: the exercise cell as written, or with its solution -----------------


def _exercise_notebook(path: Path, body: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_code_cell("from labkit import check\nimport numpy as np\n"
                                  "from labkit.io import read_tile"),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell("result = check.exercise('sequential', my_stats, "
                                  "preset='tiny', repeats=1)\nresult"),
        nbformat.v4.new_code_cell("# Solution (hidden): shifted float64 sums\n"
                                  "def my_stats(paths):\n"
                                  "    x = np.stack([read_tile(p) for p in paths])"
                                  ".astype(np.float64)\n"
                                  "    return x.mean(0).astype(np.float32), "
                                  "x.std(0).astype(np.float32)"),
        nbformat.v4.new_code_cell("print('verdict', result.verdict)"),
    ]
    cells[1].metadata["tags"] = ["exercise"]
    cells[3].metadata["tags"] = ["solution"]
    cells[3].metadata["jupyter"] = {"source_hidden": True}
    nb.cells = cells
    nbformat.write(nb, path)


def _verdict(nb) -> str:
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return text.split()[-1]


@pytest.mark.slow
def test_notebook_runs_solutions_and_rejects_a_wrong_exercise(lab_home, tmp_path):
    from labkit.nbrun import execute_notebook, fill_solutions

    wrong = ("def my_stats(paths):\n    x = np.stack([read_tile(p) for p in paths])\n"
             "    m = x.mean(0, dtype=np.float32)\n"
             "    return m, np.sqrt(np.maximum((x * x).mean(0) - m * m, 0))")
    path = tmp_path / "ex.ipynb"
    _exercise_notebook(path, wrong)
    as_written = execute_notebook(path, solutions=False, timeout=120)
    assert _verdict(as_written) == "wrong"
    html = as_written.cells[2].outputs[0]["data"]["text/html"]
    assert "wrong" in html and "max |Δ|" in html
    solved = execute_notebook(path, timeout=120)
    assert _verdict(solved) == "right"
    import nbformat

    bare = nbformat.read(path, as_version=4)
    bare.cells[3].metadata["tags"] = []
    with pytest.raises(LabError, match="exercise cell 1 has no cell tagged 'solution'"):
        fill_solutions(bare)


@pytest.mark.slow
def test_mpi4py_error_names_the_students_line_and_a_stopped_cluster_is_replaced(lab_home):
    from labkit.backends.mpi.engines import start_cluster

    c = start_cluster(2, timeout=60)
    try:
        r = _exercise("mpi", reduce_a_list, cluster=c, timeout=60)
        assert r.verdict == "crashed", r.message
        assert "comm.Reduce([1, 2, 3], None, root=0)" in r.message, r.message
        assert ".pyx" not in r.message and ".pxi" not in r.message, r.message
        c.stop()  # as a check that crashed with ranks waiting leaves it
        again = _exercise("mpi", mpi_stats, cluster=c)
        assert again.ok, again.message
    finally:
        c.stop()
