"""The data rows of a form's sheet as SpreadsheetML, built over whole columns and put into the workbook
xlsxwriter wrote around them.

xlsxwriter takes about 10 µs a cell in Python; a province's form has 10^6 rows of 17 cells. So the workbook
(styles, header, drop-down, protection, print setup, the guide sheet) is xlsxwriter's, written with the
header row only, and the rows are written here as the very XML xlsxwriter writes in its constant-memory
mode (inline strings; control characters as `_xHHHH_`; `xml:space="preserve"` where a value starts or ends
with white space; strings cut to Excel's 32,767 UTF-16 units). One difference, on purpose: a value that
looks like `<r>…</r>` is text here, where xlsxwriter would have put it into the file as raw markup.
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from xlsxwriter.utility import _utf16_truncate, xl_col_to_name

from reports.joined import joined_utf8

try:  # Intel ISA-L's deflate: the size of zlib's level 1 in a quarter of its time (a province's forms: ~5 GB of XML)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - a platform without its wheel deflates with zlib
    _isal = None

__all__ = ["rows_xml", "fill_sheets"]

#: Excel's limit on a cell's text, in UTF-16 units (longer text is cut, as xlsxwriter cuts it).
CELL_MAX = 32767
_CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20))] + ["\ufffe", "\uffff"]
_CONTROL_ESCAPED = [f"_x{ord(c):04X}_" for c in _CONTROL]


def _cut(frame: pl.DataFrame) -> pl.DataFrame:
    """Cells over Excel's limit cut as xlsxwriter cuts them (rare: only where a text could be that long)."""
    long = [c for c in frame.columns if (frame[c].str.len_chars().max() or 0) > CELL_MAX // 2]
    return frame.with_columns(pl.col(c).map_elements(lambda s: _utf16_truncate(s, CELL_MAX), return_dtype=pl.String)
                              for c in long)


#: Text xlsxwriter writes differently from how it reads: control characters and `_xHHHH_` itself …
_ESCAPED_BY_EXCEL = r"[\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_"
#: … and XML's own three.
_ESCAPED_BY_XML = r"[&<>]"


#: Text xlsxwriter marks `xml:space="preserve"`: white space at either end.
_PRESERVED = r"^\s|\s$"


def _inline(text: pl.Expr, style: int, excel: bool, xml: bool, spaced: bool) -> list[pl.Expr]:
    """The parts of an inline-string cell after its `r` attribute's value (`excel`, `xml`: whether the column
    holds text that must be escaped so: most hold none, and the escaping is most of the time; `spaced`: whether
    some value has white space at an end, which only matters when `excel` is not set)."""
    if excel:
        text = text.str.replace_all(r"(_x[0-9a-fA-F]{4}_)", "_x005F${1}").str.replace_many(_CONTROL, _CONTROL_ESCAPED)
    # judged on the text as written (escaping turns some white space into `_xHHHH_`); a column without such a
    # value has no cell to mark, and is not asked again row by row
    preserve = pl.when(text.str.contains(_PRESERVED)).then(pl.lit(' xml:space="preserve"')).otherwise(pl.lit("")) \
        if excel or spaced else pl.lit("")
    if xml:
        text = text.str.replace_many(["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
    return [pl.lit(f'" s="{style}" t="inlineStr"><is><t'), preserve, pl.lit(">"), text, pl.lit("</t></is></c>")]


def rows_xml(cells: pl.DataFrame, first_row: int, text_style: int, blank_styles: list[int]) -> bytes:
    """`<row>` elements for `cells` (text columns, "" for nothing) from sheet row `first_row` (1-based), then
    one empty styled cell per `blank_styles` (the answer columns)."""
    cells = _cut(cells)
    width = cells.width
    needs = cells.select([pl.col(c).str.contains(pattern).any().alias(f"{kind}{i}")
                          for kind, pattern in (("e", _ESCAPED_BY_EXCEL), ("x", _ESCAPED_BY_XML), ("s", _PRESERVED))
                          for i, c in enumerate(cells.columns)]).row(0)
    numbered = cells.with_columns(pl.int_range(first_row, first_row + pl.len()).cast(pl.String).alias("\0row"))
    number = pl.col("\0row")
    parts: list = [pl.lit('<row r="'), number, pl.lit('">')]
    for i, column in enumerate(cells.columns):
        parts += [pl.lit(f'<c r="{xl_col_to_name(i)}'), number,
                  *_inline(pl.col(column), text_style, needs[i], needs[width + i], needs[2 * width + i])]
    for j, style in enumerate(blank_styles, start=width):
        parts += [pl.lit(f'<c r="{xl_col_to_name(j)}'), number, pl.lit(f'" s="{style}"/>')]
    parts.append(pl.lit("</row>"))
    return joined_utf8(numbered.select(pl.concat_str(parts)).to_series())


def _deflate_fast(entry) -> None:
    """The sheet entry deflated by ISA-L instead of zlib (the same raw deflate stream format, read by every
    XLSX reader). zipfile has no option for its compressor, so the entry's is swapped before anything is written;
    were zipfile's attribute renamed, the swap would go unused and zlib would deflate, as before."""
    if _isal is not None and getattr(entry, "_compressor", None) is not None:
        entry._compressor = _isal.compressobj(1, zlib.DEFLATED, -15)


def fill_sheets(frame_path: Path, path: Path, sheets: dict[str, tuple[int, Iterable[bytes]]], width: int) -> None:
    """Write `path`: the workbook at `frame_path` with the data rows of each sheet after its header row.

    Args:
        sheets: `xl/worksheets/sheetN.xml` → (data rows, their XML blocks, made as they are written). The
            blocks go to a file beside `path` first, as xlsxwriter's own rows do: a province's sheet is a
            gigabyte of XML, and its size decides whether the entry needs ZIP64.
        width: the sheet's columns.
    """
    last = xl_col_to_name(width - 1)
    spool = path.with_name(f".{path.name}.rows")
    done = False
    try:
        with zipfile.ZipFile(frame_path) as frame, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED,
                                                                         compresslevel=1) as out:
            for info in frame.infolist():
                data = frame.read(info)
                if info.filename not in sheets:
                    out.writestr(info, data)
                    continue
                rows, blocks = sheets[info.filename]
                head, tail = data.decode("utf-8").split("</row></sheetData>", 1)
                head = head.replace(f'<dimension ref="A1:{last}1"/>', f'<dimension ref="A1:{last}{rows + 1}"/>', 1)
                with spool.open("wb") as f:
                    f.write((head + "</row>").encode("utf-8"))
                    for block in blocks:
                        f.write(block)
                    f.write(("</sheetData>" + tail).encode("utf-8"))
                # the fastest deflate level: a quarter of the time of the default for a fifth more bytes
                big = spool.stat().st_size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own test, had it known the size
                with spool.open("rb") as f, out.open(info.filename, "w", force_zip64=big) as entry:
                    _deflate_fast(entry)
                    shutil.copyfileobj(f, entry, 1 << 20)
        done = True
    finally:
        spool.unlink(missing_ok=True)
        frame_path.unlink(missing_ok=True)
        if not done:  # no half-written form where a form is expected
            path.unlink(missing_ok=True)
