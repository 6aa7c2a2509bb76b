"""The correction loop over several nights on `uscc synth` data (issue 6, "Verified on data").

Night 1 finds problems. The market bureau returns its XLSX form with a mix of
right fixes, wrong fixes, waivers, a row forged for another department, an
unknown id and a code Excel turned into a number; the justice bureau returns
its CSV form re-saved in GBK; someone drops the editorial form into the market
folder and an empty file into the justice folder. Night 2's extracts carry the
accepted fixes. The ledger, the receipts, the lists and the trend must show
exactly that, with no finding lost or counted twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from checks import ledger
from flows.stages import run_all
from tests.conftest import ROOT
from validators.uscc import calc_check_char

NIGHT1, NIGHT2, NIGHT3 = "2026-11-01", "2026-11-02", "2026-11-03"
FORGED_NOTE = "拒绝：市市场监督管理局报送的文件试图处理市司法局的问题"


# --------------------------------------------------------------------------- what a clerk does

def fill_xlsx(form: Path, dest: Path, answers: dict[str, dict], extra: list[dict] = ()) -> None:
    """Open the protected form as Excel would, type answers (and extra rows), save it."""
    book = openpyxl.load_workbook(form)
    sheet = book["更正清单"]
    col = {c.value: c.column for c in sheet[1]}
    for row in sheet.iter_rows(min_row=2):
        fid = row[col["问题编号"] - 1].value
        for header, value in answers.get(fid, {}).items():
            cell = sheet.cell(row=row[0].row, column=col[header])
            cell.value = value
            if header == "更正后代码" and isinstance(value, float):
                cell.number_format = "0.00E+00"
    for values in extra:
        r = sheet.max_row + 1
        for header, value in values.items():
            sheet.cell(row=r, column=col[header]).value = value
    book.save(dest)


def fill_csv(form: Path, dest: Path, answers: dict[str, dict], encoding: str) -> None:
    """The CSV form as Excel re-saves it in GBK: the same cells, answers typed in."""
    rows = list(csv.reader(io.StringIO(form.read_text("utf-8-sig"))))
    header = rows[0]
    for row in rows[1:]:
        for key, value in answers.get(row[0].strip(), {}).items():
            row[header.index(key)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    dest.write_bytes(out.getvalue().encode(encoding))


def new_extract_xlsx(old: Path, dest: Path, codes: dict[str, str]) -> None:
    """Tonight's extract: yesterday's workbook with some records' codes corrected."""
    book = openpyxl.load_workbook(old)
    sheet = book.worksheets[0]
    for header_row in sheet.iter_rows(min_row=1, max_row=10):
        names = [c.value for c in header_row]
        if "主体编号" in names:
            break
    id_col, code_col = names.index("主体编号"), names.index("统一社会信用代码")
    for row in sheet.iter_rows(min_row=header_row[0].row + 1):
        if row[id_col].value in codes:
            row[code_col].value = codes[row[id_col].value]
    book.save(dest)
    newer(dest)


