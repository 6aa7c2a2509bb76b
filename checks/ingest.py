"""Registry extracts → one canonical frame + quarantine + row accounting (SPEC §4).

Nothing is lost silently: for every source, rows read = rows checked + rows
quarantined + blank rows, asserted here and shown on the overview. A file
that can't be read at all is a source-level rejection with a reason; the
other sources go on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import datetime as dt
import io
import os
import stat
import unicodedata
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Iterator

import pandera.polars as pa
import polars as pl

from checks import xlsx
from checks.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    QUARANTINE_COLUMNS,
    QUARANTINE_SCHEMA,
    empty_canonical,
    empty_quarantine,
)
from checks.settings import FIELDS, REQUIRED_FIELDS, Limits, Settings, Source
from checks.textfile import CONTROL_RE, TextFileError, control_character, detect_encoding, quote, sniff_delimiter
from validators.tables import TRIM_CHARS

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
#: A cell longer than this is almost surely a broken quote that swallowed rows.
MAX_FIELD_CHARS = 1000
#: How many rows from the top of a sheet or CSV file are searched for the header row.
HEADER_SEARCH_ROWS = 10
#: Field-level notes kept per source for the overview (all are counted).
NOTE_SAMPLE = 50
#: Whitespace trimmed at the ends of every non-code field (full-width space and NBSP too).
FIELD_TRIM = TRIM_CHARS + "\u3000\u00a0\ufeff"
#: The same control characters as `checks.textfile.CONTROL_RE`, for polars.
_CONTROL_PATTERN = CONTROL_RE.pattern

FIELD_LABELS = {
    "record_id": "记录编号", "uscc": "统一社会信用代码", "name": "名称", "entity_type": "类型",
    "legal_rep": "法定代表人/负责人", "established": "成立/批准日期", "status": "状态", "address": "地址",
}


class IngestError(ValueError):
    """A whole file can't be used; the message is for the steward and the department."""


@dataclass
class SourceReport:
    """Row accounting and problems of one source in one run."""

    source: str
    name: str
    status: str = "ok"  # ok | rejected (held: the plausibility guard's, `checks.guard`)
    reason: str | None = None
    file: str | None = None  # as shown (a long or odd name shortened)
    sha256: str | None = None  # of the very file read: what the guard and the steward's acceptance name
    encoding: str | None = None
    rows_read: int = 0
    rows_checked: int = 0
    rows_quarantined: int = 0
    rows_blank: int = 0
    ignored_files: list[dict] = field(default_factory=list)  # file, reason, refused (never opened) or not
    extra_columns: list[str] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    notes_total: int = 0
    #: How the file was laid out and what was done about it (title rows, duplicate columns, sheets).
    layout_notes: list[str] = field(default_factory=list)
    #: Row accounting per sheet when a workbook's data spans several sheets.
    sheets: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Ingested:
    records: pl.DataFrame
    quarantine: pl.DataFrame
    sources: dict[str, SourceReport]


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


# --------------------------------------------------------------------------- which files may be opened

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
        data = handle.read()
        return _read_csv_data(data, _fd_path(handle, Path(path)), name, source, limits)


def _read_csv_data(data: bytes, path: Path, name: str, source: Source | None, limits: Limits) -> RawTable:
    if len(data) < (1 << 20) and not data.replace(codecs.BOM_UTF8, b"").strip():
        raise IngestError(f"{name} 是空文件（0 行）。请确认导出是否成功后重新提交。")
    try:
        encoding, text = detect_encoding(data, name)
    except TextFileError as exc:
        raise IngestError(str(exc)) from None
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
    fast = None if lone_cr else _read_csv_polars(path if encoding in ("utf-8", "utf-8-sig") else data,
                                                 delimiter, lines, encoding, header_line - 1)
    if fast is None:
        fast = _read_csv_python(data.decode("utf-8-sig"), name, delimiter, encoding, header_row, limits)
    fast.may_hold_controls = _has_control_bytes(data)
    if title_rows:
        fast.notes.append(f"表头在第 {header_line} 行，上方 {title_rows} 行（标题等）不是数据，未作为数据读取")
    return fast


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
        frame = pl.read_csv(source, has_header=False, infer_schema=False, separator=delimiter,
                            truncate_ragged_lines=False, raise_if_empty=True, skip_lines=skip)
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
        declared = {s.name: s.member for s in xlsx.preflight(handle, name, limits)}
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
                    xml = _member(handle, declared.get(sheet.name))
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


