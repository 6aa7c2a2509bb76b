"""One extract file → its raw cells (CSV here; XLSX through `checks.xlsx`), header found.

Departments' files are read as they come (docs/data-dir.md#extracts): any encoding they use
(`checks.textfile`), a title row above the header, ragged rows, old Mac line
breaks; what a file declares (size, lines, columns) is checked against
`[limits]` before any parser runs. Which files may be opened: `checks.data_files`.
Turning the cells into canonical records: `checks.ingest`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from checks import xlsx
from checks.beside import Beside
from checks.data_files import IngestError, _fd_path, open_regular
from checks.formula_cells import uncomputed_reason
from checks.settings import REQUIRED_FIELDS, Limits, Source
from checks.textfile import TextFileError, detect_encoding, quote, sniff_delimiter
from validators.tables import TRIM_CHARS

#: How many rows from the top of a sheet or CSV file are searched for the header row.
HEADER_SEARCH_ROWS = 10
#: Whitespace trimmed at the ends of every non-code field (full-width space and NBSP too).
FIELD_TRIM = TRIM_CHARS + "\u3000\u00a0\ufeff"


@dataclass
class RawTable:
    """A file's cells as strings: the header, the data rows and their file row numbers."""

    header: list[str]
    cells: pl.DataFrame  # columns column_0 … column_{n-1}, all String
    rows: range | list[int]  # file row (line or sheet row) of each data row
    overflow: list[int] = field(default_factory=list)  # data row indexes with more fields than the header
    numeric_code_rows: set[int] | None = None  # sheet rows whose code cell is a number (XLSX)
    encoding: str | None = None
    blank_rows: int = 0  # blank rows the reader counted without keeping them (rows_read includes them)
    sheet: str | None = None  # the sheet, when a workbook's data spans several
    notes: list[str] = field(default_factory=list)  # layout notes for the overview
    may_hold_controls: bool = True  # False when the reader saw no control byte in the whole file
    sha256: str | None = None  # of the bytes read and checked (a CSV's), when the reader took it


# --------------------------------------------------------------------------- reading

def normalize_header(text: str) -> str:
    """Header as compared: NFKC (full-width → half-width), no whitespace, no `*` markers."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in text if not ch.isspace() and ch not in "*：:\ufeff")


def _field_columns(header: list[str], source: Source) -> dict[str, list[int]]:
    """Every column whose header is one of a field's accepted headers."""
    normalized = [normalize_header(h) for h in header]
    found: dict[str, list[int]] = {}
    for field_name, accepted in source.columns.items():
        wanted = {normalize_header(a) for a in accepted}
        at = [i for i, h in enumerate(normalized) if h in wanted]
        if at:
            found[field_name] = at
    return found


def _field_index(header: list[str], source: Source) -> tuple[dict[str, int], list[str]]:
    index = {f: at[0] for f, at in _field_columns(header, source).items()}
    used = set(index.values())
    extra = [header[i] for i in range(len(header)) if i not in used and header[i].strip()]
    return index, extra


def _missing_required(index: dict[str, int], source: Source) -> list[str]:
    return [source.columns[f][0] for f in REQUIRED_FIELDS if f not in index]


def _is_header(fields: list[str], source: Source | None) -> bool:
    if source is None:
        return any(f.strip() for f in fields)
    return not _missing_required(_field_index(fields, source)[0], source)


def read_csv(path: Path, source: Source | None = None, limits: Limits | None = None,
             name: str | None = None) -> RawTable:
    """A CSV file's cells; row numbers are the file lines where each record starts.

    The header is the first of the top `HEADER_SEARCH_ROWS` rows that holds the source's
    required columns (title rows above it are common), or the first non-blank row when no
    source is given. Lines and columns beyond `limits` are refused before any parser runs.
    UTF-8 files go to polars by path (never held as text); GB18030 and UTF-16 are
    transcoded once. Files whose records are not one line each, or with ragged rows,
    are read by the exact Python reader.
    """
    limits = limits or Limits()
    name = quote(name or Path(path).name, 120)
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_file_bytes:
            raise IngestError(f"{name} 有 {size / (1 << 30):.1f} GB，超过上限 {limits.max_file_bytes / (1 << 30):.1f} GB，"
                              "未读取。请确认导出内容后重新提交。")
        # not kept here: a UTF-8 file's bytes are let go before polars reads it by path (`_read_csv_data`)
        return _read_csv_data(handle.read(), _fd_path(handle, Path(path)), name, source, limits)


