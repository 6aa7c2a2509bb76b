"""Judging a returned form row by row: what a department may and may not do (docs/correction-loop.md#returned-files)."""

import codecs

import polars as pl
import pytest

from checks.ledger import Known
from checks.returns import Holder, ReturnFormError, clean_cell, judge, read_return
from validators.uscc import calc_check_char, calc_org_check_char

NAMES = {"market": "市市场监督管理局", "justice": "市司法局", "editorial": "市委编办"}


def valid_code(prefix8: str, body8: str) -> str:
    first17 = prefix8 + body8 + calc_org_check_char(body8)
    return first17 + calc_check_char(first17)


GOOD = valid_code("91230402", "MA1B2C3D")


def known(fid="f1", source="market", status="open", kind="bad_check_char", uscc="91230402MA1B2C3D4X",
          name="鹤岗市丰昌诚商贸有限公司", related=None):
    return Known(fid, source, f"R-{fid}", kind, status, uscc, name, "2026-11-01", None, None, related)


def form(*rows):
    """Rows as dicts of the columns that matter; the identity columns default to the ledger's."""
    out = []
    for i, r in enumerate(rows):
        k = r.pop("known", known())
        out.append({"问题编号": k.finding_id, "记录编号": k.record_id, "名称": k.name, "当前代码": k.uscc, "建议代码": "",
                    "处理结果": "", "更正后代码": "", "处理说明": "", "row": i + 2, "code_numeric": False} | r)
    return pl.DataFrame(out, schema={**{c: pl.String for c in ("问题编号", "记录编号", "名称", "当前代码", "建议代码",
                                                                "处理结果", "更正后代码", "处理说明")},
                                     "row": pl.Int64, "code_numeric": pl.Boolean})


def verdict(rows, entries, holders=(), source="market"):
    return judge(form(*rows), source, {k.finding_id: k for k in entries}, list(holders), NAMES).to_dicts()


def test_a_valid_correction_is_accepted_and_awaits_the_next_extract():
    [v] = verdict([{"处理结果": "已更正", "更正后代码": GOOD.lower()}], [known()])
    assert (v["verdict"], v["new_status"], v["corrected_code"]) == ("accepted", "responded", GOOD)


def test_a_correction_that_does_not_validate_is_rejected_with_the_rule():
    bad = GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1")
    [v] = verdict([{"处理结果": "已更正", "更正后代码": bad}], [known()])
    assert v["verdict"] == "rejected" and v["new_status"] == "rejected-response"
    assert "不是有效的统一社会信用代码" in v["reason"] and "校验码" in v["reason"]


def test_a_correction_mangled_by_excel_says_how_to_save_as_text():
    [v] = verdict([{"处理结果": "已更正", "更正后代码": "9.12304E+17"}], [known()])
    assert "Excel 按数字保存" in v["reason"] and "文本" in v["reason"]
    [v] = verdict([{"处理结果": "已更正", "更正后代码": "912304021234567000", "code_numeric": True}], [known()])
    assert "Excel 按数字保存" in v["reason"]


def test_a_note_is_kept_within_bounds_and_without_invisible_controls():
    # a 10,000-character note went whole into the ledger, findings.csv and every later form; a right-to-left
    # override showed a note reversed on the lists
    [v] = verdict([{"处理结果": "确认无误", "处理说明": "已核对" * 400}], [known()])
    assert v["verdict"] == "rejected" and "“处理说明”有 1,200 字，超过 1,000 字的上限" in v["reason"]
    from checks.return_file import clean_answer, read_return as read

    assert clean_answer("已核对\u202e证照\u200b原件") == "已核对证照原件"


