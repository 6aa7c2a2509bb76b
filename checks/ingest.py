"""Registry extracts → one canonical frame + quarantine + row accounting (docs/data-dir.md#row-accounting).

Nothing is lost silently: for every source, rows read = rows checked + rows
quarantined + blank rows, asserted here and shown on the overview. A file
that can't be read at all is a source-level rejection with a reason; the
other sources go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import pandera.polars as pa
import polars as pl

from checks import xlsx
from checks.dates import parse_date_column, parse_dates
from checks.data_files import (
    SUPPORTED_SUFFIXES,
    IngestError,
    entry_refusal,
    folder_refusal,
    list_folder,
    name_refusal,
    open_regular,
    select_extract,
)
from checks.extract_file import (
    FIELD_TRIM,
    HEADER_SEARCH_ROWS,
    RawTable,
    _field_columns,
    _missing_required,
    normalize_header,
    read_csv,
    read_xlsx,
)
from checks.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_ROWS_SCHEMA,
    CANONICAL_SCHEMA,
    QUARANTINE_COLUMNS,
    QUARANTINE_SCHEMA,
    empty_canonical,
    empty_quarantine,
)
from checks.settings import FIELDS, Limits, Settings, Source
from checks.textfile import CONTROL_RE, control_character, quote
from validators.tables import TRIM_CHARS

#: A cell longer than this is almost surely a broken quote that swallowed rows.
MAX_FIELD_CHARS = 1000
#: Field-level notes kept per source for the overview (all are counted).
NOTE_SAMPLE = 50
#: The same control characters as `checks.textfile.CONTROL_RE`, for polars.
_CONTROL_PATTERN = CONTROL_RE.pattern


def _chars(chars: str) -> str:
    """`chars` as the inside of a regular expression's character class."""
    return "".join(f"\\x{{{ord(ch):x}}}" for ch in chars)


#: A character a cell keeps after trimming (`FIELD_TRIM`): a cell without one is empty.
_NOT_TRIM = f"[^{_chars(FIELD_TRIM)}]"


def trimmed(cell: pl.Expr, chars: str) -> pl.Expr:
    """`cell` without `chars` at either end. Only a cell that starts or ends with one is stripped; the others stay
    the very strings read, sharing the reader's buffers (stripping every cell held the text of a province's file
    once more, 2.3 GB at 10^7, and took longer)."""
    edge = f"[{_chars(chars)}]"
    return pl.when(cell.str.contains(f"^{edge}|{edge}$")).then(cell.str.strip_chars(chars)).otherwise(cell)