# --------------------------------------------------------------------------- canonical frame

def _excel_number_text(value: str | None) -> str | None:
    """A numeric code cell as Excel shows it: 15 significant digits, then zeros."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    if number != number or number in (float("inf"), float("-inf")):
        return value
    text = format(Decimal(f"{number:.15g}"), "f")
    return text[:-2] if text.endswith(".0") else text


_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d")


def parse_dates(raw: pl.Expr) -> pl.Expr:
    """Dates as departments write them: 2020-01-02, 2020/1/2, 2020.01.02, 20200102,
    2020年1月2日, with or without a time, or an Excel serial number."""
    text = (raw.str.replace_many(["年", "月", "/", "."], ["-", "-", "-", "-"])
            .str.replace_many(["日", "号"], ["", ""]).str.replace(r"[ T].*$", "").str.strip_chars())
    serial = pl.when(raw.str.contains(r"^\d{5}(\.0+)?$")).then(
        pl.lit(dt.date(1899, 12, 30)) + pl.duration(days=raw.str.slice(0, 5).cast(pl.Int64, strict=False)))
    parsed = pl.coalesce([text.str.to_date(f, strict=False) for f in _DATE_FORMATS] + [serial])
    return pl.when(parsed.is_between(dt.date(1900, 1, 1), dt.date(2100, 12, 31))).then(parsed)


def to_canonical(raw: RawTable | list[RawTable], source: Source,
                 file_name: str) -> tuple[pl.DataFrame, pl.DataFrame, SourceReport]:
    """Pure: a file's cells (one table, or one per sheet) → canonical rows, quarantined rows, accounting.

    Rows read = checked + quarantined + blank, for the file and for each sheet.
    """
    tables = raw if isinstance(raw, list) else [raw]
    report = SourceReport(source.key, source.name, file=file_name, encoding=tables[0].encoding)
    frames, problems, date_headers = [], [], {}
    offset = 0
    for table in tables:
        label = file_name if table.sheet is None else f"{file_name}（工作表“{quote(table.sheet, 40)}”）"
        frame, table_problems, index, extra = _table_rows(table, source, label, offset, report)
        offset += table.cells.height
        frames.append(frame)
        problems += table_problems
        report.extra_columns += [quote(c, 40) for c in extra if quote(c, 40) not in report.extra_columns]
        if "established" in index:
            date_headers[label] = table.header[index["established"]]
        report.layout_notes += table.notes
    if len(report.extra_columns) > 50:  # a header of a thousand columns is not listed whole
        report.extra_columns = report.extra_columns[:50] + [f"…（共 {len(report.extra_columns):,} 列）"]
    frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    bad_idx = {p[0] for p in problems}
    candidate = frame.filter(~pl.col("_i").is_in(list(bad_idx)))
    candidate, schema_problems = _validate(candidate, source)
    problems += schema_problems

    bad_dates = candidate.filter(pl.col("established").is_null() & pl.col("established_raw").is_not_null())
    report.notes_total = bad_dates.height
    report.notes = [{"row": r["row"], "record_id": r["record_id"], "column": date_headers.get(r["file"], ""),
                     "value": quote(r["established_raw"], 60), "note": "日期无法识别，已按空值处理（代码照常检查）"}
                    for r in bad_dates.head(NOTE_SAMPLE).iter_rows(named=True)]

    records = candidate.select(CANONICAL_COLUMNS)
    quarantine = pl.DataFrame(
        [(source.key, where, row, rid, column, value, reason) for _, where, row, rid, column, value, reason in problems],
        schema={c: (pl.Int64 if c == "row" else pl.String) for c in QUARANTINE_COLUMNS}, orient="row",
    ).sort("file", "row", maintain_order=True) if problems else empty_quarantine()
    report.rows_checked = records.height
    report.rows_quarantined = quarantine.select(pl.struct("file", "row").n_unique()).item() if problems else 0
    if len(tables) > 1:
        for table, sheet in zip(tables, report.sheets):
            label = sheet.pop("_label")
            sheet["rows_checked"] = int((records["file"] == label).sum())
            sheet["rows_quarantined"] = quarantine.filter(pl.col("file") == label)["row"].n_unique()
            assert sheet["rows_read"] == sheet["rows_checked"] + sheet["rows_quarantined"] + sheet["rows_blank"], sheet
    else:
        report.sheets = []
    assert report.rows_read == report.rows_checked + report.rows_quarantined + report.rows_blank, report
    return records, quarantine, report


def _table_rows(raw: RawTable, source: Source, label: str, offset: int,
                report: SourceReport) -> tuple[pl.DataFrame, list[tuple], dict[str, int], list[str]]:
    """One table's rows in canonical columns (not yet validated), with the rows it quarantines."""
    index, extra, chosen = _choose_columns(raw, source, label)
    raw.notes.extend(chosen)
    missing = _missing_required(index, source)
    if missing:
        found = quote("、".join(h for h in raw.header if h.strip()), 200) or "（无）"
        raise IngestError(f"{label} 缺少必需的列：{'、'.join(missing)}。文件中的列：{found}。"
                          "请使用下发的表头后重新提交。")
    cells = raw.cells.with_columns(
        pl.Series("row", raw.rows, dtype=pl.Int64), (pl.int_range(pl.len(), dtype=pl.Int64) + offset).alias("_i"))
    data_cols = [c for c in cells.columns if c.startswith("column_")]
    blank = pl.all_horizontal([pl.col(c).fill_null("").str.strip_chars(FIELD_TRIM) == "" for c in data_cols]) \
        if data_cols else pl.lit(True)
    control = pl.any_horizontal([pl.col(c).str.contains(_CONTROL_PATTERN).fill_null(False) for c in data_cols]) \
        if data_cols and raw.may_hold_controls else pl.lit(False)
    cells = cells.with_columns(_blank=blank, _control=control)
    rows_blank = int(cells["_blank"].sum()) + raw.blank_rows
    report.rows_read += cells.height + raw.blank_rows
    report.rows_blank += rows_blank
    if raw.sheet is not None:
        report.sheets.append({"sheet": quote(raw.sheet, 40), "rows_read": cells.height + raw.blank_rows, "rows_blank": rows_blank,
                              "_label": label})
    cells = cells.filter(~pl.col("_blank"))

    def col(field_name: str) -> pl.Expr:
        if field_name not in index:
            return pl.lit(None, dtype=pl.String)
        return pl.col(f"column_{index[field_name]}")

    numeric_rows = raw.numeric_code_rows or set()
    frame = cells.select(
        pl.lit(source.key).alias("source"),
        _clean(col("record_id")).alias("record_id"),
        col("uscc").str.strip_chars(TRIM_CHARS).alias("uscc_raw"),
        pl.col("row").is_in(list(numeric_rows)).alias("uscc_numeric") if numeric_rows else pl.lit(False).alias("uscc_numeric"),
        *[_clean(col(f)).alias(f) for f in ("name", "entity_type", "legal_rep")],
        _clean(col("established")).alias("established_raw"),
        *[_clean(col(f)).alias(f) for f in ("status", "address")],
        pl.lit(label).alias("file"),
        pl.col("row"),
        pl.col("_i"),
        pl.max_horizontal([pl.col(c).fill_null("").str.len_chars() for c in data_cols]).alias("_longest"),
        pl.col("_i").is_in([i + offset for i in raw.overflow]).alias("_overflow"),
        pl.col("_control"),
    )
    if numeric_rows:  # only number cells are rewritten, as Excel shows them
        at = frame["uscc_numeric"].arg_true()
        shown = [_excel_number_text(v) for v in frame["uscc_raw"].gather(at).to_list()]
        frame = frame.with_columns(frame["uscc_raw"].clone().scatter(at, pl.Series(shown, dtype=pl.String)))
    frame = frame.with_columns(established=parse_dates(pl.col("established_raw")))

    problems = []
    if frame["_control"].any():
        flagged = cells.filter(pl.col("_control"))
        for r in flagged.iter_rows(named=True):
            at = next(i for i, c in enumerate(data_cols) if r[c] is not None and CONTROL_RE.search(r[c]))
            rid = r[f"column_{index['record_id']}"]
            problems.append((r["_i"], label, r["row"], _plain(rid), raw.header[at] if at < len(raw.header) else None, None,
                             f"第 {at + 1} 列“{quote(raw.header[at] if at < len(raw.header) else '', 40)}”含有控制字符 "
                             f"{control_character(r[data_cols[at]])}（如 NUL 字节，不是正常文字），该行未检查，"
                             "可能是导出程序出错。请检查原文件该行后重新提交"))
    bad = {p[0] for p in problems}
    for r in frame.filter((pl.col("_longest") > MAX_FIELD_CHARS) & ~pl.col("_i").is_in(list(bad))).iter_rows(named=True):
        problems.append((r["_i"], label, r["row"], _plain(r["record_id"]), None, None,
                         f"该行有单元格超过 {MAX_FIELD_CHARS} 个字符（{r['_longest']} 个），可能是引号错位吞并了后面的行，请检查原文件"))
    bad = {p[0] for p in problems}
    for r in frame.filter(pl.col("_overflow") & ~pl.col("_i").is_in(list(bad))).iter_rows(named=True):
        problems.append((r["_i"], label, r["row"], _plain(r["record_id"]), None, None,
                         f"该行的字段数多于表头（{len(raw.header)} 列），可能是名称或地址中有未加引号的逗号，请检查原文件"))
    return frame.drop("_control"), problems, index, extra