def test_invisible_characters_are_dropped_from_answers_but_a_grey_cell_is_compared_as_saved(tmp_path):
    # a name holding a zero-width space, saved by Excel as GBK, comes back with `?` there: no alteration
    from checks.return_file import read_return as read

    name = "鹤岗市\u200b兴安商贸有限公司"
    path = tmp_path / "回复.csv"
    path.write_bytes((HEADER + f"f1,R-f1,{name},91230402MA1B2C3D4X,确认无误,,已核对\r\n").encode("gbk", errors="replace"))
    returned = read(path)
    assert returned["名称"][0] == "鹤岗市?兴安商贸有限公司"
    k = known(name=name)
    v = judge(returned, "market", {"f1": k}, [], NAMES).to_dicts()[0]
    assert v["verdict"] == "accepted", v["reason"]
    path.write_text(HEADER + "f1,R-f1,甲,91230402MA1B2C3D4X,确认无误,,\u202e已核对\u200b\r\n", encoding="utf-8")
    assert read(path)["处理说明"][0] == "已核对"  # an answer typed with an override reads as typed


def test_a_correction_to_a_code_another_entity_holds_is_rejected():
    holder = Holder(GOOD, "editorial", "BB1", "鹤岗市向阳区人民法院")
    [v] = verdict([{"处理结果": "已更正", "更正后代码": GOOD}], [known()], [holder])
    assert v["verdict"] == "rejected" and "市委编办的记录 BB1（鹤岗市向阳区人民法院）正在使用" in v["reason"]


def test_a_correction_to_the_code_the_same_entity_holds_elsewhere_is_accepted():
    same_name = Holder(GOOD, "editorial", "BB1", "鹤岗市 丰昌诚商贸有限责任公司")
    linked = Holder(GOOD, "justice", "SF9", "丰昌诚（鹤岗）")
    [v] = verdict([{"处理结果": "已更正", "更正后代码": GOOD}], [known(related="justice:SF9")], [same_name, linked])
    assert v["verdict"] == "accepted"


def test_a_department_mismatch_corrected_to_the_same_wrong_department_is_rejected():
    # a law firm (司法局, codes of department 3) listed for its 9… code, "corrected" to another valid 9… code:
    # accepted, the next night closed the finding as fixed and opened the same mismatch on the new code
    departments = {"market": ("9",), "justice": ("3",), "editorial": ("1",)}
    firm = known(source="justice", kind="department_mismatch", uscc=GOOD, name="黑龙江某某律师事务所")
    law_code = valid_code("31230402", "MA1B2C3E")

    def judged(code, holders=()):
        return judge(form({"known": firm, "处理结果": "已更正", "更正后代码": code}), "justice", {"f1": firm},
                     list(holders), NAMES, departments=departments).to_dicts()[0]

    v = judged(valid_code("91230402", "MA1B2C3F"))
    assert v["verdict"] == "rejected" and "代码第 1 位“9”仍表示" in v["reason"] and "应以“3”开头" in v["reason"]
    assert v["new_status"] == "rejected-response"
    assert judged(law_code)["verdict"] == "accepted"
    # the market bureau holds the same firm under a 9… code: the night lists no mismatch there (cross-listing)
    other = valid_code("91230402", "MA1B2C3G")
    assert judged(other, [Holder(other, "market", "R7", "黑龙江某某律师事务所")])["verdict"] == "accepted"
    assert judged(other, [Holder(other, "market", "R7", "鹤岗市另一家公司")])["verdict"] == "rejected"
    # another department than the one the night found wrong: it may hold the entity, the next extract tells
    assert judged(valid_code("11230402", "MA1B2C3H"))["verdict"] == "accepted"
    # a record cross-listed with the editorial office (its code of department 1, no mismatch listed), its mistyped
    # check character corrected: the night lists nothing for that code, so it is no mismatch here either
    listed = known(source="justice", kind="bad_check_char", uscc="12230403MAAX070084", name="鹤岗市发发医院")
    [v] = judge(form({"known": listed, "处理结果": "已更正", "更正后代码": valid_code("12230403", "MANX0700")}),
                "justice", {"f1": listed}, [], NAMES, departments=departments).to_dicts()
    assert v["verdict"] == "accepted", v["reason"]


def test_two_records_corrected_to_one_code_collide_even_before_the_next_extract():
    a, b = known("f1"), known("f2", name="鹤岗市另一家商贸有限公司")
    v1, v2 = verdict([{"known": a, "处理结果": "已更正", "更正后代码": GOOD},
                      {"known": b, "处理结果": "已更正", "更正后代码": GOOD}], [a, b])
    assert v1["verdict"] == "accepted" and v2["verdict"] == "rejected" and "已报送为其更正后代码" in v2["reason"]


