"""The steward's month (issue 15, items 1 and 6): nights played over two months on the sample data,
then the monthly report checked against what was played.

    2026-09-24  night 1: everything found (first seen)
    2026-10-02  the market bureau corrects record A in its extract (A fixed, 8 days after first seen);
                its returned form waives W and reports B corrected (B responded)
    2026-10-16  B's correction arrives in the extract (B fixed, 22 days)
    2026-10-30  A's old code comes back (A reopened)
    -- October's report --
    2026-11-06  C corrected in the extract (fixed, 43 days); the steward lifts W's waiver
    2026-11-13  the next night: the lifted waiver counts from here
    -- October regenerated: the same figures; November shows C and the lifted waiver
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from checks import ledger, month
from flows.month import report_month
from flows.params import ParameterError, check_month, month_before
from flows.stages import run_all
from tests.conftest import ROOT
from tests.test_loop import fill_xlsx, load, new_extract_xlsx
from validators import regions

NIGHTS = ("2026-09-24", "2026-10-02", "2026-10-16", "2026-10-30", "2026-11-06")
TODAY = "2026-12-01"  # both months are over
LIFTED = "2026-11-13"  # the night after the steward lifted W's waiver


def _sheets(path: Path) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(path)
    return {s.title: [tuple(c.value for c in row) for row in s.iter_rows()] for s in book.worksheets}


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    data = tmp_path_factory.mktemp("month") / "data"
    shutil.copytree(ROOT / "sample_data", data)
    results = {NIGHTS[0]: run_all(data, run_date=NIGHTS[0])}
    r0 = data / "reports" / NIGHTS[0]
    market = load(r0, "findings.csv").filter(pl.col("source") == "market")
    single = market.group_by("record_id").len().filter(pl.col("len") == 1)["record_id"]
    simple = market.filter(pl.col("record_id").is_in(single.to_list()))
    fixable = simple.filter(pl.col("kind").is_in(["bad_check_char", "bad_charset"])
                            & pl.col("suggested_code").is_not_null()).sort("record_id")
    a, b, c = fixable.head(3).iter_rows(named=True)
    w = simple.filter(pl.col("kind") == "region_outside").sort("record_id").row(0, named=True)
    xlsx = next((data / "extracts" / "market").glob("*.xlsx"))

    def extract(name: str, codes: dict[str, str]) -> None:
        nonlocal xlsx
        new_extract_xlsx(xlsx, xlsx.with_name(name), codes)
        xlsx = xlsx.with_name(name)

    (data / "returns" / "market").mkdir(parents=True, exist_ok=True)
    fill_xlsx(r0 / "market.xlsx", data / "returns" / "market" / "十月反馈.xlsx",
              {w["finding_id"]: {"处理结果": "确认无误", "处理说明": "外地迁入企业，代码经核实无误"},
               b["finding_id"]: {"处理结果": "已更正", "更正后代码": b["suggested_code"]}})
    extract("m1002.xlsx", {a["record_id"]: a["suggested_code"]})
    results[NIGHTS[1]] = run_all(data, run_date=NIGHTS[1])
    extract("m1016.xlsx", {b["record_id"]: b["suggested_code"]})
    results[NIGHTS[2]] = run_all(data, run_date=NIGHTS[2])
    extract("m1030.xlsx", {a["record_id"]: a["uscc"]})
    results[NIGHTS[3]] = run_all(data, run_date=NIGHTS[3])
    october = report_month(data, "2026-10", today_=TODAY)
    october_sheets = _sheets(Path(october["workbook"]))
    db = data / "state" / "steward.sqlite3"
    october_figures = month.progress(*ledger.lifecycle(db), "2026-10")

    extract("m1106.xlsx", {c["record_id"]: c["suggested_code"]})
    results[NIGHTS[4]] = run_all(data, run_date=NIGHTS[4])
    ledger.steward_reopen(db, w["finding_id"], "复核发现迁入材料不全")
    results[LIFTED] = run_all(data, run_date=LIFTED)  # a steward's change counts from the next night
    return {"data": data, "db": db, "results": results, "a": a, "b": b, "c": c, "w": w, "october": october,
            "october_sheets": october_sheets, "october_figures": october_figures}


def _row(progress: pl.DataFrame, level: str, source: str | None = None, county: str | None = None) -> dict:
    frame = progress.filter(pl.col("level") == level)
    if source:
        frame = frame.filter(pl.col("source") == source)
    if county:
        frame = frame.filter(pl.col("county") == county)
    [row] = frame.to_dicts()
    return row


def _changes(data: Path, night: str) -> dict:
    return json.loads((data / "reports" / night / "summary.json").read_text("utf-8"))["changes"]


def test_the_month_starts_and_ends_with_the_nights_open_counts(played):
    city = played["october"]["city"]
    assert city["open_start"] == played["results"]["2026-09-24"]["open_findings"]
    assert city["open_end"] == played["results"]["2026-10-30"]["open_findings"]


def test_fixes_reopenings_and_waivers_of_the_month_are_those_played(played):
    city = played["october"]["city"]
    october = [n for n in NIGHTS if n.startswith("2026-10")]
    assert city["fixed"] == sum(_changes(played["data"], n)["fixed"] for n in october) == 2  # A, then B
    assert city["reopened"] == sum(_changes(played["data"], n)["reopened"] for n in october) == 1  # A
    assert city["waived"] == 1 and city["waiver_lifted"] == 0
    assert city["median_days_to_fix"] == 15.0  # A after 8 days, B after 22
    assert city["open_end"] == (city["open_start"] + city["new"] + city["reopened"] + city["waiver_lifted"]
                                - city["fixed"] - city["waived"])


def test_a_fix_counts_in_its_department_and_county(played):
    progress, _ = played["october_figures"]
    for fixed in (played["a"], played["b"]):
        county = fixed["county"]  # the county list the night put it on (its code's region, else its address)
        market_county = _row(progress, "county", "market", county)
        assert market_county["fixed"] >= 1
        assert market_county["county_name"] == (regions.region_name(county) or "未知地区")
    assert _row(progress, "department", "editorial")["fixed"] == 0


def test_county_rows_add_up_to_their_department_and_departments_to_the_city(played):
    progress, _ = played["october_figures"]
    additive = ["open_start", "new", "fixed", "reopened", "waived", "waiver_lifted", "open_end", "overdue"]
    departments = progress.filter(pl.col("level") == "department")
    for dept in departments.iter_rows(named=True):
        counties = progress.filter((pl.col("level") == "county") & (pl.col("source") == dept["source"]))
        assert {k: counties[k].sum() for k in additive} == {k: dept[k] for k in additive}
    city = _row(progress, "city")
    assert {k: departments[k].sum() for k in additive} == {k: city[k] for k in additive}


def test_overdue_is_what_is_still_to_do_past_its_due_date_at_the_month_end(played):
    progress, overdue = played["october_figures"]
    # found on 24 September, 37 days before 31 October: errors (due in 30 days) still to do are overdue,
    # warnings (due in 60) are not yet
    findings, audit = ledger.lifecycle(played["db"])
    at_end = month.statuses_at(audit, dt.date(2026, 10, 31))
    todo = findings.join(at_end, on="finding_id").filter(pl.col("status").is_in(["open", "reopened",
                                                                                   "rejected-response"]))
    assert set(overdue["finding_id"]) == set(todo.filter(pl.col("severity") == "error")["finding_id"])
    assert overdue.height == _row(progress, "city")["overdue"] < _row(progress, "city")["open_end"]
    assert played["a"]["finding_id"] in overdue["finding_id"].to_list()  # reopened: unresolved again
    assert played["w"]["finding_id"] not in overdue["finding_id"].to_list()  # waived
    assert set(overdue["days_open"].to_list()) == {37}
    sheet = played["october_sheets"]["逾期清单"]
    assert len(sheet) - 1 == overdue.height
    codes = {row[6] for row in sheet[1:]}
    assert all(isinstance(code, str) for code in codes if code is not None)  # codes as text cells


def test_the_overdue_threshold_is_one_function_of_first_seen_and_the_month_end():
    findings = pl.DataFrame({"finding_id": ["a", "b", "c"], "first_seen": ["2026-10-01", "2026-10-02", "2026-09-01"],
                             "source": ["market"] * 3, "county": ["230402"] * 3})
    at_end = pl.DataFrame({"finding_id": ["a", "b", "c"], "status": ["open", "responded", "fixed"]})
    late = month.overdue(findings, at_end, dt.date(2026, 10, 31), 29)
    assert late["finding_id"].to_list() == ["a"]  # 30 days > 29; b is 29 days; c is fixed


def test_regenerating_a_month_after_more_nights_gives_the_same_figures(played):
    again = report_month(played["data"], "2026-10", today_=TODAY)
    assert again["city"] == played["october"]["city"]
    assert _sheets(Path(again["workbook"])) == played["october_sheets"]
    progress, overdue = month.progress(*ledger.lifecycle(played["db"]), "2026-10")
    assert progress.equals(played["october_figures"][0]) and overdue.equals(played["october_figures"][1])


def test_the_next_month_shows_its_own_fix_and_the_lifted_waiver(played):
    november = report_month(played["data"], "2026-11", today_=TODAY)["city"]
    assert november["open_start"] == played["october"]["city"]["open_end"]
    assert november["fixed"] == 1 and november["median_days_to_fix"] == 43.0  # C, 24 September → 6 November
    assert november["waiver_lifted"] == 1  # the steward reopened W
    assert november["open_end"] == played["results"]["2026-11-06"]["open_findings"] + 1


def test_the_trend_has_every_month_so_far_per_department(played):
    sheet = played["october_sheets"]["逐月趋势"]
    header, rows = sheet[0], sheet[1:]
    assert [r[0] for r in rows] == ["2026-09", "2026-10"]
    total = header.index("全市月末待处理")
    assert [r[total] for r in rows] == [played["results"]["2026-09-24"]["open_findings"],
                                        played["results"]["2026-10-30"]["open_findings"]]
    assert all(sum(r[1:total]) == r[total] for r in rows)  # the departments add up to the city
    page = (played["data"] / "reports" / "months" / "2026-10" / "index.html").read_text("utf-8")
    assert "各部门逐月趋势" in page and "<polyline" in page and "市市场监督管理局" in page


def test_the_monthly_page_opens_offline_and_escapes_data(played):
    page = (played["data"] / "reports" / "months" / "2026-10" / "index.html").read_text("utf-8")
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "<script" not in page
    assert "progress.xlsx" in page and "逾期未解决" in page


def test_the_overview_draws_a_line_per_department_beside_the_city(played):
    page = (played["data"] / "reports" / "2026-11-06" / "index.html").read_text("utf-8")
    assert "清零进度（各部门）" in page
    for name in ("市委编办", "市市场监督管理局", "市司法局"):
        assert f"{name}（" in page  # the legend, with its last count


def test_month_parameters_are_checked_like_the_nights(tmp_path, sample_copy):
    with pytest.raises(ParameterError, match="YYYY-MM"):
        check_month(sample_copy, "2026/10")
    with pytest.raises(ParameterError, match="不存在"):
        check_month(tmp_path / "nowhere", "2026-10")
    with pytest.raises(ParameterError, match="还没有运行过夜间任务"):
        report_month(sample_copy, "2026-10")
    assert month_before(dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.timezone.utc)) == "2026-11"  # 06:00 on 1 Dec


def test_the_monthly_deployment_runs_on_the_first_at_six_in_shanghai():
    import inspect

    import yaml

    from flows.monthly import monthly

    project = yaml.safe_load((ROOT / "prefect.yaml").read_text("utf-8"))
    deployment = next(d for d in project["deployments"] if d["name"] == "monthly")
    assert deployment["entrypoint"] == "flows/monthly.py:monthly"
    [schedule] = deployment["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 6 1 * *", "Asia/Shanghai")
    assert set(deployment["parameters"]) <= set(inspect.signature(monthly.fn).parameters)


@pytest.mark.prefect
def test_the_monthly_flow_writes_the_month_before_and_refuses_a_wrong_month(prefect_server, sample_copy):
    from flows.monthly import monthly

    run_all(sample_copy, run_date="2026-10-20")
    wrong = monthly(data_dir=str(sample_copy), month="2026-10-01", return_state=True)
    assert wrong.is_failed() and "YYYY-MM" in wrong.message
    assert not (sample_copy / "reports" / "months").exists()
    result = monthly(data_dir=str(sample_copy), month="2026-10")
    assert Path(result["report"]).exists() and Path(result["workbook"]).exists()
    assert result["city"]["new"] == result["city"]["open_end"] > 0


def _three_findings():
    findings = pl.DataFrame({
        "finding_id": ["a", "b", "c"], "source": ["market"] * 3, "record_id": ["1", "2", "3"], "name": ["甲", "乙", "丙"],
        "uscc": ["91230402MA1000001X", "92230422MA2000002Y", "9.12304E+17"],
        "kind": ["bad_check_char", "region_outside", "excel_mangled"], "severity": ["error", "warning", "error"],
        "first_seen": ["2026-09-20", "2026-10-05", "2026-11-02"]})
    audit = pl.DataFrame({
        "id": [1, 2, 3, 4, 5, 6], "finding_id": ["a", "a", "b", "b", "a", "c"],
        "run_date": ["2026-09-20", "2026-10-10", "2026-10-05", "2026-10-12", "2026-11-02", "2026-11-02"],
        "old_status": [None, "open", None, "open", "fixed", None],
        "new_status": ["open", "fixed", "open", "waived", "reopened", "open"], "actor": ["nightly"] * 6})
    return findings, audit


def test_a_status_on_a_day_is_the_last_change_logged_up_to_that_night():
    _, audit = _three_findings()
    assert dict(month.statuses_at(audit, dt.date(2026, 10, 9)).rows()) == {"a": "open", "b": "open"}
    assert dict(month.statuses_at(audit, dt.date(2026, 10, 31)).rows()) == {"a": "fixed", "b": "waived"}
    assert dict(month.statuses_at(audit, dt.date(2026, 11, 30)).rows()) == {"a": "reopened", "b": "waived", "c": "open"}


def test_a_month_counts_only_its_own_changes_and_findings_first_seen_by_its_end():
    findings, audit = _three_findings()
    progress, overdue = month.progress(findings, audit, "2026-10", overdue_days=30, sources=("editorial", "market"))
    city = _row(progress, "city")
    assert (city["open_start"], city["new"], city["fixed"], city["waived"], city["open_end"]) == (1, 1, 1, 1, 0)
    assert city["median_days_to_fix"] == 20.0 and city["cleared_share"] == 1.0 and overdue.height == 0
    assert _row(progress, "department", "editorial")["open_end"] == 0  # a department with nothing still has its row
    assert set(progress.filter(pl.col("level") == "county")["county"]) == {"230402", "230422"}  # c is November's
    november, late = month.progress(findings, audit, "2026-11", overdue_days=30)
    assert _row(november, "county", "market", month.UNKNOWN_COUNTY)["new"] == 1  # 9.12304E+17: no usable region
    assert late["finding_id"].to_list() == ["a"]  # reopened, first seen 71 days before 30 November


def test_the_month_names_a_county_as_the_nights_county_lists_do():
    from checks import counties

    findings = pl.DataFrame({"uscc": ["91230402MA1XYZ0001", None], "county": ["230402", counties.UNKNOWN]})
    names = dict(month.with_county(findings).select("county", "county_name").rows())
    # the lists' file title is "230402 向阳区" / "未能确定区县"; the month's column shows the name alone
    assert names[counties.UNKNOWN] == counties.county_name(counties.UNKNOWN) == "未能确定区县"
    assert counties.county_name("230402") == f"230402 {names['230402']}" and names["230402"] == "向阳区"
