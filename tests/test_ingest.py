"""Reading extracts as departments send them: every file of tests/corpus gives its documented outcome."""

import datetime as dt
import hashlib
import os
import shutil
import threading
import time

import polars as pl
import pytest

from checks.extract_file import FIELD_TRIM
from checks.ingest import (IngestError, _without, ingest_all, ingest_source, parse_date_column, parse_dates, read_csv,
                           read_xlsx, select_extract, to_canonical, trimmed)
from checks import extract_file, textfile
from checks.settings import parse_settings
from tests.conftest import CORPUS, ROOT


@pytest.fixture(scope="module")
def editorial(settings):
    return settings.source("editorial")


def load(name, source):
    path = CORPUS / name
    raw = read_csv(path) if path.suffix == ".csv" else read_xlsx(path, source)
    return to_canonical(raw, source, name)


@pytest.mark.parametrize("name,encoding", [("utf8.csv", "utf-8"), ("utf8_bom.csv", "utf-8-sig"),
                                           ("gb18030.csv", "gb18030"), ("gbk.csv", "gb18030"),
                                           ("utf16_tab.csv", "utf-16")])
def test_each_encoding_is_read_without_mojibake(name, encoding, editorial):
    records, quarantine, report = load(name, editorial)
    assert report.encoding == encoding
    assert records.height == 3 and quarantine.height == 0
    assert records["name"][0] == "鹤岗市第一中学"
    assert records["record_id"].to_list() == ["BB001", "BB002", "BB003"]
    assert records["uscc_raw"][0] == "12230400MA1C4B0P68"


def test_characters_gbk_lacks_survive_gb18030(editorial):
    records, _, _ = load("gb18030.csv", editorial)
    assert records["name"][1] == "鹤岗市向阳区䶮𫟦管理局"


def test_header_variants_match_after_trimming_and_width_folding(editorial):
    records, _, report = load("header_variants.csv", editorial)
    assert records.height == 3 and report.extra_columns == []


def test_missing_required_column_rejects_with_what_is_missing_and_found(editorial):
    with pytest.raises(IngestError) as err:
        load("missing_column.csv", editorial)
    message = str(err.value)
    assert "缺少必需的列：统一社会信用代码" in message and "文件中的列：机构编号、机构名称" in message


def test_extra_columns_are_kept_aside_and_ignored(editorial):
    records, _, report = load("extra_column.csv", editorial)
    assert report.extra_columns == ["备注", "联系电话"]
    assert "备注" not in records.columns


def test_blank_rows_are_skipped_and_counted(editorial):
    records, _, report = load("blank_rows.csv", editorial)
    # two blank rows between records and an empty last line: all read, all counted as blank
    assert (report.rows_read, report.rows_checked, report.rows_blank) == (6, 3, 3)


def test_duplicate_and_missing_record_ids_go_to_quarantine_with_rows(editorial):
    records, quarantine, report = load("duplicate_ids.csv", editorial)
    assert records["record_id"].to_list() == ["BB002"]
    reasons = dict(zip(quarantine["row"].to_list(), quarantine["reason"].to_list()))
    assert set(reasons) == {2, 4, 5}
    assert "重复出现（第 2、4 行）" in reasons[2]
    assert "缺少机构编号" in reasons[5]
    assert report.rows_read == report.rows_checked + report.rows_quarantined + report.rows_blank


@pytest.mark.parametrize("name,words", [("empty.csv", "空文件"), ("binary.csv", "不是文本文件"),
                                        ("undecodable.csv", "编码无法识别")])
def test_unreadable_files_are_rejected_with_the_reason(name, words, editorial):
    with pytest.raises(IngestError) as err:
        load(name, editorial)
    assert words in str(err.value) and name in str(err.value)