def _read_csv_data(data: bytes, path: Path, name: str, source: Source | None, limits: Limits) -> RawTable:
    if len(data) < (1 << 20) and not data.replace(codecs.BOM_UTF8, b"").strip():
        raise IngestError(f"{name} 是空文件（0 行）。请确认导出是否成功后重新提交。")
    # the content hash of exactly these bytes (the guard's "same file as before"), on a second thread while their
    # encoding is checked: hashlib lets go of Python's lock (at 10^7, the market CSV's 1.1 s)
    with Beside(_sha256, data, name="extract-sha256") as digest:  # no thread outlives a refused file
        try:
            encoding, text = detect_encoding(data, name)
        except TextFileError as exc:
            raise IngestError(str(exc)) from None
        sha256 = digest.result()  # before the bytes are let go of
    if text is not None:
        del data
        data = text.encode("utf-8")
        del text
    lines, lone_cr = _check_lines(data, name, limits)
    head_bytes = data[:65536]
    head = head_bytes.decode("utf-8-sig", errors="ignore")
    delimiter, header_row, header_line, title_rows, header = _find_header(head, source)
    width = max(len(header), _line_at(data, header_line).count(delimiter.encode()) + 1)
    if width > limits.max_columns:
        raise IngestError(f"{name} 的表头（第 {header_line} 行）有 {width:,} 列，超过上限 {limits.max_columns:,} 列，"
                          "不是正常的数据导出，未读取。请确认导出内容后重新提交。")
    may_hold_controls = _has_control_bytes(data)
    by_path = encoding in ("utf-8", "utf-8-sig")
    if by_path and not lone_cr:  # polars reads the file itself: its bytes need not be held meanwhile
        data = None
    fast = None if lone_cr else _read_csv_polars(path if by_path else data, delimiter, lines, encoding,
                                                 header_line - 1)
    if fast is None:  # the exact reader after all; a file let go above is read again
        text = (path.read_bytes() if data is None else data).decode("utf-8-sig")
        fast = _read_csv_python(text, name, delimiter, encoding, header_row, limits)
    fast.may_hold_controls = may_hold_controls
    fast.sha256 = sha256
    if title_rows:
        fast.notes.append(f"表头在第 {header_line} 行，上方 {title_rows} 行（标题等）不是数据，未作为数据读取")
    return fast


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_lines(data: bytes, name: str, limits: Limits) -> tuple[int, bool]:
    """The file's physical lines, refused beyond the limits, and whether its line breaks are
    lone \\r (old Mac exports; then only the exact reader sees its rows). One pass over the
    bytes, no list of lines is built. Returns the number of \\n-separated lines."""
    newlines = data.count(b"\n")
    breaks = data.count(b"\r")
    total = max(newlines, breaks) + 1
    if total > limits.csv_max_lines:
        raise IngestError(f"{name} 有 {total:,} 行，超过上限 {limits.csv_max_lines:,} 行，未读取。"
                          "请确认导出内容（或拆分文件）后重新提交。")
    lone_cr = breaks > newlines and data.count(b"\r\n") < breaks
    separator = b"\r" if breaks > 2 * newlines + 1 else b"\n"
    limit, start = limits.csv_max_line_bytes, 0
    while len(data) - start > limit:
        # the last break within limit + 1 bytes: no line in between can be longer than the limit,
        # and none there means one is (a pass at memrchr speed, not a loop over every line)
        at = data.rfind(separator, start, start + limit + 1)
        if at < 0:
            line = data.count(separator, 0, start) + 1
            raise IngestError(
                f"{name} 第 {line:,} 行超过 {limit // 1024:,} KB，不是正常的数据行"
                "（可能缺少换行符或不是 CSV 文件），未读取。请确认导出内容后重新提交。")
        start = at + 1
    return newlines + (0 if data.endswith(b"\n") else 1), lone_cr


_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"