def test_a_department_cannot_touch_another_departments_finding():
    theirs = known("f9", source="justice")
    [v] = verdict([{"known": theirs, "处理结果": "已更正", "更正后代码": GOOD}], [known(), theirs])
    assert v["verdict"] == "rejected" and v["new_status"] is None
    assert "属于市司法局" in v["reason"] and "市市场监督管理局" in v["audit_note"]


def test_an_unknown_finding_id_is_rejected_without_effect():
    ghost = known("nope")
    [v] = verdict([{"known": ghost, "处理结果": "确认无误", "处理说明": "已核对"}], [known()])
    assert v["verdict"] == "rejected" and v["new_status"] is None and "不存在" in v["reason"]


@pytest.mark.parametrize("status, words", [("fixed", "已更正并关闭"), ("waived", "确认无误"), ("responded", "等待下期数据核验")])
def test_a_finding_that_is_no_longer_open_cannot_be_answered(status, words):
    k = known(status=status)
    [v] = verdict([{"known": k, "处理结果": "确认无误", "处理说明": "已核对"}], [k])
    assert v["verdict"] == "rejected" and v["new_status"] is None and words in v["reason"]


def test_a_waiver_needs_a_reason():
    [v] = verdict([{"处理结果": "确认无误"}], [known()])
    assert v["verdict"] == "rejected" and "写明依据" in v["reason"]
    [v] = verdict([{"处理结果": "确认无误", "处理说明": "已核对营业执照原件"}], [known()])
    assert (v["verdict"], v["new_status"]) == ("accepted", "waived")


def test_a_changed_read_only_column_is_rejected_not_applied():
    [v] = verdict([{"处理结果": "已更正", "更正后代码": GOOD, "名称": "鹤岗市丰昌诚商贸有限公司（改）"}], [known()])
    assert v["verdict"] == "rejected" and "只读列“名称”与市信用办的记录不一致" in v["reason"]


def test_an_answer_outside_the_four_is_rejected_and_a_blank_one_skipped():
    v1, v2 = verdict([{"处理结果": "改好了"}, {"known": known("f2")}], [known(), known("f2")])
    assert v1["verdict"] == "rejected" and "只能填写" in v1["reason"]
    assert v2["verdict"] == "skipped" and v2["new_status"] is None


def test_the_same_finding_twice_in_one_file_is_answered_once():
    v1, v2 = verdict([{"处理结果": "确认无误", "处理说明": "已核对"}, {"处理结果": "已注销"}], [known()])
    assert v1["verdict"] == "accepted" and v2["verdict"] == "rejected" and "第 2 行已处理" in v2["reason"]


def test_a_duplicate_record_can_be_fixed_without_a_new_code():
    k = known(kind="duplicate_record")
    [v] = verdict([{"known": k, "处理结果": "已更正"}], [k])
    assert v["verdict"] == "accepted"
    [v] = verdict([{"处理结果": "已更正"}], [known()])
    assert v["verdict"] == "rejected" and "请在“更正后代码”填写" in v["reason"]


def test_the_form_writers_escapes_are_undone_on_reading():
    assert clean_cell("\t912304021234567890") == "912304021234567890"
    assert clean_cell("'=HYPERLINK()") == "=HYPERLINK()"
    assert clean_cell("'91230402MA1B2C3D4X") == "91230402MA1B2C3D4X"
    assert clean_cell(" 鹤岗 ") == "鹤岗"


def test_a_form_without_its_key_columns_is_refused_with_the_columns_found(tmp_path):
    path = tmp_path / "回复.csv"
    path.write_text("编号,结果\n1,已更正\n", encoding="gb18030")
    with pytest.raises(ReturnFormError, match="缺少列：问题编号.*文件中的列：编号、结果"):
        read_return(path)
    empty = tmp_path / "空.csv"
    empty.write_bytes(b"")
    with pytest.raises(ReturnFormError, match="空文件"):
        read_return(empty)


