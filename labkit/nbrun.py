"""Execute a notebook with parameters (papermill-style) through nbclient.

The cell tagged ``parameters`` holds the defaults; :func:`execute_notebook` inserts a
cell tagged ``injected-parameters`` right after it with the given values, runs every
cell in a fresh kernel and optionally writes the executed notebook.

Exercises: a code cell tagged ``exercise`` (the skeleton a student completes) is followed
by a cell that checks it (``labkit.check.exercise``) and a hidden cell tagged ``solution``
(the model answer). Before running, :func:`fill_solutions` puts each solution's source in
its exercise cell, so an executed notebook checks the model answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labkit.errors import LabError

__all__ = ["execute_notebook", "fill_solutions", "inject_parameters"]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
EXERCISE_TAG = "exercise"
SOLUTION_TAG = "solution"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Insert (or replace) the ``injected-parameters`` cell of notebook ``nb`` in place.

    The new cell goes right after the cell tagged ``parameters`` (at the top if there is
    none). Values are written with :func:`repr`, so they must be Python literals
    (str, int, float, bool, None, lists/dicts of those).

    Returns
    -------
    nb : the same notebook node
    """
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in _tags(c)]
    if not parameters:
        return nb
    for name in parameters:
        if not str(name).isidentifier():
            raise LabError(f"notebook parameter {name!r} is not a Python name")
    lines = ["# Parameters injected by labkit.nbrun"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    where = next((i + 1 for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)), 0)
    nb.cells.insert(where, cell)
    return nb


def fill_solutions(nb: Any) -> int:
    """Give every ``exercise`` cell of ``nb`` the source of the next ``solution`` cell.

    The solution must come after its exercise and before the next exercise.

    Returns
    -------
    int
        Exercise cells filled.

    Raises
    ------
    LabError
        An exercise cell without a solution after it (names the cell).
    """
    filled = 0
    cells = list(nb.cells)
    for i, cell in enumerate(cells):
        if EXERCISE_TAG not in _tags(cell):
            continue
        answer = None
        for later in cells[i + 1:]:
            if EXERCISE_TAG in _tags(later):
                break
            if SOLUTION_TAG in _tags(later):
                answer = later
                break
        if answer is None:
            raise LabError(f"exercise cell {i} has no cell tagged {SOLUTION_TAG!r} after it")
        cell.source = answer.source
        filled += 1
    return filled


def _write_atomic(nb: Any, out_path: Path) -> None:
    import nbformat

    from labkit.io import write_text_atomic

    write_text_atomic(out_path, nbformat.writes(nb))


def execute_notebook(
    path: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: int = 900,
    out_path: str | os.PathLike[str] | None = None,
    kernel_name: str = "python3",
    solutions: bool = True,
) -> Any:
    """Run every cell of a notebook with injected parameters; return the executed notebook.

    Parameters
    ----------
    path : path
        The ``.ipynb`` file (left unchanged).
    parameters : dict, optional
        Values for the ``parameters`` cell (Python literals).
    cwd : path, optional
        Working folder of the kernel (default: the notebook's folder).
    timeout : int, default 900
        Seconds allowed per cell.
    out_path : path, optional
        Where to write the executed notebook (atomically). It is written even when a cell
        fails, so the traceback can be read there.
    kernel_name : str, default "python3"
        Jupyter kernel to start.
    solutions : bool, default True
        Run the model answers in the exercise cells (:func:`fill_solutions`); False runs
        the exercise cells as they are.

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    LabError
        Missing/unreadable notebook, or a cell raised (message names the cell and error).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    src = Path(path)
    if not src.is_file():
        raise LabError(f"notebook {src} does not exist")
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # nbformat raises several types for bad JSON/schema
        raise LabError(f"notebook {src} is not a readable .ipynb: {exc}") from None
    inject_parameters(nb, dict(parameters or {}))
    if solutions:
        try:
            fill_solutions(nb)
        except LabError as exc:
            raise LabError(f"{src.name}: {exc}") from None
    workdir = Path(cwd) if cwd is not None else src.resolve().parent
    if not workdir.is_dir():
        raise LabError(f"working folder {workdir} for {src.name} does not exist")
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name,
        resources={"metadata": {"path": str(workdir)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no TCP-transport warning
        shutdown_kernel="immediate",  # the outputs are in: no polite wait for the kernel
    )
    try:
        try:
            client.execute()
        except BaseException:
            # while it runs, nbclient takes SIGINT itself: it stops the kernel, and the run
            # ends with whatever its cancelled tasks raised (CancelledError, AssertionError)
            if getattr(client, "_async_cleanup_kernel_future", None) is not None:
                raise KeyboardInterrupt from None
            raise
    except CellTimeoutError:
        raise LabError(f"{src.name}: a cell ran longer than {timeout} s") from None
    except CellExecutionError as exc:
        failed = next((i for i, c in enumerate(nb.cells) if any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        detail = f"{exc.ename}: {exc.evalue}".strip().splitlines()[0][:300]
        where = f"cell {failed}" if failed is not None else "a cell"
        raise LabError(f"{src.name}: {where} failed with {detail}") from None
    finally:
        if out_path is not None:
            _write_atomic(nb, Path(out_path))
    return nb
