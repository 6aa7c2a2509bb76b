"""A hostile department's extracts (`make_hostile.CASES`): each is decided — refused, rejected or
quarantined with a Chinese reason, or read as documented — in bounded time and memory, and it
costs only its own source. Files are generated at test time; the big ones are never committed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checks.ingest import ingest_source, select_extract
from checks.returns import pending_files, stray_files
from make_hostile import CASES, ROWS, csv_text, far_cell_two_letters
from measure import measure

#: Every hostile file is decided within this (issue 12: ≤ 30 s, ≤ 1 GB above a normal run's peak).
SECONDS = 30
EXTRA_MB = 1024
LIGHT = [c for c in CASES if not c.heavy and c.outcome in ("rejected", "quarantined", "ok")]
HEAVY = [c for c in CASES if c.heavy]
ENTRIES = [c for c in CASES if c.outcome in ("refused", "ignored")]


def extract_dir(tmp_path: Path, case) -> Path:
    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    case.make(folder / case.file)
    return tmp_path


def assert_outcome(case, report: dict, records: int, quarantine: list[str]) -> None:
    reason = report["reason"] or ""
    if case.outcome == "rejected":
        assert report["status"] == "rejected" and case.words in reason, reason
        assert len(reason) < 600, "a reason quotes at most ~200 characters of content"
        assert not re.search(r"[A-Za-z]+(Error|Exception)|Traceback|/tmp/", reason), reason
    else:
        assert report["status"] == "ok", reason
        assert records > 0
        assert report["rows_read"] == report["rows_checked"] + report["rows_quarantined"] + report["rows_blank"]
    if case.outcome == "quarantined":
        assert any(case.words in q for q in quarantine), quarantine
    if case.outcome == "ok" and case.words:
        assert any(case.words in n for n in report["layout_notes"]), report["layout_notes"]


@pytest.fixture(scope="module")
def normal_peak_mb() -> float:
    """Peak memory of ingesting a normal three-row extract the same way (the baseline of the bound)."""
    def normal(path: Path) -> None:
        path.write_bytes(csv_text().encode())
    return measure("normal.csv", normal)["peak_mb"]


@pytest.mark.parametrize("case", LIGHT, ids=[c.file for c in LIGHT])
def test_hostile_extract_gets_its_documented_outcome(case, tmp_path, settings):
    records, quarantine, report = ingest_source(settings.source("editorial"), extract_dir(tmp_path, case))
    assert_outcome(case, report.to_dict(), records.height, quarantine["reason"].to_list())
    for column in ("record_id", "name", "address"):
        assert not records[column].str.contains("\x00").any(), "no NUL byte reaches any output"


@pytest.mark.parametrize("case", HEAVY, ids=[c.file for c in HEAVY])
def test_hostile_extract_is_decided_within_time_and_memory_bounds(case, normal_peak_mb):
    result = measure(case.file, case.make)
    assert "report" in result, result["outcome"]
    assert_outcome(case, result["report"], result["records"], result["quarantine"])
    assert result["seconds"] <= SECONDS, result
    assert result["peak_mb"] <= normal_peak_mb + EXTRA_MB, result


@pytest.mark.parametrize("case", ENTRIES, ids=[c.file for c in ENTRIES])
def test_symlinks_fifos_folders_and_hidden_names_are_listed_never_opened(case, tmp_path, settings):
    data = extract_dir(tmp_path, case)
    (data / "extracts" / "editorial" / "名录.csv").write_bytes(csv_text().encode())
    newest, ignored = select_extract(data / "extracts" / "editorial", data)
    assert newest.name == "名录.csv"
    [entry] = [i for i in ignored if i["file"] == case.file]
    assert case.words in entry["reason"] and entry["refused"] == (case.outcome == "refused")


def test_a_symlink_to_a_system_file_is_refused_and_its_content_reaches_no_report(tmp_path, settings):
    folder = tmp_path / "extracts" / "justice"
    folder.mkdir(parents=True)
    os.symlink("/etc/passwd", folder / "机构名录.csv")
    records, _, report = ingest_source(settings.source("justice"), tmp_path)
    assert report.status == "rejected" and records.height == 0
    assert "拒绝读取 1 项" in report.reason and "符号链接" in report.ignored_files[0]["reason"]
    assert "root:" not in json.dumps(report.to_dict(), ensure_ascii=False)


def test_a_source_folder_that_is_a_symlink_out_of_the_data_dir_is_not_looked_into(tmp_path, settings):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "机构名录.csv").write_bytes(csv_text().encode())
    (tmp_path / "data" / "extracts").mkdir(parents=True)
    os.symlink(outside, tmp_path / "data" / "extracts" / "editorial")
    records, _, report = ingest_source(settings.source("editorial"), tmp_path / "data")
    assert report.status == "rejected" and records.height == 0
    assert "符号链接" in report.ignored_files[0]["reason"]


def test_returned_forms_follow_the_same_rule_and_the_refused_ones_are_listed(tmp_path):
    folder = tmp_path / "returns" / "market"
    folder.mkdir(parents=True)
    (folder / "反馈.csv").write_bytes(b"x")
    os.symlink("/etc/passwd", folder / "链接.csv")
    os.mkfifo(folder / "管道.csv")
    (folder / "..csv").write_bytes(b"x")
    (folder / "子目录").mkdir()
    assert [p.name for p in pending_files(folder)] == ["反馈.csv"]
    listed = {s["file"]: s["reason"] for s in stray_files(tmp_path, ["market"])}
    assert "符号链接" in listed["market/链接.csv"] and "不是普通文件" in listed["market/管道.csv"]
    assert "隐藏文件" in listed["market/..csv"] and "是文件夹" in listed["market/子目录"]
    assert "market/反馈.csv" not in listed


ISOLATED = r"""
import json, sys
from pathlib import Path
from checks.ingest import ingest_all
from checks.settings import load_settings
result = ingest_all(load_settings(), Path(sys.argv[1]))
print(json.dumps({k: [r.status, r.reason, r.rows_checked] for k, r in result.sources.items()}, ensure_ascii=False))
"""


def test_a_workbook_that_aborts_its_parser_costs_only_its_own_source(tmp_path):
    for key in ("editorial", "market", "justice"):
        (tmp_path / "extracts" / key).mkdir(parents=True)
    far_cell_two_letters(tmp_path / "extracts" / "editorial" / "名录.xlsx")  # the parser child aborts on it
    market = ["主体编号", "统一社会信用代码", "主体名称", "主体类型", "法定代表人", "成立日期", "登记状态", "住所"]
    justice = ["机构编号", "统一社会信用代码", "机构名称", "机构类型", "负责人", "批准日期", "状态", "地址"]
    (tmp_path / "extracts" / "market" / "主体.csv").write_bytes(csv_text(market, ROWS).encode())
    (tmp_path / "extracts" / "justice" / "机构.csv").write_bytes(csv_text(justice, ROWS).encode())
    done = subprocess.run([sys.executable, "-c", ISOLATED, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    sources = json.loads(done.stdout.strip().splitlines()[-1])
    assert sources["editorial"][0] == "rejected" and "所需内存超过上限" in sources["editorial"][1]
    assert sources["market"] == ["ok", None, 3] and sources["justice"] == ["ok", None, 3]


@pytest.mark.slow
def test_a_night_over_every_hostile_file_at_once_reports_every_clean_source(tmp_path):
    """Issue 12, done when: the nightly run over a data dir holding all of them finishes, every
    clean source gets its report, and no output holds a NUL or the content of a file outside."""
    from flows.stages import run_all
    from tests.conftest import ROOT

    config = (ROOT / "config" / "steward.toml").read_text("utf-8")
    columns = config[config.index("[sources.columns]"):config.index("[[sources]]", config.index("[sources.columns]"))]
    data = tmp_path / "data"
    for i, case in enumerate(CASES):
        config += f'\n[[sources]]\nkey = "h{i:02d}"\nname = "{case.file}"\ndepartments = ["1"]\n{columns}'
        extract_dir(data / "cases" / f"h{i:02d}", case)
        (data / "extracts").mkdir(exist_ok=True)
        (data / "cases" / f"h{i:02d}" / "extracts" / "editorial").rename(data / "extracts" / f"h{i:02d}")
    (tmp_path / "steward.toml").write_text(config, "utf-8")
    market = ["主体编号", "统一社会信用代码", "主体名称", "主体类型", "法定代表人", "成立日期", "登记状态", "住所"]
    justice = ["机构编号", "统一社会信用代码", "机构名称", "机构类型", "负责人", "批准日期", "状态", "地址"]
    for key, header in (("editorial", None), ("market", market), ("justice", justice)):
        (data / "extracts" / key).mkdir()
        (data / "extracts" / key / "名录.csv").write_bytes((csv_text(header, ROWS) if header else csv_text()).encode())
    (data / "returns" / "market").mkdir(parents=True)
    os.symlink("/etc/passwd", data / "returns" / "market" / "反馈.csv")
    os.mkfifo(data / "returns" / "market" / "管道.csv")

    result = run_all(data, "2026-11-30", config=str(tmp_path / "steward.toml"))
    folder = Path(result["report_dir"])
    summary = json.loads((folder / "summary.json").read_text("utf-8"))["sources"]
    assert all(summary[k]["status"] == "ok" and summary[k]["rows_checked"] == 3 for k in ("editorial", "market", "justice"))
    for i, case in enumerate(CASES):
        expected = "rejected" if case.outcome in ("rejected", "refused", "ignored") else "ok"
        assert summary[f"h{i:02d}"]["status"] == expected, (case.file, summary[f"h{i:02d}"])
    for output in folder.rglob("*"):
        if output.is_file():
            content = output.read_bytes()
            assert b"root:x:0:0" not in content, output
            if output.suffix in (".html", ".json", ".csv"):
                assert b"\x00" not in content, output
    overview = (folder / "index.html").read_text("utf-8")
    assert "returns/market/反馈.csv：是符号链接" in overview and "returns/market/管道.csv：不是普通文件" in overview
    assert "拒绝读取：passwd.csv（是符号链接" in overview


def test_a_returned_workbook_is_bounded_like_an_extract(tmp_path):
    from checks.returns import ReturnFormError, read_return
    from make_hostile import xfd_cell_undeclared

    xfd_cell_undeclared(tmp_path / "反馈.xlsx")
    far_cell_two_letters(tmp_path / "反馈2.xlsx")  # the parser child aborts on it; the run goes on
    with pytest.raises(ReturnFormError, match="单元格 XFD1048576"):
        read_return(tmp_path / "反馈.xlsx")
    with pytest.raises(ReturnFormError, match="所需内存超过上限"):
        read_return(tmp_path / "反馈2.xlsx")


def test_a_returned_form_with_a_huge_header_gets_a_short_reason(tmp_path):
    from checks.returns import ReturnFormError, read_return

    (tmp_path / "反馈.csv").write_bytes(("无" * 100_000 + "\r\n1\r\n").encode())
    with pytest.raises(ReturnFormError) as refused:
        read_return(tmp_path / "反馈.csv")
    assert "无" * 200 + "…" in str(refused.value) and len(str(refused.value)) < 500
