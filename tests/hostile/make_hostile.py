"""A hostile department's extracts, generated at test time (big files are never committed).

Each entry of `CASES` makes one file (or one directory entry) in a given folder and says
what the night must do with it: `rejected` (the source is 被拒收, the reason holds the
words), `quarantined` (rows set aside with that reason), `ok` (read, a layout note with
the words), or `refused`/`ignored` (the entry is never opened and is listed with the words).

    python tests/hostile/make_hostile.py OUT_DIR [NAME …]   # write the files, for a look
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

from synth.workbook import ExtractBook

HEADER = ["机构编号", "统一社会信用代码", "机构名称", "机构类别", "法定代表人", "成立日期", "状态", "地址"]
ROWS = [
    ["BB001", "12230400MA1C4B0P68", "鹤岗市第一中学", "事业单位", "王伟", "2001-09-01", "存续", "鹤岗市向阳区红旗路1号"],
    ["BB002", "11230402MA1C4B0Q43", "鹤岗市向阳区人社局", "机关", "李娜", "2010-03-05", "存续", "鹤岗市向阳区新华街2号"],
    ["BB003", "12230403MA1C4B0R29", "鹤岗市工农区卫生院", "事业单位", "张敏", "2015-06-30", "注销", "鹤岗市工农区工农路3号"],
]
MiB = 1 << 20


def csv_text(header=HEADER, rows=ROWS, sep=",", eol="\r\n") -> str:
    return eol.join(sep.join(r) for r in [header] + rows) + eol


# --------------------------------------------------------------------------- hand-made zips

@dataclass
class Member:
    name: str
    data: bytes  # the stored bytes (raw deflate when deflated)
    crc: int
    size: int  # declared uncompressed size
    method: int = 8


def deflated(name: str, content: bytes) -> Member:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return Member(name, co.compress(content) + co.flush(), zlib.crc32(content), len(content))


def repeated(name: str, prefix: bytes, unit: bytes, times: int, suffix: bytes, declared: int | None = None) -> Member:
    """A member whose content is prefix + unit × times + suffix, compressed once per part:
    after a full flush deflate restarts, so one compressed unit repeats (a 4 GiB stream in seconds)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    one = co.compress(unit) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(unit) + co.flush(zlib.Z_FULL_FLUSH) == one
    tail = co.compress(suffix) + co.flush()
    crc = zlib.crc32(prefix)
    for _ in range(times):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(suffix, crc)
    size = len(prefix) + len(unit) * times + len(suffix)
    return Member(name, head + one * times + tail, crc, size if declared is None else declared)


def write_zip(path: Path, members: list[Member]) -> None:
    """A zip written field by field (so sizes may lie, as a crafted file's do)."""
    central, offset = [], 0
    with open(path, "wb") as out:
        for m in members:
            name = m.name.encode()
            header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, m.method, 0, 0x21,
                                 m.crc, len(m.data), m.size, len(name), 0)
            out.write(header + name + m.data)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, m.method, 0, 0x21,
                                       m.crc, len(m.data), m.size, len(name), 0, 0, 0, 0, 0, offset) + name)
            offset += len(header) + len(name) + len(m.data)
        directory = b"".join(central)
        out.write(directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                                          len(directory), offset, 0))


def workbook_members(sheets: list[tuple[str, Member]], shared: Member | None = None) -> list[Member]:
    """The parts an XLSX needs around its worksheets."""
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
             'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
             'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
             '"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.'
             'main+xml"/>'
             + "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.'
                       'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for i in range(1, len(sheets) + 1))
             + ('<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
                'officedocument.spreadsheetml.sharedStrings+xml"/>' if shared else "") + "</Types>")
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    book = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
            '2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
            + "".join(f'<sheet name="{n}" sheetId="{i}" r:id="rId{i}"/>' for i, (n, _) in enumerate(sheets, 1))
            + "</sheets></workbook>")
    book_rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                 'package/2006/relationships">'
                 + "".join(f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                           f'relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
                           for i in range(1, len(sheets) + 1))
                 + (f'<Relationship Id="rId{len(sheets) + 1}" Type="http://schemas.openxmlformats.org/officeDocument/'
                    '2006/relationships/sharedStrings" Target="sharedStrings.xml"/>' if shared else "")
                 + "</Relationships>")
    members = [deflated("[Content_Types].xml", types.encode()), deflated("_rels/.rels", rels.encode()),
               deflated("xl/workbook.xml", book.encode()), deflated("xl/_rels/workbook.xml.rels", book_rels.encode())]
    for i, (_, sheet) in enumerate(sheets, 1):
        sheet.name = f"xl/worksheets/sheet{i}.xml"
        members.append(sheet)
    return members + ([shared] if shared else [])


