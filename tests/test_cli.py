"""`uscc check`: readable Chinese by default, exact JSON, summary, exit codes, no tracebacks."""

import io
import json

import pytest

from flows.cli import main

JSON_KEYS = {"input", "code", "valid", "findings", "suggestions"}


def run(capsys, *args, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_valid_codes_exit_zero_with_readable_lines(capsys):
    code, out, _ = run(capsys, "check", "91110000600037341L", "12100000400002697C")
    assert code == 0 and out.count("有效") == 2


def test_an_invalid_code_exits_one_and_says_where_and_what_to_do(capsys):
    code, out, _ = run(capsys, "check", "91110000600037341X")
    assert code == 1
    assert "第 18 位" in out and "91110000600037341L" in out and "疑似" in out


def test_json_lines_have_exactly_the_documented_keys(capsys):
    code, out, _ = run(capsys, "check", "--json", "91110000600037340L", "9111000060003734IL")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(lines) == 2
    for obj in lines:
        assert set(obj) == JSON_KEYS
        assert all(set(f) == {"kind", "severity", "message", "positions"} for f in obj["findings"])
        assert all(set(s) == {"code", "reason", "confidence"} for s in obj["suggestions"])
    assert [f["kind"] for f in lines[0]["findings"]] == ["bad_org_check", "bad_check_char"]
    assert lines[1]["suggestions"][0]["code"] == "91110000600037341L"


def test_json_masks_a_resident_id_number(capsys):
    _, out, _ = run(capsys, "check", "--json", "11010519491231002X")
    assert "11010519491231002X" not in out and "110105********002X" in out


def test_stdin_and_files(capsys, monkeypatch, tmp_path):
    code, out, _ = run(capsys, "check", "-", stdin="91110000600037341L\n12100000400002697C\n", monkeypatch=monkeypatch)
    assert code == 0 and out.count("有效") == 2
    path = tmp_path / "codes.csv"
    path.write_text("编号,统一社会信用代码\n1,91110000600037341L\n2,无\n", encoding="gb18030")
    code, out, _ = run(capsys, "check", "--input", str(path), "--column", "统一社会信用代码", "--json")
    assert code == 1 and [json.loads(x)["valid"] for x in out.splitlines()] == [True, False]


def test_summary_counts_kinds(capsys, tmp_path):
    path = tmp_path / "codes.txt"
    path.write_text("91110000600037341L\n91110000600037341X\n\n9.12304E+17\n", encoding="utf-8")
    code, out, _ = run(capsys, "check", "--input", str(path), "--summary")
    assert code == 1 and "共 4 个代码：有效 1，无效 3" in out
    assert "bad_check_char" in out and "missing" in out and "excel_mangled" in out


@pytest.mark.parametrize("args,words", [
    (["check"], "没有要校验的代码"),
    (["check", "--input", "/nonexistent.txt"], "找不到输入文件"),
    (["check", "--column", "x", "91110000600037341L"], "--column 需要与 --input 一起使用"),
    (["run", "--data-dir", "/nonexistent"], "数据目录 /nonexistent 不存在"),
])
def test_usage_errors_exit_two_with_a_message(capsys, args, words):
    code, _, err = run(capsys, *args)
    assert code == 2 and words in err and "Traceback" not in err


def test_missing_column_names_what_exists(capsys, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    code, _, err = run(capsys, "check", "--input", str(path), "--column", "代码")
    assert code == 2 and "没有列“代码”" in err and "a、b" in err


def test_the_column_is_found_the_way_ingest_finds_headers(capsys, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("编号,＊统一社会信用代码 \n1,91110000600037341L\n", encoding="utf-8-sig")
    code, out, _ = run(capsys, "check", "--input", str(path), "--column", "统一社会信用代码", "--json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_the_steward_reads_a_findings_history_and_reopens_a_waiver(capsys, sample_copy):
    import polars as pl

    from checks import ledger
    from checks.findings import FINDING_SCHEMA

    db = sample_copy / "state" / "steward.sqlite3"
    row = {c: None for c in FINDING_SCHEMA} | {"finding_id": "f1", "source": "market", "record_id": "R1",
                                               "kind": "bad_check_char", "severity": "error", "name": "某商贸有限公司"}
    ledger.record_run(db, "2026-11-01", pl.DataFrame([row], schema=FINDING_SCHEMA))
    code, _, err = run(capsys, "ledger", "--data-dir", str(sample_copy), "reopen", "f1", "--why", "误判")
    assert code == 2 and "只有已反馈、确认无误、反馈未通过或已撤销跟踪" in err
    verdict = pl.DataFrame([{"row": 2, "finding_id": "f1", "record_id": "R1", "name": None, "answer": "确认无误",
                             "corrected_code": None, "note": "已核对", "verdict": "accepted", "reason": "已受理",
                             "new_status": "waived", "audit_note": None}])
    ledger.apply_return(db, "2026-11-01", ledger.ReturnedFile("market", "a" * 64, "x.csv", "processed", None, None),
                        verdict)
    code, out, _ = run(capsys, "ledger", "--data-dir", str(sample_copy), "reopen", "f1", "--why", "证照与登记不符")
    assert code == 0 and "waived → open" in out
    code, out, _ = run(capsys, "ledger", "--data-dir", str(sample_copy), "show", "f1")
    assert code == 0 and "状态 open" in out and "steward：市信用办重新打开：证照与登记不符" in out


def test_a_returned_files_name_with_line_breaks_stays_on_one_console_line():
    from reports.console import describe_return

    line = describe_return({"source": "justice", "file": "a\nb<x>.csv", "outcome": "processed", "reason": None})
    assert "\n" not in line and "justice/a b<x>.csv" in line
