"""Helpers of the browser suite: a temporary lab, a JupyterLab server, processes, the page.

Everything the suite starts carries the environment variable ``LABKIT_E2E_RUN`` (the
server, and through it the kernels, pools, MPI engines; the browser with a ``-browser``
suffix), so leftovers are found by that mark, not by process names.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "MARK",
    "NOTEBOOKS",
    "REPO",
    "SHOTS",
    "EngineWatch",
    "LabServer",
    "describe",
    "free_port",
    "kill_marked",
    "marked_processes",
    "prepare_lab",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MARK = "LABKIT_E2E_RUN"
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "reports" / "screenshots"  # screenshots and the server log (git-ignored)
# the notebooks under test (another folder: LABKIT_E2E_NOTEBOOKS, e.g. to debug the suite)
NOTEBOOKS = Path(os.environ.get("LABKIT_E2E_NOTEBOOKS") or REPO / "notebooks")
PARAMETERS = {"preset": '"tiny"', "workers": "2", "repeats": "1"}  # Python source
ENGINE_WORDS = ("ipengine", "ipyparallel.engine")
# JupyterLab user settings: every cell attached to the DOM (no windowing), the preferred
# kernel started without asking, no news/update checks (no network here), terminal
# text readable in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none",
                                               "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    "@jupyterlab/terminal-extension/plugin": {"screenReaderMode": True},  # text in the DOM
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_parameters(source: str, values: dict[str, str]) -> str:
    """``source`` of a parameters cell with the assignments of ``values`` replaced."""
    for name, value in values.items():
        source = re.sub(rf"^({name}\s*=\s*)[^#\n]*?(\s*(#.*)?)$", rf"\g<1>{value}\g<2>",
                        source, count=1, flags=re.M)
    return source


def prepare_lab(src: Path, root: Path) -> list[Path]:
    """Copy the numbered notebooks of ``src`` to ``root/notebooks`` with tiny parameters.

    The first code cell (tagged ``parameters``) gets ``preset="tiny"``, ``workers=2``,
    ``repeats=1`` for the names it defines; outputs are left as committed (none).

    Returns
    -------
    list of Path : the copies, sorted by name
    """
    dest = root / "notebooks"
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(src.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "parameters" in cell.get("metadata", {}).get("tags", []), path.name
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = _set_parameters(text, PARAMETERS)
        nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}
        (dest / path.name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
        out.append(dest / path.name)
    return out


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment has ``LABKIT_E2E_RUN == mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def describe(procs: Iterable[psutil.Process]) -> list[str]:
    """``pid name cmdline`` of each process (for assertion messages)."""
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            out.append(f"{p.pid} (gone)")
    return out


def kill_marked(mark: str, grace: float = 10, timeout: float = 10) -> list[str]:
    """Processes marked ``mark`` still alive after ``grace`` seconds, SIGTERMed then SIGKILLed.

    Returns
    -------
    list of str : what had to be killed (empty: everything had exited by itself)
    """
    deadline = time.monotonic() + grace
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.3)
    procs = marked_processes(mark)
    found = describe(procs)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    return found


class EngineWatch:
    """Samples (every 0.3 s, in a thread) which ipyparallel engine processes run for mark."""

    def __init__(self, mark: str, active: bool = True) -> None:
        self.mark = mark
        self.active = active  # False: no sampling thread (nothing seen)
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def engines(self) -> list[psutil.Process]:
        """The engine processes running now."""
        out = []
        for p in marked_processes(self.mark):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if any(word in cmd for word in ENGINE_WORDS):
                out.append(p)
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.seen.update(p.pid for p in self.engines())
            self._stop.wait(0.3)

    def __enter__(self) -> EngineWatch:
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


class LabServer:
    """``jupyter lab`` on 127.0.0.1 with a token, in its own process group.

    Parameters
    ----------
    root : Path
        The temporary lab root (``LABKIT_HOME``); notebooks are served from
        ``root/notebooks``; Jupyter's runtime, settings and workspaces live under
        ``root/.jupyter``.
    mark : str
        Value of ``LABKIT_E2E_RUN`` for the server and everything it starts.
    """

    def __init__(self, root: Path, mark: str) -> None:
        self.root = root
        self.mark = mark
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / ".jupyter" / "server.log"

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until its API answers (``timeout`` seconds)."""
        jdir = self.root / ".jupyter"
        settings = jdir / "settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        config = jdir / "config"  # no user config; terminals: a plain (non-login) bash
        config.mkdir(parents=True, exist_ok=True)  # keeps PATH, so `labkit` is found there
        (config / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"terminado_settings": {"shell_command": ["/bin/bash"]}}}))
        env = dict(os.environ, LABKIT_HOME=str(self.root), JUPYTER_RUNTIME_DIR=str(jdir / "rt"),
                   JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(jdir / "data"),
                   **{MARK: self.mark})  # no user-level kernels, settings or workspaces
        env.pop("JUPYTER_TOKEN", None)
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # mpiexec, ipengine of .venv
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root / 'notebooks'}",
               f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={jdir / 'workspaces'}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer in {timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        """The end of the server log."""
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API with the token; the decoded JSON (or None)."""
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        """URL opening ``notebook`` in a reset workspace (the token logs the browser in)."""
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def shutdown_kernels(self, timeout: float = 30) -> None:
        """Shut every kernel (gracefully: pools and atexit hooks run) and terminal down."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for term in self.api("GET", "/api/terminals") or []:
            self.api("DELETE", f"/api/terminals/{term['name']}")
        deadline = time.monotonic() + timeout
        while self.api("GET", "/api/kernels") and time.monotonic() < deadline:
            time.sleep(0.3)

    def others(self) -> list[psutil.Process]:
        """Marked processes that are not the server itself (kernels, pools, engines)."""
        return [p for p in marked_processes(self.mark)
                if self.proc is None or p.pid != self.proc.pid]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the server's process group (it shuts its kernels down); SIGKILL later."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass

