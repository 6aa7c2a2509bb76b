"""Registry extracts → one canonical frame + quarantine + row accounting (SPEC §4).

Nothing is lost silently: for every source, rows read = rows checked + rows
quarantined + blank rows, asserted here and shown on the overview. A file
that can't be read at all is a source-level rejection with a reason; the
other sources go on.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import unicodedata
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

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
from checks.settings import FIELDS, REQUIRED_FIELDS, Settings, Source
from checks.textfile import TextFileError, detect, sniff_delimiter
from validators.tables import TRIM_CHARS

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
#: A cell longer than this is almost surely a broken quote that swallowed rows.
MAX_FIELD_CHARS = 1000
#: How many rows from the top of a sheet are searched for the header row.
HEADER_SEARCH_ROWS = 10
#: Field-level notes kept per source for the overview (all are counted).
NOTE_SAMPLE = 50
#: Whitespace trimmed at the ends of every non-code field (full-width space and NBSP too).
FIELD_TRIM = TRIM_CHARS + "\u3000\u00a0\ufeff"

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
    status: str = "ok"  # ok | rejected
    reason: str | None = None
    file: str | None = None
    encoding: str | None = None
    rows_read: int = 0
    rows_checked: int = 0
    rows_quarantined: int = 0
    rows_blank: int = 0
    ignored_files: list[dict] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    notes_total: int = 0

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


# --------------------------------------------------------------------------- file selection

def select_extract(folder: Path) -> tuple[Path | None, list[dict]]:
    """Tonight's extract: the newest supported file by mtime, ties broken by name."""
    if not folder.is_dir():
        return None, []
    candidates, ignored = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "~$")) or not path.is_file():
            continue
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            candidates.append(path)
        else:
            ignored.append({"file": path.name, "reason": f"不支持的文件类型（{path.suffix or '无扩展名'}），"
                                                        "请另存为 .xlsx 或 .csv"})
    if not candidates:
        return None, ignored
    candidates.sort(key=lambda p: (p.stat().st_mtime, p.name))
    newest = candidates[-1]
    ignored += [{"file": p.name, "reason": "不是最新文件，本次未使用"} for p in candidates[:-1]]
    return newest, ignored


# --------------------------------------------------------------------------- reading

def normalize_header(text: str) -> str:
    """Header as compared: NFKC (full-width → half-width), no whitespace, no `*` markers."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in text if not ch.isspace() and ch not in "*：:\ufeff")


def _field_index(header: list[str], source: Source) -> tuple[dict[str, int], list[str]]:
    normalized = [normalize_header(h) for h in header]
    index: dict[str, int] = {}
    for field_name, accepted in source.columns.items():
        wanted = {normalize_header(a) for a in accepted}
        for i, h in enumerate(normalized):
            if h in wanted:
                index[field_name] = i
                break
    used = set(index.values())
    extra = [header[i] for i in range(len(header)) if i not in used and header[i].strip()]
    return index, extra


def _missing_required(index: dict[str, int], source: Source) -> list[str]:
    return [source.columns[f][0] for f in REQUIRED_FIELDS if f not in index]


def read_csv(path: Path) -> RawTable:
    """A CSV file's cells; row numbers are the file lines where each record starts.

    UTF-8 files go to polars by path (never held as text); GB18030 and UTF-16 are
    transcoded once. Files whose records are not one line each, or with ragged rows,
    are read by the exact Python reader.
    """
    data = path.read_bytes()
    if len(data) < (1 << 20) and not data.replace(codecs.BOM_UTF8, b"").strip():
        raise IngestError(f"{path.name} 是空文件（0 行）。请确认导出是否成功后重新提交。")
    try:
        encoding, text = detect(data, path.name)
    except TextFileError as exc:
        raise IngestError(str(exc)) from None
    head = text[:65536] if text is not None else data[:65536].decode("utf-8-sig", errors="ignore")
    delimiter = sniff_delimiter(head)
    if text is None:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        del data  # the exact reader reads the file again if it is needed
        fast = _read_csv_polars(path, delimiter, lines, encoding)
    else:
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        fast = _read_csv_polars(text.encode("utf-8"), delimiter, lines, encoding)
    if fast is not None:
        return fast
    if text is None:
        text = path.read_bytes().decode(encoding)
    return _read_csv_python(path, text, delimiter, encoding)


def _read_csv_python(path: Path, text: str, delimiter: str, encoding: str) -> RawTable:
    """Python's csv reader: exact line numbers whatever the quoting; ragged rows kept aside."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    previous = 0
    try:
        for fields in reader:
            start, previous = previous + 1, reader.line_num
            if header is None:
                if any(f.strip() for f in fields):
                    header = fields
                continue
            rows.append(fields)
            lines.append(start)
    except csv.Error as exc:
        raise IngestError(f"{path.name} 第 {reader.line_num} 行无法解析为 CSV（{exc}）。"
                          "请检查该行的引号是否成对后重新提交。") from None
    if header is None:
        raise IngestError(f"{path.name} 没有任何内容（只有空行）。")
    width = len(header)
    overflow = []
    for i, fields in enumerate(rows):
        if len(fields) != width:
            if len(fields) > width and any(f.strip() for f in fields[width:]):
                overflow.append(i)
            rows[i] = (fields + [""] * width)[:width]
    names = [f"column_{i}" for i in range(width)]
    cells = pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row") if rows else \
        pl.DataFrame(schema={n: pl.String for n in names})
    return RawTable(header, cells, lines, overflow, None, encoding)