def _has_control_bytes(data: bytes) -> bool:
    """Whether UTF-8 bytes hold a control character (`CONTROL_RE`), in blocks (bounded memory)."""
    block = 16 << 20
    return any(len(chunk) != len(chunk.translate(None, _CONTROL_BYTES))
               for chunk in (data[i: i + block] for i in range(0, len(data), block)))


def _line_at(data: bytes, line: int) -> bytes:
    """The bytes of a physical line (1-based), for counting its delimiters before any parser runs."""
    start = 0
    for _ in range(line - 1):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return b""
    end = data.find(b"\n", start)
    return data[start: end if end >= 0 else len(data)]


def _find_header(head: str, source: Source | None) -> tuple[str, int, int, int, list[str]]:
    """Delimiter, header row (0-based CSV row), header line (1-based), title rows above it
    and the header's fields, from the file's first 64 KB."""
    top = [line for line in head.splitlines()[:HEADER_SEARCH_ROWS * 4] if line.strip()][:HEADER_SEARCH_ROWS]
    delimiter = sniff_delimiter(max(top, key=lambda line: max(line.count(d) for d in ",\t;|"), default=""))
    reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter)
    previous, first = 0, None
    seen = 0
    try:
        for row, fields in enumerate(reader):
            start, previous = previous + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if first is None:
                first = (row, start, fields)
            if _is_header(fields, source):
                return delimiter, row, start, seen, fields
            seen += 1
            if seen >= HEADER_SEARCH_ROWS:
                break
    except csv.Error:
        pass
    row, start, fields = first or (0, 1, [])
    return delimiter, row, start, 0, fields