def test_a_form_whose_answers_are_formulas_never_computed_is_refused_naming_a_cell(tmp_path):
    # a form filled by a script: its 更正后代码 written as formulas without results read as empty answers
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "更正清单"
    book.active.append(["问题编号", "记录编号", "名称", "当前代码", "处理结果", "更正后代码", "处理说明"])
    book.active.append(["f1", "M1", "甲公司", "91230402MA1B2C3D4Y", "已更正", '="91230402"&"MA1B2C3D4X"', ""])
    book.create_sheet("填写说明")["A1"] = "=1+1"  # not the form's sheet: not what refuses it
    book.save(tmp_path / "回复.xlsx")
    with pytest.raises(ReturnFormError, match="工作表“更正清单”有 1 个公式单元格没有保存计算结果（如单元格 F2）"):
        read_return(tmp_path / "回复.xlsx")


HEADER = "问题编号,记录编号,名称,当前代码,处理结果,更正后代码,处理说明\r\n"


def test_a_clerks_row_is_the_spreadsheets_row_whatever_lines_its_cells_hold(tmp_path):
    # a note of three lines (Alt+Enter in Excel) is one row of the sheet; receipts name the row a clerk sees
    path = tmp_path / "回复.csv"
    path.write_text(HEADER + 'f1,R1,甲,C1,确认无误,,"第一行\n第二行\n第三行"\r\n'
                    "f2,R2,乙,C2,非本单位,,\r\n\r\nf3,R3,丙,C3,非本单位,,\r\n", encoding="utf-8-sig")
    assert read_return(path).select("问题编号", "row").rows() == [("f1", 2), ("f2", 3), ("f3", 5)]  # 4 is blank


def test_a_form_is_split_into_lines_as_python_splits_a_file_into_lines():
    # the reader's lines (no copy of the text): the same as io.StringIO's for line breaks of every kind and
    # characters Python's str.splitlines would break at but a CSV reader must not
    import io
    import random

    from checks.return_file import lines

    pieces = ["a", "\r", "\n", "\r\n", '"', ",", "中", "\u2028", "\x0b", "\x85", "\x1c", "😀"]
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert list(lines(text)) == list(io.StringIO(text, newline="")), repr(text)


def test_a_form_beyond_the_limits_is_refused_whole_before_it_is_read(tmp_path):
    # four million rows of junk (60 MB) in a real file: refused at once on the default limit, in bounded memory,
    # and a file over the byte limit is not even read
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "大文件.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write(HEADER)
        for _ in range(40):
            out.write("a,b,c,d,e,f,g\r\n" * 100_000)
    # the child's own peak: VmHWM (getrusage's maxrss keeps the forking pytest process's, over 1 GB in a full run)
    script = ("import re, sys\nfrom checks.returns import read_return, ReturnFormError\n"
              "try:\n    read_return(sys.argv[1])\nexcept ReturnFormError as e:\n    print(e)\n"
              "print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))\n")
    child = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    said, peak_kb = child.stdout.splitlines()
    assert "大文件.csv 有 4,000,001 行，超过反馈文件的上限 2,000,000 行" in said, child.stderr
    assert int(peak_kb) < 800_000  # reading it whole took 2.5 GB, and judging its rows 5.3 GB
    from checks.settings import Limits

    with pytest.raises(ReturnFormError, match=r"有 57 MB，超过反馈文件的上限 50 MB"):
        read_return(path, Limits(return_max_bytes=50 << 20))
    link = tmp_path / "链接.csv"
    link.symlink_to(path)
    with pytest.raises(ReturnFormError, match="无法打开"):
        read_return(link)  # only a regular file is read, checked on the file opened


def test_a_utf16_form_is_bounded_by_its_rows_not_its_bytes(tmp_path):
    # CR LF is four bytes in UTF-16 and 上 (U+4E0A) holds a 0A byte: six rows were counted as 44 lines
    from checks.settings import Limits

    path = tmp_path / "回复.csv"
    rows = "".join(f"f{i}\tR{i}\t上海路{i}号商店\tC\t确认无误\t\t已核对\r\n" for i in range(6))
    path.write_bytes(codecs.BOM_UTF16_LE + (HEADER.replace(",", "\t") + rows).encode("utf-16-le"))
    assert read_return(path, Limits(return_max_rows=10)).height == 6
    with pytest.raises(ReturnFormError, match="有 7 行，超过反馈文件的上限 5 行"):
        read_return(path, Limits(return_max_rows=5))