def _read_csv_polars(source: Path | bytes, delimiter: str, lines: int, encoding: str) -> RawTable | None:
    """polars' reader when every record is one line (then line numbers are exact); None otherwise.

    Ragged rows and fields spanning lines go to the exact (slower) Python reader.
    """
    try:
        frame = pl.read_csv(source, has_header=False, infer_schema=False, separator=delimiter,
                            truncate_ragged_lines=False, raise_if_empty=True)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.height != lines:
        return None
    present = frame.select(pl.any_horizontal(pl.all().fill_null("").str.strip_chars() != ""))[:, 0]
    first = present.arg_true()
    if len(first) == 0:
        return None
    header_at = int(first[0])
    header = ["" if v is None else v for v in frame.row(header_at)]
    cells = frame.slice(header_at + 1)
    cells = cells.rename({c: f"column_{i}" for i, c in enumerate(cells.columns)})
    rows = range(header_at + 2, header_at + 2 + cells.height)
    return RawTable(header, cells, rows, [], None, encoding)


def read_xlsx(path: Path, source: Source) -> RawTable:
    """The first sheet whose top rows hold the expected headers."""
    names = xlsx.sheet_names(path)
    tried = []
    for sheet in names:
        try:
            top = xlsx.read_rows(path, sheet, n_rows=HEADER_SEARCH_ROWS)
        except Exception:
            continue
        for r in range(top.height):
            header = ["" if v is None else str(v) for v in top.row(r)]
            index, _ = _field_index(header, source)
            if not _missing_required(index, source):
                return _read_sheet(path, sheet, r, header, index["uscc"])
        if top.height:
            tried.append(f"“{sheet}”首行：{'、'.join(str(v) for v in top.row(0) if v)}")
    required = "、".join(source.columns[f][0] for f in REQUIRED_FIELDS)
    raise IngestError(f"{path.name} 的所有工作表（{'、'.join(names)}）前 {HEADER_SEARCH_ROWS} 行中都找不到必需的列"
                      f"（{required}）。{'；'.join(tried)}。请使用下发的表头后重新提交。")


