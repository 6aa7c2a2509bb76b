"""Reports show findings faithfully: escaped, highlighted, printable, and forms that survive Excel."""

import csv
import io
import json
import re

import openpyxl
import polars as pl
import pytest
from markupsafe import escape

from checks.findings import FINDING_SCHEMA
from checks.returns import read_return
from reports import forms
from reports.cells import list_rows, row_pieces
from reports.render import RunView, render_department, render_index, write_run

XSS = "<script>alert(1)</script>"


def finding(**over):
    base = {c: None for c in FINDING_SCHEMA} | {
        "finding_id": "f1", "source": "market", "record_id": "SC001", "uscc": "912304001234567890",
        "name": "宏发商贸有限公司", "kind": "bad_check_char", "severity": "error", "message": "第 18 位校验码不符",
        "positions": "18", "suggested_code": "91230400123456789X", "confidence": "medium",
        "suggestion_reason": "按校验规则计算", "related": "", "related_detail": "[]", "status": "open",
        "file": "m.xlsx", "row": 2}
    return base | over


def findings_frame(*rows):
    return pl.DataFrame(list(rows), schema=FINDING_SCHEMA)


def view(frame, sources=None):
    sources = sources or [{"key": "market", "name": "市市场监督管理局", "status": "ok", "reason": None, "file": "m.xlsx",
                           "encoding": "xlsx", "rows_read": 1, "rows_checked": 1, "rows_quarantined": 0,
                           "rows_blank": 0, "ignored_files": [], "extra_columns": [], "notes": [], "notes_total": 0}]
    return RunView("2026-11-28", "鹤岗市", sources, frame, pl.DataFrame(), [{"run_date": "2026-11-28", "open": 1}],
                   {"new": 1, "fixed": 0, "reopened": 0, "open": 1}, {"读取": 0.1})


def list_page(*rows):
    frame = findings_frame(*rows)
    return render_department(view(frame), {"key": "market", "name": "市场监管局"}, frame).decode("utf-8")


def test_the_list_marks_the_wrong_positions_of_a_code_and_escapes_it():
    html = list_page(finding(uscc="91110000600037341X", positions="3,18"),
                     finding(finding_id="f2", uscc="<b>000600037341234", positions="1"),
                     finding(finding_id="f3", uscc=XSS, positions="1"))
    assert '<td class="code">91<mark>1</mark>10000600037341<mark>X</mark></td>' in html
    assert '<td class="code"><mark>&lt;</mark>b&gt;000600037341234</td>' in html  # 18 characters: marked, escaped
    assert '<td class="code">&lt;script&gt;alert(1)&lt;/script&gt;</td>' in html  # not a code: escaped whole


def test_each_wrong_position_is_marked_alone_whatever_the_runs_and_the_characters_around_it():
    # the obvious rule, character by character: positions are the values between the commas, 1 to 18; only a code
    # of 18 characters is marked; every character escaped as the page escapes text
    def expected(code, positions):
        if code is None:
            return ""
        wanted = set((positions or "").split(","))
        if len(code) != 18:
            return str(escape(code))
        return "".join(f"<mark>{escape(ch)}</mark>" if str(i + 1) in wanted else str(escape(ch))
                       for i, ch in enumerate(code))

    cases = [("91110000600037341X", "3,4,5,6,7,8"), ("91110000600037341X", "9,10,11,12,13,14,15,16,17"),
             ("91110000600037341X", "1,3,5,18"), ("91110000600037341X", "18,2,2,1"),  # unordered, twice
             ("91110000600037341X", "03,0,19,x, 4,"), ("91110000600037341X", ""), ("91110000600037341X", None),
             ("9<&>\"'0000600037341X", "2,3,4,5,6"), ("<b>&000600037341\n4", "1,2,17,18"), ("某某某", "1"),
             ("91110000600037341Xe\u0301", "18"), ("e\u0301110000600037341", "1,2"), (None, "1"),
             ("9111000060003734" + "\U0001F600" + "X", "17")]
    html = list_page(*(finding(finding_id=f"f{i}", record_id=f"R{i:02d}", uscc=code, positions=positions)
                       for i, (code, positions) in enumerate(cases)))
    shown = re.findall(r'<td class="num">\d+</td>\n  <td class="code">R(\d+)</td>\n  <td>[^<]*</td>\n'
                       r'  <td class="code">(.*?)</td>\n', html, re.S)
    assert len(shown) == len(cases)
    for number, code_html in shown:
        assert code_html == expected(*cases[int(number)]), cases[int(number)]


