"""Formula cells without a saved result, found in a sheet's XML as it streams past (`checks.xlsx.preflight`).

Excel, WPS and LibreOffice save each formula's result in `<v>` beside it, and that result is what the reader
takes. A program that writes formulas without computing them (openpyxl, say) leaves no `<v>` or an empty one:
each such cell was read as empty — a registry's codes written as formulas became a false `missing` on every
record, with nothing said. A sheet read as data that holds such cells is refused, naming one
(docs/decisions.md#uncomputed-formulas).
"""

from __future__ import annotations

import re

__all__ = ["UncomputedCells", "uncomputed_reason"]

#: Such a cell: a formula (`<f>…</f>`, or a shared one's `<f …/>`) and then no result or an empty one. An empty
#: `<v>` is a result only for text (`t="str"`: a formula giving ""). No class crosses a `<`: on `<c<c<c…` the
#: pattern fails at once (with `[^>]` it went 400 bytes on from each `<c`, a minute for a 17 KB file).
_UNCOMPUTED_RE = re.compile(rb"<(?:\w{1,16}:)?c\b([^<>]{0,400})>(?:<(?:\w{1,16}:)?f\b[^<>]{0,400}/>|<(?:\w{1,16}:)?f\b"
                            rb"[^<>]{0,400}>[^<]{0,30000}</(?:\w{1,16}:)?f>)(<(?:\w{1,16}:)?v\s*/>|<(?:\w{1,16}:)?v>"
                            rb"\s*</(?:\w{1,16}:)?v>)?</(?:\w{1,16}:)?c>")
_TEXT_RESULT_RE = re.compile(rb'\bt="(?:str|s|inlineStr)"')
_CELL_REF_RE = re.compile(rb'\br="([A-Z]+\d+)"')
_SHEET_DATA_RE = re.compile(rb"<(\w{1,16}:)?sheetData\b")
#: Bytes before a block kept to find a cell cut at its start (longer than any match).
_CARRY = 32 << 10


def _endings(prefix: bytes) -> list[bytes]:
    """The ends of a formula cell without a result, as literals (a sheet's elements may carry a `prefix`)."""
    return [b"f></" + prefix + b"c>", b"/></" + prefix + b"c>", b"<" + prefix + b"v></" + prefix + b"v>",
            b"<" + prefix + b"v/>", b"<" + prefix + b"v />"]


class UncomputedCells:
    """Counts a sheet's formula cells without a result (`count`; `first`, the first one's reference), fed the
    sheet's XML a block at a time, each cut before a `<` (`checks.xlsx._check_sheet`).

    Only a block with a formula's tag and the end of such a cell is searched with the pattern (literal searches
    first: a sheet without formulas costs one, a column of computed formulas six; the pattern over every cell
    took 5× the rest of the preflight). `carry`, the bytes before the block, holds a cell cut at the block's
    start; a match ending inside it was counted with the block before.
    """

    def __init__(self) -> None:
        self.count, self.first, self.carry, self.started = 0, None, b"", False
        self.tags, self.endings = [b"<f", b":f"], _endings(b"") + _endings(b"x:")

    def feed(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            found = _SHEET_DATA_RE.search(data)  # the sheet's element prefix (`x:` from some .NET writers)
            if found:
                prefix = found.group(1) or b""
                self.tags, self.endings = [b"<" + prefix + b"f"], _endings(prefix)
        carry, seam = self.carry, self.carry[-64:] + data[:64]  # an ending cut at the block's start
        if any(tag in data or tag in carry for tag in self.tags) and \
                any(end in data or end in seam for end in self.endings):
            looked = carry + data
            for match in _UNCOMPUTED_RE.finditer(looked):
                if match.end() > len(carry) and not (match.group(2) and _TEXT_RESULT_RE.search(match.group(1))):
                    self.count += 1
                    if self.first is None:
                        ref = _CELL_REF_RE.search(match.group(1))
                        self.first = ref.group(1).decode() if ref else "?"
        self.carry = data[-_CARRY:] if len(data) >= _CARRY else (carry + data)[-_CARRY:]


def uncomputed_reason(name: str, sheet: str, count: int, first: str | None) -> str:
    """Why a sheet read as data is refused when its formulas have no saved result."""
    return (f"{name} 的工作表“{sheet[:40]}”有 {count:,} 个公式单元格没有保存计算结果（如单元格 {first}），读取时这些单元格"
            "只能当作空白，数据会丢失，因此未读取。这通常是由程序生成、未经 Excel 打开保存的文件：请用 Excel 或 WPS 打开该文件"
            "并保存（或将公式所在列复制后“选择性粘贴为数值”）后重新提交。")