def test_a_workbook_beyond_the_row_limit_is_refused_whole(tmp_path):
    import xlsxwriter

    from checks.settings import Limits

    path = tmp_path / "回复.xlsx"
    with xlsxwriter.Workbook(path) as book:
        for sheet in ("更正清单", "更正清单(2)"):  # a long list spans sheets: their rows count together
            rows = book.add_worksheet(sheet)
            rows.write_row(0, 0, HEADER.strip().split(","))
            for i in range(1, 16):
                rows.write_row(i, 0, [f"f{i}", f"R{i}", "甲", "C", "确认无误", "", "已核对"])
    assert read_return(path, Limits(return_max_rows=40)).height == 30
    with pytest.raises(ReturnFormError, match="回复.xlsx 有 32 行，超过反馈文件的上限 20 行"):
        read_return(path, Limits(return_max_rows=20))


# --------------------------------------------------------------------------- whole files

def test_unreadable_or_foreign_files_get_a_receipt_and_change_nothing(tmp_path, settings):
    from checks import ledger
    from checks.findings import FINDING_SCHEMA
    from checks.returns import apply_returned_file

    db = tmp_path / "state" / "ledger.sqlite3"
    mine = pl.DataFrame([{c: None for c in FINDING_SCHEMA} | {"finding_id": "f1", "source": "market",
                          "record_id": "R-f1", "kind": "bad_check_char", "severity": "error"}], schema=FINDING_SCHEMA)
    ledger.record_run(db, "2026-11-01", mine)
    folder = tmp_path / "returns" / "market"
    folder.mkdir(parents=True)
    cases = {
        "反馈.pdf": (b"%PDF-1.4", "不支持的文件类型"),
        "乱码.csv": (bytes(range(256)) * 4, "不是文本文件"),
        "表头不对.csv": ("编号,结果\n1,已更正\n".encode("gb18030"), "缺少列"),
        "只有表头.csv": ("问题编号,记录编号,名称,当前代码,处理结果,更正后代码,处理说明\n".encode(), "没有数据行"),
    }
    for name, (content, words) in cases.items():
        path = folder / name
        path.write_bytes(content)
        done = apply_returned_file(path, "market", tmp_path, db, "2026-11-02", settings, lambda codes: [])
        assert done["outcome"] == "rejected" and words in done["reason"], (name, done)
        assert not path.exists()  # archived, never processed again
    assert ledger.statuses(db) == {"f1": "open"}
    [entry] = [e for e in ledger.returns_of_night(db, "2026-11-02") if e["file_name"] == "表头不对.csv"]
    assert "文件中的列：编号、结果" in entry["reason"]


