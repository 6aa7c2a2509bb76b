"""Which files in the data directory may be opened at all (extracts and returned forms alike).

Only regular files inside the data directory are ever opened: a symlink is never
followed, a FIFO never waited on, hidden and Excel lock files are listed as unused,
never skipped silently.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from checks.textfile import quote

SUPPORTED_SUFFIXES = (".csv", ".xlsx")


class IngestError(ValueError):
    """A whole file can't be used; the message is for the steward and the department."""


def name_refusal(name: str) -> str | None:
    """Why a file name is not an extract or a form (hidden files, Excel's lock files), or None."""
    if name.startswith("~$"):
        return "是 Excel 打开文件时生成的临时锁文件，不是数据文件，已忽略"
    if name.startswith("."):
        return "是隐藏文件（文件名以“.”开头），已忽略。如果这是数据文件，请改名（不以“.”开头）后重新放入"
    return None


def entry_refusal(path: Path, root: Path) -> str | None:
    """Why a directory entry is never opened, or None for a regular file inside `root`.

    Decided on `lstat` (a symlink is never followed, a FIFO never opened, so nothing blocks).
    """
    try:
        info = os.lstat(path)
    except OSError:
        return "无法访问（可能在读取时被移走），未读取"
    if stat.S_ISLNK(info.st_mode):
        return "是符号链接（快捷方式），为安全起见不读取。请把文件本身（而不是链接）放入该目录"
    if stat.S_ISDIR(info.st_mode):
        return "是文件夹，不是文件，未读取。请把文件直接放入该目录，不要放在子文件夹中"
    if not stat.S_ISREG(info.st_mode):
        return "不是普通文件（设备、管道或套接字），为安全起见不读取"
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        return "位于数据目录之外，为安全起见不读取"
    return None


def folder_refusal(folder: Path, root: Path) -> str | None:
    """Why a data folder (`extracts/<source>/`, `returns/<source>/`) is not looked into, or None."""
    for part in (folder.parent, folder):
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            return None
        except OSError:
            return f"{part.relative_to(root)}/ 无法访问"
        if stat.S_ISLNK(info.st_mode):
            return f"{part.relative_to(root)} 是符号链接，为安全起见不读取其中的文件。请使用真实的目录"
        if not stat.S_ISDIR(info.st_mode):
            return f"{part.relative_to(root)} 不是目录"
    if not Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(root)):
        return f"{folder.relative_to(root)} 位于数据目录之外，为安全起见不读取"
    return None


def list_folder(folder: Path, root: Path) -> tuple[list[Path], list[dict]]:
    """A data folder's usable files (name order) and every other entry with why it is not used.

    The one rule for extracts/ and returns/: only regular files inside `root`, never
    hidden or lock files; what is left out is listed (`refused`: never opened), never skipped silently.
    """
    refused = folder_refusal(folder, root)
    if refused:
        return [], [{"file": folder.name, "reason": refused, "refused": True}]
    if not folder.is_dir():
        return [], []
    usable, left_out = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        shown = quote(entry.name, 120)
        reason = entry_refusal(path, root)
        if reason is not None:
            left_out.append({"file": shown, "reason": reason, "refused": True})
        elif (reason := name_refusal(entry.name)) is not None:
            left_out.append({"file": shown, "reason": reason, "refused": False})
        else:
            usable.append(path)
    return usable, left_out


def select_extract(folder: Path, root: Path | None = None) -> tuple[Path | None, list[dict]]:
    """Tonight's extract: the newest supported file by mtime, ties broken by name.

    Args:
        folder: `extracts/<source>/`.
        root: the data directory (default: two levels up); nothing outside it is opened.
    """
    root = Path(root) if root is not None else Path(folder).parent.parent
    files, ignored = list_folder(Path(folder), root)
    candidates = []
    for path in files:
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            candidates.append(path)
        else:
            ignored.append({"file": quote(path.name, 120), "refused": False,
                            "reason": f"不支持的文件类型（{quote(path.suffix, 20) or '无扩展名'}），请另存为 .xlsx 或 .csv"})
    if not candidates:
        return None, ignored
    candidates.sort(key=lambda p: (os.lstat(p).st_mtime, p.name))
    newest = candidates[-1]
    ignored += [{"file": quote(p.name, 120), "reason": "不是最新文件，本次未使用", "refused": False}
                for p in candidates[:-1]]
    return newest, ignored


@contextmanager
def open_regular(path: Path) -> Iterator[BinaryIO]:
    """The file opened for reading only if it is a regular file (no symlink followed, no FIFO waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise IngestError(f"{quote(Path(path).name, 120)} 无法打开（可能是符号链接或已被移走），未读取。") from None
    handle = os.fdopen(fd, "rb")
    with handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IngestError(f"{quote(Path(path).name, 120)} 不是普通文件，为安全起见不读取。")
        yield handle


def _fd_path(handle: BinaryIO, fallback: Path) -> Path:
    """A path to the opened file itself (Linux), so a reader by path opens what was checked."""
    proc = Path(f"/proc/self/fd/{handle.fileno()}")
    return proc if proc.exists() else fallback
