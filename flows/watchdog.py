"""Prefect's temporary server stopped when the `uscc run` that started it is killed outright.

`uscc run` without `PREFECT_API_URL` runs its flow on a temporary Prefect server, a child process (uvicorn) that
Prefect stops when the run ends, on Ctrl-C and SIGTERM too. A run killed outright (SIGKILL; the kernel's
out-of-memory killer, at a province's scale the likeliest way a night dies) cannot stop it: the server ran on as an
orphan, ~250 MB, one more each such night, on a machine already short of memory.

So before Prefect starts, the run marks its environment (every process it starts inherits the mark) and starts a
small watcher in a session of its own, whose standard input is a pipe only the run holds open. The pipe closes
when the run ends, however it ends; the watcher then stops every Prefect server still running with the run's mark
(SIGTERM, SIGKILL after 5 s) and exits. Linux only (it reads `/proc`); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["watch_this_run", "MARK"]

#: The environment variable carrying a run's mark (`<pid>-<random>`).
MARK = "USCC_RUN_MARK"
#: What the command line of Prefect's temporary server holds (`prefect.server.api.server.SubprocessASGIServer`).
SERVER = b"prefect.server.api.server:create_app"
#: How long a server is given to stop on SIGTERM before it is killed.
GRACE = 5.0

_held: list[int] = []  # the pipe's write end: open as long as this process lives


def watch_this_run() -> subprocess.Popen | None:
    """Mark this process's environment and start the watcher (once a process); None where there is no `/proc`."""
    if _held or not Path("/proc/self/environ").exists():
        return None
    mark = f"{os.getpid()}-{secrets.token_hex(8)}"
    os.environ[MARK] = mark
    read, write = os.pipe()  # both ends close-on-exec: no other child of the run holds the write end
    try:
        watcher = subprocess.Popen([sys.executable, "-m", "flows.watchdog", mark], stdin=read,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   cwd=Path(__file__).resolve().parents[1])
    finally:
        os.close(read)
    _held.append(write)
    return watcher


def marked_servers(mark: str) -> list[int]:
    """The Prefect servers running with `mark` in their environment (only this user's processes can be read)."""
    found = []
    entry = f"{MARK}={mark}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if SERVER in (proc / "cmdline").read_bytes() and entry in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def stop(mark: str) -> None:
    """SIGTERM to each Prefect server carrying `mark`, SIGKILL to those still carrying it after `GRACE` seconds
    (looked up again: a process id freed meanwhile may be another process's)."""
    pids = marked_servers(mark)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    for pid in marked_servers(mark) if pids else ():
        if _running(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main(mark: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the run's end ends the watch
    while os.read(0, 4096):  # nothing is ever written: b"" when the run's end of the pipe is closed
        pass
    stop(mark)


if __name__ == "__main__":
    main(sys.argv[1])