def test_a_county_page_taking_rows_its_department_page_built_reads_as_if_built_alone():
    # a county page's rows are on its department's page too: built once, each page numbers them and marks the
    # rows after its first `page_size` as its own; rows the department page did not show are built for the county
    kinds = ["bad_check_char", "duplicate_code", "name_mismatch", "missing"]
    frame = findings_frame(*(finding(finding_id=f"f{i}", record_id=f"R{i}", kind=kinds[i % 4],
                                     severity=["error", "warning", "info"][i % 3], positions=str(i + 1),
                                     name=f"<{i}>公司", row=i + 2) for i in range(7))) \
        .with_columns(overdue=pl.Series([i % 2 == 0 for i in range(7)]), due_date=pl.lit("2026-12-31"))
    department = frame[[5, 0, 3, 6]]  # another page's rows, in its order, without some of this page's
    built = row_pieces(department)
    for page in (frame, frame[[6, 1, 3]], frame[[2, 4]], frame[[0]], department):
        alone = list_rows(page, 2)
        assert list_rows(page, 2, built) == alone and alone.count(b'class="later"') == max(page.height - 2, 0)
    assert list_rows(frame[[1]], 2, built[:0]) == list_rows(frame[[1]], 2)


def test_a_list_without_findings_says_so_and_has_no_table():
    html = list_page()
    assert "本期未发现问题。" in html and "<tbody>" not in html and "<!--rows-->" not in html


def test_every_value_from_data_is_escaped_on_the_list_and_a_missing_one_shows_nothing():
    related = json.dumps([{"source": "editorial", "source_name": "市委编办", "record_id": XSS, "name": None,
                           "code": "<i>"}], ensure_ascii=False)
    frame = findings_frame(finding(record_id="R&1", name=XSS, message=f"说明{XSS}", group_size=2, weakest_score=87.5,
                                   evidence="'证据'", related_detail=related, suggestion_reason=None, row=None,
                                   status="rejected-response"),
                           finding(finding_id="f2", name=None, suggested_code=None)) \
        .with_columns(response=pl.Series([f"答复{XSS}", None]), due_date=pl.Series(["2026-12-31", None]),
                      overdue=pl.Series([True, False]), owner=pl.lit("market"), county=pl.lit(None, pl.String))
    html = render_department(view(frame), {"key": "market", "name": "市场监管局"}, frame).decode("utf-8")
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    assert "<script>" not in body and "<i>" not in body and "None" not in body
    assert '<td class="code">R&amp;1</td>' in body and "说明&lt;script&gt;" in body
    assert "同组 2 条，最弱名称相似度 88；&#39;证据&#39;" in body  # "%.0f": 87.5 rounds to even
    assert '<li>市委编办 &lt;script&gt;alert(1)&lt;/script&gt;  <span class="code">&lt;i&gt;</span></li>' in body
    assert "反馈未通过" in body and '<span class="badge sev-error">已逾期</span><div class="small">期限 2026-12-31</div>' \
        in body and "答复&lt;script&gt;" in body
    assert body.count("<tr ") == 2 and '<td class="num"></td>' in body and '<span class="small">—</span>' in body


