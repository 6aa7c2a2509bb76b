"""One night at a time per data directory: a lock held for the whole run.

The lock is an `flock` on the `state/` folder and on `state/nightly.lock` (beside the ledger). The kernel
releases it when its process dies, however it dies, so a lock left by a dead
run is simply free again; the file keeps the last holder's details (pid, host,
night, start time), which a waiting run reports and a run taking over a dead
run's lock logs. A second run waits at most `wait` seconds, then gives up with
`LockBusy`, whose message names the run that holds the data directory.

The folder's lock is what keeps an operator who deletes a "stale" `nightly.lock` from letting a second
run in beside the first (the file's lock is on the deleted file; a new file is free). Where the file
system cannot lock a folder (some network mounts), the file's lock alone is used.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import fcntl
import json
import os
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from checks.catalog import LOCK_FILE


class LockBusy(RuntimeError):
    """Another run holds the data directory; the message says which (in Chinese)."""

    def __init__(self, holder: dict, waited: float):
        self.holder = holder
        who = describe(holder) if holder else "另一个运行（信息不详）"
        waited_text = f"等待 {waited:.0f} 秒后仍未结束，" if waited else ""
        super().__init__(f"数据目录正被{who}使用，{waited_text}本次运行未开始，未做任何修改。"
                         "请等该运行结束后再运行；如确认该进程已不存在，锁会自动释放，直接重试即可。")


def describe(holder: dict) -> str:
    """The holder of a lock in one Chinese phrase."""
    return (f"进程 {holder.get('pid')}（主机 {holder.get('host')}，运行日期 {holder.get('night')}，"
            f"开始于 {holder.get('started')}）")


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: we cannot tell, assume it lives
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def _read(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


@contextmanager
def night_lock(data_dir: Path, night: str, wait: float = 0.0,
               say: Callable[[str], None] = lambda line: None) -> Iterator[dict]:
    """Hold the data directory's lock for a night; raise `LockBusy` after `wait` seconds.

    Yields the holder record written into the lock file.
    """
    path = Path(data_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    folder = _folder(path.parent)
    started = time.monotonic()
    try:
        while True:
            try:
                folder = _lock_folder(folder)
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if folder is not None:  # a run of an older version holds the file alone
                        fcntl.flock(folder, fcntl.LOCK_UN)
                    raise
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait:
                    raise LockBusy(_read(handle), waited) from None
                time.sleep(min(1.0, max(0.05, wait - waited)))
        previous = _read(handle)
        if previous.get("pid") and not previous.get("released") and not _alive(int(previous["pid"]), previous.get("host", "")):
            say(f"接管数据目录锁：上一次运行（{describe(previous)}）已异常退出，未正常释放。")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "night": night,
                  "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder, ensure_ascii=False))
        handle.flush()
        try:
            yield holder
        finally:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({**holder, "released": True}, ensure_ascii=False))
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
        if folder is not None:
            os.close(folder)  # and with it the folder's lock


def _folder(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _lock_folder(folder: int | None) -> int | None:
    """The folder's lock taken (BlockingIOError while another run holds it); None, the descriptor closed, where
    the file system cannot lock a folder."""
    if folder is None:
        return None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:
        os.close(folder)
        return None
    return folder


def _closing_on_busy(folder: int | None) -> int | None:
    """`_lock_folder` for a one-off look: the descriptor closed when the folder is held."""
    try:
        return _lock_folder(folder)
    except BlockingIOError:
        if folder is not None:
            os.close(folder)
        raise


def holder_of(data_dir: Path) -> dict | None:
    """Who holds the data directory now (None when nobody does)."""
    path = Path(data_dir) / LOCK_FILE
    if not path.parent.is_dir():
        return None
    try:
        folder = _closing_on_busy(_folder(path.parent))
    except BlockingIOError:  # another run holds the data directory
        holder = None
        if path.exists():
            with open(path, encoding="utf-8") as handle:
                holder = _read(handle)
        return holder or {}
    if folder is not None:
        os.close(folder)  # free: let go of it again
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(handle)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """End this process (SIGKILL, from the kernel) as soon as `parent`, the night's process that started it, is
    gone — killed, crashed, however: a child writing into the data directory (the render's, a form writer) must not
    go on once the night's lock is released. Exits at once if `parent` is already gone. Linux (`PR_SET_PDEATHSIG`);
    elsewhere nothing is done."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no `prctl`: the child may then outlive a killed night
        pass
    if os.getppid() != parent:
        os._exit(1)