def _read_sheet(path: Path, sheet: str, header_at: int, header: list[str], code_col: int) -> RawTable:
    frame = xlsx.read_rows(path, sheet)
    xml = xlsx.sheet_xml(path, sheet)
    numeric = xlsx.numeric_rows(xml, code_col) if xml is not None else None
    first_row = xlsx.first_used_row(xml) if xml is not None else 1
    cells = frame.slice(header_at + 1)
    cells = cells.rename({c: f"column_{i}" for i, c in enumerate(cells.columns)})
    for i in range(len(cells.columns), len(header)):
        cells = cells.with_columns(pl.lit(None, dtype=pl.String).alias(f"column_{i}"))
    rows = list(range(first_row + header_at + 1, first_row + header_at + 1 + cells.height))
    return RawTable(header, cells.select(f"column_{i}" for i in range(len(header))), rows, [], numeric, "xlsx")


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


def to_canonical(raw: RawTable, source: Source, file_name: str) -> tuple[pl.DataFrame, pl.DataFrame, SourceReport]:
    """Pure: a file's cells → canonical rows, quarantined rows, accounting."""
    report = SourceReport(source.key, source.name, file=file_name, encoding=raw.encoding)
    index, report.extra_columns = _field_index(raw.header, source)
    missing = _missing_required(index, source)
    if missing:
        found = "、".join(h for h in raw.header if h.strip()) or "（无）"
        raise IngestError(f"{file_name} 缺少必需的列：{'、'.join(missing)}。文件中的列：{found}。"
                          "请使用下发的表头后重新提交。")
    cells = raw.cells.with_columns(
        pl.Series("row", raw.rows, dtype=pl.Int64), pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
    report.rows_read = cells.height
    data_cols = [c for c in cells.columns if c.startswith("column_")]
    blank = pl.all_horizontal([pl.col(c).fill_null("").str.strip_chars(FIELD_TRIM) == "" for c in data_cols]) \
        if data_cols else pl.lit(True)
    cells = cells.with_columns(_blank=blank)
    report.rows_blank = int(cells["_blank"].sum())
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
        pl.lit(file_name).alias("file"),
        pl.col("row"),
        pl.col("_i"),
        pl.max_horizontal([pl.col(c).fill_null("").str.len_chars() for c in data_cols]).alias("_longest"),
        pl.col("_i").is_in(raw.overflow).alias("_overflow"),
    )
    if numeric_rows:  # only number cells are rewritten, as Excel shows them
        at = frame["uscc_numeric"].arg_true()
        shown = [_excel_number_text(v) for v in frame["uscc_raw"].gather(at).to_list()]
        frame = frame.with_columns(frame["uscc_raw"].clone().scatter(at, pl.Series(shown, dtype=pl.String)))
    frame = frame.with_columns(established=parse_dates(pl.col("established_raw")))

    problems = []
    long_rows = frame.filter(pl.col("_longest") > MAX_FIELD_CHARS)
    for r in long_rows.iter_rows(named=True):
        problems.append((r["_i"], r["row"], r["record_id"], None, None,
                         f"该行有单元格超过 {MAX_FIELD_CHARS} 个字符（{r['_longest']} 个），可能是引号错位吞并了后面的行，请检查原文件"))
    for r in frame.filter(pl.col("_overflow")).iter_rows(named=True):
        problems.append((r["_i"], r["row"], r["record_id"], None, None,
                         f"该行的字段数多于表头（{len(raw.header)} 列），可能是名称或地址中有未加引号的逗号，请检查原文件"))
    bad_idx = {p[0] for p in problems}
    candidate = frame.filter(~pl.col("_i").is_in(list(bad_idx)))
    candidate, schema_problems = _validate(candidate, source)
    problems += schema_problems

    bad_dates = candidate.filter(pl.col("established").is_null() & pl.col("established_raw").is_not_null())
    report.notes_total = bad_dates.height
    date_header = raw.header[index["established"]] if "established" in index else ""
    report.notes = [{"row": r["row"], "record_id": r["record_id"], "column": date_header, "value": r["established_raw"],
                     "note": "日期无法识别，已按空值处理（代码照常检查）"}
                    for r in bad_dates.head(NOTE_SAMPLE).iter_rows(named=True)]

    records = candidate.select(CANONICAL_COLUMNS)
    quarantine = pl.DataFrame(
        [(source.key, file_name, row, rid, column, value, reason) for _, row, rid, column, value, reason in problems],
        schema={c: (pl.Int64 if c == "row" else pl.String) for c in QUARANTINE_COLUMNS}, orient="row",
    ).sort("row") if problems else empty_quarantine()
    report.rows_checked = records.height
    report.rows_quarantined = quarantine.select(pl.col("row").n_unique()).item() if problems else 0
    assert report.rows_read == report.rows_checked + report.rows_quarantined + report.rows_blank, report
    return records, quarantine, report


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
    positions = frame.select("_i", "row", "record_id").with_row_index("_pos")
    failed = cases.filter(pl.col("index").is_not_null()).select(pl.col("index").cast(pl.UInt32).alias("_pos"), "check", "column")
    if failed.height == 0 and cases.height:
        raise AssertionError(f"canonical schema failed without row indexes: {cases}")
    joined = failed.join(positions, on="_pos", how="left")
    dup_rows = (positions.filter(pl.col("record_id").is_duplicated() & pl.col("record_id").is_not_null())
                .group_by("record_id").agg(pl.col("row").sort()))
    dup_lines = {r["record_id"]: r["row"] for r in dup_rows.iter_rows(named=True)}
    for r in joined.iter_rows(named=True):
        if r["column"] == "record_id" and r["check"] == "field_uniqueness":
            lines = dup_lines.get(r["record_id"], [])
            shown = "、".join(str(x) for x in lines[:10]) + ("等" if len(lines) > 10 else "")
            reason = f"{header}“{r['record_id']}”在文件中重复出现（第 {shown} 行），无法确定哪一行有效，请去重后重新提交"
        elif r["column"] == "record_id":
            reason = f"缺少{header}，无法跟踪该记录的更正，请补录后重新提交"
        else:
            reason = f"字段“{r['column']}”不符合要求（{r['check']}）"
        problems.append((r["_i"], r["row"], r["record_id"], header if r["column"] == "record_id" else r["column"],
                         r["record_id"], reason))
    bad = {p[0] for p in problems}
    return frame.filter(~pl.col("_i").is_in(list(bad))), problems