def test_a_damaged_utf8_file_names_the_line_and_byte_where_it_breaks(tmp_path, monkeypatch, editorial):
    # chunks of 64 bytes: the fault lies chunks into the file, after a character split between two chunks
    monkeypatch.setattr(textfile, "CHUNK", 64)
    head = "\ufeff机构编号,统一社会信用代码,机构名称\n".encode()
    rows = [f"BB{i:03d},12230400MA1C4B0P68,鹤岗市第一中学\n".encode() for i in range(12)]
    fault = len(head) + sum(map(len, rows[:7])) + 20  # on line 9 (the header is line 1), in a name
    data = bytearray(head + b"".join(rows))
    data[fault] = 0xFF
    path = tmp_path / "damaged.csv"
    path.write_bytes(bytes(data))
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"第 9 行（文件第 {fault + 1:,} 字节）处无法解码" in str(err.value)  # bytes counted from 1
    assert "damaged.csv" in str(err.value) and "请重新导出后提交" in str(err.value)
    # cut inside its last character, the same file breaks at that character
    path.write_bytes(head + b"".join(rows)[:-2])
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"第 13 行（文件第 {len(head) + sum(map(len, rows)) - 3:,} 字节）处无法解码" in str(err.value)
    # old Mac line breaks (a lone CR), which are read too, count lines as well
    path.write_bytes(bytes(data).replace(b"\n", b"\r"))
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"第 9 行（文件第 {fault + 1:,} 字节）处无法解码" in str(err.value)
    path.write_bytes(bytes(data).replace(b"\n", b"\r\n"))
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"第 9 行（文件第 {fault + 8 + 1:,} 字节）处无法解码" in str(err.value)  # 8 lines' CR before it


def test_a_damaged_utf16_file_names_the_line_and_byte_where_it_breaks(tmp_path, editorial):
    # what Excel's "Unicode text" saves, cut short or with half a character pair: the clerk is told the line
    rows = "机构编号\t统一社会信用代码\t机构名称\r\n" + "".join(f"BB{i:03d}\t12230400MA1C4B0P68\t鹤岗市第一中学\r\n"
                                                        for i in range(6))
    path = tmp_path / "damaged.csv"
    # with a BOM, and without one (Excel's "Unicode text" has one; other exporters write none): without, the same
    # file was called binary ("含有二进制内容（NUL 字节），不是文本文件")
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"", "utf-16-le"),
                          (b"", "utf-16-be")):
        data = bom + rows.encode(encoding)
        for damaged in (data + "\ud800".encode(encoding, "surrogatepass") + "A".encode(encoding), data + b"A"):
            path.write_bytes(damaged)
            with pytest.raises(IngestError) as err:
                read_csv(path)
            assert f"第 8 行（文件第 {len(data) + 1:,} 字节）处无法解码" in str(err.value), (bom, encoding)  # from 1
            assert "damaged.csv" in str(err.value) and "UTF-16" in str(err.value) and "二进制" not in str(err.value)


def test_a_file_neither_utf8_nor_gbk_names_the_line_and_byte_where_it_breaks(tmp_path, editorial):
    # a GBK export (Excel on Chinese Windows) with a byte no Chinese encoding has, on the fourth line
    rows = ["机构编号,统一社会信用代码,机构名称\r\n"] + [f"BB{i:03d},12230400MA1C4B0P68,鹤岗市第一中学\r\n" for i in range(5)]
    head = "".join(rows[:3]).encode("gbk")
    path = tmp_path / "mixed.csv"
    path.write_bytes(head + "BB9,".encode("gbk") + b"\xff" + "".join(rows[3:]).encode("gbk"))
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"按 GB18030/GBK 第 4 行（文件第 {len(head) + 5:,} 字节）处无法解码" in str(err.value)  # counted from 1
    assert "按 UTF-8 第 1 行（文件第 1 字节）处无法解码" in str(err.value) and "mixed.csv" in str(err.value)
    # half UTF-8, half GBK: the clerk is told where each breaks (the UTF-8 half's place alone named no line)
    utf8 = "".join(rows[:4]).encode()
    path.write_bytes(utf8 + "".join(rows[4:]).encode("gbk"))
    with pytest.raises(IngestError) as err:
        read_csv(path)
    assert f"按 UTF-8 第 5 行（文件第 {len(utf8) + 26:,} 字节）" in str(err.value)  # the name's, after "BB003,<code>,"
    assert "混用了两种编码" in str(err.value)