def test_receipts_escape_what_a_clerk_typed(tmp_path):
    from reports.receipts import receipt_csv, write_receipts
    from reports.render import _ENV

    row = {"row": 2, "finding_id": "f1", "record_id": "R1", "name": "<script>alert(1)</script>", "answer": "确认无误",
           "corrected_code": None, "note": "=HYPERLINK(\"http://x\")", "verdict": "accepted", "reason": "已受理"}
    entry = {"id": 1, "source": "market", "sha256": "a" * 64, "file_name": "反馈.csv", "processed_at": "",
             "outcome": "processed", "reason": None, "rows_total": 1, "accepted": 1, "rejected": 0, "skipped": 0,
             "archived_as": None, "rows": [row]}
    [link] = write_receipts(tmp_path, _ENV, [entry], NAMES, "鹤岗市", "2026-11-02")
    html = (tmp_path / link["html"]).read_text("utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "'=HYPERLINK" in receipt_csv(entry)


def test_the_ledger_path_comes_from_the_environment_or_the_configuration(tmp_path, settings, monkeypatch):
    from checks.catalog import ledger_path

    assert ledger_path(tmp_path, settings) == tmp_path / "state" / "steward.sqlite3"
    monkeypatch.setenv("USCC_DATABASE", str(tmp_path / "elsewhere.sqlite3"))
    assert ledger_path(tmp_path / "data", settings) == tmp_path / "elsewhere.sqlite3"


def test_a_form_excel_saved_as_unicode_text_is_read(tmp_path):
    """Excel's "Unicode text": UTF-16 with tabs."""
    path = tmp_path / "反馈.txt.csv"
    rows = ["问题编号\t记录编号\t名称\t当前代码\t处理结果\t更正后代码\t处理说明", "f1\tR-f1\t丰昌诚\t9123\t确认无误\t\t已核对"]
    path.write_bytes("\r\n".join(rows).encode("utf-16"))
    form = read_return(path)
    assert form.select("问题编号", "处理结果", "处理说明").row(0) == ("f1", "确认无误", "已核对")


def test_the_clean_spelling_of_a_badly_formatted_code_is_a_correction_not_the_same_code():
    k = known(kind="formatting", uscc=GOOD.lower())
    [v] = verdict([{"known": k, "处理结果": "已更正", "更正后代码": GOOD}], [k])
    assert v["verdict"] == "accepted"
    same = known(uscc=f" {GOOD} ")
    [v] = verdict([{"known": same, "当前代码": GOOD, "处理结果": "已更正", "更正后代码": GOOD}], [same])  # as read
    assert v["verdict"] == "rejected" and "与当前代码相同" in v["reason"]


def test_identity_columns_are_compared_as_the_validators_normalize_them():
    k = known(uscc="91230402MA1B2C3D4X", name="鹤岗市丰昌诚商贸有限公司")
    [v] = verdict([{"known": k, "当前代码": "9123 0402 ma1b2c3d4x", "名称": "鹤岗市丰昌诚商贸有限公司\u3000",
                    "处理结果": "确认无误", "处理说明": "已核对"}], [k])
    assert v["verdict"] == "accepted"


def test_a_character_the_files_encoding_cannot_hold_saved_as_a_question_mark_is_no_alteration():
    k = known(name="鹤岗市𬌗丰商贸有限公司")  # 𬌗 (CJK extension E) is not in GBK
    row = {"known": k, "名称": "鹤岗市?丰商贸有限公司", "处理结果": "确认无误", "处理说明": "已核对"}
    [v] = judge(form(dict(row)).with_columns(saved_as=pl.lit("gbk")), "market", {k.finding_id: k}, [], NAMES).to_dicts()
    assert v["verdict"] == "accepted"
    [v] = verdict([dict(row)], [k])  # an XLSX holds every character: a ? there is an edit
    assert v["verdict"] == "rejected" and "鹤岗市⟦𬌗⟧丰" in v["reason"] and "鹤岗市⟦?⟧丰" in v["reason"]


def on_record(fid: str, kind: str, record_id: str = "R-1") -> Known:
    return Known(fid, "market", record_id, kind, "open", "91230402MA1B2C3D4X", "鹤岗市丰昌诚商贸有限公司", "2026-11-01",
                 None, None)


def test_contradictory_answers_on_one_record_are_all_refused_saying_which_rows_and_why():
    a, b, c = on_record("f1", "bad_check_char"), on_record("f2", "category_mismatch"), on_record("f3", "x", "R-2")
    v1, v2, v3 = verdict([{"known": a, "处理结果": "已更正", "更正后代码": GOOD},
                          {"known": b, "处理结果": "确认无误", "处理说明": "类别无误"},
                          {"known": c, "处理结果": "确认无误", "处理说明": "已核对"}], [a, b, c])
    for v in (v1, v2):
        assert v["verdict"] == "rejected" and v["new_status"] == "rejected-response"
        assert "答复互相矛盾" in v["reason"] and "第 2 行“已更正”" in v["reason"] and "第 3 行“确认无误”" in v["reason"]
    assert v3["verdict"] == "accepted"  # another record's answer stands


def test_two_different_corrections_or_not_ours_beside_an_answer_contradict_agreeing_answers_do_not():
    a, b = on_record("f1", "bad_check_char"), on_record("f2", "category_mismatch")
    fix = {"处理结果": "已更正", "更正后代码": GOOD}
    assert [v["verdict"] for v in verdict([{"known": a} | fix, {"known": b} | fix], [a, b])] == ["accepted"] * 2
    assert [v["verdict"] for v in verdict([{"known": a, "处理结果": "已注销"},
                                           {"known": b, "处理结果": "确认无误", "处理说明": "无误"}], [a, b])] \
        == ["accepted"] * 2
    other = {"处理结果": "已更正", "更正后代码": valid_code("91230402", "MA9B8C7D")}
    assert [v["verdict"] for v in verdict([{"known": a} | fix, {"known": b} | other], [a, b])] == ["rejected"] * 2
    assert [v["verdict"] for v in verdict([{"known": a, "处理结果": "非本单位", "处理说明": "属编办"},
                                           {"known": b, "处理结果": "已注销"}], [a, b])] == ["rejected"] * 2


# --------------------------------------------------------------------------- adopting the code we suggested

OURS = valid_code("31230404", "31133647")  # an all-digit code (a law firm's), as a spreadsheet mangles them


def suggested_row(k, **cells):
    return {"known": k, "建议代码": OURS, "处理结果": "已更正"} | cells


def judged(rows, entries, holders=(), suggested=None):
    frame = form(*rows)
    return judge(frame, "market", {k.finding_id: k for k in entries}, list(holders), NAMES,
                 suggested={"f1": OURS} if suggested is None else suggested).to_dicts()


def test_a_correction_left_empty_adopts_the_code_we_suggested_and_says_so():
    [v] = judged([suggested_row(known())], [known()])
    assert (v["verdict"], v["corrected_code"]) == ("accepted", OURS) and f"按建议代码 {OURS} 受理" in v["reason"]


def test_an_empty_correction_adopts_nothing_when_the_suggestion_shown_is_not_ours_or_we_have_none():
    [v] = judged([suggested_row(known(), 建议代码=valid_code("91230402", "MA1B2C3D"))], [known()])
    assert v["verdict"] == "rejected" and "与市信用办下发的" in v["reason"]
    [v] = judged([suggested_row(known(), 建议代码="")], [known()])
    assert v["verdict"] == "rejected" and "没有“建议代码”" in v["reason"]
    [v] = judged([suggested_row(known())], [known()], suggested={})
    assert v["verdict"] == "rejected" and "请在“更正后代码”填写" in v["reason"]


def test_an_adopted_code_passes_every_check_a_typed_one_does():
    holder = Holder(OURS, "justice", "SF1", "鹤岗市某律师事务所")
    [v] = judged([suggested_row(known())], [known()], [holder])
    assert v["verdict"] == "rejected" and "正在使用" in v["reason"]


@pytest.mark.parametrize("number, numeric", [
    ("3.12304043113364E+017", False),  # Calc's CSV, as displayed
    (str(int(float(OURS))), True),  # an XLSX number cell holding the double
    ("312304043113364000", True),  # Excel's 15 digits
])
def test_a_code_a_spreadsheet_turned_into_a_number_is_taken_as_ours_when_every_surviving_digit_agrees(number, numeric):
    assert OURS.startswith("312304043113364")
    [v] = judged([suggested_row(known(), 更正后代码=number, code_numeric=numeric)], [known()])
    assert (v["verdict"], v["corrected_code"]) == ("accepted", OURS)
    assert "按数字保存" in v["reason"] and "按建议代码受理" in v["reason"]


def test_a_mangled_number_that_differs_from_our_suggestion_or_shows_too_few_digits_is_refused_as_before():
    for number in ("3.12304043113369E+017", "3.12304E+17"):
        [v] = judged([suggested_row(known(), 更正后代码=number)], [known()])
        assert v["verdict"] == "rejected" and "Excel 按数字保存" in v["reason"], number


def test_a_reason_quotes_at_most_about_200_characters_of_what_was_typed():
    [v] = verdict([{"处理结果": "已更正", "更正后代码": "X" * 100_000}], [known()])
    assert v["verdict"] == "rejected" and len(v["reason"]) < 600 and "X" * 200 + "…" in v["reason"]
    [v] = verdict([{"处理结果": "无" * 50_000}], [known()])
    assert len(v["reason"]) < 400
