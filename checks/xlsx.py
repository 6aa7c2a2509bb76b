"""XLSX reading, bounded: what a workbook declares is checked before any parser runs,
then its cells are read as text (fastexcel) in a child process with a memory limit,
plus which code cells were numbers.

Why both: a zip's central directory and a sheet's `<dimension>` are cheap to check and
give the department a precise reason (`preflight`); the parser (calamine, native code)
can still abort the whole process on shapes nobody declared (a cell at `XFD1048576`
makes it allocate 512 GiB and SIGABRT), so it runs where an abort costs one source
(`read_sheets`).

fastexcel returns a numeric cell as a string like `912304001234567936`, which
is indistinguishable from text. Excel stores the cell type in the sheet XML
(`t="s"` shared string, `t="inlineStr"`, `t="str"`; no `t` = number), so the
code column's cell types are read from there with one regex pass.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import stat
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import polars as pl

from checks import frame_files
from checks.formula_cells import UncomputedCells
from checks.settings import Limits

log = logging.getLogger(__name__)

_SHEET_RE = re.compile(rb'<sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]*)"')
_SHEET_RE_ALT = re.compile(rb'<sheet\b[^>]*?\br:id="([^"]*)"[^>]*?\bname="([^"]*)"')
_REL_RE = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]*)"[^>]*?\bTarget="([^"]*)"')
_REL_RE_ALT = re.compile(rb'<Relationship\b[^>]*?\bTarget="([^"]*)"[^>]*?\bId="([^"]*)"')
_SHEET_TAG_RE = re.compile(rb"<sheet\b[^>]*>")
_NAME_ATTR_RE = re.compile(rb'\bname="([^"]*)"')
_RID_ATTR_RE = re.compile(rb'\br:id="([^"]*)"')
_TYPE_RE = re.compile(rb'\bt="([^"]*)"')
_FIRST_ROW_RE = re.compile(rb'<row\b[^>]*?\br="(\d+)"[^>]*>(?:(?!</row>).)*?<(?:v|is)\b', re.S)
_DIMENSION_RE = re.compile(rb'<dimension\b[^>]*?\bref="([A-Za-z]*)(\d*)(?::([A-Za-z]+)(\d+))?"')
#: Cell references past column ZZ (703+): rare enough to look at each one (a literal first, for speed).
_WIDE_REF_RE = re.compile(rb'r="([A-Z]{3,})(\d+)"')
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
#: Members read whole by the preflight (workbook, relationships): never more than this.
_SMALL_MEMBER = 16 << 20
_BLOCK = 4 << 20
#: The compression ratio is judged on members that expand beyond this; smaller ones are harmless.
_RATIO_FROM = 64 << 20


class XlsxError(ValueError):
    """The workbook can't be read; the message says why, in Chinese, without paths."""


@dataclass(frozen=True)
class Sheet:
    name: str
    member: str | None  # the worksheet XML inside the zip, when the workbook says where
    uncomputed: int = 0  # formula cells without a saved result (`checks.formula_cells`)
    first_uncomputed: str | None = None  # the first one's reference (B2)


# --------------------------------------------------------------------------- preflight (no parser)