def _plain(value: str | None) -> str | None:
    """A cell as the overview may show it: no control characters, at most `QUOTE_CHARS`."""
    return None if value is None else quote(CONTROL_RE.sub("", value))


def _choose_columns(raw: RawTable, source: Source, label: str) -> tuple[dict[str, int], list[str], list[str]]:
    """Which column holds each field; a header that appears twice is refused, unless exactly
    one of the two columns holds values (then that one, and a layout note says so)."""
    columns = _field_columns(raw.header, source)
    index, notes = {}, []
    for field_name, at in columns.items():
        if len(at) == 1:
            index[field_name] = at[0]
            continue
        filled = [i for i in at if raw.cells.height and
                  raw.cells[f"column_{i}"].fill_null("").str.strip_chars(FIELD_TRIM).ne("").any()]
        shown = "、".join(f"第 {i + 1} 列" for i in at)
        header = quote(raw.header[at[0]], 40)
        if len(filled) != 1:
            why = "都有内容" if filled else "都没有内容"
            raise IngestError(f"{label} 的表头中“{header}”出现了 {len(at)} 次（{shown}），且{why}，"
                              "无法确定使用哪一列。请删除多余的列，只保留一列“"
                              f"{header}”后重新提交。")
        index[field_name] = filled[0]
        notes.append(f"表头“{header}”出现 {len(at)} 次（{shown}），只有第 {filled[0] + 1} 列有内容，已使用该列")
    used = set(index.values()) | {i for at in columns.values() for i in at}
    extra = [raw.header[i] for i in range(len(raw.header)) if i not in used and raw.header[i].strip()]
    return index, extra, notes