# --------------------------------------------------------------------------- whole data directory

def ingest_source(source: Source, data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, SourceReport]:
    """One source's newest extract; a file that can't be used is a rejection, never an exception."""
    path, ignored = select_extract(Path(data_dir) / "extracts" / source.key)
    if path is None:
        report = SourceReport(source.key, source.name, status="rejected", ignored_files=ignored,
                              reason=f"extracts/{source.key}/ 下没有本期数据文件（.csv 或 .xlsx）")
        return empty_canonical(), empty_quarantine(), report
    try:
        raw = read_csv(path) if path.suffix.lower() == ".csv" else read_xlsx(path, source)
        records, quarantine, report = to_canonical(raw, source, path.name)
    except (IngestError, xlsx.XlsxError) as exc:
        report = SourceReport(source.key, source.name, status="rejected", reason=str(exc), file=path.name)
        records, quarantine = empty_canonical(), empty_quarantine()
    report.ignored_files = ignored
    return records, quarantine, report


def ingest_all(settings: Settings, data_dir: Path) -> Ingested:
    """Every configured source into one canonical frame (SPEC §4)."""
    frames, quarantines, reports = [], [], {}
    for source in settings.sources:
        records, quarantine, report = ingest_source(source, data_dir)
        frames.append(records)
        quarantines.append(quarantine)
        reports[source.key] = report
    records = pl.concat(frames) if frames else empty_canonical()
    quarantine = pl.concat(quarantines) if quarantines else empty_quarantine()
    QUARANTINE_SCHEMA.validate(quarantine)
    return Ingested(records, quarantine, reports)


__all__ = ["Ingested", "IngestError", "SourceReport", "ingest_all", "ingest_source", "to_canonical",
           "read_csv", "read_xlsx", "select_extract", "parse_dates", "FIELDS"]