def _read_csv_python(text: str, name: str, delimiter: str, encoding: str, header_row: int,
                     limits: Limits) -> RawTable:
    """Python's csv reader: exact line numbers whatever the quoting; ragged rows kept aside.

    Rows are cut to the header's width as they are read, and blank rows only counted, so a
    hostile file costs no more memory than its cells.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    overflow: list[int] = []
    blank = 0
    previous = 0
    try:
        for at, fields in enumerate(reader):
            start, previous = previous + 1, reader.line_num
            if header is None:
                if at >= header_row and any(f.strip() for f in fields):
                    header = fields
                    width = len(header)
                continue
            if len(fields) != width:
                if len(fields) > width and any(f.strip() for f in fields[width:]):
                    overflow.append(len(rows))
                fields = (fields + [""] * width)[:width] if len(fields) < width else fields[:width]
            if not any(f.strip(FIELD_TRIM) for f in fields):
                blank += 1
                continue
            rows.append(fields)
            lines.append(start)
    except csv.Error:  # a field over csv.field_size_limit() (128 K characters) or a stray NUL in older Pythons
        raise IngestError(f"{name} 第 {reader.line_num:,} 行无法解析为 CSV（引号不成对或字段过长）。"
                          "请检查该行的引号是否成对后重新提交。") from None
    if header is None:
        raise IngestError(f"{name} 没有任何内容（只有空行）。")
    names = [f"column_{i}" for i in range(width)]
    cells = pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row") if rows else \
        pl.DataFrame(schema={n: pl.String for n in names})
    return RawTable(header, cells, lines, overflow, None, encoding, blank_rows=blank)


def _read_csv_polars(source: Path | bytes, delimiter: str, lines: int, encoding: str,
                     skip: int = 0) -> RawTable | None:
    """polars' reader when every record is one line (then line numbers are exact); None otherwise.

    `skip` lines above the header (title rows) are passed over. Ragged rows and fields
    spanning lines go to the exact (slower) Python reader.
    """
    try:
        # glob=False: a path with `[` (a data directory `…/信用[正式]`) is a file, not a pattern that matches none
        frame = pl.read_csv(source, has_header=False, infer_schema=False, separator=delimiter,
                            truncate_ragged_lines=False, raise_if_empty=True, skip_lines=skip, glob=False)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.height != lines - skip:
        return None
    present = frame.select(pl.any_horizontal(pl.all().fill_null("").str.strip_chars() != ""))[:, 0]
    first = present.arg_true()
    if len(first) == 0:
        return None
    header_at = int(first[0])
    header = ["" if v is None else v for v in frame.row(header_at)]
    cells = frame.slice(header_at + 1)
    cells = cells.rename({c: f"column_{i}" for i, c in enumerate(cells.columns)})
    rows = range(skip + header_at + 2, skip + header_at + 2 + cells.height)
    return RawTable(header, cells, rows, [], None, encoding)


def read_xlsx(path: Path, source: Source, limits: Limits | None = None, name: str | None = None) -> list[RawTable]:
    """Every sheet whose top rows hold the expected headers (a long registry spans several).

    What the workbook declares is checked first (`xlsx.preflight`); the cells are read by a
    child process with a memory limit (`xlsx.read_sheets`). Sheets without the header are
    named in a layout note, never dropped silently.
    """
    limits = limits or Limits()
    name = quote(name or Path(path).name, 120)
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_file_bytes:
            raise IngestError(f"{name} 有 {size / (1 << 30):.1f} GB，超过上限，未读取。请确认导出内容后重新提交。")
        declared = {s.name: s for s in xlsx.preflight(handle, name, limits)}
        sheets = xlsx.read_sheets(handle.fileno(), name, limits)
        tables, tried, skipped = [], [], []
        for sheet in sheets:
            if sheet.cells is None:
                skipped.append(f"工作表“{quote(sheet.name, 40)}”无法读取（内容损坏），未读取")
                continue
            top = sheet.cells.head(HEADER_SEARCH_ROWS)
            for r in range(top.height):
                header = ["" if v is None else str(v) for v in top.row(r)]
                index, _ = _field_index(header, source)
                if not _missing_required(index, source):
                    found = declared.get(sheet.name)
                    if found is not None and found.uncomputed:  # data read as empty cells: refused, named
                        raise IngestError(uncomputed_reason(name, sheet.name, found.uncomputed, found.first_uncomputed))
                    xml = _member(handle, found.member if found is not None else None)
                    tables.append(_sheet_table(sheet, r, header, index["uscc"], xml))
                    break
            else:
                if top.height:
                    shown = quote("、".join(str(v) for v in top.row(0) if v), 100)
                    tried.append(f"“{quote(sheet.name, 40)}”首行：{shown}")
                    skipped.append(f"工作表“{quote(sheet.name, 40)}”（{sheet.cells.height:,} 行）前 {HEADER_SEARCH_ROWS} "
                                   "行中没有表头，未作为数据读取")
    if not tables:
        required = "、".join(source.columns[f][0] for f in REQUIRED_FIELDS)
        listed = quote("、".join(s.name for s in sheets), 200) or "（无）"
        raise IngestError(f"{name} 的所有工作表（{listed}）前 {HEADER_SEARCH_ROWS} 行中都找不到必需的列"
                          f"（{required}）。{quote('；'.join(tried), 400)}。请使用下发的表头后重新提交。")
    tables[0].notes.extend(skipped)
    if len(tables) > 1:
        tables[0].notes.append(f"数据分布在 {len(tables)} 个工作表中（{quote('、'.join(t.sheet for t in tables), 200)}），"
                               "已逐个读取，行数分别核对")
    else:
        tables[0].sheet = None
    return tables


def _member(handle: BinaryIO, member: str | None) -> bytes | None:
    """A worksheet's XML (its size already checked by the preflight)."""
    if member is None:
        return None
    try:
        with zipfile.ZipFile(handle) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile):
        return None


def _sheet_table(sheet: xlsx.SheetCells, header_at: int, header: list[str], code_col: int,
                 xml: bytes | None) -> RawTable:
    numeric = xlsx.numeric_rows(xml, code_col) if xml is not None else None
    first_row = xlsx.first_used_row(xml) if xml is not None else 1
    cells = sheet.cells.slice(header_at + 1)
    for i in range(len(cells.columns), len(header)):
        cells = cells.with_columns(pl.lit(None, dtype=pl.String).alias(f"column_{i}"))
    rows = list(range(first_row + header_at + 1, first_row + header_at + 1 + cells.height))
    return RawTable(header, cells.select(f"column_{i}" for i in range(len(header))), rows, [], numeric, "xlsx",
                    sheet=sheet.name)
