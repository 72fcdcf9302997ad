"""Run a command as a child subreaper and leave none of its processes behind.

Usage: subreaper.py COMMAND [ARG...]

Daemons double-fork (slurmstepd does for every job step), so their processes end up orphaned.
With PR_SET_CHILD_SUBREAPER set here, orphans of the command's process tree are re-parented to
this process instead of PID 1: it reaps them, and once the command has exited it waits up to
GRACE_S seconds for the adopted ones, then SIGKILLs any left, names them, and fails. SIGINT and
SIGTERM are passed on to the command. Linux only. Exit status: the command's, or 1 if something
had to be killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 15.0


def _children() -> dict[int, str]:
    """{pid: command line} of the live processes whose parent is this one."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] != "Z":
            found[int(entry)] = cmd or stat[stat.index("(") + 1:stat.rindex(")")]
    return found


def _reap() -> list[tuple[int, int]]:
    """Reap every exited child now; [(pid, wait status)]."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def main(argv: list[str]) -> int:
    """Run ``argv`` under this subreaper; its exit status, or 1 if leftovers were killed."""
    if not argv:
        print("subreaper.py: usage: subreaper.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"subreaper.py: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}",
              file=sys.stderr)
        return 2
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)

    rc = None
    while rc is None:
        for pid, status in _reap():
            if pid == child:
                rc = os.waitstatus_to_exitcode(status)
                rc = 128 - rc if rc < 0 else rc
        if rc is None:
            time.sleep(0.05)

    deadline = time.monotonic() + GRACE_S
    while True:
        _reap()
        left = _children()
        if not left:
            return rc
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid, cmd in left.items():
        print(f"subreaper.py: killing leftover process {pid}: {cmd}", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    _reap()
    return rc or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