def test_rows_past_a_page_are_there_for_filters_but_shown_one_click_away():
    from reports.render import PAGE_SIZE
    html = list_page(*[finding(finding_id=f"f{i}", record_id=f"SC{i:04d}") for i in range(PAGE_SIZE + 3)])
    assert html.count("<tr data-kind=") == PAGE_SIZE + 3 and html.count(' class="later">') == 3
    assert f'<td class="num">{PAGE_SIZE + 3}</td>' in html


def test_names_from_data_are_escaped_in_the_list():
    html = render_department(view(findings_frame(finding(name=XSS))), {"key": "market", "name": "市场监管局"},
                             findings_frame(finding(name=XSS))).decode("utf-8")
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_list_has_counts_labels_and_no_external_resources():
    f = findings_frame(finding(), finding(finding_id="f2", kind="region_outside", severity="warning"))
    html = render_department(view(f), {"key": "market", "name": "市市场监督管理局"}, f).decode("utf-8")
    assert "市市场监督管理局" in html and "校验码错误" in html and "疑似" in html
    assert "http://" not in html and "https://" not in html and "src=" not in html
    assert "@page { size: A4 landscape" in html


def test_every_text_cell_of_a_machine_csv_is_neutralized_as_one_cell_alone_would_be(tmp_path):
    # findings.csv, audit.csv and the register: a column is asked first whether it holds formula-like text, and only
    # such columns are rewritten; what a spreadsheet opens is each cell as `neutralize` makes it
    from checks.form import neutralize

    frame = pl.DataFrame({"clean": ["鹤岗", "a=b", None, ""], "one": ["x", "=1+1", None, "y"],
                          "quoted": ["'=x", "'abc", "@SUM(A1)", "\tz"], "number": [1, -2, 3, 4],
                          "empty": pl.Series([None] * 4, dtype=pl.String), "minus": ["-", "+", "\r", "ok"]})
    path = tmp_path / "machine.csv"
    forms.write_neutralized_csv(frame, path)
    back = pl.read_csv(path, infer_schema=False)
    for column in ("clean", "one", "quoted", "minus", "empty"):
        expected = [None if v is None else neutralize(v) for v in frame[column].to_list()]
        assert back[column].to_list() == expected, column
    assert back["number"].to_list() == ["1", "-2", "3", "4"]  # numbers are not text: written as they are
    lazy_path = tmp_path / "lazy.csv"
    forms.write_neutralized_csv(frame.lazy(), lazy_path)
    assert lazy_path.read_bytes() == path.read_bytes()


def test_csv_form_keeps_codes_as_text_and_neutralizes_formulas(tmp_path):
    path = tmp_path / "market.csv"
    f = findings_frame(finding(name="=HYPERLINK(\"http://evil\")"), finding(finding_id="f2", uscc="-1"))
    forms.write_csv(path, f)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "\t912304001234567890" in text and "'=HYPERLINK" in text and "'-1" in text
    back = read_return(path)
    assert back["当前代码"].to_list() == ["912304001234567890", "-1"]
    assert back["名称"][0] == "=HYPERLINK(\"http://evil\")"  # the reader undoes the neutralizing apostrophe


def test_xlsx_form_is_protected_with_a_drop_down_and_text_cells(tmp_path):
    path = tmp_path / "market.xlsx"
    forms.write_xlsx(path, findings_frame(finding()), "市市场监督管理局", "2026-11-28")
    book = openpyxl.load_workbook(path)
    sheet = book["更正清单"]
    headers = [c.value for c in sheet[1]]
    assert headers[-3:] == ["处理结果", "更正后代码", "处理说明"]
    assert sheet.protection.sheet
    assert sheet.cell(2, headers.index("当前代码") + 1).data_type == "s"
    assert sheet.cell(2, headers.index("更正后代码") + 1).number_format == "@"
    assert not sheet.cell(2, headers.index("处理结果") + 1).protection.locked
    assert sheet.cell(2, 1).protection.locked
    validation = sheet.data_validations.dataValidation[0]
    assert validation.formula1 == '"已更正,确认无误,已注销,非本单位"'
    back = read_return(path)
    assert back["当前代码"].to_list() == ["912304001234567890"]
    assert back["问题编号"].to_list() == ["f1"]