def _clean(expr: pl.Expr) -> pl.Expr:
    cleaned = expr.str.strip_chars(FIELD_TRIM)
    return pl.when(cleaned != "").then(cleaned)


def _validate(frame: pl.DataFrame, source: Source) -> tuple[pl.DataFrame, list[tuple]]:
    """pandera, lazily collecting every failure; failing rows become quarantine entries."""
    try:
        CANONICAL_SCHEMA.validate(frame.select(CANONICAL_COLUMNS), lazy=True)
        return frame, []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    header = source.columns["record_id"][0]
    problems: list[tuple] = []
    positions = frame.select("_i", "file", "row", "record_id").with_row_index("_pos")
    failed = cases.filter(pl.col("index").is_not_null()).select(pl.col("index").cast(pl.UInt32).alias("_pos"), "check", "column")
    if failed.height == 0 and cases.height:
        raise AssertionError(f"canonical schema failed without row indexes: {cases}")
    joined = failed.join(positions, on="_pos", how="left")
    dup_rows = (positions.filter(pl.col("record_id").is_duplicated() & pl.col("record_id").is_not_null())
                .sort("_i").group_by("record_id", maintain_order=True).agg("file", "row"))
    dup_lines = {r["record_id"]: list(zip(r["file"], r["row"])) for r in dup_rows.iter_rows(named=True)}
    for r in joined.iter_rows(named=True):
        if r["column"] == "record_id" and r["check"] == "field_uniqueness":
            lines = dup_lines.get(r["record_id"], [])
            sheets = len({f for f, _ in lines}) > 1
            more = "等" if len(lines) > 10 else ""
            shown = ("、".join(f"{f} 第 {x} 行" for f, x in lines[:10]) + more if sheets else
                     "第 " + "、".join(str(x) for _, x in lines[:10]) + more + " 行")
            reason = (f"{header}“{quote(r['record_id'], 60)}”在文件中重复出现（{shown}），"
                      "无法确定哪一行有效，请去重后重新提交")
        elif r["column"] == "record_id":
            reason = f"缺少{header}，无法跟踪该记录的更正，请补录后重新提交"
        else:
            reason = f"字段“{r['column']}”不符合要求（{r['check']}）"
        problems.append((r["_i"], r["file"], r["row"], _plain(r["record_id"]),
                         header if r["column"] == "record_id" else r["column"], _plain(r["record_id"]), reason))
    bad = {p[0] for p in problems}
    return frame.filter(~pl.col("_i").is_in(list(bad))), problems


