"""The steward's monthly progress report as a plain function: the Prefect flow (`flows.monthly`) and
`uscc report month` both call it.

    check the parameters → read the ledger's findings and audit log → figures (`checks.month`)
    → `reports/months/YYYY-MM/index.html` + `progress.xlsx` (`reports.month`)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from checks import ledger
from checks import month as figures
from flows.params import Month, ParameterError, check_month, today
from checks.catalog import ledger_path
from reports.month import MonthView, write_month


def report_month(data_dir: object, month: object = None, config: str | None = None,
                 scheduled: dt.datetime | None = None, today_: str | None = None) -> dict:
    """Write the month's report; return where it is and the city's figures.

    Raises `flows.params.ParameterError` for a wrong parameter or a data directory without a ledger.
    """
    params = check_month(data_dir, month, config, scheduled)
    return write_report(params, today_ or today())


def write_report(params: Month, today_: str) -> dict:
    db = ledger_path(params.data_dir, params.settings)
    if not db.exists():
        raise ParameterError(f"{db} 不存在：数据目录 {params.data_dir} 还没有运行过夜间任务，没有可统计的台账。")
    found, audit = ledger.lifecycle(db)
    first, last = figures.month_bounds(params.month)
    end = min(last, dt.date.fromisoformat(today_))
    progress, overdue = figures.progress(found, audit, params.month, end, params.settings.due_days,
                                         tuple(s.key for s in params.settings.sources))
    start_month = min(found["first_seen"].min() or params.month, params.month + "-01")[:7]
    trend = figures.trend(found, audit, figures.months_between(start_month, params.month), end)
    nights = [h["run_date"] for h in ledger.history(db, limit=100_000)
              if first.isoformat() <= h["run_date"] <= end.isoformat()]
    view = MonthView(month=params.month, city=params.settings.city.name, first=first.isoformat(), end=end.isoformat(),
                     complete=end == last, progress=progress, overdue=overdue, trend=trend,
                     overdue_days=params.settings.due_days, source_names=params.settings.source_names,
                     nights=nights, generated_at=dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    folder = write_month(Path(params.data_dir) / "reports", view)
    city = progress.filter(progress["level"] == "city").to_dicts()[0]
    return {"month": params.month, "report": str(folder / "index.html"), "workbook": str(folder / "progress.xlsx"),
            "complete": end == last, "city": city, "overdue": overdue.height}


def describe(result: dict) -> str:
    """One line for the log and the command line."""
    c = result["city"]
    share = "—" if c["cleared_share"] is None else f"{c['cleared_share'] * 100:.1f}%"
    return (f"{result['month']} 月报：月初待处理 {c['open_start']}，新发现 {c['new']}，已更正 {c['fixed']}，"
            f"重新出现 {c['reopened']}，确认无误 {c['waived']}，"
            + (f"撤销跟踪 {c['withdrawn']}，" if c.get("withdrawn") else "")
            + f"月末待处理 {c['open_end']}，清零率 {share}，"
            f"逾期 {c['overdue']}" + ("" if result["complete"] else "（本月尚未结束）"))