def test_write_run_is_atomic_and_complete(tmp_path):
    root = tmp_path / "reports"
    folder = write_run(root, view(findings_frame(finding())))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["findings.csv", "index.html", "market", "market.csv", "market.html", "market.xlsx",
                     "summary.json"]
    assert sorted(p.name for p in (folder / "market").iterdir()) == ["unknown.csv", "unknown.html", "unknown.xlsx"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    assert set(summary) >= {"run_date", "sources", "findings_by_kind", "findings_by_status", "stage_seconds"}
    assert summary["sources"]["market"]["rows_read"] == 1


def test_a_failed_render_leaves_the_previous_report_in_place(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    write_run(root, view(findings_frame(finding())))
    before = (root / "2026-11-28" / "index.html").read_text("utf-8")
    monkeypatch.setattr(forms, "write_csv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_run(root, view(findings_frame(finding(name="新名称"))))
    assert (root / "2026-11-28" / "index.html").read_text("utf-8") == before
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_findings_csv_has_the_spec_columns(tmp_path):
    folder = write_run(tmp_path, view(findings_frame(finding())))
    header = (folder / "findings.csv").read_text("utf-8").splitlines()[0].split(",")
    for column in ("finding_id", "source", "record_id", "uscc", "name", "kind", "severity", "message",
                   "suggested_code", "confidence", "related", "status"):
        assert column in header


def test_a_form_longer_than_an_excel_sheet_continues_on_more_sheets_and_reads_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(forms, "XLSX_MAX_ROWS", 2)
    rows = findings_frame(*[finding(finding_id=f"f{i}", record_id=f"SC{i:03d}") for i in range(5)])
    path = tmp_path / "market.xlsx"
    forms.write_xlsx(path, rows, "市市场监督管理局", "2026-11-28")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["更正清单", "更正清单(2)", "更正清单(3)", "填写说明"]
    assert [book[s].max_row for s in book.sheetnames[:3]] == [3, 3, 2]  # header + at most two rows each
    assert read_return(path)["问题编号"].to_list() == [f"f{i}" for i in range(5)]


def test_a_list_too_long_for_a_browser_shows_errors_first_and_says_where_the_rest_is(monkeypatch):
    from reports import render

    monkeypatch.setattr(render, "HTML_MAX_ROWS", 2)
    frame = findings_frame(finding(finding_id="w", severity="warning", kind="region_outside", record_id="A"),
                           finding(finding_id="e2", record_id="C"), finding(finding_id="e1", record_id="B"))
    html = render_department(view(frame), view(frame).sources[0], frame).decode("utf-8")
    assert "本页只列出前 2 条" in html and "全部 3 条见填报表" in html
    assert ">B<" in html and ">C<" in html and ">A<" not in html


def test_big_runs_write_the_xlsx_forms_in_a_second_process_with_the_same_result(tmp_path, monkeypatch):
    from reports import render

    related = json.dumps([{"source": "editorial", "source_name": "市委编办", "record_id": "E9", "name": "宏发中心",
                           "code": "12230400MB0000001"}], ensure_ascii=False)
    frame = findings_frame(finding(), finding(finding_id="f2", record_id="SC002", name="=cmd|' /C calc'!A0",
                                              related="editorial:E9", related_detail=related))
    # every column a form shows, the ledger's too: the child is sent only what the form reads (`FORM_READS`)
    frame = frame.with_columns(status=pl.Series(["rejected-response", "open"]), due_date=pl.lit("2026-11-27"),
                               response=pl.Series(["上次答复未通过：更正后代码仍不符合校验规则", None]),
                               overdue=pl.Series([False, True]), owner=pl.lit("market"), county=pl.lit("230404"))
    here = write_run(tmp_path / "here", view(frame))
    monkeypatch.setattr(render, "FORMS_IN_A_PROCESS", 0)
    child = write_run(tmp_path / "child", view(frame))
    assert read_return(child / "market.xlsx").equals(read_return(here / "market.xlsx"))
    for form in ("market.xlsx", "market/230404.xlsx"):
        sheets = [[list(ws.values) for ws in openpyxl.load_workbook(folder / form, read_only=True).worksheets]
                  for folder in (here, child)]
        assert sheets[0] == sheets[1]
    shown = str(sheets[1])
    assert "上次答复未通过" in shown and "（已逾期）" in shown and "宏发中心 12230400MB0000001" in shown
    assert not list(child.glob(".form-*"))  # the hand-over files are gone


def test_a_second_process_that_fails_leaves_the_previous_report_in_place(tmp_path, monkeypatch):
    from reports import render

    root = tmp_path / "reports"
    write_run(root, view(findings_frame(finding())))
    before = (root / "2026-11-28" / "index.html").read_text("utf-8")
    monkeypatch.setattr(render, "FORMS_IN_A_PROCESS", 0)
    monkeypatch.setattr(forms.sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="XLSX forms could not be written"):
        write_run(root, view(findings_frame(finding(name="新名称"))))
    assert (root / "2026-11-28" / "index.html").read_text("utf-8") == before


FORMULA_CELL = re.compile(r"^[=+\-@\t\r]")


def live_formulas(path) -> list[str]:
    """Cells a spreadsheet would run, as the csv module (like Excel) reads the file."""
    rows = csv.reader(io.StringIO(path.read_text("utf-8-sig")))
    return [cell for row in rows for cell in row if FORMULA_CELL.match(cell)]


def test_findings_and_audit_csv_carry_no_live_formula_and_a_machine_gets_every_value_back(tmp_path):
    hostile = ["=HYPERLINK(\"http://evil\",\"点我\")", "@SUM(A1)", "'=already", "-", "+1"]
    frame = findings_frame(*[finding(finding_id=f"f{i}", record_id=v, name=v, uscc=v) for i, v in enumerate(hostile)])
    audit = pl.DataFrame([{"at": "2026-11-28T00:00:00+00:00", "run_date": "2026-11-28", "finding_id": "f0",
                           "source": "market", "record_id": hostile[0], "kind": "bad_check_char", "old_status": "open",
                           "new_status": "waived", "actor": "market", "note": f"{hostile[0]}.csv 第 2 行：确认无误"}])
    run = view(frame)
    run.audit = audit
    folder = write_run(tmp_path, run)
    for name in ("findings.csv", "audit.csv"):
        assert live_formulas(folder / name) == [], name
    back = pl.read_csv(folder / "findings.csv", infer_schema=False)
    assert [forms.recover(v) for v in back["name"]] == hostile
    assert forms.recover(pl.read_csv(folder / "audit.csv", infer_schema=False)["note"][0]).startswith("=HYPERLINK")


def receipt_entry(rows: list[dict]) -> dict:
    return {"id": 1, "source": "market", "sha256": "a" * 64, "file_name": "反馈.csv", "processed_at": "",
            "outcome": "processed", "reason": None, "rows_total": len(rows),
            "accepted": sum(r["verdict"] == "accepted" for r in rows),
            "rejected": sum(r["verdict"] == "rejected" for r in rows), "skipped": 0, "archived_as": None, "rows": rows}


def receipt_row(n: int, verdict: str, reason: str = "已受理") -> dict:
    return {"row": n, "finding_id": f"f{n}", "record_id": f"R{n}", "name": "宏发商贸", "answer": "确认无误",
            "corrected_code": None, "note": "已核对", "verdict": verdict, "reason": reason}


def test_a_big_receipt_page_shows_the_refused_rows_first_and_says_the_csv_has_them_all(tmp_path, monkeypatch):
    from reports import receipts
    from reports.render import _ENV

    monkeypatch.setattr(receipts, "HTML_MAX_ROWS", 3)
    rows = [receipt_row(n, "accepted") for n in range(2, 8)] + [receipt_row(n, "rejected", "缺少说明") for n in (9, 10)]
    [link] = receipts.write_receipts(tmp_path, _ENV, [receipt_entry(rows)], {"market": "市场"}, "鹤岗市", "2026-11-02")
    page = (tmp_path / link["html"]).read_text("utf-8")
    assert "本页只列出前 3 行" in page and "全部 8 行" in page
    assert ">R9<" in page and ">R10<" in page and ">R2<" in page and ">R3<" not in page
    assert len(list(csv.reader(io.StringIO((tmp_path / link["csv"]).read_text("utf-8-sig"))))) == 1 + 8


def test_an_altered_read_only_cell_is_shown_with_the_differing_characters_marked_and_escaped(tmp_path):
    from checks.returns import marked_pair
    from reports.receipts import receipt_csv, write_receipts
    from reports.render import _ENV

    was, now = marked_pair("宏发<b>商贸\u00a0有限公司", "宏发<b>商贸?有限公司")
    reason = f"只读列“名称”被修改（下发为“{was}”，报送为“{now}”）"
    entry = receipt_entry([receipt_row(2, "rejected", reason)])
    [link] = write_receipts(tmp_path, _ENV, [entry], {"market": "市场"}, "鹤岗市", "2026-11-02")
    page = (tmp_path / link["html"]).read_text("utf-8")
    assert "宏发&lt;b&gt;商贸<mark>U+00A0</mark>有限公司" in page and "商贸<mark>?</mark>有限公司" in page
    assert "⟦U+00A0⟧" in receipt_csv(entry)  # brackets in the CSV


def test_the_overview_lists_entity_types_the_category_check_does_not_know():
    v = view(findings_frame(finding()))
    v.unrecognized_types = [{"source": "market", "value": "筹备组<b>", "count": 3}]
    html = render_index(v)
    assert "未识别的机构类型" in html and "筹备组&lt;b&gt;" in html and ">3<" in html
    assert "未识别的机构类型" not in render_index(view(findings_frame(finding())))


def test_a_provinces_hundreds_of_county_forms_reach_their_writers(tmp_path):
    """The writers' plan once went over on the command line, where Linux allows 128 KiB per argument:
    a province's few hundred county forms (long Chinese paths) made the night fail with E2BIG."""
    from reports import forms

    folder = tmp_path / ("报告" * 40)
    folder.mkdir()
    frame = findings_frame(finding(finding_id="0000000000000001"))
    jobs = [(folder / f"{i:04d}-黑龙江省某某市某某县（区）市场监督管理局更正清单.xlsx", frame, f"县{i}", "2026-11-02")
            for i in range(600)]
    assert sum(len(str(j[0])) * 3 for j in jobs) > 128 * 1024
    forms.wait_xlsx_writers(forms.start_xlsx_writers(folder, jobs, 2))
    assert all(j[0].stat().st_size > 0 for j in jobs)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # plans and frames removed


def test_a_form_writer_that_cannot_start_leaves_none_of_the_others_writing(tmp_path, monkeypatch):
    from reports import forms

    started = []
    real = forms._spawn

    def spawn(folder, jobs):
        if started:
            raise OSError(28, "No space left on device")
        started.append(real(folder, jobs))
        return started[-1]

    monkeypatch.setattr(forms, "_spawn", spawn)
    frame = findings_frame(*[finding(finding_id=f"{i:016d}") for i in range(20_000)])
    jobs = [(tmp_path / f"{i}.xlsx", frame, f"县{i}", "2026-11-02") for i in range(2)]
    with pytest.raises(OSError):
        forms.start_xlsx_writers(tmp_path, jobs, 2)
    assert started and started[0].poll() is not None  # the first writer was stopped, not left in the folder
