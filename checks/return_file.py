"""A returned correction form, read safely (docs/correction-loop.md#returned-files): which files wait, and their
rows as strings.

A department drops its filled-in form into `DATA_DIR/returns/<source>/` (often re-saved by
Excel in GBK, or as XLSX). Only regular files inside the data directory are opened; a workbook
is checked against the limits before it is parsed, in a child process (`checks.xlsx`), like an
extract, and a CSV's size and lines before it is decoded (docs/decisions.md#bounded-reading).
What cannot be used as a form raises `ReturnFormError` with a sentence for the clerk.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from checks import xlsx
from checks.form import ANSWER_COLUMNS, READ_ONLY, RECOVERABLE
from checks.formula_cells import uncomputed_reason
from checks.ingest import HEADER_SEARCH_ROWS, entry_refusal, folder_refusal, list_folder, name_refusal
from checks.settings import Limits
from checks.textfile import TextFileError, decode, line_breaks, quote, sniff_delimiter

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
FORM_HEADERS = tuple(h for h, _ in READ_ONLY) + ANSWER_COLUMNS
KEY, RECORD, NAME, CODE, SUGGESTED = "问题编号", "记录编号", "名称", "当前代码", "建议代码"
ANSWER, NEW_CODE, NOTE = ANSWER_COLUMNS
#: Columns a returned form must keep: the key, the record's identity and the answers.
REQUIRED_HEADERS = (KEY, RECORD, NAME, CODE) + ANSWER_COLUMNS
#: What a spreadsheet saves a CSV in when it cannot hold every character (it writes `?` instead): a file we
#: decode as GB18030 was saved by Excel or Calc as GBK (code page 936) as a rule.
LOSSY_SAVES = {"gb18030": "gbk"}
#: Rows of a form turned into columns at a time while it is read.
ROWS_PER_CHUNK = 65_536


class ReturnFormError(ValueError):
    """The returned file is not a correction form we can use; the message says why (in Chinese)."""

#: Invisible format characters a clerk never means in an answer: zero-width spaces and joiners, bidirectional
#: overrides (which show a note reversed on the lists), the byte-order mark.
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def clean_answer(value: object) -> str:
    """An answer cell (处理结果, 更正后代码, 处理说明) as `clean_cell`, without invisible format characters. The
    read-only cells keep theirs: they are compared with what we sent, as a lossy save would have written it
    (`checks.return_match.unaltered`: Excel's GBK save writes `?` for a zero-width space)."""
    return clean_cell(_INVISIBLE_RE.sub("", "" if value is None else str(value)))


def clean_cell(value: object) -> str:
    """A cell as the department meant it: no padding, no tab, no neutralizing apostrophe."""
    text = "" if value is None else str(value)
    text = text.strip(" \t\r\n\u3000\u00a0\ufeff")
    if RECOVERABLE.match(text) or (text.startswith("'") and text[1:].isalnum()):
        text = text[1:]  # our formula guard, or the apostrophe a clerk types to keep a code as text
    return text


def read_return(path: Path, limits: Limits | None = None) -> pl.DataFrame:
    """The form's rows as strings under the form's headers, with `row` (the row a spreadsheet shows it on),
    `code_numeric` (the 更正后代码 cell was stored as a number by Excel) and `saved_as` (the encoding the
    file was most likely saved in when that encoding cannot hold every character, else null).

    Bounded whatever the file holds (`limits.return_max_bytes`, `return_max_rows`): beyond them the file is
    refused whole before it is parsed."""
    path, limits = Path(path), limits or Limits()
    if path.suffix.lower() == ".xlsx":
        if path.stat().st_size == 0:
            raise ReturnFormError(f"{path.name} 是空文件。请使用下发的更正清单填写后重新报送。")
        try:  # bounded like an extract: what the workbook declares is checked, the parser runs in a child
            sheets = xlsx.read_workbook(path, quote(path.name, 120), limits)
        except xlsx.XlsxError as exc:
            raise ReturnFormError(str(exc)) from None
        _bounded_rows(path.name, sum(s.cells.height for s in sheets if s.cells is not None), limits)
        frames = []  # a long list spans 更正清单, 更正清单(2), …: every sheet with the key column counts
        for workbook_sheet in sheets:
            sheet, frame = workbook_sheet.name, workbook_sheet.cells
            if frame is None:
                continue
            for at in range(min(frame.height, HEADER_SEARCH_ROWS)):
                header = [clean_cell(v) for v in frame.row(at)]
                if KEY in header:
                    if workbook_sheet.uncomputed:  # answers read as empty cells: refused, named
                        raise ReturnFormError(uncomputed_reason(quote(path.name, 120), sheet, workbook_sheet.uncomputed,
                                                                workbook_sheet.first_uncomputed))
                    xml = xlsx.sheet_xml(path, sheet)
                    first = xlsx.first_used_row(xml) if xml is not None else 1
                    numeric = set()
                    if xml is not None and NEW_CODE in header:
                        numeric = xlsx.numeric_rows(xml, header.index(NEW_CODE)) or set()
                    rows = [(first + at + 1 + i, list(r)) for i, r in enumerate(frame.slice(at + 1).iter_rows())]
                    frames.append(_to_frame(path, header, rows, numeric, sheet if frames else None))
                    break
        if not frames:
            raise ReturnFormError(f"{path.name} 中找不到含“{KEY}”列的工作表。请使用下发的更正清单填写后报送。")
        return pl.concat(frames, how="diagonal_relaxed")
    data = _read_bounded(path, limits)
    # physical lines: at least as many as rows, counted before anything is decoded or parsed (UTF-16's line
    # breaks are two bytes and other characters hold a 0A or 0D byte: its lines are counted once decoded)
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:65536]
    if not utf16:
        _bounded_rows(path.name, _lines_in(data), limits)
    try:
        text, encoding = decode(data, path.name)
    except TextFileError as exc:
        raise ReturnFormError(str(exc)) from None
    del data
    if utf16:
        _bounded_rows(path.name, _lines_in(text), limits)
    reader = csv.reader(lines(text), delimiter=sniff_delimiter(text[:65536]))
    try:
        header = [clean_cell(h) for h in next(reader, [])]
        # the n-th record is on the spreadsheet's row n (a cell of several lines is still one row), streamed
        # as (row, record) pairs: `_to_frame` keeps only the form's columns of each
        rows = ((n, r) for n, r in enumerate(reader, start=2))
        return _to_frame(path, header, rows, set(), saved_as=LOSSY_SAVES.get(encoding))
    except csv.Error as exc:
        raise ReturnFormError(f"{path.name} 第 {reader.line_num} 行无法按 CSV 读取（{exc}）。"
                              "请用 Excel 另存为“CSV UTF-8”或 .xlsx 后重新报送。") from None


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")


