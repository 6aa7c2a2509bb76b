"""The correction form a department fills in and returns: `<source>.xlsx` and `<source>.csv`.

Read-only columns (what we found) are grey and locked; the three answer
columns are yellow and open. Codes survive Excel: text cells in XLSX, and in
CSV a leading tab, which Excel keeps as text instead of turning an 18-digit
code into 9.12304E+17. Any cell from data starting with `=`, `+`, `-`, `@`
(or tab / CR) is prefixed with `'` so no spreadsheet runs it as a formula.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from checks import frame_files
from checks.lock import die_with
from checks.form import ANSWER_COLUMNS, ANSWERS, FORMULA_RE, READ_ONLY, TEXT_COLUMNS, neutralize, recover  # noqa: F401
from reports.cells import form_cells, form_inputs, neutralized
from reports.xlsx_rows import fill_sheets, rows_xml

SHEET = "更正清单"
#: Data rows per sheet: Excel's 1,048,576 rows less the header.
XLSX_MAX_ROWS = 1_048_575
#: Form rows whose text is held at once while a workbook is written (a province's form has a million).
ROWS_AT_ONCE = 50_000


def write_neutralized_csv(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    """`frame` as a CSV file, every text column neutralized like `neutralize` (findings.csv, audit.csv and the
    register are also opened in spreadsheets), written a slice at a time: the text of a province's register
    (10^7 rows, 2 GB of CSV) is never held whole beside it (written at once, it peaked 1.8 GB higher; the same
    bytes, in the same time)."""
    neutralized_frame(frame).sink_csv(path)


def neutralized_frame(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """`frame` with every text column neutralized like `neutralize` (formula-like text gets one leading ').

    Of a DataFrame only the columns holding such text are rewritten, the others asked first and left as they are
    (most hold none: rewriting every text column was 1.3 of the 10^6 register CSV's 5 s on one core)."""
    if isinstance(frame, pl.DataFrame):
        text = [c for c, dtype in frame.schema.items() if dtype == pl.String]
        holds = frame.select(pl.col(c).str.contains(FORMULA_RE).any() for c in text).row(0) if text else ()
        return frame.lazy().with_columns(neutralized(pl.col(c)).alias(c) for c, held in zip(text, holds) if held)
    return frame.with_columns(neutralized(pl.col(c)).alias(c) for c, dtype in frame.collect_schema().items()
                              if dtype == pl.String)


def write_csv(path: Path, findings: pl.DataFrame, cells: pl.DataFrame | None = None) -> None:
    """UTF-8 with BOM (Excel opens it as UTF-8); code columns kept as text by a leading tab.

    Args:
        cells: `reports.cells.form_cells(findings)` when the caller has them already (a county's are its
            department's, filtered).
    """
    cells = form_cells(findings) if cells is None else cells
    tabbed = cells.with_columns(
        pl.when((pl.col(h) != "") & ~pl.col(h).str.starts_with("'")).then(pl.lit("\t") + pl.col(h))
        .otherwise(pl.col(h)).alias(h) for h in cells.columns if h in TEXT_COLUMNS)
    # an empty cell is written as nothing, as Python's csv module writes it (polars would write "")
    form = tabbed.with_columns(pl.col(h).replace("", None) for h in tabbed.columns) \
        .with_columns(pl.lit(None, pl.String).alias(h) for h in ANSWER_COLUMNS)
    form.write_csv(path, include_bom=True, line_terminator="\r\n", quote_style="necessary")


def write_xlsx(path: Path, findings: pl.DataFrame, source_name: str, run_date: str) -> None:
    """The form as a protected workbook: answer columns open, drop-down for 处理结果."""
    import xlsxwriter

    # with rows, xlsxwriter writes the workbook around them into a file beside the form (`reports.xlsx_rows`);
    # constant_memory: its header cells are inline strings, as the rows put in after it are
    path = Path(path)
    frame_path = path.with_name(f".{path.name}.frame") if findings.height else path
    book = xlsxwriter.Workbook(str(frame_path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                           "strings_to_urls": False, "constant_memory": True,
                                           "tmpdir": str(path.parent)})
    head_ro = book.add_format({"bold": True, "bg_color": "#D9D9D9", "border": 1, "text_wrap": True, "locked": True})
    head_rw = book.add_format({"bold": True, "bg_color": "#FFE699", "border": 1, "text_wrap": True, "locked": True})
    cell_ro = book.add_format({"bg_color": "#F2F2F2", "border": 1, "text_wrap": True, "valign": "top",
                               "num_format": "@", "locked": True})
    cell_rw = book.add_format({"bg_color": "#FFF9E5", "border": 1, "text_wrap": True, "valign": "top",
                               "num_format": "@", "locked": False})
    divider = book.add_format({"bg_color": "#FFE699", "border": 1, "left": 5, "num_format": "@", "locked": False,
                               "valign": "top"})
    headers = [h for h, _ in READ_ONLY] + list(ANSWER_COLUMNS)
    widths = [18, 14, 28, 22, 14, 8, 48, 22, 10, 40, 40, 10, 14, 30, 12, 22, 30]
    n_ro = len(READ_ONLY)
    # a sheet holds 1,048,576 rows: a bigger list continues on 更正清单(2), (3)… (the reader reads them all)
    sheet_frames = [findings.slice(i, XLSX_MAX_ROWS) for i in range(0, findings.height, XLSX_MAX_ROWS)] \
        or [findings.clear()]
    if findings.height:  # the styles' numbers, in the order xlsxwriter gives them when it writes the rows
        styles = [f._get_xf_index() for f in (head_ro, head_rw, cell_ro, divider, cell_rw)][2:]
    sheets, rows = [], {}
    for number, part in enumerate(sheet_frames, start=1):
        sheet = book.add_worksheet(SHEET if number == 1 else f"{SHEET}({number})")
        sheets.append(sheet)
        for col, (header, width) in enumerate(zip(headers, widths)):
            sheet.set_column(col, col, width)
            sheet.write_string(0, col, header, head_ro if col < n_ro else head_rw)
        if part.height:  # the data rows go in after xlsxwriter has written the rest (`reports.xlsx_rows`)
            rows[f"xl/worksheets/sheet{number}.xml"] = (part.height, _row_blocks(part, styles))
        last = max(part.height, 1)
        sheet.data_validation(1, n_ro, max(last, 1000), n_ro, {
            "validate": "list", "source": list(ANSWERS),
            "input_title": "处理结果", "input_message": "请从下拉列表选择：" + "、".join(ANSWERS),
            "error_title": "处理结果无效", "error_message": "只能选择：" + "、".join(ANSWERS),
        })
        sheet.freeze_panes(1, 3)
        sheet.autofilter(0, 0, last, len(headers) - 1)
        sheet.protect("", {"autofilter": True, "sort": False, "format_columns": True, "format_rows": True,
                           "select_locked_cells": True, "select_unlocked_cells": True})
        sheet.set_landscape()
        sheet.set_paper(9)
        sheet.repeat_rows(0)
    sheet = sheets[0]
    guide = book.add_worksheet("填写说明")
    bold = book.add_format({"bold": True, "font_size": 14})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    guide.set_column(0, 0, 100)
    lines = [
        (f"{source_name} 统一社会信用代码更正清单（{run_date}）", bold),
        ("1. 灰色列为检查结果，已锁定，请勿修改；黄色三列由贵单位填写。", wrap),
        ("2. “处理结果”请从下拉列表选择：已更正 / 确认无误 / 已注销 / 非本单位。", wrap),
        ("3. 选择“已更正”时，请在“更正后代码”填写更正后的 18 位代码（单元格已设为文本格式，可直接粘贴）。"
         "如已改为本清单的“建议代码”，“更正后代码”可以留空：按市信用办下发的建议代码受理，回执中注明。", wrap),
        ("4. 选择“确认无误”时，请在“处理说明”写明依据（如证照核对情况）。", wrap),
        ("5. 请保留“问题编号”列，保存为 .xlsx 或 .csv 后报送市信用办。", wrap),
        ("建议可信度：确定 = 有其他部门记录佐证；疑似 = 按校验规则推算；待核 = 仅供参考，须核对证照。", wrap),
    ]
    for i, (text, fmt) in enumerate(lines):
        guide.write_string(i, 0, text, fmt)
    guide.protect()
    sheet.activate()
    book.close()
    if rows:
        fill_sheets(frame_path, path, rows, len(headers))


def _row_blocks(part: pl.DataFrame, styles: list[int]) -> Iterator[bytes]:
    """A sheet's data rows as XML, a block of rows at a time (a province's sheet is a gigabyte of XML)."""
    cell, divider, answer = styles
    answers = [divider, answer, answer]  # 处理结果 (a drop-down, behind a divider), 更正后代码, 处理说明
    for start in range(0, part.height, ROWS_AT_ONCE):
        yield rows_xml(form_cells(part.slice(start, ROWS_AT_ONCE)), start + 2, cell, answers)


# --------------------------------------------------------------------------- forms in a second process

Job = tuple[Path, pl.DataFrame, str, str]  # (xlsx path, findings, department or county name, run date)


def start_xlsx_writers(folder: Path, jobs: list[Job], processes: int) -> list[subprocess.Popen]:
    """The XLSX forms written by up to `processes` child processes (`python -m reports.forms`) while the caller
    goes on, each given about as many rows (the biggest forms first, each to the child with the fewest rows so
    far). The findings go over as Arrow IPC files in `folder`, LZ4-compressed: a province's forms' inputs were
    2.4 GB uncompressed, 0.46 GB so, and written in 4.3 s instead of 7.9 (parquet, tried before, took longer); removed
    by the child; child processes, not multiprocessing, so that nothing depends on how the caller's main module
    is guarded."""
    shares: list[list[tuple[int, Job]]] = [[] for _ in range(max(1, min(processes, len(jobs))))]
    rows = [0] * len(shares)
    for i, job in sorted(enumerate(jobs), key=lambda ij: -ij[1][1].height):
        least = rows.index(min(rows))
        shares[least].append((i, job))
        rows[least] += job[1].height
    children: list[subprocess.Popen] = []
    try:
        for share in shares:
            if share:
                children.append(_spawn(folder, share))
    except BaseException:  # a later writer could not start (disk full, no process): none is left writing
        stop_xlsx_writers(children)
        raise
    return children


def _spawn(folder: Path, jobs: list[tuple[int, Job]]) -> subprocess.Popen:
    """A writer child for these jobs. The plan goes over as a file: on the command line a province's hundreds of
    county forms would pass Linux's 128 KiB limit on one argument."""
    plan = []
    for i, (path, findings, source_name, run_date) in jobs:
        frame = folder / f".form-{i}.arrow"
        form_inputs(findings).write_ipc(frame, compression="lz4")
        plan.append({"findings": str(frame), "xlsx": str(path), "source_name": source_name, "run_date": run_date})
    plan_file = folder / f".forms-plan-{jobs[0][0]}.json"
    plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "reports.forms", str(plan_file), str(os.getpid())],
                            stderr=subprocess.PIPE, text=True)


def wait_xlsx_writer(child: subprocess.Popen) -> None:
    _, err = child.communicate()
    if child.returncode:
        raise RuntimeError(f"XLSX forms could not be written (exit {child.returncode}): {err[-2000:]}")


def wait_xlsx_writers(children: list[subprocess.Popen]) -> None:
    """Wait for every form writer; raise for the first that failed (the others are stopped)."""
    try:
        for child in children:
            wait_xlsx_writer(child)
    except BaseException:
        stop_xlsx_writers(children)
        raise


def stop_xlsx_writers(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def _write_planned(plan: list[dict]) -> None:
    for job in plan:
        frame = Path(job["findings"])
        write_xlsx(Path(job["xlsx"]), frame_files.read_ipc(frame), job["source_name"], job["run_date"])
        frame.unlink()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        die_with(int(sys.argv[2]))
    plan_file = Path(sys.argv[1])
    _write_planned(json.loads(plan_file.read_text("utf-8")))
    plan_file.unlink(missing_ok=True)
