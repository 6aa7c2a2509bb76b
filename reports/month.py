"""Render the steward's monthly progress report into `DATA_DIR/reports/months/YYYY-MM/`, atomically.

`index.html` (per department and county, the trend over the months, the overdue list) and
`progress.xlsx` (the same as sheets, every overdue finding listed). The figures are computed
by `checks.month`; this module only lays them out.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import xlsxwriter

from reports.chart import lines_svg
from reports.render import _ENV, publish_folder, staging_folder
from validators.tables import KINDS, SEVERITY_LABELS, STATUS_LABELS

#: Overdue findings the page lists (the workbook lists every one).
OVERDUE_SHOWN = 500
#: Figure columns in the order and wording of the page and the workbook.
FIGURE_LABELS = {
    "open_start": "月初待处理", "new": "本月新发现", "fixed": "本月已更正", "reopened": "本月重新出现",
    "waived": "本月确认无误", "waiver_lifted": "确认无误后重新判定", "withdrawn": "本月撤销跟踪",
    "open_end": "月末待处理",
    "cleared_share": "清零率", "median_days_to_fix": "更正用时中位数（天）", "overdue": "逾期未解决",
}
#: What each figure means (the page's notes and the workbook's 说明 sheet).
DEFINITIONS = (
    ("统计范围", "错误和警告（与总览“待处理问题”一致），不含提示。"),
    ("数据来源", "全部数字由台账的问题表和审计日志回放得出：某日的状态 = 该日（含）之前最后一次记录的状态变化。"
                "因此事后重新生成同一月份，数字不变。"),
    ("月初 / 月末待处理", "月初前一日 / 月末（本月未结束时为截止日）状态为待处理、已反馈、反馈未通过或重新出现的问题数。"),
    ("本月新发现 / 已更正 / 重新出现 / 确认无误", "本月内记录的相应状态变化次数（同一问题更正后复现又更正，计两次）。"),
    ("确认无误后重新判定", "确认无误的问题因记录变化或市信用办重新打开而回到待处理。"),
    ("撤销跟踪", "所属来源已从配置中删除、经市信用办撤销跟踪的问题（uscc ledger withdraw）。记录编号变更后由新记录接续的问题"
                "视为同一问题，沿用原首次发现日期，既不计新发现也不计已更正。"),
    ("平衡关系", "月初待处理 + 新发现 + 重新出现 + 确认无误后重新判定 − 已更正 − 确认无误 − 撤销跟踪 = 月末待处理。"),
    ("清零率", "本月需处理的问题（月初待处理，或本月新发现、重新出现、重新判定）中，月末已更正或确认无误的比例。"),
    ("更正用时中位数", "本月每次更正距该问题首次发现的天数的中位数。"),
    ("逾期未解决", "月末仍待处理（待处理、重新出现或反馈未通过；已反馈等待核验的不计）、且首次发现早于月末超过处理期限"
               "（错误、警告、提示各自的天数，配置 [due]）的问题。"),
    ("县（区）", "与每晚各县（区）的整改清单相同：按问题所在记录代码第 3–8 位（登记管理机关行政区划码），"
                "代码不能说明时按住所；仍无法确定的记为“未能确定区县”。"),
)


@dataclass
class MonthView:
    """Everything a month's report shows; built by `flows.month`, rendered here."""

    month: str  # YYYY-MM
    city: str
    first: str  # YYYY-MM-DD, the month's first day
    end: str  # the last day counted (the month's last day, or today for a month not yet over)
    complete: bool  # the month is over
    progress: pl.DataFrame  # checks.month.progress
    overdue: pl.DataFrame  # checks.month.overdue
    trend: pl.DataFrame  # checks.month.trend
    overdue_days: dict[str, int]  # Settings.due_days: by severity, and by kind
    source_names: dict[str, str] = field(default_factory=dict)
    nights: list[str] = field(default_factory=list)  # the completed nights of the month (for the reader)
    generated_at: str = ""


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _progress_rows(view: MonthView) -> list[dict]:
    rows = []
    for r in view.progress.iter_rows(named=True):
        rows.append({**r, "source_name": view.source_names.get(r["source"], r["source"]) if r["source"] else "全市合计",
                     "share": _share(r["cleared_share"]), "days": _days(r["median_days_to_fix"])})
    return rows


def _trend_series(view: MonthView) -> tuple[list[str], dict[str, list[int]], list[dict]]:
    months = sorted(view.trend["month"].unique().to_list())
    series, table = {}, []
    for source in sorted(view.trend["source"].unique().to_list()):
        mine = dict(view.trend.filter(pl.col("source") == source).select("month", "open_end").rows())
        series[view.source_names.get(source, source)] = [mine.get(m, 0) for m in months]
    for month in months:
        cells = view.trend.filter(pl.col("month") == month)
        table.append({"month": month, "open": [series[n][months.index(month)] for n in series],
                      "fixed": int(cells["fixed"].sum()), "total": int(cells["open_end"].sum())})
    return months, series, table


def _overdue_rows(view: MonthView, limit: int | None = None) -> list[dict]:
    frame = view.overdue if limit is None else view.overdue.head(limit)
    return [{**r, "source_name": view.source_names.get(r["source"], r["source"]),
             "kind_label": KINDS[r["kind"]].label if r["kind"] in KINDS else r["kind"],
             "severity_label": SEVERITY_LABELS.get(r["severity"], r["severity"]),
             "status_label": STATUS_LABELS.get(r["status"], r["status"])} for r in frame.iter_rows(named=True)]


