"""The steward's month (issue 15): due dates, overdue lists, reassignment — on the sample data, night by night."""

from __future__ import annotations

import csv
import datetime as dt
import io

import polars as pl

from checks import ledger
from flows.cli import main
from flows.stages import run_all
from tests.test_loop import fill_csv, load
from tests.test_unattended import corrected_market

NIGHT1 = "2026-11-01"


def db_of(data):
    return data / "state" / "steward.sqlite3"


def test_a_finding_is_due_by_its_severity_and_listed_first_once_overdue(sample_copy):
    first, later = "2026-10-01", "2026-11-05"
    run_all(sample_copy, run_date=first)
    f1 = load(sample_copy / "reports" / first, "findings.csv")
    due = dict(f1.select("severity", "due_date").unique().rows())
    assert due == {"error": "2026-10-31", "warning": "2026-11-30", "info": "2026-12-30"}
    assert f1["overdue"].unique().to_list() == ["false"]
    run_all(sample_copy, run_date=later)  # the same extracts five weeks on: the errors are late
    f2 = load(sample_copy / "reports" / later, "findings.csv")
    late = f2.filter(pl.col("overdue") == "true")
    assert set(late["severity"]) == {"error"} and late.height == f2.filter(pl.col("severity") == "error").height
    form = load(sample_copy / "reports" / later, "market.csv")
    assert form["处理期限"].str.strip_chars().head(1).to_list() == ["2026-10-31（已逾期）"]
    index = (sample_copy / "reports" / later / "index.html").read_text("utf-8")
    assert f"已逾期<b>{late.height}</b>" in index
    page = (sample_copy / "reports" / later / "market.html").read_text("utf-8")
    assert "已超过处理期限，排在最前" in page


def test_an_answer_waiting_for_the_next_extract_stops_the_clock(sample_copy):
    run_all(sample_copy, run_date=NIGHT1)
    f1 = load(sample_copy / "reports" / NIGHT1, "findings.csv")
    single = f1.group_by("record_id").len().filter(pl.col("len") == 1)["record_id"]
    target = f1.filter((pl.col("source") == "market") & pl.col("kind").is_in(["bad_check_char", "bad_charset"])
                       & pl.col("record_id").is_in(single.to_list()) & pl.col("suggested_code").is_not_null()
                       ).row(0, named=True)
    (sample_copy / "returns" / "market").mkdir(parents=True, exist_ok=True)
    fill_csv(sample_copy / "reports" / NIGHT1 / "market.csv", sample_copy / "returns" / "market" / "反馈.csv",
             {target["finding_id"]: {"处理结果": "已更正", "更正后代码": target["suggested_code"]}}, "gb18030")
    run_all(sample_copy, run_date="2026-11-02")
    assert ledger.statuses(db_of(sample_copy))[target["finding_id"]] == "responded"
    corrected_market(sample_copy, {})  # a new export on 11-20 in which the record is still wrong
    run_all(sample_copy, run_date="2026-11-20")
    detail = ledger.finding_detail(db_of(sample_copy), target["finding_id"])
    assert detail["status"] == "open"
    # due 2026-12-01, stopped from 11-02 (the answer) to 11-20 (the extract that refuted it): 18 days later
    assert detail["due_date"] == (dt.date(2026, 12, 1) + dt.timedelta(days=18)).isoformat()


