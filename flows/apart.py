"""A stage's work in a process of its own, which dies with the night's: a large night's render.

At 10^7 records the render (the register of every record first) peaked at 6.8 GB in the night's process, yet at
5.4 GB in a fresh one reading the same work folder: what ingest, detection and the ledger left in the night's heap
is not given back to the system. So from `[limits] render_apart_records` records a night, `flows.stages.render`
calls `in_a_child("flows.stages:render_here", …)`: a child (`python -m flows.apart`, the night's code, working
directory and environment) imports the function, gets its arguments on its standard input and sends back its answer
on a pipe of its own (what anything prints goes where the night's output goes), and writes the same files; below
that, the render runs in the night's process (a child costs ~3 s to start, nothing a small night needs).

The child is killed when the night's process dies, however it dies (Linux: `PR_SET_PDEATHSIG`): the data
directory's lock is the night's process's, and nothing may go on writing reports or the register's ids once it is
released; a night stopped (Ctrl-C, SIGTERM, a cancelled task) stops it as Ctrl-C would, then kills it after
`GRACE` seconds or on a second Ctrl-C. An exception in the child is raised again in the night as it was raised, of
its own type (one pickle does not make again as it was — `EntitiesUnreadable(path, why)` — is rebuilt from its
message and attributes), so the operator reads the same sentence and exit code as in the night's process, with the
child's traceback as a note; a child that ends without an answer (the kernel's out-of-memory killer), or with one
the night cannot read, raises `ChildDied`, which the CLI words for the operator.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import select
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from checks.lock import die_with
from flows.collector import collector_paused

__all__ = ["ChildDied", "in_a_child", "GRACE"]

_ROOT = Path(__file__).resolve().parents[1]
#: Seconds a stopped night gives its child to stop as on Ctrl-C (staged files removed) before killing it.
GRACE = 10.0


class ChildDied(RuntimeError):
    """The child ended without an answer, or with one the night cannot read; `what` names its work (“生成报告”),
    `code` is its exit code (−N: signal N)."""

    def __init__(self, message: str, what: str, code: int):
        super().__init__(message)
        self.what, self.code = what, code

    def __reduce__(self):
        return type(self), (str(self), self.what, self.code)

    @property
    def killed(self) -> bool:
        """Killed outright (SIGKILL): the kernel's out-of-memory killer, most likely."""
        return self.code == -signal.SIGKILL


def in_a_child(target: str, what: str, *args):
    """`target(*args)` (`"module:function"`, imported by the child) in a child process: its answer, or its exception
    raised here; `what` names the work in the sentence of a child that dies."""
    job = pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL)
    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        child = subprocess.Popen([sys.executable, "-m", "flows.apart", str(os.getpid()), str(write)],
                                 stdin=subprocess.PIPE, pass_fds=(write,), env=env)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)  # the child holds the only write end: the answer pipe closes when the child ends
    try:
        try:
            child.stdin.write(job)
            child.stdin.close()
        except BrokenPipeError:  # died before it read its job: said below
            pass
        answer = _answer(read)
        code = child.wait()
    except BaseException:  # Ctrl-C, SIGTERM, a cancelled task: the child never outlives the stage
        _stop(child)
        raise
    finally:
        os.close(read)
    try:
        done, value, trace = pickle.loads(answer)  # our own child's answer, through its own pipe
    except Exception as exc:
        if answer and code == 0:  # whole (the child wrote it and ended well), yet not to be made here
            raise ChildDied(f"{what}的子进程已结束，但其结果在主进程中无法读取（{type(exc).__name__}: {exc}），"
                            "未完成", what, code) from None
        # none, or cut short: the child died writing it
        raise ChildDied(f"{what}的子进程异常退出（{_how(code)}），未完成", what, code) from None
    if done:
        return value
    error = value.rebuilt() if isinstance(value, _Raised) else value
    error.add_note(f"Raised in the child process (flows.apart) that ran {target}:\n{trace.rstrip()}")
    raise error


def _answer(read: int) -> bytes:
    """Everything the child writes on its answer pipe, up to its end. Read in turns of at most half a second: a
    signal the kernel hands to another of the night's threads (polars' own) does not interrupt a blocking read, and
    Ctrl-C would be handled only once the child had finished."""
    chunks, waiting = [], select.poll()  # poll, not select: any descriptor number (a night may hold 1,024 open)
    waiting.register(read, select.POLLIN)
    while True:
        if waiting.poll(500):
            chunk = os.read(read, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _stop(child: subprocess.Popen) -> None:
    """Stop the child as Ctrl-C would (its staged files removed), killed if it has not ended after `GRACE` s — or
    at once on a second Ctrl-C meanwhile: it never outlives this call."""
    try:
        if child.poll() is None:
            child.terminate()  # the child takes SIGTERM as Ctrl-C
            child.wait(GRACE)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def _how(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = "，常见原因是服务器内存不足" if -code == signal.SIGKILL else ""
        return f"被信号 {name} 终止{hint}"
    return f"退出码 {code}"


class _Raised:
    """An exception that pickle cannot make again (its `__init__` takes other arguments than its message): its
    class's name, `args` and attributes, made again without calling `__init__`."""

    def __init__(self, exc: BaseException):
        self.module, self.name = type(exc).__module__, type(exc).__qualname__
        self.args = tuple(a if _sendable(a) else str(a) for a in exc.args)
        self.state = {k: v for k, v in vars(exc).items() if _sendable(v)}

    def rebuilt(self) -> BaseException:
        try:
            cls = functools.reduce(getattr, self.name.split("."), importlib.import_module(self.module))
            exc = cls.__new__(cls, *self.args)  # OSError's __new__ takes errno, text and file name from them
            exc.args = self.args
            exc.__dict__.update(self.state)
            return exc
        except Exception:  # a class the night cannot import (defined in a script): its name and message
            return RuntimeError(f"{self.name}: {self.args[0] if self.args else ''}")


def _sendable(value) -> bool:
    try:
        pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return True
    except Exception:
        return False


def _same_again(exc: BaseException) -> bool:
    """Whether pickle makes `exc` again as it is (an `__init__` whose other arguments have defaults makes another
    message from the message alone)."""
    try:
        again = pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return False
    return type(again) is type(exc) and str(again) == str(exc)


def _child(parent: int, answers: int) -> int:
    die_with(parent)
    # the night stops it (`_stop`): SIGTERM ends it as Ctrl-C does, staged files removed; Ctrl-C at the terminal
    # reaches the night, which then stops it so, once
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target, args = pickle.load(sys.stdin.buffer)
    module, name = target.split(":")
    try:
        function = getattr(importlib.import_module(module), name)
        with collector_paused():
            result = (True, function(*args), "")
    except BaseException as exc:  # noqa: BLE001 — every exception goes back to the night, as it was raised, its
        # traceback a note on it (the night's log, Prefect's too, shows where in the child it was raised)
        result = (False, exc if _same_again(exc) else _Raised(exc), traceback.format_exc())
    with os.fdopen(answers, "wb") as out:
        out.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":  # by its module's name: what the child pickles (`_Raised`) is then found in the night
    from flows.apart import _child as child

    sys.exit(child(int(sys.argv[1]), int(sys.argv[2])))