def lines(text: str) -> Iterator[str]:
    """The lines of a text as `io.StringIO(text, newline="")` gives them (each with its \r\n, \n or lone \r), for
    `csv.reader`, without the copy of the whole text a StringIO makes (4 bytes a character: 1 GB for a
    province's form)."""
    return (m.group() for m in _LINE.finditer(text))


def _read_bounded(path: Path, limits: Limits) -> bytes:
    """A returned CSV's bytes: only a regular file (no symlink followed, checked on the open file) of at most
    `limits.return_max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise ReturnFormError(f"{path.name} 无法打开（可能是符号链接或已被移走），未读取。") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReturnFormError(f"{path.name} 不是普通文件，为安全起见不读取。")
        if info.st_size == 0:
            raise ReturnFormError(f"{path.name} 是空文件。请使用下发的更正清单填写后重新报送。")
        if info.st_size > limits.return_max_bytes:
            raise ReturnFormError(
                f"{path.name} 有 {info.st_size / (1 << 20):,.0f} MB，超过反馈文件的上限 "
                f"{limits.return_max_bytes / (1 << 20):,.0f} MB（下发的更正清单远小于此），未处理。"
                "请使用下发的更正清单，只填写其中的行后重新报送。")
        return handle.read()


def _lines_in(data: bytes | str) -> int:
    """Physical lines of bytes or text: each line break ends one, and so does the end of the last."""
    ends = ("\n", "\r") if isinstance(data, str) else (b"\n", b"\r")
    return line_breaks(data) + (len(data) > 0 and not data.endswith(ends))


def _bounded_rows(name: str, rows: int, limits: Limits) -> None:
    if rows > limits.return_max_rows:
        raise ReturnFormError(f"{name} 有 {rows:,} 行，超过反馈文件的上限 {limits.return_max_rows:,} 行"
                              "（下发的更正清单不会有这么多行），未处理。请使用下发的更正清单，只填写其中的行后重新报送。")


def _to_frame(path: Path, header: list[str], rows: Iterable[tuple[int, list]], numeric: set[int],
              sheet: str | None = None, saved_as: str | None = None) -> pl.DataFrame:
    missing = [h for h in REQUIRED_HEADERS if h not in header]
    if missing:
        found = quote("、".join(h for h in header if h), 200) or "（无）"
        where = f"{path.name}（工作表“{sheet}”）" if sheet else path.name
        raise ReturnFormError(f"{where} 缺少列：{'、'.join(missing)}（文件中的列：{found}）。"
                              "请使用下发的更正清单，不要删除或改名表头，填写后重新报送。")
    positions = {h: header.index(h) for h in FORM_HEADERS if h in header}
    schema = {h: pl.String for h in positions} | {"row": pl.Int64, "code_numeric": pl.Boolean, "saved_as": pl.String}
    chunks, data = [], {h: [] for h in schema}

    def chunk() -> None:  # the rows so far as columns: a file's cells are not held as Python strings
        chunks.append(pl.DataFrame(data, schema=schema))
        for column in data.values():
            column.clear()

    for n, r in rows:  # a record at a time: only the form's columns of the rows that hold something are kept
        if any(clean_cell(c) for c in r):
            for h, i in positions.items():
                data[h].append((clean_answer if h in ANSWER_COLUMNS else clean_cell)(r[i]) if i < len(r) else "")
            data["row"].append(n)
            data["code_numeric"].append(n in numeric)
            data["saved_as"].append(saved_as)
            if len(data["row"]) == ROWS_PER_CHUNK:
                chunk()
    chunk()
    return pl.concat(chunks, rechunk=True)


def pending_files(returns_dir: Path) -> list[Path]:
    """Files waiting in one source's returns folder, oldest first (mtime, then name).

    Only regular files inside the data directory (`checks.ingest.list_folder`): symlinks,
    devices, FIFOs, folders, hidden and lock files are never opened; `stray_files` lists them.
    """
    files, _ = list_folder(Path(returns_dir), Path(returns_dir).parent.parent)
    return sorted(files, key=lambda p: (os.lstat(p).st_mtime, p.name))


#: Why a returned file is left where it is for the next night (`arrived_during_the_night`).
STILL_ARRIVING = ("本次运行期间该文件仍在写入，或在运行开始后才放入：为免读到未复制完的文件，本次未处理。"
                  "文件留在原处，下次运行时处理，无需重新报送。")


def file_state(path: Path) -> list[int]:
    """What a file is now, as far as a copy still writing it changes it: size and modification time (ns). Not the
    inode: a network share may give a file another at every look (CIFS `noserverino`), and it would wait for ever."""
    st = os.lstat(path)
    return [st.st_size, st.st_mtime_ns]


def waiting_state(data_dir: Path, source_keys: list[str]) -> dict[str, list[int]]:
    """Every file waiting in a department's returns folder (`<source>/<name>`) → `file_state`: taken as a night
    starts; a file that is not the same when the returned files are judged is still arriving."""
    return {f"{key}/{path.name}": file_state(path) for key in source_keys
            for path in pending_files(Path(data_dir) / "returns" / key)}


def arrived_during_the_night(path: Path, source: str, seen: dict[str, list[int]] | None) -> bool:
    """Whether a waiting file changed since the night began, or was not there then (`seen`: `waiting_state` at
    the start; None: not taken, every file is judged). A copy in progress grows: judged now, its rows after the
    point reached would be lost, the file archived as it was."""
    return seen is not None and seen.get(f"{source}/{path.name}") != file_state(path)


def stray_files(data_dir: Path, source_keys: list[str]) -> list[dict]:
    """Entries under returns/ that are not processed, each with why: files no configured
    department's folder holds (listed, never guessed at), and in a department's folder
    whatever `pending_files` leaves out (symlinks, devices, hidden files …)."""
    root = Path(data_dir) / "returns"
    refused = folder_refusal(root, Path(data_dir))
    if refused:
        return [{"file": "", "reason": refused + "。"}]
    if not root.is_dir():
        return []
    keys = "、".join(source_keys)
    out = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        where = quote(entry.name, 60)
        if entry.is_dir(follow_symlinks=False):
            files, skipped = list_folder(Path(entry.path), Path(data_dir))
            out += [{"file": f"{where}/{f['file']}", "reason": f["reason"] + "。"} for f in skipped]
            if entry.name not in source_keys:
                out += [{"file": f"{where}/{quote(p.name, 120)}",
                         "reason": f"目录 {where} 不是已配置的单位（{keys}），文件未处理。"} for p in files]
            continue
        reason = entry_refusal(Path(entry.path), Path(data_dir)) or name_refusal(entry.name)
        out.append({"file": where, "reason": (reason + "。") if reason else
                    f"直接放在 returns/ 下，无法判断是哪个单位报送的。请移入 returns/<单位>/（{keys}）。"})
    return out

__all__ = ["ReturnFormError", "read_return", "clean_cell", "clean_answer", "pending_files", "stray_files",
           "waiting_state", "arrived_during_the_night", "STILL_ARRIVING",
           "SUPPORTED_SUFFIXES", "FORM_HEADERS", "REQUIRED_HEADERS"]
