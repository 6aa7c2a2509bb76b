"""A form's rows are written as the very XML xlsxwriter writes for them, and read back whole."""

import random
import re
import zipfile

import openpyxl
import polars as pl
import pytest
import xlsxwriter

from checks.returns import read_return
from reports import forms
from reports.cells import form_cells
from reports.joined import joined_utf8
from reports.xlsx_rows import rows_xml
from tests.test_reports import finding, findings_frame

HOSTILE = ["a&b<c>d\"e'f", " leading", "trailing ", "\u3000全角空格\u3000", "tab\tin", "line\nbreak", "cr\r",
           "nul\x00bell\x07esc\x1b", "_x0041_ literal", "_x00zz_ not one", "\ufffe\uffff", "emoji 😀 鹤岗",
           "=1+1", "", "x" * 40_000, "😀" * 20_000]


def xlsxwriter_rows(values: list[str], path) -> tuple[str, int, int]:
    """The `<row>` elements xlsxwriter itself writes for one column of values (constant-memory mode)."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    text, blank = book.add_format({"num_format": "@"}), book.add_format({"locked": False})
    sheet = book.add_worksheet()
    for r, value in enumerate(values, start=1):
        sheet.write_string(r, 0, value, text)
        sheet.write_blank(r, 1, None, blank)
    book.close()
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode("utf-8")
    return re.search(r"<sheetData>(.*)</sheetData>", xml, re.S).group(1), text._get_xf_index(), blank._get_xf_index()


@pytest.mark.parametrize("values", [HOSTILE, ["鹤岗", "", "a b", "x"], ["\x0bvt", "ff\x0c", "x"], [" x", "y"]],
                         ids=["hostile", "no-space-at-an-end", "space-only-before-escaping", "one-spaced"])
def test_the_rows_are_the_xml_xlsxwriter_writes_for_the_same_text(tmp_path, values):
    # a column is asked whether it holds text to escape or to mark `xml:space="preserve"` before its rows are made
    expected, text, blank = xlsxwriter_rows(values, tmp_path / "x.xlsx")
    ours = rows_xml(pl.DataFrame({"v": values}), 2, text, [blank]).decode("utf-8")
    assert ours == expected


def test_a_columns_texts_joined_as_bytes_are_its_texts_joined_then_encoded():
    # `reports.joined` reads the bytes out of the column's Arrow buffers: slices, several chunks, nulls,
    # characters of one to four bytes, a categorical column
    rng = random.Random(1)
    alphabet = ["a", "鹤", "😀", "", "<&>", "\x00", "e\u0301"]
    for _ in range(300):
        n = rng.randint(0, 40)
        values = [None if rng.random() < 0.1 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                  for _ in range(n)]
        column = pl.Series(values, dtype=pl.String)
        if n > 4 and rng.random() < 0.3:
            column = column.slice(2, n - 3)
        if rng.random() < 0.3:
            column = pl.concat([column, pl.Series(["尾", None, "x"])], rechunk=False)
        expected = column.str.join("").item().encode() if column.len() else b""
        assert joined_utf8(column) == expected and joined_utf8(column.cast(pl.Categorical)) == expected, values


def test_text_that_looks_like_rich_text_markup_stays_text():
    # xlsxwriter puts a value `<r>…</r>` into the sheet as raw markup: a name like that would break the form
    ours = rows_xml(pl.DataFrame({"v": ["<r><t>x</t></r>"]}), 2, 1, []).decode("utf-8")
    assert "&lt;r&gt;&lt;t&gt;x&lt;/t&gt;&lt;/r&gt;" in ours


def test_a_form_of_hostile_values_reads_back_as_written(tmp_path):
    values = [v for v in HOSTILE if len(v.encode("utf-16-le")) <= 2 * 32767 and "\x00" not in v and "\ufffe" not in v]
    frame = findings_frame(*[finding(finding_id=f"f{i}", name=v, message=v or "说明") for i, v in enumerate(values)])
    path = tmp_path / "market.xlsx"
    forms.write_xlsx(path, frame, "市市场监督管理局", "2026-11-28")
    cells = form_cells(frame)
    back = dict(zip(read_return(path)["问题编号"].to_list(), read_return(path)["名称"].to_list()))
    for i, v in enumerate(values):  # what the returns reader takes back (it trims white space, undoes the ')
        if v.strip() == v and v:
            assert back[f"f{i}"] == v, v
    sheet = openpyxl.load_workbook(path)["更正清单"]
    plain = [i for i, v in enumerate(cells["名称"].to_list()) if not re.search(r"[\x00-\x08\x0b-\x1f]|_x", v)]
    assert [sheet["C"][i + 1].value or "" for i in plain] == [cells["名称"][i] for i in plain]  # openpyxl keeps _xHHHH_
    assert sheet.max_row == len(values) + 1 and sheet["Q"][1].protection.locked is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["market.xlsx"]  # the frame and the spooled rows are gone


def test_a_form_that_fails_halfway_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(forms, "ROWS_AT_ONCE", 1)
    calls = []

    def failing(cells, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return rows_xml(cells, *args)

    monkeypatch.setattr(forms, "rows_xml", failing)
    frame = findings_frame(*[finding(finding_id=f"f{i}") for i in range(3)])
    with pytest.raises(OSError):
        forms.write_xlsx(tmp_path / "market.xlsx", frame, "市市场监督管理局", "2026-11-28")
    assert list(tmp_path.iterdir()) == []  # neither a half-written form nor the frame or the spooled rows


def test_a_form_deflated_by_isa_l_holds_what_zlib_would_have_written(tmp_path, monkeypatch):
    """The sheets are deflated by ISA-L (a quarter of zlib's time): the same XML, checksums that hold."""
    from reports import xlsx_rows

    frame = findings_frame(*[finding(finding_id=f"f{i}", name=f"某某公司{i}" * (i % 7 + 1)) for i in range(3000)])
    forms.write_xlsx(tmp_path / "fast.xlsx", frame, "市市场监督管理局", "2026-11-28")
    monkeypatch.setattr(xlsx_rows, "_isal", None)
    forms.write_xlsx(tmp_path / "zlib.xlsx", frame, "市市场监督管理局", "2026-11-28")
    with zipfile.ZipFile(tmp_path / "fast.xlsx") as fast, zipfile.ZipFile(tmp_path / "zlib.xlsx") as plain:
        assert fast.testzip() is None and fast.namelist() == plain.namelist()
        # every part the same but the workbook's creation time (docProps/core.xml)
        assert all(fast.read(name) == plain.read(name) for name in fast.namelist() if name != "docProps/core.xml")
        sheet = fast.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.compress_type == zipfile.ZIP_DEFLATED and sheet.compress_size < sheet.file_size / 5
    assert openpyxl.load_workbook(tmp_path / "fast.xlsx")["更正清单"].max_row == 3001