# --------------------------------------------------------------------------- whole data directory

def ingest_source(source: Source, data_dir: Path,
                  limits: Limits | None = None) -> tuple[pl.DataFrame, pl.DataFrame, SourceReport]:
    """One source's newest extract; a file that can't be used is a rejection, never an exception.

    Args:
        limits: what a file may declare (`[limits]` of the configuration; default: `Limits()`).
    """
    path, ignored = select_extract(Path(data_dir) / "extracts" / source.key, Path(data_dir))
    if path is None:
        refused = [f for f in ignored if f.get("refused")]
        reason = f"extracts/{source.key}/ 下没有本期数据文件（.csv 或 .xlsx）"
        if refused:
            reason += f"；拒绝读取 {len(refused)} 项（原因见下方列表）"
        report = SourceReport(source.key, source.name, status="rejected", ignored_files=ignored, reason=reason)
        return empty_canonical(), empty_quarantine(), report
    name = quote(path.name, 120)
    try:
        if path.suffix.lower() == ".csv":
            raw = read_csv(path, source, limits, name)
        else:
            raw = read_xlsx(path, source, limits, name)
        records, quarantine, report = to_canonical(raw, source, name)
        report.sha256 = file_sha256(path)
    except (IngestError, xlsx.XlsxError) as exc:
        report = SourceReport(source.key, source.name, status="rejected", reason=str(exc), file=name)
        records, quarantine = empty_canonical(), empty_quarantine()
    report.ignored_files = ignored
    return records, quarantine, report


def file_sha256(path: Path) -> str:
    """The content hash of a file, read in blocks (it was just checked to be a regular file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest_all(settings: Settings, data_dir: Path) -> Ingested:
    """Every configured source into one canonical frame (SPEC §4)."""
    frames, quarantines, reports = [], [], {}
    for source in settings.sources:
        records, quarantine, report = ingest_source(source, data_dir, settings.limits)
        frames.append(records)
        quarantines.append(quarantine)
        reports[source.key] = report
    records = pl.concat(frames) if frames else empty_canonical()
    quarantine = pl.concat(quarantines) if quarantines else empty_quarantine()
    QUARANTINE_SCHEMA.validate(quarantine)
    return Ingested(records, quarantine, reports)


__all__ = ["Ingested", "IngestError", "SourceReport", "ingest_all", "ingest_source", "to_canonical",
           "read_csv", "read_xlsx", "select_extract", "list_folder", "entry_refusal", "name_refusal",
           "open_regular", "parse_dates", "FIELDS"]