def _col(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def row_xml(r: int, values: list[str]) -> str:
    cells = "".join(f'<c r="{_col(i)}{r}" t="inlineStr"><is><t>{v}</t></is></c>' for i, v in enumerate(values))
    return f'<row r="{r}">{cells}</row>'


SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
              'spreadsheetml/2006/main">{dimension}<sheetData>')
SHEET_TAIL = "</sheetData></worksheet>"


def sheet_xml(rows: list[list[str]] | None = None, extra: str = "", dimension: str = "") -> bytes:
    rows = [HEADER] + ROWS if rows is None else rows
    body = "".join(row_xml(i, r) for i, r in enumerate(rows, 1))
    return (SHEET_HEAD.format(dimension=dimension) + body + extra + SHEET_TAIL).encode()


# --------------------------------------------------------------------------- the cases

def xfd_cell(path: Path) -> None:
    """A real workbook writer, as Excel would: one stray cell at the last column of the last row."""
    with ExtractBook(path) as book:
        sheet = book.sheet("名录")
        sheet.write_rows([HEADER] + ROWS)
        sheet.write_cell(1048575, 16383, "x")


def xfd_cell_undeclared(path: Path) -> None:
    xml = sheet_xml(extra='<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>')
    write_zip(path, workbook_members([("名录", deflated("", xml))]))


def far_cell_two_letters(path: Path) -> None:
    """Column ZZ of the last row, no dimension: a range of 736 million cells nobody declared."""
    xml = sheet_xml(extra='<row r="1048576"><c r="ZZ1048576" t="inlineStr"><is><t>x</t></is></c></row>')
    write_zip(path, workbook_members([("名录", deflated("", xml))]))


