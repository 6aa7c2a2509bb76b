"""A returned correction form, read safely (docs/correction-loop.md#returned-files): which files wait, and their rows as strings.

A department drops its filled-in form into `DATA_DIR/returns/<source>/` (often re-saved by
Excel in GBK, or as XLSX). Only regular files inside the data directory are opened; a workbook
is checked against the limits before it is parsed, in a child process (`checks.xlsx`), like an
extract. What cannot be used as a form raises `ReturnFormError` with a sentence for the clerk.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import polars as pl

from checks import xlsx
from checks.form import ANSWER_COLUMNS, READ_ONLY, RECOVERABLE
from checks.ingest import HEADER_SEARCH_ROWS, entry_refusal, folder_refusal, list_folder, name_refusal
from checks.textfile import TextFileError, decode, quote, sniff_delimiter

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
FORM_HEADERS = tuple(h for h, _ in READ_ONLY) + ANSWER_COLUMNS
KEY, RECORD, NAME, CODE, SUGGESTED = "问题编号", "记录编号", "名称", "当前代码", "建议代码"
ANSWER, NEW_CODE, NOTE = ANSWER_COLUMNS
#: Columns a returned form must keep: the key, the record's identity and the answers.
REQUIRED_HEADERS = (KEY, RECORD, NAME, CODE) + ANSWER_COLUMNS
#: What a spreadsheet saves a CSV in when it cannot hold every character (it writes `?` instead): a file we
#: decode as GB18030 was saved by Excel or Calc as GBK (code page 936) as a rule.
LOSSY_SAVES = {"gb18030": "gbk"}


class ReturnFormError(ValueError):
    """The returned file is not a correction form we can use; the message says why (in Chinese)."""

def clean_cell(value: object) -> str:
    """A cell as the department meant it: no padding, no tab, no neutralizing apostrophe."""
    text = "" if value is None else str(value)
    text = text.strip(" \t\r\n\u3000\u00a0\ufeff")
    if RECOVERABLE.match(text) or (text.startswith("'") and text[1:].isalnum()):
        text = text[1:]  # our formula guard, or the apostrophe a clerk types to keep a code as text
    return text


def read_return(path: Path) -> pl.DataFrame:
    """The form's rows as strings under the form's headers, with `row` (line or sheet row),
    `code_numeric` (the 更正后代码 cell was stored as a number by Excel) and `saved_as` (the encoding the
    file was most likely saved in when that encoding cannot hold every character, else null)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReturnFormError(f"{path.name} 是空文件。请使用下发的更正清单填写后重新报送。")
    if path.suffix.lower() == ".xlsx":
        try:  # bounded like an extract: what the workbook declares is checked, the parser runs in a child
            sheets = xlsx.read_workbook(path, quote(path.name, 120))
        except xlsx.XlsxError as exc:
            raise ReturnFormError(str(exc)) from None
        frames = []  # a long list spans 更正清单, 更正清单(2), …: every sheet with the key column counts
        for workbook_sheet in sheets:
            sheet, frame = workbook_sheet.name, workbook_sheet.cells
            if frame is None:
                continue
            for at in range(min(frame.height, HEADER_SEARCH_ROWS)):
                header = [clean_cell(v) for v in frame.row(at)]
                if KEY in header:
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
    try:
        text, encoding = decode(path.read_bytes(), path.name)
    except TextFileError as exc:
        raise ReturnFormError(str(exc)) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text[:65536]))
    try:
        header = [clean_cell(h) for h in next(reader, [])]
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as exc:
        raise ReturnFormError(f"{path.name} 第 {reader.line_num} 行无法按 CSV 读取（{exc}）。"
                              "请用 Excel 另存为“CSV UTF-8”或 .xlsx 后重新报送。") from None
    return _to_frame(path, header, rows, set(), saved_as=LOSSY_SAVES.get(encoding))


def _to_frame(path: Path, header: list[str], rows: list[tuple[int, list]], numeric: set[int],
              sheet: str | None = None, saved_as: str | None = None) -> pl.DataFrame:
    missing = [h for h in REQUIRED_HEADERS if h not in header]
    if missing:
        found = quote("、".join(h for h in header if h), 200) or "（无）"
        where = f"{path.name}（工作表“{sheet}”）" if sheet else path.name
        raise ReturnFormError(f"{where} 缺少列：{'、'.join(missing)}（文件中的列：{found}）。"
                              "请使用下发的更正清单，不要删除或改名表头，填写后重新报送。")
    positions = {h: header.index(h) for h in FORM_HEADERS if h in header}
    kept = [(n, r) for n, r in rows if any(clean_cell(c) for c in r)]
    data = {h: [clean_cell(r[i]) if i < len(r) else "" for _, r in kept] for h, i in positions.items()}
    data["row"] = [n for n, _ in kept]
    data["code_numeric"] = [n in numeric for n, _ in kept]
    data["saved_as"] = [saved_as] * len(kept)
    schema = {h: pl.String for h in positions} | {"row": pl.Int64, "code_numeric": pl.Boolean, "saved_as": pl.String}
    return pl.DataFrame(data, schema=schema)

def pending_files(returns_dir: Path) -> list[Path]:
    """Files waiting in one source's returns folder, oldest first (mtime, then name).

    Only regular files inside the data directory (`checks.ingest.list_folder`): symlinks,
    devices, FIFOs, folders, hidden and lock files are never opened; `stray_files` lists them.
    """
    files, _ = list_folder(Path(returns_dir), Path(returns_dir).parent.parent)
    return sorted(files, key=lambda p: (os.lstat(p).st_mtime, p.name))


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

__all__ = ["ReturnFormError", "read_return", "clean_cell", "pending_files", "stray_files", "SUPPORTED_SUFFIXES",
           "FORM_HEADERS", "REQUIRED_HEADERS"]