def preflight(handle: BinaryIO, name: str, limits: Limits) -> list[Sheet]:
    """The workbook's sheets, after checking what it declares against `limits`.

    Reads the zip directory, the workbook and, decompressing it in bounded blocks, every
    sheet and the shared strings (a member whose stream is longer than it declares is
    refused there, never handed to the parser). Raises XlsxError with the reason.

    Args:
        handle: the workbook opened for binary reading (seekable).
        name: the file name, as messages show it.
    """
    handle.seek(0)
    magic = handle.read(8)
    if not magic.startswith(b"PK"):
        raise XlsxError(_not_a_zip(name, magic))
    try:
        infos = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise XlsxError(_broken(name, "压缩结构无法读取，文件可能被截断")) from None
    _check_directory(infos, name, limits)
    by_name = {i.filename: i for i in infos}
    sheets = _sheets(handle, by_name, name)
    if not sheets:
        raise XlsxError(_broken(name, "工作簿中没有工作表"))
    if len(sheets) > limits.xlsx_max_sheets:
        raise XlsxError(f"{name} 有 {len(sheets)} 个工作表，超过上限 {limits.xlsx_max_sheets} 个，未读取。"
                        "请只保留数据所在的工作表后重新提交。")
    for i, sheet in enumerate(sheets):
        info = by_name.get(sheet.member or "")
        if info is not None:
            sheets[i] = _check_sheet(handle, info, name, sheet, limits)
    strings = by_name.get("xl/sharedStrings.xml")
    if strings is not None:
        count = sum(block.count(b"<si>") + block.count(b"<si ") for block in _stream(handle, strings, name))
        if count > limits.xlsx_max_cells:
            raise XlsxError(f"{name} 的共享字符串表有 {count:,} 项，超过上限 {limits.xlsx_max_cells:,} 项，"
                            "不是正常的数据导出，未读取。请重新导出后提交。")
    return sheets


def _not_a_zip(name: str, magic: bytes) -> str:
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        return (f"{name} 是旧版 Excel 97-2003 工作簿（.xls）或加密的工作簿，只是扩展名为 .xlsx，无法读取。"
                "请用 Excel 打开后“另存为”Excel 工作簿（.xlsx，不设密码）再提交。")
    return (f"{name} 不是 XLSX 工作簿（不是 Excel 的压缩格式），可能是其他格式的文件改了扩展名。"
            "请用 Excel 打开后另存为 .xlsx，或另存为 CSV 后重新提交。")


def _broken(name: str, what: str) -> str:
    return f"{name} 已损坏，无法读取（{what}）。请用 Excel 打开确认后重新保存，或重新导出后提交。"


def _check_directory(infos: list[zipfile.ZipInfo], name: str, limits: Limits) -> None:
    if len(infos) > limits.xlsx_max_members:
        raise XlsxError(f"{name} 内含 {len(infos):,} 个部件，超过上限 {limits.xlsx_max_members:,} 个，"
                        "不是正常的 Excel 工作簿，未读取。")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise XlsxError(f"{name} 已加密，无法读取。请取消密码保护后另存为 .xlsx 再提交。")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise XlsxError(_broken(name, "使用了 Excel 不使用的压缩方式"))
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FROM and ratio > limits.xlsx_max_ratio:
            raise XlsxError(f"{name} 的部件 {info.filename[:80]} 压缩比为 {ratio:,.0f} 倍（{_size(info.compress_size)} 解压为 "
                            f"{_size(info.file_size)}），超过上限 {limits.xlsx_max_ratio} 倍，"
                            "可能是恶意构造的压缩包（zip 炸弹），未读取。请重新导出后提交。")
        if info.file_size > limits.xlsx_max_member_bytes or total > limits.xlsx_max_total_bytes:
            raise XlsxError(f"{name} 解压后超过 {_size(min(limits.xlsx_max_member_bytes, limits.xlsx_max_total_bytes))}"
                            f"（部件 {info.filename[:80]} 声明 {_size(info.file_size)}），远超正常数据导出，未读取。"
                            "请确认导出内容后重新提交。")


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= (1 << 30) else f"{n / (1 << 20):.1f} MB"