def test_a_reassigned_finding_goes_to_the_new_department_and_only_it_may_answer(sample_copy, capsys):
    run_all(sample_copy, run_date=NIGHT1)
    f1 = load(sample_copy / "reports" / NIGHT1, "findings.csv")
    target = f1.filter((pl.col("source") == "market") & (pl.col("kind") == "region_outside")).row(0, named=True)
    fid = target["finding_id"]
    code = main(["ledger", "--data-dir", str(sample_copy), "reassign", fid, "--to", "justice"])
    assert code == 2 and "--why" in capsys.readouterr().err
    code = main(["ledger", "--data-dir", str(sample_copy), "reassign", fid, "--to", "justice",
                 "--why", "经核实该主体为律师事务所，由司法局登记"])
    assert code == 0 and "改为市司法局处理" in capsys.readouterr().out
    run_all(sample_copy, run_date="2026-11-02")
    r2 = sample_copy / "reports" / "2026-11-02"
    assert fid not in [i.strip() for i in load(r2, "market.csv")["问题编号"]]
    assert fid in [i.strip() for i in load(r2, "justice.csv")["问题编号"]]
    assert "市信用办改派的问题" in (r2 / "index.html").read_text("utf-8")
    for key in ("market", "justice"):
        (sample_copy / "returns" / key).mkdir(parents=True, exist_ok=True)
        fill_csv(r2 / f"{key}.csv", sample_copy / "returns" / key / f"{key}-反馈.csv",
                 {fid: {"处理结果": "确认无误", "处理说明": "已核对登记机关"}}, "utf-8-sig")
    # market's own form no longer carries the row: market copies it from justice's form into its own file
    forged = sample_copy / "returns" / "market" / "market-反馈.csv"
    rows = list(csv.reader(io.StringIO(forged.read_text("utf-8-sig"))))
    justice = list(csv.reader(io.StringIO((r2 / "justice.csv").read_text("utf-8-sig"))))
    header = justice[0]
    row = next(r for r in justice[1:] if r[0].strip() == fid)
    row[header.index("处理结果")], row[header.index("处理说明")] = "确认无误", "已核对"
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows + [row])
    forged.write_text(out.getvalue(), encoding="utf-8-sig")
    run_all(sample_copy, run_date="2026-11-03")
    statuses = ledger.statuses(db_of(sample_copy))
    assert statuses[fid] == "waived"
    refusals = [e for e in ledger.audit_log(db_of(sample_copy), fid) if e["actor"] == "market"]
    assert refusals and "试图处理市司法局的问题" in refusals[0]["note"]
    waived_by = [e for e in ledger.audit_log(db_of(sample_copy), fid) if e["new_status"] == "waived"]
    assert [e["actor"] for e in waived_by] == ["justice"]


def test_each_department_gets_county_lists_that_add_up_and_a_county_form_is_judged_like_its_own(sample_copy):
    run_all(sample_copy, run_date=NIGHT1)
    r1 = sample_copy / "reports" / NIGHT1
    f1 = load(r1, "findings.csv")
    for key in ("editorial", "market", "justice"):
        listed = f1.filter((pl.col("owner") == key) & (pl.col("status") != "waived"))
        counties = sorted((r1 / key).glob("*.html"))
        per_county = {p.stem: load(r1 / key, f"{p.stem}.csv").height for p in counties}
        assert sum(per_county.values()) == load(r1, f"{key}.csv").height == listed.height
        for region, n in per_county.items():
            assert listed.filter(pl.col("county") == region).height == n
            assert region == "unknown" or (len(region) == 6 and region.isdigit())
        page = (r1 / f"{key}.html").read_text("utf-8")
        assert all(f'href="{key}/{p.stem}.html"' in page for p in counties)
    # a county office of the market bureau returns its own county form: judged like the department's
    district = load(r1 / "market", "230402.csv")
    row = next(r for r in district.iter_rows(named=True) if r["问题类型"] == "登记机关不在本市") \
        if "登记机关不在本市" in district["问题类型"].to_list() else district.row(0, named=True)
    fid = row["问题编号"].strip()
    (sample_copy / "returns" / "market").mkdir(parents=True, exist_ok=True)
    fill_csv(r1 / "market" / "230402.csv", sample_copy / "returns" / "market" / "向阳分局.csv",
             {fid: {"处理结果": "确认无误", "处理说明": "向阳分局已核对证照"}}, "gb18030")
    run_all(sample_copy, run_date="2026-11-02")
    assert ledger.statuses(db_of(sample_copy))[fid] == "waived"
    county_page = (sample_copy / "reports" / "2026-11-02" / "market" / "230402.html").read_text("utf-8")
    assert "230402 向阳区" in county_page and 'href="../index.html"' in county_page