def render_month(view: MonthView) -> str:
    months, series, trend_table = _trend_series(view)
    rows = _progress_rows(view)
    city = next(r for r in rows if r["level"] == "city")
    return _ENV.get_template("month.html.j2").render(
        view=view, rows=rows, city_row=city, labels=FIGURE_LABELS, definitions=DEFINITIONS,
        chart=lines_svg(months, series, "各部门月末待处理问题数"), trend_names=list(series), trend_table=trend_table,
        overdue=_overdue_rows(view, OVERDUE_SHOWN), overdue_total=view.overdue.height,
        due_text=_due_text(view.overdue_days))


def write_progress_xlsx(path: Path, view: MonthView) -> None:
    """progress.xlsx: 月度进展 (department and county rows), 逐月趋势, 逾期清单 (every overdue finding), 说明.

    Codes, ids and region codes are written as text cells (an 18-digit code must not become a number).
    """
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                           "strings_to_urls": False})
    head = book.add_format({"bold": True, "bg_color": "#EAF2F8", "border": 1, "text_wrap": True})
    text = book.add_format({"num_format": "@"})
    bold_text = book.add_format({"num_format": "@", "bold": True})
    percent = book.add_format({"num_format": "0.0%"})

    def table(sheet, headers: list[str], widths: list[int]) -> None:
        for c, (h, w) in enumerate(zip(headers, widths)):
            sheet.write_string(0, c, h, head)
            sheet.set_column(c, c, w)
        sheet.freeze_panes(1, 0)

    def cell(sheet, r: int, c: int, value, fmt=None) -> None:
        if value is None:
            sheet.write_blank(r, c, None, fmt or text)
        elif isinstance(value, str):
            sheet.write_string(r, c, value, fmt or text)
        else:
            sheet.write_number(r, c, value, fmt)

    sheet = book.add_worksheet("月度进展")
    figures = list(FIGURE_LABELS)
    table(sheet, ["部门", "县（区）代码", "县（区）", *FIGURE_LABELS.values()], [18, 12, 16] + [12] * len(figures))
    for r, row in enumerate(_progress_rows(view), start=1):
        level = row["level"]
        fmt = bold_text if level != "county" else text
        cell(sheet, r, 0, row["source_name"], fmt)
        cell(sheet, r, 1, row["county"] if level == "county" else "", fmt)
        cell(sheet, r, 2, row["county_name"] if level == "county" else "（合计）", fmt)
        for c, key in enumerate(figures, start=3):
            cell(sheet, r, c, row[key], percent if key == "cleared_share" else None)

    months, series, trend_table = _trend_series(view)
    sheet = book.add_worksheet("逐月趋势")
    names = list(series)
    table(sheet, ["月份", *[f"{n} 月末待处理" for n in names], "全市月末待处理", "全市本月已更正"],
          [10] + [16] * len(names) + [14, 14])
    for r, row in enumerate(trend_table, start=1):
        cell(sheet, r, 0, row["month"])
        for c, n in enumerate(row["open"], start=1):
            cell(sheet, r, c, n)
        cell(sheet, r, len(names) + 1, row["total"])
        cell(sheet, r, len(names) + 2, row["fixed"])

    sheet = book.add_worksheet("逾期清单")
    headers = ["部门", "县（区）代码", "县（区）", "问题编号", "记录编号", "名称", "当前代码", "问题类型", "严重程度",
               "月末状态", "首次发现", "已持续天数"]
    table(sheet, headers, [18, 12, 14, 18, 14, 32, 22, 14, 8, 10, 12, 10])
    for r, row in enumerate(_overdue_rows(view), start=1):
        for c, key in enumerate(("source_name", "county", "county_name", "finding_id", "record_id", "name", "uscc",
                                 "kind_label", "severity_label", "status_label", "first_seen", "days_open")):
            cell(sheet, r, c, row[key])

    sheet = book.add_worksheet("说明")
    table(sheet, ["项目", "说明"], [24, 100])
    notes = [("月份", view.month), ("统计期", f"{view.first} 至 {view.end}" + ("" if view.complete else "（本月尚未结束）")),
             ("处理期限", _due_text(view.overdue_days)), ("本月运行", "、".join(view.nights) or "无"), *DEFINITIONS]
    for r, (k, v) in enumerate(notes, start=1):
        cell(sheet, r, 0, k)
        cell(sheet, r, 1, v)
    book.close()


def write_month(reports_root: Path, view: MonthView) -> Path:
    """Write `reports_root/months/<month>/index.html` and `progress.xlsx`; return that folder."""
    root = reports_root / "months"
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / view.month, staging_folder(root, view.month)
    try:
        write_progress_xlsx(tmp / "progress.xlsx", view)
        (tmp / "index.html").write_text(render_month(view), encoding="utf-8")
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _due_text(days: dict[str, int]) -> str:
    """The due days as the 专班 reads them: 错误 30 天、警告 60 天、提示 90 天 (and any kind's own)."""
    from validators.tables import KINDS, SEVERITY_LABELS

    parts = [f"{SEVERITY_LABELS[k]} {days[k]} 天" for k in SEVERITY_LABELS if k in days]
    parts += [f"{KINDS[k].label} {v} 天" for k, v in days.items() if k in KINDS]
    return "、".join(parts)