def test_utf8_is_told_from_other_bytes_as_python_tells_it():
    # the validator (Arrow's) accepts exactly what Python's decoder accepts: text with every kind of character,
    # each byte of it changed in turn, and sequences a lax decoder lets through (surrogates, overlong forms,
    # beyond U+10FFFF, a character cut short)
    text = "统一社会信用代码，鹤岗市向阳区䶮𫟦管理局 Ω é 😀 \U0010FFFF\x00\r\n".encode()
    samples = [text[:i] + bytes([b]) + text[i + 1:]
               for i in range(len(text)) for b in (0x80, 0xBF, 0xC0, 0xE4, 0xF4, 0xFF)]
    samples += [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe4\xb8", text, b""]
    for sample in samples:
        try:
            sample.decode("utf-8")
            python = True
        except UnicodeDecodeError:
            python = False
        assert textfile._utf8_by_arrow(b"\xef\xbb\xbf" + sample, 3) is python, sample


def test_header_only_file_is_read_with_zero_rows(editorial):
    records, _, report = load("header_only.csv", editorial)
    assert records.height == 0 and report.rows_read == 0 and report.status == "ok"


def test_very_long_field_quarantines_the_row_not_the_file(editorial):
    records, quarantine, _ = load("long_field.csv", editorial)
    assert records["record_id"].to_list() == ["BB001", "BB002"]
    assert quarantine["row"].to_list() == [3] and "超过 1000 个字符" in quarantine["reason"][0]


def test_row_with_more_fields_than_the_header_is_quarantined(editorial):
    records, quarantine, _ = load("ragged.csv", editorial)
    assert records.height == 3 and quarantine["row"].to_list() == [5]
    assert "字段数多于表头" in quarantine["reason"][0]


def test_xlsx_number_cells_in_the_code_column_are_flagged_and_shown_as_excel_shows_them(editorial):
    records, _, _ = load("codes_as_numbers.xlsx", editorial)
    by_id = {r["record_id"]: r for r in records.iter_rows(named=True)}
    assert by_id["BB010"]["uscc_numeric"] and by_id["BB010"]["uscc_raw"] == "912304001234568000"
    assert by_id["BB011"]["uscc_numeric"] and by_id["BB011"]["uscc_raw"] == "230402000012345"
    assert not by_id["BB001"]["uscc_numeric"]
    assert str(by_id["BB010"]["established"]) == "2018-04-02"


def test_xlsx_header_is_found_below_a_title_row_on_a_later_sheet(editorial):
    records, _, report = load("title_row.xlsx", editorial)
    assert records.height == 3
    assert records["row"].to_list() == [3, 4, 5]  # sheet rows, as the clerk sees them


def test_dates_in_department_formats_are_parsed_and_bad_ones_noted_not_dropped(editorial):
    records, quarantine, report = load("dates.csv", editorial)
    assert [str(d) for d in records["established"].to_list()] == ["2001-09-01", "None", "2021-01-01"]
    assert quarantine.height == 0 and report.notes_total == 1
    assert report.notes[0]["value"] == "2010-13-45"


def test_date_parser_formats():
    frame = pl.DataFrame({"d": ["2020-01-02", "2020/1/2", "2020.01.02", "20200102", "2020年1月2日",
                                "2020-01-02 00:00:00", "43831", "昨天", None]})
    got = frame.select(parse_dates(pl.col("d")))["d"].to_list()
    assert [str(d) for d in got[:7]] == ["2020-01-02"] * 6 + ["2020-01-01"]
    assert got[7] is None and got[8] is None


#: Date cells a shortcut could read differently from `parse_dates`: a space inside ("2020- 01-02", which polars'
#: date reader alone takes for 2020-01-02 and `parse_dates` does not), trailing text, out-of-range years, serial
#: numbers, blanks.
TRAP_DATES = ["2020-01-02", "2020- 01-02", "2020-01-02.", " 2020-01-02", "2020-01-02x", "2020-1-2", "2020-13-01",
              "2020-02-30", "1899-12-31", "2101-01-01", "0000-01-01", "43831", "20200102", "2020年1月2日", "", None]


def test_a_date_column_reads_every_cell_as_the_date_parser_does():
    cells = pl.Series("d", TRAP_DATES * 3, dtype=pl.String)  # a few distinct values: parsed once each
    assert parse_date_column(cells).to_list() == pl.select(parse_dates(pl.lit(cells)))[:, 0].to_list()
    single = pl.Series("d", ["2020- 01-02", "2020-01-02"], dtype=pl.String)
    assert parse_date_column(single).to_list() == [None, dt.date(2020, 1, 2)]


def test_cells_are_trimmed_of_exactly_the_spaces_at_their_ends():
    cells = pl.DataFrame({"x": [" a", "a\u3000", "\ufeff中 文\xa0", "a b", "\t\r\n", "", "x\n\ny", "]^$", None]})
    got = cells.select(trimmed(pl.col("x"), FIELD_TRIM))["x"].to_list()
    assert got == ["a", "a", "中 文", "a b", "", "", "x\n\ny", "]^$", None]


def test_blank_rows_anywhere_are_left_out_and_the_rest_keep_their_order():
    frame = pl.DataFrame({"i": list(range(8))})
    for blank in ([0, 1], [3], [6, 7], [0, 3, 4, 7], list(range(8)), []):
        dropped = pl.Series([i in blank for i in range(8)])
        assert _without(frame, dropped)["i"].to_list() == [i for i in range(8) if i not in blank]
    every_other = pl.Series([i % 2 == 0 for i in range(300)])  # more runs than are cut around: filtered
    assert _without(pl.DataFrame({"i": list(range(300))}), every_other)["i"].to_list() == list(range(1, 300, 2))


def test_newest_file_is_tonights_extract_and_others_are_listed(tmp_path):
    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    for i, name in enumerate(["a.csv", "b.csv", "old.xls"]):
        (folder / name).write_text("x")
        os.utime(folder / name, (1_000_000 + i, 1_000_000 + i))
    os.utime(folder / "b.csv", (900_000, 900_000))
    (folder / "c.csv").write_text("x")
    os.utime(folder / "c.csv", (1_000_000, 1_000_000))  # same mtime as a.csv: name breaks the tie
    newest, ignored = select_extract(folder)
    assert newest.name == "c.csv"
    reasons = {i["file"]: i["reason"] for i in ignored}
    assert "不支持的文件类型" in reasons["old.xls"] and reasons["a.csv"] == reasons["b.csv"] == "不是最新文件，本次未使用"


def test_one_bad_file_never_stops_the_other_sources(tmp_path, settings):
    for key, name in (("editorial", "utf8.csv"), ("market", "binary.csv")):
        (tmp_path / "extracts" / key).mkdir(parents=True)
        shutil.copy(CORPUS / name, tmp_path / "extracts" / key / name)
    result = ingest_all(settings, tmp_path)
    assert result.sources["editorial"].status == "ok" and result.records.height == 3
    assert result.sources["market"].status == "rejected" and "binary.csv" in result.sources["market"].reason
    assert result.sources["justice"].status == "rejected" and "没有本期数据文件" in result.sources["justice"].reason


@pytest.mark.parametrize("name", ["utf8.csv", "utf8_bom.csv", "gbk.csv", "utf16_tab.csv", "codes_as_numbers.xlsx",
                                  "undecodable.csv", "binary.csv"])
def test_each_extract_is_known_by_the_hash_of_its_bytes_and_no_thread_outlives_it(name, tmp_path, settings,
                                                                                    monkeypatch):
    # the guard tells tonight's file from last night's by it; a CSV's is taken from the bytes read, beside the
    # checks of their encoding, and a refused file leaves no thread behind (the hash made slow, as a large file's)
    monkeypatch.setattr(extract_file, "_sha256", lambda data: (time.sleep(0.3), hashlib.sha256(data).hexdigest())[1])
    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    shutil.copy(CORPUS / name, folder / name)
    _, _, report = ingest_source(settings.source("editorial"), tmp_path)
    if report.status == "ok":
        assert report.sha256 == hashlib.sha256((CORPUS / name).read_bytes()).hexdigest()
    else:
        assert name in ("undecodable.csv", "binary.csv")
    assert not [t for t in threading.enumerate() if t.name == "extract-sha256"]


def test_a_fourth_registry_is_configuration_only(tmp_path):
    import tomllib

    raw = tomllib.loads((ROOT / "config" / "steward.toml").read_text("utf-8"))
    raw["sources"].append({"key": "civil", "name": "市民政局", "departments": ["5"],
                           "columns": {"record_id": ["登记证号"], "uscc": ["统一社会信用代码"], "name": ["社会组织名称"],
                                       "legal_rep": ["法定代表人"]}})
    settings = parse_settings(raw)
    folder = tmp_path / "extracts" / "civil"
    folder.mkdir(parents=True)
    (folder / "民政.csv").write_text("登记证号,统一社会信用代码,社会组织名称,法定代表人\n"
                                    "MZ01,51230400MA1C4B0P2U,鹤岗市围棋协会,王五\n", encoding="utf-8")
    result = ingest_all(settings, tmp_path)
    assert result.sources["civil"].status == "ok"
    assert result.records.filter(pl.col("source") == "civil")["name"].to_list() == ["鹤岗市围棋协会"]


# --------------------------------------------------------------------------- layouts people make (issues 11, 12)

HEADER = ["机构编号", "统一社会信用代码", "机构名称", "机构类别", "法定代表人", "成立日期", "状态", "地址"]
ROWS = [["BB001", "12230400MA1C4B0P68", "鹤岗市第一中学", "事业单位", "王伟", "2001-09-01", "存续", "红旗路1号"],
        ["BB002", "11230402MA1C4B0Q43", "鹤岗市向阳区人社局", "机关", "李娜", "2010-03-05", "存续", "新华街2号"]]


def write_csv(folder, name, header, rows, encoding="utf-8", above=""):
    folder.mkdir(parents=True, exist_ok=True)
    text = above + "\r\n".join(",".join(r) for r in [header] + rows) + "\r\n"
    (folder / name).write_bytes(text.encode(encoding))
    return folder / name


def test_every_sheet_that_carries_the_header_is_read_and_counted_per_sheet(tmp_path, settings):
    from synth.workbook import ExtractBook

    folder = tmp_path / "extracts" / "editorial"
    with ExtractBook(folder / "名录.xlsx") as book:
        book.sheet("说明").write_row(["按区县分表"])
        for s in range(20):
            sheet = book.sheet(f"第{s + 1}册")
            sheet.write_row(HEADER)
            sheet.write_rows([f"S{s}-{r}"] + ROWS[r % 2][1:] for r in range(30))
            if s == 19:
                sheet.write_row([""] * 8)
                sheet.write_row(["S0-0"] + ROWS[0][1:])  # an id already on the first sheet
    records, quarantine, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "ok" and len(report.sheets) == 20
    assert (report.rows_read, report.rows_checked, report.rows_quarantined, report.rows_blank) == (602, 599, 2, 1)
    last = report.sheets[-1]
    assert (last["sheet"], last["rows_read"], last["rows_checked"], last["rows_quarantined"], last["rows_blank"]) == \
        ("第20册", 32, 30, 1, 1)
    assert all(s["rows_read"] == s["rows_checked"] + s["rows_quarantined"] + s["rows_blank"] for s in report.sheets)
    assert "名录.xlsx（工作表“第1册”） 第 2 行" in quarantine["reason"][0]
    assert any("说明" in n and "没有表头" in n for n in report.layout_notes)
    assert records.filter(pl.col("record_id") == "S19-29")["file"].item() == "名录.xlsx（工作表“第20册”）"


def test_a_workbook_whose_formulas_were_never_computed_is_refused_naming_a_cell_until_a_spreadsheet_saves_it(
        tmp_path, settings):
    # a registry export written by a program: its code column holds formulas without the results Excel, WPS and
    # LibreOffice save beside them; read, every such code was empty (a false `missing` on each record)
    import openpyxl
    import subprocess

    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    for row in ROWS:
        book.active.append([row[0], f'="{row[1][:8]}"&"{row[1][8:]}"', *row[2:]])
    book.save(folder / "名录.xlsx")
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "rejected" and records.height == 0
    assert "2 个公式单元格没有保存计算结果（如单元格 B2）" in report.reason and "用 Excel 或 WPS 打开该文件并保存" in report.reason
    if shutil.which("soffice") is None:
        pytest.skip("no LibreOffice here to save the workbook as a person would")
    # what the message says to do, done by a real spreadsheet application: it saves each formula's result
    subprocess.run(["soffice", "--headless", "--convert-to", "xlsx", "--outdir", str(tmp_path / "saved"),
                    str(folder / "名录.xlsx")], check=True, timeout=180, capture_output=True,
                   env={**os.environ, "HOME": str(tmp_path)})
    shutil.move(tmp_path / "saved" / "名录.xlsx", folder / "名录.xlsx")
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "ok" and records["uscc_raw"].to_list() == [ROWS[0][1], ROWS[1][1]]


def test_every_formula_cell_without_a_result_is_counted_wherever_the_blocks_of_the_sheet_end(monkeypatch):
    # the sheet is read in blocks: a cell cut across two blocks is counted once, in every shape writers use
    import io
    import zipfile

    from checks import xlsx
    from checks.settings import Limits

    cells = ['<c r="A{n}" t="s"><v>1</v></c>', '<c r="B{n}"><f>A{n}*2</f></c>',  # counted
             '<c r="C{n}"><f>A{n}</f><v>3</v></c>', '<c r="D{n}"><f t="shared" si="0"/></c>',  # not; counted
             '<x:c r="E{n}"><x:f>1+1</x:f></x:c>', '<c r="F{n}" t="str"><f>"a"</f><v>a</v></c>',  # counted; not
             '<c r="G{n}"><f>1</f><v /></c>', '<c r="H{n}" t="str"><f>""</f><v></v></c>']  # counted; not (a "")
    rows = "".join(f'<row r="{n}">' + "".join(c.format(n=n) for c in cells) + "</row>" for n in range(2, 40))
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", '<workbook><sheets><sheet name="表" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet><sheetData>{rows}</sheetData></worksheet>')
    for block in (7, 13, 64, 1000, 4 << 20):
        monkeypatch.setattr(xlsx, "_BLOCK", block)
        [sheet] = xlsx.preflight(data, "名录.xlsx", Limits())
        assert (sheet.uncomputed, sheet.first_uncomputed) == (152, "B2"), block


def test_only_a_sheet_read_as_data_is_refused_for_formulas_without_results(tmp_path, settings):
    # a program's export with a summary sheet of formulas it never computed: the data sheet is read (the summary
    # is not data, and says so in a layout note, as any sheet without the header does)
    import openpyxl

    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.active.title = "名录"
    book.active.append(HEADER)
    for row in ROWS:
        book.active.append(row)
    notes = book.create_sheet("说明")
    notes["A1"], notes["B1"] = "记录数", "=COUNTA(名录!A:A)-1"
    book.save(folder / "名录.xlsx")
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "ok" and records["uscc_raw"].to_list() == [ROWS[0][1], ROWS[1][1]]
    assert any("说明" in note for note in report.layout_notes)


def test_a_sheet_of_cell_tags_without_end_is_judged_at_once(tmp_path):
    # 17 KB of `<c<c<c…<f>1</f></c>`, a formula's tag and a cell's end in every block: the pattern looking for
    # formulas without a result scanned 400 bytes on from each `<c` (a minute for this file, hours for one within
    # the limits)
    import subprocess
    import sys
    import zipfile

    sheet = b'<worksheet><sheetData><row r="1">' + (b"<c" * (1 << 19) + b"<f>1</f></c>") * 16 + \
        b"</row></sheetData></worksheet>"
    path = tmp_path / "cpu.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", '<workbook><sheets><sheet name="t" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    judge = ("import sys; from checks import xlsx; from checks.settings import Limits; "
             "print([s.uncomputed for s in xlsx.preflight(open(sys.argv[1], 'rb'), 'cpu.xlsx', Limits())])")
    done = subprocess.run([sys.executable, "-c", judge, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)  # a generous bound: it takes a fraction of a second
    assert done.returncode == 0 and done.stdout.strip() == "[0]", done.stderr


def test_an_empty_code_column_before_the_real_one_is_passed_over_and_the_overview_says_so(tmp_path, settings):
    header = HEADER[:1] + ["统一社会信用代码"] + HEADER[2:] + ["统一社会信用代码"]
    write_csv(tmp_path / "extracts" / "editorial", "a.csv", header, [[r[0], ""] + r[2:] + [r[1]] for r in ROWS])
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert records["uscc_raw"].to_list() == [ROWS[0][1], ROWS[1][1]]  # not two empty codes (two false `missing`)
    assert report.layout_notes == ["表头“统一社会信用代码”出现 2 次（第 2 列、第 9 列），只有第 9 列有内容，已使用该列"]


def test_a_column_twice_with_values_in_both_is_refused_naming_the_column(tmp_path, settings):
    write_csv(tmp_path / "extracts" / "editorial", "a.csv", HEADER + ["机构名称"], [r + ["别名"] for r in ROWS])
    _, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "rejected" and "“机构名称”出现了 2 次（第 3 列、第 9 列），且都有内容" in report.reason


def test_csv_title_rows_above_the_header_are_searched_like_a_sheet(tmp_path, settings):
    write_csv(tmp_path / "extracts" / "editorial", "a.csv", HEADER, ROWS, "gb18030", above="鹤岗市机构名录\r\n制表：编办\r\n")
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.status == "ok" and records["row"].to_list() == [4, 5]  # file lines, as the clerk sees them
    assert report.layout_notes == ["表头在第 3 行，上方 2 行（标题等）不是数据，未作为数据读取"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read(encoding, tmp_path, settings):
    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes("\r\n".join("\t".join(r) for r in [HEADER] + ROWS).encode(encoding))
    records, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert report.encoding == encoding and records["name"].to_list() == ["鹤岗市第一中学", "鹤岗市向阳区人社局"]


def test_a_nul_byte_far_into_the_file_quarantines_its_row_and_reaches_no_record(tmp_path, settings):
    rows = [[f"N{i:05d}"] + ROWS[0][1:] for i in range(2000)]
    rows[1500][2] = "鹤岗市\x00第一中学"
    write_csv(tmp_path / "extracts" / "editorial", "a.csv", HEADER, rows)
    records, quarantine, report = ingest_source(settings.source("editorial"), tmp_path)
    assert (report.rows_checked, report.rows_quarantined) == (1999, 1)
    assert quarantine["row"].to_list() == [1502] and "U+0000" in quarantine["reason"][0]
    assert not records["name"].str.contains("\x00").any()


def test_limits_come_from_configuration_and_a_misspelt_one_is_an_error(tmp_path):
    import tomllib

    from checks.settings import ConfigError
    from tests.conftest import ROOT

    raw = tomllib.loads((ROOT / "config" / "steward.toml").read_text("utf-8"))
    raw["limits"]["max_columns"] = 5
    write_csv(tmp_path / "extracts" / "editorial", "a.csv", HEADER, ROWS)
    result = ingest_all(parse_settings(raw), tmp_path)
    assert "有 8 列，超过上限 5 列" in result.sources["editorial"].reason
    raw["limits"]["max_colums"] = 5
    with pytest.raises(ConfigError, match="max_colums"):
        parse_settings(raw)


def test_hidden_and_lock_files_are_listed_as_ignored_not_skipped_silently(tmp_path):
    folder = tmp_path / "extracts" / "editorial"
    for name in ("..csv", ".x.csv", "~$名录.xlsx"):
        write_csv(folder, name, HEADER, ROWS)
    newest, ignored = select_extract(folder, tmp_path)
    assert newest is None
    assert {i["file"]: i["refused"] for i in ignored} == {"..csv": False, ".x.csv": False, "~$名录.xlsx": False}
    assert "临时锁文件" in ignored[-1]["reason"]


def test_a_reason_quotes_at_most_200_characters_of_the_file(tmp_path, settings):
    folder = tmp_path / "extracts" / "editorial"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(("无" * 100_000 + "\r\n1\r\n").encode())
    _, _, report = ingest_source(settings.source("editorial"), tmp_path)
    assert "无" * 200 + "…" in report.reason and len(report.reason) < 400