def new_extract_csv(old: Path, dest: Path, codes: dict[str, str]) -> None:
    from checks.textfile import read_text_file

    rows = list(csv.reader(io.StringIO(read_text_file(old))))
    id_col, code_col = rows[0].index("机构编号"), rows[0].index("统一社会信用代码")
    for row in rows[1:]:
        if row and row[id_col] in codes:
            row[code_col] = codes[row[id_col]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    dest.write_text(out.getvalue(), encoding="utf-8-sig")
    newer(dest)


def newer(path: Path) -> None:
    later = time.time() + 60
    os.utime(path, (later, later))


def wrong(code: str) -> str:
    """The code with its check character swapped for another: invalid."""
    return code[:17] + ("0" if calc_check_char(code[:17]) != "0" else "1")


def load(folder: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(folder / name, infer_schema=False, glob=False)


# --------------------------------------------------------------------------- the nights

@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Play nights 1–3 once; tests read what happened."""
    data = tmp_path_factory.mktemp("loop") / "data"
    shutil.copytree(ROOT / "sample_data", data)  # `uscc synth --records 3000 --seed 2026`
    first = run_all(data, run_date=NIGHT1)
    r1 = data / "reports" / NIGHT1
    f1 = load(r1, "findings.csv")
    market = f1.filter(pl.col("source") == "market")

    def pick(frame: pl.DataFrame, n: int, used: set) -> list[dict]:
        rows = [r for r in frame.iter_rows(named=True) if r["record_id"] not in used]
        chosen = []
        for r in rows:
            if r["record_id"] not in used:
                used.add(r["record_id"])
                chosen.append(r)
            if len(chosen) == n:
                return chosen
        raise AssertionError(f"synthetic data has fewer than {n} such findings")

    used: set[str] = set()
    # records with more than one finding would keep some open after a fix; take single-finding records
    single = market.group_by("record_id").len().filter(pl.col("len") == 1)["record_id"]
    simple = market.filter(pl.col("record_id").is_in(single.to_list()))
    fixes = pick(simple.filter(pl.col("kind").is_in(["bad_charset", "bad_check_char"]) &
                               pl.col("suggested_code").is_not_null()), 3, used)
    wrong_fix, collision, mangled, renamed = pick(simple.filter(pl.col("kind") == "bad_check_char"), 4, used)
    waived, unexplained = pick(simple.filter(pl.col("kind") == "region_outside"), 2, used)
    justice = f1.filter(pl.col("source") == "justice")
    forged = justice.row(0, named=True)
    j_fix = justice.filter((pl.col("kind") == "missing") & (pl.col("confidence") == "high")).row(0, named=True)
    # a valid code held by a different market entity with no finding at all
    holders = pl.read_excel(next((data / "extracts" / "market").glob("*.xlsx")), infer_schema_length=0)
    clean = holders.filter(~pl.col("主体编号").is_in(market["record_id"].to_list())).row(0, named=True)

    answers = {r["finding_id"]: {"处理结果": "已更正", "更正后代码": r["suggested_code"]} for r in fixes}
    answers[wrong_fix["finding_id"]] = {"处理结果": "已更正", "更正后代码": wrong(wrong_fix["suggested_code"] or
                                                                          wrong_fix["uscc"])}
    answers[collision["finding_id"]] = {"处理结果": "已更正", "更正后代码": clean["统一社会信用代码"]}
    answers[mangled["finding_id"]] = {"处理结果": "已更正", "更正后代码": 9.12304001234567e17}
    answers[renamed["finding_id"]] = {"处理结果": "确认无误", "处理说明": "已核对", "名称": renamed["name"] + "（新）"}
    answers[waived["finding_id"]] = {"处理结果": "确认无误", "处理说明": "经核实为外地迁入企业，代码无误"}
    answers[unexplained["finding_id"]] = {"处理结果": "确认无误"}
    extra = [{"问题编号": forged["finding_id"], "记录编号": forged["record_id"], "名称": forged["name"],
              "当前代码": forged["uscc"], "处理结果": "确认无误", "处理说明": "代填"},
             {"问题编号": "0000000000000000", "记录编号": "X", "名称": "X", "当前代码": "X", "处理结果": "已注销"}]
    returns = data / "returns"
    for key in ("market", "justice"):
        (returns / key).mkdir(parents=True, exist_ok=True)
    fill_xlsx(r1 / "market.xlsx", returns / "market" / "市场监管局反馈.xlsx", answers, extra)
    fill_csv(r1 / "justice.csv", returns / "justice" / "司法局反馈.csv",
             {j_fix["finding_id"]: {"处理结果": "已更正", "更正后代码": j_fix["suggested_code"]}}, "gb18030")
    shutil.copy(r1 / "editorial.csv", returns / "market" / "误放的编办清单.csv")
    (returns / "justice" / "空文件.csv").write_bytes(b"")

    market_xlsx = next((data / "extracts" / "market").glob("*.xlsx"))
    new_extract_xlsx(market_xlsx, market_xlsx.with_name("市场主体名录_1102.xlsx"),
                     {r["record_id"]: r["suggested_code"] for r in fixes})
    justice_csv = next((data / "extracts" / "justice").glob("*.csv"))
    new_extract_csv(justice_csv, justice_csv.with_name("司法行政机构名录_1102.csv"),
                    {j_fix["record_id"]: j_fix["suggested_code"]})
    second = run_all(data, run_date=NIGHT2)
    db = data / "state" / "steward.sqlite3"
    after_night2 = (ledger.statuses(db), ledger.audit_log(db))
    rerun = run_all(data, run_date=NIGHT2)
    after_rerun = (ledger.statuses(db), ledger.audit_log(db))
    return {
        "data": data, "db": db, "first": first, "second": second, "rerun": rerun, "f1": f1,
        "fixes": fixes, "wrong_fix": wrong_fix, "collision": collision, "mangled": mangled, "renamed": renamed,
        "waived": waived, "unexplained": unexplained, "forged": forged, "j_fix": j_fix, "clean": clean,
        "after_night2": after_night2, "after_rerun": after_rerun,
    }


def receipt_rows(data: Path, source: str, file_stem: str) -> pl.DataFrame:
    folder = data / "reports" / NIGHT2 / "receipts" / source
    [path] = [p for p in folder.glob("*.csv") if p.stem.endswith(file_stem)]
    assert path.with_suffix(".html").exists()
    return pl.read_csv(path, infer_schema=False, encoding="utf8")


def test_the_ledger_shows_exactly_the_expected_statuses(nights):
    s = ledger.statuses(nights["db"])
    for r in nights["fixes"] + [nights["j_fix"]]:
        assert s[r["finding_id"]] == "fixed", r
    assert s[nights["waived"]["finding_id"]] == "waived"
    for key in ("wrong_fix", "collision", "mangled", "renamed", "unexplained"):
        assert s[nights[key]["finding_id"]] == "rejected-response", key
    assert s[nights["forged"]["finding_id"]] == "open"
    refusals = [e for e in ledger.audit_log(nights["db"], nights["forged"]["finding_id"]) if e["actor"] == "market"]
    assert len(refusals) == 1 and refusals[0]["note"].startswith(FORGED_NOTE)
    audit = load(nights["data"] / "reports" / NIGHT2, "audit.csv")  # what the steward reads
    forged = audit.filter(pl.col("finding_id") == nights["forged"]["finding_id"])
    assert forged.select("source", "actor").row(0) == ("justice", "market") and FORGED_NOTE in forged["note"][0]
    assert audit.height == len([e for e in ledger.audit_log(nights["db"]) if e["run_date"] == NIGHT2])
    assert {r["finding_id"] for r in nights["fixes"]} <= set(audit.filter(pl.col("new_status") == "fixed")["finding_id"])


def test_the_market_receipt_says_why_for_every_row(nights):
    rows = receipt_rows(nights["data"], "market", "市场监管局反馈")
    by_id = {r["问题编号"]: r for r in rows.iter_rows(named=True)}
    assert rows.filter(pl.col("受理结果") == "已受理").height == 4  # three fixes and one waiver
    assert rows.filter(pl.col("受理结果") == "未受理").height == 7
    assert "不是有效的统一社会信用代码" in by_id[nights["wrong_fix"]["finding_id"]]["原因及下一步"]
    assert "正在使用" in by_id[nights["collision"]["finding_id"]]["原因及下一步"]
    assert "Excel 按数字保存" in by_id[nights["mangled"]["finding_id"]]["原因及下一步"]
    assert "只读列“名称”与市信用办的记录不一致" in by_id[nights["renamed"]["finding_id"]]["原因及下一步"]
    assert "写明依据" in by_id[nights["unexplained"]["finding_id"]]["原因及下一步"]
    assert "属于市司法局" in by_id[nights["forged"]["finding_id"]]["原因及下一步"]
    assert "不存在" in by_id["0000000000000000"]["原因及下一步"]
    assert rows.filter(pl.col("受理结果") == "未填写").height == 0  # blank rows are counted, not listed
    html = next((nights["data"] / "reports" / NIGHT2 / "receipts" / "market").glob("*市场监管局反馈.html"))
    market_rows = nights["f1"].filter(pl.col("source") == "market").height
    assert f"未填写“处理结果”的 {market_rows - 9} 行未处理" in html.read_text("utf-8")


def test_bad_files_get_a_receipt_and_change_nothing(nights):
    wrong_form = receipt_rows(nights["data"], "market", "误放的编办清单")
    assert "这是市委编办的更正清单" in wrong_form["原因及下一步"][0]
    empty = receipt_rows(nights["data"], "justice", "空文件")
    assert "空文件" in empty["原因及下一步"][0]
    gbk = receipt_rows(nights["data"], "justice", "司法局反馈")
    assert gbk.filter(pl.col("受理结果") == "已受理")["问题编号"].to_list() == [nights["j_fix"]["finding_id"]]


def test_processed_files_are_archived_and_the_returns_folders_are_empty(nights):
    data = nights["data"]
    assert not [p for p in (data / "returns").rglob("*") if p.is_file() and not p.name.startswith(".")]
    archived = sorted(p.name.split("-", 1)[1] for p in (data / "archive" / "returns").rglob("*") if p.is_file())
    assert archived == sorted(["市场监管局反馈.xlsx", "误放的编办清单.csv", "司法局反馈.csv", "空文件.csv"])


def test_lists_and_forms_follow_the_statuses(nights):
    r2 = nights["data"] / "reports" / NIGHT2
    f2 = load(r2, "findings.csv")
    form = load(r2, "market.csv")
    ids = [i.strip() for i in form["问题编号"]]
    assert nights["waived"]["finding_id"] not in ids  # not raised again
    assert nights["waived"]["finding_id"] in f2["finding_id"].to_list()  # but still accounted for
    rejected = form.filter(pl.col("问题编号").str.strip_chars() == nights["wrong_fix"]["finding_id"])
    assert rejected["上次答复"][0].startswith("上次答复未通过：")
    html = (r2 / "market.html").read_text("utf-8")
    assert "市场监管局反馈.xlsx" in html and "上次答复未通过" in html
    index = (r2 / "index.html").read_text("utf-8")
    assert "部门反馈处理" in index and "整份文件未受理" in index


def test_the_register_counts_the_findings_the_ledger_leaves_open(nights):
    """The register is built beside the ledger from detection's findings; its open findings are the ledger's."""
    r2 = nights["data"] / "reports" / NIGHT2
    register = pl.read_parquet(r2 / "register.parquet")
    f2 = load(r2, "findings.csv")
    unresolved = set(f2.filter(pl.col("status").is_in(list(ledger.UNRESOLVED)))["finding_id"])
    listed = set(register["open_finding_ids"].explode().drop_nulls())
    assert listed == unresolved and register["open_findings"].sum() == len(unresolved)
    assert nights["waived"]["finding_id"] in set(f2["finding_id"]) - listed  # detected again, but waived


def test_the_trend_goes_down_and_nothing_is_lost_or_counted_twice(nights):
    assert nights["second"]["open_findings"] < nights["first"]["open_findings"]
    r2 = nights["data"] / "reports" / NIGHT2
    f2 = load(r2, "findings.csv")
    assert f2["finding_id"].n_unique() == f2.height
    statuses = ledger.statuses(nights["db"])
    assert dict(f2.select("finding_id", "status").rows()) == {i: statuses[i] for i in f2["finding_id"]}
    gone = set(nights["f1"]["finding_id"]) - set(f2["finding_id"])
    assert {statuses[i] for i in gone} == {"fixed"}
    summary = json.loads((r2 / "summary.json").read_text("utf-8"))
    assert sum(summary["findings_by_status"].values()) == f2.height
    history = [h["open"] for h in ledger.history(nights["db"])]
    assert history == [nights["first"]["open_findings"], nights["second"]["open_findings"]]


def test_rerunning_the_night_changes_nothing_and_keeps_the_receipts(nights):
    assert nights["after_rerun"] == nights["after_night2"]
    assert nights["rerun"]["open_findings"] == nights["second"]["open_findings"]
    receipts = list((nights["data"] / "reports" / NIGHT2 / "receipts").rglob("*.html"))
    assert len(receipts) == 4


def test_the_same_file_dropped_again_is_not_processed_twice(nights):
    data, db = nights["data"], nights["db"]
    [first] = (data / "archive" / "returns" / "market").rglob("*市场监管局反馈.xlsx")
    shutil.copy(first, data / "returns" / "market" / "再次报送.xlsx")
    before = ledger.statuses(db)
    run_all(data, run_date=NIGHT3)
    assert ledger.statuses(db) == before
    [receipt] = (data / "reports" / NIGHT3 / "receipts" / "market").glob("*.csv")
    text = receipt.read_text("utf-8-sig")
    assert "重复报送，未处理" in text and f"{NIGHT2} 已处理的文件“市场监管局反馈.xlsx”" in text


# --------------------------------------------------------------------------- crashes

CRASH = """
import os, sys
import checks.returns as returns
from flows.stages import run_all
point = sys.argv[2]
if point == "before-commit":
    import checks.ledger_returns as ledger
    real = ledger._audit
    def audit(*a, **k):
        real(*a, **k)
        os._exit(137)          # killed inside the transaction, after the first change
    ledger._audit = audit
else:
    returns._move = lambda *a, **k: os._exit(137)   # killed after the commit, before the archive
run_all(sys.argv[1], run_date="2026-11-02")
"""


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_run_killed_while_applying_a_return_leaves_the_ledger_consistent(tmp_path, sample_copy, point):
    run_all(sample_copy, run_date=NIGHT1)
    r1 = sample_copy / "reports" / NIGHT1
    f1 = load(r1, "findings.csv").filter(pl.col("source") == "market")
    waive = f1.filter(pl.col("kind") == "region_outside")["finding_id"].head(3).to_list()
    (sample_copy / "returns" / "market").mkdir(parents=True, exist_ok=True)
    fill_xlsx(r1 / "market.xlsx", sample_copy / "returns" / "market" / "反馈.xlsx",
              {i: {"处理结果": "确认无误", "处理说明": "已核对"} for i in waive})
    db = sample_copy / "state" / "steward.sqlite3"
    before = ledger.statuses(db)

    killed = subprocess.run([sys.executable, "-c", CRASH, str(sample_copy), point], cwd=ROOT,
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    after_kill = ledger.statuses(db)
    waived_now = {i for i, s in after_kill.items() if s == "waived"}
    assert waived_now == (set(waive) if point == "after-commit" else set())
    assert {i: s for i, s in after_kill.items() if i not in waive} == {i: s for i, s in before.items() if i not in waive}

    run_all(sample_copy, run_date=NIGHT2)  # the operator reruns the night
    final = ledger.statuses(db)
    assert {i for i, s in final.items() if s == "waived"} == set(waive)
    applied = [e for e in ledger.audit_log(db) if e["new_status"] == "waived"]
    assert len(applied) == 3  # applied exactly once
    assert not list((sample_copy / "returns" / "market").iterdir())


def test_a_late_answer_to_a_fixed_finding_is_told_the_night_it_was_verified(nights):
    from checks.return_judge import _not_answerable

    fixed = nights["fixes"][0]["finding_id"]
    [entry] = ledger.known_findings(nights["db"], [fixed]).values()
    assert _not_answerable(entry) == f"该问题已于 {NIGHT2} 核验为已更正并关闭，无需再处理。"


def test_a_file_outside_every_department_folder_is_listed_not_lost(sample_copy):
    (sample_copy / "returns" / "民政局").mkdir(parents=True)
    (sample_copy / "returns" / "民政局" / "反馈.xlsx").write_bytes(b"x")
    (sample_copy / "returns" / "谁的.csv").write_text("问题编号\n", encoding="utf-8")
    run_all(sample_copy, run_date=NIGHT1)
    html = (sample_copy / "reports" / NIGHT1 / "index.html").read_text("utf-8")
    assert "returns/民政局/反馈.xlsx：目录 民政局 不是已配置的单位" in html
    assert "returns/谁的.csv：直接放在 returns/ 下" in html
    assert (sample_copy / "returns" / "谁的.csv").exists()  # left where it is
