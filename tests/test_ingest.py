"""Reading extracts as departments send them: every file of tests/corpus gives its documented outcome."""

import os
import shutil

import polars as pl
import pytest

from checks.ingest import IngestError, ingest_all, parse_dates, read_csv, read_xlsx, select_extract, to_canonical
from checks.settings import parse_settings
from tests.conftest import CORPUS


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


def test_a_fourth_registry_is_configuration_only(tmp_path):
    import tomllib

    from tests.conftest import ROOT

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