def one_line(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(b"x," * (size // 2))
    make.__doc__ = f"One line of x,x,x,… ({size // MiB or size} {'MB' if size >= MiB else 'bytes'})."
    return make


def header_without_commas(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(("统" * (size // 3)).encode() + b"\r\n" + csv_text().encode())
    return make


@lru_cache(maxsize=1)
def _bomb_sheet() -> Member:
    unit = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>' * (MiB // 50)
    head = (SHEET_HEAD.format(dimension="") + "".join(row_xml(i, r) for i, r in enumerate([HEADER] + ROWS, 1))).encode()
    return repeated("", head, unit, 4000 * MiB // len(unit), SHEET_TAIL.encode())


def zip_bomb(path: Path, declared: int | None = None) -> None:
    """A worksheet whose deflate stream expands to 4,000 MiB of rows."""
    sheet = replace(_bomb_sheet(), size=declared or _bomb_sheet().size)
    write_zip(path, workbook_members([("名录", sheet)]))


def zip_bomb_lying(path: Path) -> None:
    """The same stream, declared as 64 KB in the zip directory."""
    zip_bomb(path, declared=65536)


def shared_strings_bomb(path: Path) -> None:
    unit = b"<si><t>x</t></si>" * (MiB // 17)
    shared = repeated("xl/sharedStrings.xml", b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/'
                      b'spreadsheetml/2006/main">', unit, 1500, b"</sst>")
    write_zip(path, workbook_members([("名录", deflated("", sheet_xml()))], shared))


def deeply_nested(path: Path) -> None:
    """A cell whose rich text nests 200,000 elements deep."""
    cell = '<row r="5"><c r="A5" t="inlineStr"><is>' + "<r>" * 200_000 + "<t>x</t>" + "</r>" * 200_000 + "</is></c></row>"
    write_zip(path, workbook_members([("名录", deflated("", sheet_xml(extra=cell)))]))


def million_empty_rows(path: Path) -> None:
    empty = "".join(f'<row r="{r}" spans="1:8" customHeight="1" ht="15"/>' for r in range(5, 1_048_577))
    write_zip(path, workbook_members([("名录", deflated("", sheet_xml(extra=empty)))]))


def million_columns(path: Path) -> None:
    path.write_bytes(",".join(HEADER).encode() + b"," * 1_000_000 + b"\r\n" + csv_text().split("\r\n", 1)[1].encode())


def mostly_cr(path: Path) -> None:
    path.write_bytes(csv_text().encode() + b"\r" * (30 * MiB))


def mac_line_breaks(path: Path) -> None:
    path.write_bytes(csv_text(eol="\r").encode())


def giant_cell_xlsx(path: Path) -> None:
    rows = [HEADER] + ROWS + [["BB009", "12230400MA1C4B0P68", "鹤" * 32767, "", "", "", "", ""]]
    write_zip(path, workbook_members([("名录", deflated("", sheet_xml(rows)))]))


def utf16(encoding: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(csv_text(sep="\t").encode(encoding))
    return make


def not_a_zip(path: Path) -> None:
    path.write_bytes(csv_text().encode())


def old_xls(path: Path) -> None:
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))


def truncated_xlsx(path: Path) -> None:
    whole = path.with_suffix(".whole")
    with ExtractBook(whole) as book:
        book.sheet("名录").write_rows([HEADER] + ROWS * 200)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])


def garbage_in_zip(path: Path) -> None:
    """A zip whose workbook is no XML at all."""
    members = workbook_members([("名录", deflated("", b"\x00\x01 not xml <<<"))])
    members[2] = deflated("xl/workbook.xml", b"<workbook><sheets><sheet name=\"a\" r:id=\"rId1\"/></sheets>")
    write_zip(path, members)


def title_rows(path: Path) -> None:
    path.write_bytes(("鹤岗市机构编制名录\r\n导出时间：2026-11-30\r\n" + csv_text()).encode("utf-8-sig"))


def title_rows_tab_gbk(path: Path) -> None:
    path.write_bytes(("鹤岗市机构编制名录\r\n\r\n" + csv_text(sep="\t")).encode("gb18030"))


def unique_code(n: int) -> str:
    """A valid code of its own for record n (a 事业单位 of 向阳区): no giant group, nor a column empty throughout."""
    from validators.uscc import calc_check_char, calc_org_check_char

    body = f"{n:08d}"
    first17 = "12230402" + body + calc_org_check_char(body)
    return first17 + calc_check_char(first17)


def twenty_sheets(path: Path) -> None:
    with ExtractBook(path) as book:
        book.sheet("填表说明").write_row(["本表为鹤岗市机构编制名录，按区县分表。"])
        for s in range(20):
            sheet = book.sheet(f"第{s + 1}册")
            sheet.write_row(HEADER)
            sheet.write_rows([f"S{s:02d}R{r:03d}", unique_code(s * 100 + r)] + ROWS[r % 3][2:] for r in range(50))
        # one record id twice, on two sheets: both rows are quarantined, naming both sheets
        book.sheets[3].write_cell(5, 0, "S00R001")


def duplicate_code_column(filled: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        header = HEADER + ["统一社会信用代码"]
        if filled == "second":
            header = ["机构编号", "统一社会信用代码"] + HEADER[2:] + ["统一社会信用代码"]
            rows = [[r[0], ""] + r[2:] + [r[1]] for r in ROWS]
        else:
            rows = [r + [r[1]] for r in ROWS]
        path.write_bytes(csv_text(header, rows).encode())
    return make


def nul_after_64k(path: Path) -> None:
    rows = [[f"N{i:05d}", unique_code(10_000 + i), f"鹤岗市第{i}中学", "事业单位", "", "", "", ""] for i in range(1200)]
    rows[1100][2] = "鹤岗市\x00第一中学"
    path.write_bytes(csv_text(HEADER, rows).encode())


def many_sheets(path: Path) -> None:
    write_zip(path, workbook_members([(f"表{i}", deflated("", sheet_xml())) for i in range(150)]))


def symlink_to(target: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        os.symlink(target, path)
    return make


def fifo(path: Path) -> None:
    os.mkfifo(path)


def directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.csv").write_bytes(csv_text().encode())


def plain(path: Path) -> None:
    path.write_bytes(csv_text().encode())


@dataclass(frozen=True)
class Case:
    file: str
    make: Callable[[Path], None]
    outcome: str  # rejected | quarantined | ok | refused | ignored
    words: str  # in the reason (rejected, quarantined, refused, ignored) or in a layout note (ok)
    heavy: bool = False  # measured in a child process (time, peak memory)


CASES = [
    Case("xfd_cell.xlsx", xfd_cell, "rejected", "第 16,384 列", heavy=True),
    Case("xfd_cell_undeclared.xlsx", xfd_cell_undeclared, "rejected", "单元格 XFD1048576"),
    Case("far_cell_zz.xlsx", far_cell_two_letters, "rejected", "所需内存超过上限", heavy=True),
    Case("one_line_1mb.csv", one_line(1_000_000), "rejected", "列，超过上限 1,000 列", heavy=True),
    Case("one_line_3mb.csv", one_line(3 * MiB), "rejected", "第 1 行超过 1,024 KB", heavy=True),
    Case("one_line_50mb.csv", one_line(50 * MiB), "rejected", "第 1 行超过 1,024 KB", heavy=True),
    Case("header_50mb_no_commas.csv", header_without_commas(50 * MiB), "rejected", "第 1 行超过", heavy=True),
    Case("header_300kb_no_commas.csv", header_without_commas(300_000), "rejected", "缺少必需的列"),
    Case("zip_bomb_4gib.xlsx", zip_bomb, "rejected", "zip 炸弹", heavy=True),
    Case("zip_bomb_lying.xlsx", zip_bomb_lying, "rejected", "比其声明的", heavy=True),
    Case("shared_strings_bomb.xlsx", shared_strings_bomb, "rejected", "zip 炸弹", heavy=True),
    Case("deeply_nested.xlsx", deeply_nested, "ok", ""),
    Case("million_empty_rows.xlsx", million_empty_rows, "ok", "", heavy=True),
    Case("million_columns.csv", million_columns, "rejected", "列，超过上限 1,000 列", heavy=True),
    Case("mostly_cr.csv", mostly_cr, "rejected", "行，超过上限 20,000,000 行", heavy=True),
    Case("mac_line_breaks.csv", mac_line_breaks, "ok", ""),  # old Mac line breaks: 3 rows, not 0
    Case("giant_cell.xlsx", giant_cell_xlsx, "quarantined", "超过 1000 个字符"),
    Case("utf16le_no_bom.csv", utf16("utf-16-le"), "ok", ""),
    Case("utf16be_no_bom.csv", utf16("utf-16-be"), "ok", ""),
    Case("not_a_zip.xlsx", not_a_zip, "rejected", "不是 XLSX 工作簿"),
    Case("old_xls.xlsx", old_xls, "rejected", "Excel 97-2003"),
    Case("truncated.xlsx", truncated_xlsx, "rejected", "已损坏"),
    Case("garbage_in_zip.xlsx", garbage_in_zip, "rejected", "已损坏"),
    Case("title_rows.csv", title_rows, "ok", "表头在第 3 行"),
    Case("title_rows_tab_gbk.csv", title_rows_tab_gbk, "ok", "表头在第 3 行"),
    Case("twenty_sheets.xlsx", twenty_sheets, "quarantined", "重复出现"),
    Case("duplicate_code_column_empty_first.csv", duplicate_code_column("second"), "ok", "只有第 9 列有内容"),
    Case("duplicate_code_column_both_filled.csv", duplicate_code_column("both"), "rejected", "出现了 2 次"),
    Case("nul_after_64k.csv", nul_after_64k, "quarantined", "U+0000"),
    Case("many_sheets.xlsx", many_sheets, "rejected", "超过上限 100 个"),
    Case("passwd.csv", symlink_to("/etc/passwd"), "refused", "符号链接"),
    Case("fifo.csv", fifo, "refused", "不是普通文件"),
    Case("folder.csv", directory, "refused", "是文件夹"),
    Case("..csv", plain, "ignored", "隐藏文件"),
    Case(".x.csv", plain, "ignored", "隐藏文件"),
    Case("~$lock.xlsx", plain, "ignored", "临时锁文件"),
]

BY_FILE = {c.file: c for c in CASES}


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        if len(argv) == 1 or case.file in argv[1:]:
            case.make(out / case.file)


if __name__ == "__main__":
    main(sys.argv[1:])
