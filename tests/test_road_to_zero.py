"""The road-to-zero number on real nights: the overview, summary.json, the ledger and the month say the same.

A registry that renumbers records, deletes the stale copy of a duplicate record or sends a row
twice (quarantined) must not make the number move without a fix, nor leave findings nobody can
see or close.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import openpyxl
import polars as pl

from checks import ledger, month
from flows.stages import run_all

NIGHT1, NIGHT2, NIGHT3 = "2026-11-02", "2026-11-03", "2026-11-04"
JUSTICE = Path("extracts/justice/司法行政机构名录.csv")
MARKET = Path("extracts/market/市场主体名录.xlsx")


def findings_csv(data: Path, night: str) -> list[dict]:
    return list(csv.DictReader((data / "reports" / night / "findings.csv").open(encoding="utf-8-sig")))


def rewrite_justice(data: Path, change) -> None:
    """The justice bureau's next export: `change(rows)` edits the rows (header first)."""
    path = data / JUSTICE
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"))))
    change(rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8-sig")


def delete_market_record(data: Path, record_id: str) -> None:
    """The market bureau's next export without one record (its stale duplicate copy)."""
    book = openpyxl.load_workbook(data / MARKET)
    sheet = book.active
    row = next(r[0].row for r in sheet.iter_rows() if r[0].value == record_id)
    sheet.delete_rows(row)
    book.save(data / MARKET)


def counted(data: Path) -> int:
    """Unresolved errors and warnings in the ledger."""
    with sqlite3.connect(data / "state" / "steward.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM findings WHERE severity != 'info' AND status IN "
                            "('open', 'reopened', 'responded', 'rejected-response')").fetchone()[0]


def month_open_end(data: Path, night: str) -> int:
    progress, _ = month.progress(*ledger.lifecycle(data / "state" / "steward.sqlite3"), night[:7])
    return progress.filter(pl.col("level") == "city")["open_end"].item()


def test_renumbered_records_deleted_copies_and_quarantined_rows_keep_the_number_true(sample_copy):
    data = sample_copy
    first = run_all(data, NIGHT1)
    found = findings_csv(data, NIGHT1)
    justice_ids = sorted({f["record_id"] for f in found if f["source"] == "justice" and f["severity"] != "info"})[:8]
    copy = next(f for f in found if f["kind"] == "duplicate_record" and f["source"] == "market")

    # night 2: the justice bureau renumbers eight records (the problems stay); the market bureau deletes the copy
    rewrite_justice(data, lambda rows: [r.__setitem__(0, "N" + r[0]) for r in rows[1:] if r and r[0] in justice_ids])
    delete_market_record(data, copy["record_id"])
    second = run_all(data, NIGHT2)
    summary = json.loads((data / "reports" / NIGHT2 / "summary.json").read_text("utf-8"))
    statuses = ledger.statuses(data / "state" / "steward.sqlite3")
    renumbered = [f for f in found if f["record_id"] in justice_ids]
    assert all(statuses[f["finding_id"]] == "superseded" for f in renumbered)
    successors = [f for f in findings_csv(data, NIGHT2) if f["record_id"] in {"N" + i for i in justice_ids}]
    assert len(successors) == len(renumbered) and all(f["status"] == "open" for f in successors)
    # a renumbering keeps the clock: the successors were first seen on night 1
    assert {ledger.finding_detail(data / "state" / "steward.sqlite3", f["finding_id"])["first_seen"]
            for f in successors} == {NIGHT1}
    assert statuses[copy["finding_id"]] == "fixed"
    assert summary["changes"]["carried"] == len(renumbered) and summary["changes"]["new"] == 0
    # one fix (the deleted copy): nothing else moved the number
    assert second["open_findings"] == first["open_findings"] - 1
    assert second["open_findings"] == summary["open"] == counted(data) == month_open_end(data, NIGHT2)

    # night 3: a justice row is sent twice (both quarantined): its findings are on no list, yet still to do
    twice = successors[0]["record_id"]
    rewrite_justice(data, lambda rows: rows.append(next(r for r in rows if r and r[0] == twice)))
    third = run_all(data, NIGHT3)
    off = list(csv.DictReader((data / "reports" / NIGHT3 / "off_list.csv").open(encoding="utf-8")))
    assert {o["record_id"] for o in off} == {twice} and {o["reason"] for o in off} == {"quarantined"}
    assert third["open_findings"] == second["open_findings"] == counted(data) == month_open_end(data, NIGHT3)
    overview = (data / "reports" / NIGHT3 / "index.html").read_text("utf-8")
    assert "不在本期清单上的待处理问题" in overview and "记录本期被隔离" in overview