FIELD_LABELS = {
    "record_id": "记录编号", "uscc": "统一社会信用代码", "name": "名称", "entity_type": "类型",
    "legal_rep": "法定代表人/负责人", "established": "成立/批准日期", "status": "状态", "address": "地址",
}


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
    candidate = frame.filter(~pl.col("_i").is_in(list(bad_idx))) if bad_idx else frame
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
    data_cols = [c for c in raw.cells.columns if c.startswith("column_")]
    # a row is blank when no cell holds a character besides FIELD_TRIM: a match per cell, no trimmed copy of every
    # column (at 10^7 rows such copies were gigabytes); only the fields taken are trimmed, once, below
    blank = raw.cells.select(pl.all_horizontal([~pl.col(c).str.contains(_NOT_TRIM).fill_null(False)
                                                for c in data_cols])).to_series() if data_cols \
        else pl.Series([True] * raw.cells.height, dtype=pl.Boolean)
    control = pl.any_horizontal([pl.col(c).str.contains(_CONTROL_PATTERN).fill_null(False) for c in data_cols]) \
        if data_cols and raw.may_hold_controls else pl.lit(False)
    cells = raw.cells.with_columns(
        pl.Series("row", raw.rows, dtype=pl.Int64), (pl.int_range(pl.len(), dtype=pl.Int64) + offset).alias("_i"),
        _control=control)
    rows_blank = int(blank.sum()) + raw.blank_rows
    report.rows_read += cells.height + raw.blank_rows
    report.rows_blank += rows_blank
    if raw.sheet is not None:
        report.sheets.append({"sheet": quote(raw.sheet, 40), "rows_read": cells.height + raw.blank_rows, "rows_blank": rows_blank,
                              "_label": label})
    if rows_blank > raw.blank_rows:
        cells = _without(cells, blank)

    def col(field_name: str) -> pl.Expr:
        if field_name not in index:
            return pl.lit(None, dtype=pl.String)
        return pl.col(f"column_{index[field_name]}")

    def cleaned(field_name: str) -> pl.Expr:
        """The field trimmed (`FIELD_TRIM`), an empty cell null."""
        if field_name not in index:
            return pl.lit(None, dtype=pl.String)
        # `replace`, not when/then, makes an empty cell null: at 10^7, 0.5 s a field where when/then took 1.5 s
        return trimmed(pl.col(f"column_{index[field_name]}"), FIELD_TRIM).replace("", None)

    numeric_rows = raw.numeric_code_rows or set()
    frame = cells.select(
        pl.lit(source.key).alias("source"),
        cleaned("record_id").alias("record_id"),
        trimmed(col("uscc"), TRIM_CHARS).alias("uscc_raw"),
        pl.col("row").is_in(list(numeric_rows)).alias("uscc_numeric") if numeric_rows else pl.lit(False).alias("uscc_numeric"),
        *[cleaned(f).alias(f) for f in ("name", "entity_type", "legal_rep")],
        cleaned("established").alias("established_raw"),
        *[cleaned(f).alias(f) for f in ("status", "address")],
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
    frame = frame.with_columns(established=parse_date_column(frame["established_raw"]))

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


#: Runs of blank rows up to which a table is cut into slices around them rather than copied without them.
BLANK_RUNS_SLICED = 64


def _without(frame: pl.DataFrame, dropped: pl.Series) -> pl.DataFrame:
    """`frame` without the rows `dropped` marks. A few runs of such rows (a file's blank last lines, a blank line
    between blocks) are cut around, so the rows kept are the frame's own (a filter copied a province's
    whole file, 1.4 GB, for its blank last line); many are filtered out."""
    at = dropped.arg_true()
    starts = at.filter(at.diff().fill_null(2) != 1)  # the first row of each run of dropped rows
    if len(starts) > BLANK_RUNS_SLICED:
        return frame.filter(~dropped)
    ends = at.filter(at.diff(-1).fill_null(-2) != -1) + 1  # one past each run's last row
    kept = [frame.slice(a, b - a) for a, b in zip([0, *ends], [*starts, frame.height]) if b > a]
    return pl.concat(kept, rechunk=False) if kept else frame.clear()


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


def _validate(frame: pl.DataFrame, source: Source) -> tuple[pl.DataFrame, list[tuple]]:
    """pandera, lazily collecting every failure; failing rows become quarantine entries."""
    # ids whose 64-bit hashes all differ are all different (0.3 s for 9 M ids): pandera then checks the rest; when
    # two hashes are alike (a repeated id, or a rare collision) its own check runs too, and names the rows
    distinct = frame["record_id"].hash().n_unique() == frame.height
    try:
        (CANONICAL_ROWS_SCHEMA if distinct else CANONICAL_SCHEMA).validate(frame.select(CANONICAL_COLUMNS), lazy=True)
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
        # a CSV's hash is of the bytes read and checked; a workbook is read again for it
        report.sha256 = (raw.sha256 if isinstance(raw, RawTable) else None) or file_sha256(path)
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
    """Every configured source into one canonical frame (docs/data-dir.md#extracts)."""
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
           "open_regular", "parse_dates", "FIELDS",
           # read from here by checks.returns and flows.cli; they live in checks.extract_file
           "HEADER_SEARCH_ROWS", "SUPPORTED_SUFFIXES", "folder_refusal", "normalize_header"]
