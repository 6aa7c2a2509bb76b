"""A stage's work in a process of its own, which dies with the night's: a large night's render.

At 10^7 records the render (the register of every record first) peaked at 6.8 GB in the night's process, yet at
5.4 GB in a fresh one reading the same work folder: what ingest, detection and the ledger left in the night's heap
is not given back to the system. So from `[limits] render_apart_records` records a night, `flows.stages.render`
calls `in_a_child("flows.stages:render_here", …)`: a child (`python -m flows.apart`) imports the function, gets its
arguments and sends back its answer through pipes, and writes the same files; below that, the render runs in the
night's process (a child costs ~3 s to start, nothing a small night needs).

The child is killed when the night's process dies, however it dies (Linux: `PR_SET_PDEATHSIG`): the data
directory's lock is the night's process's, and nothing may go on writing reports or the register's ids once it is
released. An exception in the child is raised again in the night, as it was raised; a child that dies without one
(the kernel's out-of-memory killer) raises `ChildDied`, which the CLI words for the operator.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from flows.collector import collector_paused

__all__ = ["ChildDied", "in_a_child"]

_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1


class ChildDied(RuntimeError):
    """The child ended without writing its answer; `what` names its work (“生成报告”)."""

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


def in_a_child(target: str, what: str, *args):
    """`target(*args)` (`"module:function"`, imported by the child) in a child process: its answer, or its exception
    raised here; `what` names the work in the sentence of a child that dies."""
    job = pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL)
    child = subprocess.Popen([sys.executable, "-m", "flows.apart", str(os.getpid())], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, cwd=_ROOT)
    try:
        answer, _ = child.communicate(job)
    except BaseException:  # Ctrl-C, SIGTERM, a cancelled task: the child never outlives the stage
        child.kill()
        child.wait()
        raise
    if child.returncode != 0 or not answer:
        raise ChildDied(f"{what}的子进程异常退出（{_how(child.returncode)}），未完成", what)
    done, value = pickle.loads(answer)  # our own child's answer, through its own pipe
    if done:
        return value
    raise value


def _how(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = "，常见原因是服务器内存不足" if -code == signal.SIGKILL else ""
        return f"被信号 {name} 终止{hint}"
    return f"退出码 {code}"


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exits at once if the parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the child may then outlive a killed night
        pass
    if os.getppid() != parent:
        os._exit(1)


def _child(parent: int) -> int:
    _die_with_parent(parent)
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to the night's error stream, not into the answer
    target, args = pickle.load(sys.stdin.buffer)
    module, name = target.split(":")
    try:
        function = getattr(importlib.import_module(module), name)
        with collector_paused():
            result = (True, function(*args))
    except BaseException as exc:  # noqa: BLE001 — every exception goes back to the night, as it was raised
        traceback.print_exc()
        result = (False, exc)
    try:
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(payload)  # an exception whose arguments do not make it again fails here, not in the night
    except Exception:  # an exception that cannot be sent: its message, the type named
        exc = result[1]
        payload = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    answer.write(payload)
    answer.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1])))
