"""XLSX reading: cells as text (fastexcel), plus which code cells were numbers.

fastexcel returns a numeric cell as a string like `912304001234567936`, which
is indistinguishable from text. Excel stores the cell type in the sheet XML
(`t="s"` shared string, `t="inlineStr"`, `t="str"`; no `t` = number), so the
code column's cell types are read from there with one regex pass.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

import fastexcel
import polars as pl

_SHEET_RE = re.compile(rb'<sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]*)"')
_SHEET_RE_ALT = re.compile(rb'<sheet\b[^>]*?\br:id="([^"]*)"[^>]*?\bname="([^"]*)"')
_REL_RE = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]*)"[^>]*?\bTarget="([^"]*)"')
_REL_RE_ALT = re.compile(rb'<Relationship\b[^>]*?\bTarget="([^"]*)"[^>]*?\bId="([^"]*)"')
_TYPE_RE = re.compile(rb'\bt="([^"]*)"')
_FIRST_ROW_RE = re.compile(rb'<row\b[^>]*?\br="(\d+)"[^>]*>(?:(?!</row>).)*?<(?:v|is)\b', re.S)


class XlsxError(ValueError):
    """The workbook can't be read; the message says why."""


def sheet_names(path: Path) -> list[str]:
    try:
        return list(fastexcel.read_excel(str(path)).sheet_names)
    except Exception as exc:  # calamine raises several types for broken files
        raise XlsxError(f"{Path(path).name} 不是有效的 XLSX 工作簿（{type(exc).__name__}: {exc}）。"
                        "请用 Excel 打开确认后重新保存提交。") from None


def read_rows(path: Path, sheet: str, n_rows: int | None = None) -> pl.DataFrame:
    """All cells of a sheet as strings, no header interpretation (column_0 …)."""
    reader = fastexcel.read_excel(str(path))
    frame = reader.load_sheet(sheet, header_row=None, dtypes="string", n_rows=n_rows).to_polars()
    return frame.rename({c: f"column_{i}" for i, c in enumerate(frame.columns)})


def _column_letters(index: int) -> bytes:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters.encode()


def sheet_xml(path: Path, sheet: str) -> bytes | None:
    """The worksheet XML of a sheet by name, or None if the workbook doesn't say where it is."""
    with zipfile.ZipFile(path) as zf:
        workbook = zf.read("xl/workbook.xml")
        rels = zf.read("xl/_rels/workbook.xml.rels")
        ids = {name.decode(): rid for name, rid in _SHEET_RE.findall(workbook)}
        ids.update({name.decode(): rid for rid, name in _SHEET_RE_ALT.findall(workbook)})
        targets = dict(_REL_RE.findall(rels))
        targets.update({rid: target for target, rid in _REL_RE_ALT.findall(rels)})
        rid = ids.get(_xml_escape(sheet))
        if rid is None or rid not in targets:
            return None
        target = targets[rid].decode()
        member = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        return zf.read(member)


def numeric_rows(xml: bytes, column_index: int) -> set[int] | None:
    """1-based sheet rows whose cell in `column_index` is stored as a number.

    Returns None when the XML gives no cell references (then nobody can tell).
    """
    letters = _column_letters(column_index)
    cell_re = re.compile(rb'<c\b[^>]*?\br="' + letters + rb'(\d+)"([^>]*?)(/?)>')
    found: set[int] = set()
    for match in cell_re.finditer(xml):
        if match.group(3) == b"/":
            continue  # empty cell
        t = _TYPE_RE.search(match.group(0))
        if t is None or t.group(1) == b"n":
            found.add(int(match.group(1)))
    if not found and b"<c " in xml and b' r="' not in xml:
        return None
    return found


def first_used_row(xml: bytes) -> int:
    """Sheet row of the first row holding a value: where fastexcel's rows start."""
    match = _FIRST_ROW_RE.search(xml)
    return int(match.group(1)) if match else 1


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