def _stream(handle, info: zipfile.ZipInfo, name: str):
    """A member's decompressed bytes in blocks, never more than it declares (then XlsxError).

    Reads the raw stream after the local header: what the parser would decompress. A
    stream that goes on past its declared size, ends early or fails its CRC is refused.
    """
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise XlsxError(_broken(name, f"部件 {info.filename[:80]} 的文件头损坏"))
    fields = _LOCAL_HEADER.unpack(header)
    handle.seek(info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
    left, produced, crc = info.compress_size, 0, 0
    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    pending = b""
    while True:
        if inflate is not None and pending:
            block = inflate.decompress(pending, _BLOCK)
            pending = inflate.unconsumed_tail
        elif left > 0:
            raw = handle.read(min(_BLOCK, left))
            if not raw:
                raise XlsxError(_broken(name, f"部件 {info.filename[:80]} 被截断"))
            left -= len(raw)
            if inflate is None:
                block = raw
            else:
                try:
                    block = inflate.decompress(raw, _BLOCK)
                except zlib.error:
                    raise XlsxError(_broken(name, f"部件 {info.filename[:80]} 的压缩数据损坏")) from None
                pending = inflate.unconsumed_tail
        elif inflate is not None and not inflate.eof:
            # all input is in, and zlib may still hold output (a match cut where the last block filled): asked
            # for it until the stream's end; nothing more is a truncated stream, refused below
            block = inflate.decompress(b"", _BLOCK)
            if not block:
                break
        else:
            break
        produced += len(block)
        if produced > info.file_size:
            raise XlsxError(f"{name} 的部件 {info.filename[:80]} 解压后比其声明的 {_size(info.file_size)} 更大，"
                            "可能是恶意构造的压缩包，未读取。请重新导出后提交。")
        crc = zlib.crc32(block, crc)
        yield block
    if produced != info.file_size or crc != info.CRC or (inflate is not None and not inflate.eof):
        raise XlsxError(_broken(name, f"部件 {info.filename[:80]} 的内容与校验值不符"))


def _read_small(handle, info: zipfile.ZipInfo | None, name: str) -> bytes:
    if info is None:
        return b""
    if info.file_size > _SMALL_MEMBER:
        raise XlsxError(_broken(name, f"部件 {info.filename[:80]} 异常大"))
    return b"".join(_stream(handle, info, name))


def _sheets(handle, by_name: dict[str, zipfile.ZipInfo], name: str) -> list[Sheet]:
    workbook = by_name.get("xl/workbook.xml")
    if workbook is None:
        raise XlsxError(_broken(name, "缺少工作簿内容 xl/workbook.xml，不是 Excel 保存的文件"))
    xml = _read_small(handle, workbook, name)
    rels = _read_small(handle, by_name.get("xl/_rels/workbook.xml.rels"), name)
    targets = dict(_REL_RE.findall(rels))
    targets.update({rid: target for target, rid in _REL_RE_ALT.findall(rels)})
    sheets: dict[str, Sheet] = {}
    for tag in _SHEET_TAG_RE.findall(xml):  # workbook order, as the parser lists them
        sheet_name, rid = _NAME_ATTR_RE.search(tag), _RID_ATTR_RE.search(tag)
        if sheet_name is None:
            continue
        text = _xml_unescape(sheet_name.group(1).decode("utf-8", "replace"))
        target = targets.get(rid.group(1)) if rid else None
        member = None
        if target is not None:
            t = target.decode("utf-8", "replace")
            member = t.lstrip("/") if t.startswith("/") else str(PurePosixPath("xl") / t)
        sheets.setdefault(text, Sheet(text, member))
    return list(sheets.values())


def _check_sheet(handle, info: zipfile.ZipInfo, name: str, sheet: Sheet, limits: Limits) -> Sheet:
    """A sheet's declared range and cell references against the limits, streaming; the sheet with its formula
    cells without a result counted (`checks.formula_cells`: refused only where the sheet is read as data)."""
    where = f"{name} 的工作表“{sheet.name[:40]}”"
    cells, tail, first, formulas = 0, b"", True, UncomputedCells()
    for block in _stream(handle, info, name):
        data = tail + block
        cut = data.rfind(b"<")
        data, tail = (data[:cut], data[cut:]) if cut > 0 else (data, b"")
        if first:
            first = False
            dim = _DIMENSION_RE.search(data[:65536])
            if dim and dim.group(4):
                _check_range(where, "声明的范围", column_number(dim.group(3)), int(dim.group(4)), limits)
        cells += data.count(b"<c")  # one pass; the few <cols>/<cfRule> it also counts don't matter to a limit
        for letters, row in _WIDE_REF_RE.findall(data):
            _check_range(where, f"单元格 {letters.decode()}{int(row)}", column_number(letters), int(row), limits,
                         area=False)
        if cells > limits.xlsx_max_cells:
            raise XlsxError(f"{where}含有超过 {limits.xlsx_max_cells:,} 个单元格，超过上限，未读取。"
                            "请确认导出内容，或拆分为 CSV 后重新提交。")
        formulas.feed(data)
    return replace(sheet, uncomputed=formulas.count, first_uncomputed=formulas.first)


def _check_range(where: str, what: str, columns: int, rows: int, limits: Limits, area: bool = True) -> None:
    if columns > limits.max_columns or rows > limits.xlsx_max_rows or (area and rows * columns > limits.xlsx_max_cells):
        raise XlsxError(
            f"{where}{what}达到第 {rows:,} 行、第 {columns:,} 列，超过上限（{limits.xlsx_max_rows:,} 行、"
            f"{limits.max_columns:,} 列、共 {limits.xlsx_max_cells:,} 个单元格），未读取。"
            "通常是表格远处有误输入的单元格或格式：请在 Excel 中删除数据区域以外的行和列后另存，重新提交。")


def column_number(letters: bytes) -> int:
    """`A` → 1, `Z` → 26, `AA` → 27, `XFD` → 16384."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ch - 64)
    return n


# --------------------------------------------------------------------------- parsing (child process)

@dataclass
class SheetCells:
    name: str
    cells: pl.DataFrame | None  # every cell as a string (column_0 …), None if the sheet can't be read
    uncomputed: int = 0  # formula cells without a saved result (`Sheet`; set by `read_workbook`)
    first_uncomputed: str | None = None


class ParserAborted(XlsxError):
    """The parser child died (memory limit, time limit or a native abort)."""


def read_sheets(fd: int, name: str, limits: Limits) -> list[SheetCells]:
    """Every sheet's cells as strings, read by a child process (`python -m checks.xlsx`)
    whose address space is limited to `limits.xlsx_parser_memory_mb`: an abort or an
    out-of-memory there rejects this workbook, not the run.

    Args:
        fd: the workbook, opened (the child reads that very file, by descriptor).
    """
    with tempfile.TemporaryDirectory(prefix="uscc-xlsx-") as out:
        command = [sys.executable, "-m", "checks.xlsx", f"/proc/self/fd/{fd}", out,
                   str(limits.xlsx_parser_memory_mb)]
        try:
            done = subprocess.run(command, pass_fds=(fd,), capture_output=True, text=True,
                                  timeout=limits.xlsx_parser_seconds, cwd=Path(__file__).resolve().parents[1])
        except subprocess.TimeoutExpired:
            raise ParserAborted(f"{name} 读取超过 {limits.xlsx_parser_seconds} 秒仍未完成，已停止，未读取。"
                                "请确认文件内容正常（可另存为 CSV）后重新提交。") from None
        listing = Path(out) / "sheets.json"
        if done.returncode != 0 or not listing.exists():
            log.warning("xlsx reader for %s exited %s: %s", name, done.returncode, done.stderr[-2000:])
            if done.returncode == 3:  # the reader's own refusal: calamine could not open the workbook
                raise XlsxError(_broken(name, "Excel 工作簿结构无法解析"))
            raise ParserAborted(f"{name} 读取时所需内存超过上限（{limits.xlsx_parser_memory_mb:,} MB）或解析程序异常退出，"
                                "已停止读取该文件，其他单位的数据不受影响。通常是表格中有远离数据区域的单元格或大量空行空列："
                                "请在 Excel 中删除数据区域以外的行和列后另存，或另存为 CSV 后重新提交。")
        sheets = []
        for entry in json.loads(listing.read_text("utf-8")):
            cells = frame_files.read_ipc(Path(out) / entry["file"]) if entry["file"] else None
            sheets.append(SheetCells(entry["name"], cells))
        return sheets


def _child(path: str, out: str, memory_mb: int) -> int:
    """The reader child: every sheet as strings into Arrow IPC files, listed in sheets.json."""
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import fastexcel

    try:
        reader = fastexcel.read_excel(path)
        names = list(reader.sheet_names)
    except Exception as exc:  # calamine raises several types for broken files
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    listing = []
    for i, sheet in enumerate(names):
        try:
            frame = reader.load_sheet(sheet, header_row=None, dtypes="string").to_polars()
        except Exception as exc:
            print(f"sheet {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
            listing.append({"name": sheet, "file": None})
            continue
        frame = frame.rename({c: f"column_{j}" for j, c in enumerate(frame.columns)})
        frame.write_ipc(Path(out) / f"{i}.arrow")
        listing.append({"name": sheet, "file": f"{i}.arrow"})
        del frame
    (Path(out) / "sheets.json").write_text(json.dumps(listing, ensure_ascii=False), "utf-8")
    return 0


def read_workbook(path: Path, name: str | None = None, limits: Limits | None = None) -> list[SheetCells]:
    """A workbook's sheets, bounded: opened only if it is a regular file (no symlink followed),
    `preflight`, then `read_sheets`. For readers that have a path (returned forms)."""
    limits = limits or Limits()
    name = name or Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise XlsxError(f"{name} 无法打开（可能是符号链接或已被移走），未读取。") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise XlsxError(f"{name} 不是普通文件，为安全起见不读取。")
        declared = {s.name: s for s in preflight(handle, name, limits)}
        return [replace(c, uncomputed=declared[c.name].uncomputed, first_uncomputed=declared[c.name].first_uncomputed)
                if c.name in declared else c for c in read_sheets(fd, name, limits)]


# --------------------------------------------------------------------------- in-process helpers

def _column_letters(index: int) -> bytes:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters.encode()


def sheet_xml(path: Path, sheet: str) -> bytes | None:
    """The worksheet XML of a sheet by name, or None if the workbook doesn't say where it is."""
    with zipfile.ZipFile(path) as zf:
        workbook = zf.read("xl/workbook.xml")
        rels = zf.read("xl/_rels/workbook.xml.rels")
        ids = {name.decode(): rid for name, rid in _SHEET_RE.findall(workbook)}
        ids.update({name.decode(): rid for rid, name in _SHEET_RE_ALT.findall(workbook)})
        targets = dict(_REL_RE.findall(rels))
        targets.update({rid: target for target, rid in _REL_RE_ALT.findall(rels)})
        rid = ids.get(_xml_escape(sheet))
        if rid is None or rid not in targets:
            return None
        target = targets[rid].decode()
        member = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        return zf.read(member)


def numeric_rows(xml: bytes, column_index: int) -> set[int] | None:
    """1-based sheet rows whose cell in `column_index` is stored as a number.

    Returns None when the XML gives no cell references (then nobody can tell).
    """
    letters = _column_letters(column_index)
    cell_re = re.compile(rb'<c\b[^>]*?\br="' + letters + rb'(\d+)"([^>]*?)(/?)>')
    found: set[int] = set()
    for match in cell_re.finditer(xml):
        if match.group(3) == b"/":
            continue  # empty cell
        t = _TYPE_RE.search(match.group(0))
        if t is None or t.group(1) == b"n":
            found.add(int(match.group(1)))
    if not found and b"<c " in xml and b' r="' not in xml:
        return None
    return found


def first_used_row(xml: bytes) -> int:
    """Sheet row of the first row holding a value: where fastexcel's rows start."""
    match = _FIRST_ROW_RE.search(xml)
    return int(match.group(1)) if match else 1


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3])))
