"""Regenerate the ingest corpus: files as departments really send them.

Run from the repository root: `python tests/corpus/make_corpus.py`. The
output is committed; tests read the files, never this script.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from synth.workbook import ExtractBook

HERE = Path(__file__).parent
HEADER = ["机构编号", "统一社会信用代码", "机构名称", "机构类别", "法定代表人", "成立日期", "状态", "地址"]
ROWS = [
    ["BB001", "12230400MA1C4B0P68", "鹤岗市第一中学", "事业单位", "王伟", "2001-09-01", "存续", "鹤岗市向阳区红旗路1号"],
    ["BB002", "11230402MA1C4B0Q43", "鹤岗市向阳区䶮𫟦管理局", "机关", "李娜", "2010/3/5", "存续", "鹤岗市向阳区新华街2号"],
    ["BB003", "12230403MA1C4B0R29", "鹤岗市工农区卫生院", "事业单位", "张敏", "2015年6月30日", "注销", "鹤岗市工农区工农路3号"],
]


def csv_text(header, rows, sep=","):
    return "\r\n".join(sep.join(r) for r in [header] + rows) + "\r\n"


def main():
    (HERE / "utf8.csv").write_bytes(csv_text(HEADER, ROWS).encode("utf-8"))
    (HERE / "utf8_bom.csv").write_bytes(csv_text(HEADER, ROWS).encode("utf-8-sig"))
    (HERE / "gb18030.csv").write_bytes(csv_text(HEADER, ROWS).encode("gb18030"))
    gbk_rows = [r[:2] + [r[2].replace("䶮𫟦", "人社")] + r[3:] for r in ROWS]
    (HERE / "gbk.csv").write_bytes(csv_text(HEADER, gbk_rows).encode("gbk"))
    (HERE / "utf16_tab.csv").write_bytes(csv_text(HEADER, ROWS, "\t").encode("utf-16"))
    variants = [" 机构编号 ", "统一社会信用代码*", "机 构 名 称", "机构类别", "法定代表人", "成立日期", "状态", "地址"]
    (HERE / "header_variants.csv").write_bytes(csv_text(variants, ROWS).encode("utf-8"))
    (HERE / "missing_column.csv").write_bytes(
        csv_text([h for h in HEADER if h != "统一社会信用代码"], [r[:1] + r[2:] for r in ROWS]).encode("utf-8"))
    (HERE / "extra_column.csv").write_bytes(
        csv_text(HEADER + ["备注", "联系电话"], [r + ["=HYPERLINK(\"http://x\")", "0468-1234567"] for r in ROWS]).encode("utf-8"))
    blank = [ROWS[0], [""] * 8, ROWS[1], [" "] * 8, ROWS[2]]
    (HERE / "blank_rows.csv").write_bytes((csv_text(HEADER, blank) + "\r\n").encode("utf-8"))
    dup = [ROWS[0], ROWS[1], ["BB001"] + ROWS[2][1:], ["", *ROWS[2][1:]]]
    (HERE / "duplicate_ids.csv").write_bytes(csv_text(HEADER, dup).encode("utf-8"))
    (HERE / "empty.csv").write_bytes(b"")
    (HERE / "header_only.csv").write_bytes(csv_text(HEADER, []).encode("utf-8"))
    (HERE / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (HERE / "undecodable.csv").write_bytes(csv_text(HEADER, ROWS).encode("utf-8") + b"\x80\xff\xfe\x81\x30\xff")
    long_rows = [ROWS[0], ["BB009", "12230400MA1C4B0P68", "鹤岗" * 3000, "事业单位", "", "", "", ""], ROWS[1]]
    (HERE / "long_field.csv").write_bytes(csv_text(HEADER, long_rows).encode("utf-8"))
    ragged = csv_text(HEADER, ROWS) + "BB004,12230400MA1C4B0P68,鹤岗市,某某中心,事业单位,赵强,2001-01-01,存续,鹤岗市\r\n"
    (HERE / "ragged.csv").write_bytes(ragged.encode("utf-8"))
    dates = [r[:5] + [d] + r[6:] for r, d in zip(ROWS, ["20010901", "2010-13-45", "44197"])]
    (HERE / "dates.csv").write_bytes(csv_text(HEADER, dates).encode("utf-8"))

    with ExtractBook(HERE / "codes_as_numbers.xlsx") as book:
        sheet = book.sheet("名录")
        sheet.write_rows([HEADER, ROWS[0]])
        # an 18-digit code typed into a number cell, and a date cell
        sheet.write_row(["BB010", 912304001234567890, "鹤岗市宏发商贸有限公司", "企业", "刘洋", dt.datetime(2018, 4, 2)])
        sheet.write_row(["BB011", 230402000012345, "鹤岗市兴山区某商店"])  # a 15-digit registration number: digits intact

    with ExtractBook(HERE / "title_row.xlsx") as book:
        book.sheet("说明").write_row(["本表为市委编办机构名录导出"])
        sheet = book.sheet("数据")
        sheet.write_rows([["鹤岗市机构编制实名制数据（2026年11月）"], HEADER, *ROWS])


if __name__ == "__main__":
    main()
