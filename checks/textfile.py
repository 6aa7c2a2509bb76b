"""Decode text files as departments send them: UTF-8 (with or without BOM),
UTF-16 with BOM (Excel's "Unicode text"), GB18030/GBK. Never mojibake: a file
that decodes as none of them is rejected with that reason.
"""

from __future__ import annotations

import codecs
from pathlib import Path


class TextFileError(ValueError):
    """The file is not text we can decode; the message says why and what to do."""


#: UTF-8 is validated in chunks of this many bytes, so a large file is never held as text.
CHUNK = 16 << 20


def detect(data: bytes, name: str = "文件") -> tuple[str, str | None]:
    """The encoding of a file's bytes, and its text when finding out needed it anyway.

    UTF-8 (with or without BOM) is validated chunk by chunk and its text is not built;
    GBK-looking files are decoded as GB18030 (a superset: real exports hold characters
    GBK lacks, SPEC §8). Raises TextFileError with the reason and what to do.
    """
    if data.startswith(codecs.BOM_UTF8):
        _validate_utf8(data, 3, name, "UTF-8（带 BOM）")
        return "utf-8-sig", None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return "utf-16", data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise TextFileError(_bad_bytes(name, "UTF-16", exc)) from None
    if b"\x00" in data[:65536]:
        raise TextFileError(f"{name} 含有二进制内容（NUL 字节），不是文本文件。"
                            "请确认导出的是 CSV 或 XLSX，而不是其他格式改了扩展名。")
    try:
        _validate_utf8(data, 0, name, None)
        return "utf-8", None
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{name} 的编码无法识别：既不是 UTF-8，也不是 GB18030/GBK"
                            f"（第 {exc.start} 字节处无法解码）。请用 Excel 另存为“CSV UTF-8”后重新提交。") from None
    if _looks_binary(text):
        raise TextFileError(f"{name} 的编码无法识别：按 GB18030 解码后含大量控制字符，可能不是文本文件。"
                            "请用 Excel 另存为“CSV UTF-8”后重新提交。")
    return "gb18030", text


def _validate_utf8(data: bytes, start: int, name: str, declared: str | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for i in range(start, len(data), CHUNK):
            decoder.decode(view[i: i + CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if declared is None:
            raise
        raise TextFileError(_bad_bytes(name, declared, exc)) from None


def decode(data: bytes, name: str = "文件") -> tuple[str, str]:
    """Decoded text and the encoding used (see `detect`)."""
    encoding, text = detect(data, name)
    if text is None:
        text = data.decode(encoding)
    return text, encoding


def _bad_bytes(name: str, encoding: str, exc: UnicodeDecodeError) -> str:
    return (f"{name} 声明为 {encoding} 编码，但第 {exc.start} 字节处无法解码，文件可能已损坏或被截断。"
            "请重新导出后提交。")


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
