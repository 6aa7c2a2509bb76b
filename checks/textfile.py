"""Decode text files as departments send them: UTF-8 (with or without BOM),
UTF-16 with or without BOM (Excel's "Unicode text"), GB18030/GBK. Never
mojibake: a file that decodes as none of them is rejected with that reason.

Also the one place that shortens what a message quotes from a file (`quote`):
a reason never carries more than a couple of hundred characters of content.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pyarrow as pa


class TextFileError(ValueError):
    """The file is not text we can decode; the message says why and what to do."""


#: UTF-8 is validated in chunks of this many bytes, so a large file is never held as text.
CHUNK = 16 << 20
#: How much of a file's content a message may quote (then `…`).
QUOTE_CHARS = 200
#: C0 control characters other than tab and line breaks: never text a clerk typed.
CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def quote(text: object, limit: int = QUOTE_CHARS) -> str:
    r"""Content as a message may quote it: at most `limit` characters, then `…`; control
    characters and line breaks shown as `�` and spaces, so a reason stays one short line.

    >>> quote("统一社会信用代码" * 100, 10)
    '统一社会信用代码统一…'
    >>> quote("a\x00b\nc")
    'a�b c'
    """
    text = "" if text is None else str(text)
    cut = len(text) > limit
    text = CONTROL_RE.sub("\ufffd", text[:limit]).replace("\r", " ").replace("\n", " ")
    return text + "…" if cut else text


def control_character(text: str) -> str | None:
    """The first control character of `text` as `U+0000`, or None (see `CONTROL_RE`)."""
    match = CONTROL_RE.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


def detect_encoding(data: bytes, name: str = "文件") -> tuple[str, str | None]:
    """The encoding of a file's bytes, and its text when finding out needed it anyway.

    UTF-8 (with or without BOM) is validated chunk by chunk and its text is not built;
    GBK-looking files are decoded as GB18030 (a superset: real exports hold characters
    GBK lacks, docs/decisions.md#gb18030). Raises TextFileError with the reason and what to do.
    """
    if data.startswith(codecs.BOM_UTF8):
        _validate_utf8(data, 3, name, "UTF-8（带 BOM）")
        return "utf-8-sig", None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return "utf-16", data.decode("utf-16")
        except UnicodeDecodeError as exc:
            line = line_breaks(data[:exc.start].decode("utf-16", errors="replace")) + 1  # the text up to the fault
            raise TextFileError(_bad_bytes(name, "UTF-16", f"第 {line:,} 行（文件第 {exc.start + 1:,} 字节）")) from None
    head = data[:65536]
    if b"\x00" in head:
        utf16 = _utf16_without_bom(data, head, name)
        if utf16 is not None:
            return utf16
        if _binary_head(head):
            raise TextFileError(f"{name} 含有二进制内容（NUL 字节），不是文本文件。"
                                "请确认导出的是 CSV 或 XLSX，而不是其他格式改了扩展名。")
        # a few NUL bytes in a text file: decoded, and the rows holding them are quarantined
    utf8_fault = _utf8_fault(data, 0)
    if utf8_fault is None:
        return "utf-8", None
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:  # both places: a file half UTF-8, half GBK breaks at each in turn
        raise TextFileError(f"{name} 的编码无法识别：按 UTF-8 {_place(data, utf8_fault)}处无法解码，按 GB18030/GBK "
                            f"{_place(data, exc.start)}处无法解码，文件可能混用了两种编码或已损坏。"
                            "请用 Excel 另存为“CSV UTF-8”后重新提交。") from None
    if _looks_binary(text):
        raise TextFileError(f"{name} 的编码无法识别：按 GB18030 解码后含大量控制字符，可能不是文本文件。"
                            "请用 Excel 另存为“CSV UTF-8”后重新提交。")
    return "gb18030", text


def _utf16_without_bom(data: bytes, head: bytes, name: str) -> tuple[str, str] | None:
    """UTF-16 LE or BE without a BOM: the NUL bytes of ASCII text (digits, delimiters, line
    breaks) fall on one side of each byte pair; Chinese characters rarely have one (U+4E00 一).

    Such a file that does not decode (cut short, half a character pair) is refused naming the line and byte, as
    one with a BOM is: it was called binary, and the clerk looked for the wrong fault."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if len(head) < 4 or max(even, odd) < len(head) // 16 or min(even, odd) > max(even, odd) // 10:
        return None
    encoding = "utf-16-le" if odd > even else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        readable = data[:exc.start].decode(encoding, errors="replace")
        if "\x00" in readable[:32768] or _looks_binary(readable):
            return None  # not text in the first place
        where = f"第 {line_breaks(readable) + 1:,} 行（文件第 {exc.start + 1:,} 字节）"
        raise TextFileError(f"{name} 看来是 UTF-16 编码（无 BOM）的文本，但{where}处无法解码，文件可能已损坏或被截断。"
                            "请重新导出后提交。") from None
    if "\x00" in text[:32768] or _looks_binary(text):
        return None
    return encoding, text


def _binary_head(head: bytes) -> bool:
    """Many control bytes at the start: a binary file renamed, not text with a stray NUL."""
    controls = sum(head.count(b) for b in range(32) if b not in (9, 10, 13))
    return controls > max(3, len(head) // 200)


def _validate_utf8(data: bytes, start: int, name: str, declared: str) -> None:
    """Raise TextFileError, naming the line and byte, where `data[start:]` (a file that declared UTF-8) is not."""
    fault = _utf8_fault(data, start)
    if fault is not None:
        raise TextFileError(_bad_bytes(name, declared, _place(data, fault)))


def _utf8_fault(data: bytes, start: int) -> int | None:
    """Where `data[start:]` stops being UTF-8 (the file's byte, from 0), or None where it is UTF-8 throughout.

    Arrow checks the bytes where they lie (the file seen as one binary value, cast to text): at 10^7, 1.2 s for the
    1.6 GB market CSV, where Python's decoder took 2.4 s. Python's decoder, the reference, runs only when Arrow finds
    a fault: it says at which byte.
    """
    if _utf8_by_arrow(data, start):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    at = start
    try:
        for at in range(start, len(data), CHUNK):
            decoder.decode(view[at: at + CHUNK])
        at = len(data)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        # the error's place is in the bytes this call decoded: the chunk after those a character left pending
        pending = len(exc.object) - min(CHUNK, len(data) - at)
        return at - pending + exc.start
    return None


def line_breaks(data: bytes | str, end: int | None = None) -> int:
    """The line breaks in `data[:end]`, bytes or text, without a copy: \r\n, \n and a lone \r (old Mac exports,
    which are read too) each end a line."""
    lf, cr = ("\n", "\r") if isinstance(data, str) else (b"\n", b"\r")
    return data.count(lf, 0, end) + data.count(cr, 0, end) - data.count(cr + lf, 0, end)


def _place(data: bytes, offset: int) -> str:
    """Where byte `offset` of a UTF-8 or GB18030 file lies, as a clerk is told: its line and its byte, counted from
    1 (neither encoding has the bytes of a line break inside a character)."""
    return f"第 {line_breaks(data, offset) + 1:,} 行（文件第 {offset + 1:,} 字节）"


def _utf8_by_arrow(data: bytes, start: int) -> bool:
    """Whether `data[start:]` is UTF-8, by Arrow's validation (no copy of the bytes)."""
    offsets = pa.array([start, len(data)], pa.int64()).buffers()[1]
    value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        value.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def decode(data: bytes, name: str = "文件") -> tuple[str, str]:
    """Decoded text and the encoding used (see `detect_encoding`)."""
    encoding, text = detect_encoding(data, name)
    if text is None:
        text = data.decode(encoding)
    return text, encoding


def _bad_bytes(name: str, encoding: str, where: str) -> str:
    return f"{name} 声明为 {encoding} 编码，但{where}处无法解码，文件可能已损坏或被截断。请重新导出后提交。"


def _looks_binary(text: str) -> bool:
    sample = text[:20000]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    return controls > max(5, len(sample) // 100)


def read_text_file(path: Path) -> str:
    """Whole file as text (see `decode`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TextFileError(f"无法读取文件 {path}：{exc.strerror}") from None
    return decode(data, Path(path).name)[0]


#: Delimiters Excel and registry exports use: comma, tab ("Unicode text"), semicolon, pipe.
DELIMITERS = ",\t;|"


def sniff_delimiter(text: str) -> str:
    r"""The delimiter of a delimited text: the one its first non-blank line holds most of (default comma).

    >>> sniff_delimiter("问题编号\t处理结果\n1\t已更正")
    '\t'
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
