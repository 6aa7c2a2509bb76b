"""Whether a returned row still describes the record we sent, and how a clerk's edit is quoted.

The read-only columns that identify the record (记录编号, 名称, 当前代码) are compared as the
validators normalize them; a `?` (or a merged character) where the file's encoding could not
hold ours is no alteration, a real edit is quoted with the differing characters marked. A code
a spreadsheet turned into a number matches ours when every digit that survived agrees.
"""

from __future__ import annotations

import difflib
import unicodedata
from decimal import Decimal, InvalidOperation

from checks.return_file import CODE, NAME  # noqa: F401  (NAME: the doctests)
from validators.uscc import compact, mask_personal_ids

#: Marks around the characters that differ when a read-only column was altered: brackets in the CSV receipt,
#: highlighted in the HTML one.
MARK_OPEN, MARK_CLOSE = "⟦", "⟧"
#: Characters of an altered value quoted in a reason at most.
QUOTE_LIMIT = 200


def spreadsheet_number_of(cell: str, code: str) -> bool:
    """Whether a number a spreadsheet made of a typed code could have come from `code`, every digit that
    survived agreeing: Excel keeps 15 significant digits (cut off as typed, or rounded when a CSV is saved
    as displayed), LibreOffice a binary double; fewer digits shown (`9.12304E+17`) prove nothing.

    >>> ours = "312304043113364567"
    >>> [spreadsheet_number_of(n, ours) for n in ("3.12304043113364E+017", "312304043113364000",
    ...                                          "312304043113364480", "3.12304043113365E+17", "9.12304E+17")]
    [True, True, True, True, False]
    >>> spreadsheet_number_of("3.12304043113366E+17", ours), spreadsheet_number_of("31230404311336", ours)
    (False, False)
    """
    if len(code) != 18 or not code.isdigit():
        return False
    try:
        number = Decimal(cell.strip().replace(",", ""))
    except InvalidOperation:
        return False
    if not number.is_finite() or number.is_signed() or number.adjusted() != 17:  # 18 digits, before any int()
        return False
    ours = int(code)
    shown = "".join(map(str, number.normalize().as_tuple().digits))  # significant digits written, no trailing 0
    kept = 10 ** 3  # 18 - 15 digits lost
    if len(shown) > 15:  # a binary double written out with its noise digits
        if abs(int(number) - ours) < 128:  # the double nearest to `code` (spacing 64 at 10^17), as written
            return True
        shown = str((int(number) + kept // 2) // kept).rstrip("0")  # a 15-digit value stored as a double
    return any(str(first15).rstrip("0") == shown for first15 in (ours // kept, (ours + kept // 2) // kept))


_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def _plain(text: str) -> str:
    """A record id or name as compared: NFKC, no whitespace or zero-width characters."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace() and ch not in _INVISIBLE)


def _as_saved(text: str, codec: str) -> tuple[str, ...]:
    """The text as a spreadsheet saving in `codec` writes it and we read it back (GB18030): what the codec
    cannot hold becomes `?` (Excel), or for U+0080–U+00FF its single Latin-1 byte, which then pairs with
    the next byte into another character (Calc writes an NBSP as byte A0: `M\u00a0A` reads back as `M燗`)."""
    def calc(ch: str) -> bytes:
        try:
            return ch.encode(codec)
        except UnicodeEncodeError:
            return bytes([ord(ch)]) if ord(ch) < 256 else b"?"

    excel = text.encode(codec, errors="replace").decode(codec)
    return excel, b"".join(calc(ch) for ch in text).decode("gb18030", errors="replace")


def unaltered(header: str, returned: str, sent: str, saved_as: str | None = None) -> bool:
    """A read-only cell as we sent it: equal after the validators' normalization (`compact` for the code,
    NFKC and whitespace for ids and names), or differing only where the file's encoding could not hold
    our character (a GBK save writes `?` for an NBSP or a rare character).

    >>> unaltered(CODE, "9123 0402ma1b2c3d4x", "91230402MA1B2C3D4X")
    True
    >>> unaltered(NAME, "鹤岗?商贸有限公司", "鹤岗\u00a0商贸有限公司", "gbk"), unaltered(NAME, "鹤岗?商贸", "鹤岗市商贸", "gbk")
    (True, False)
    >>> unaltered(CODE, "91230403M燗L7L7Y95Y", "91230403M\u00a0AL7L7Y95Y", "gbk")  # as LibreOffice saves an NBSP
    True
    """
    norm = compact if header == CODE else _plain
    if norm(returned) == norm(sent):
        return True
    return saved_as is not None and any(norm(returned) == norm(v) for v in _as_saved(sent, saved_as))


def marked_pair(sent: str, returned: str, limit: int = QUOTE_LIMIT) -> tuple[str, str]:
    """Both values with the characters that differ between `MARK_OPEN` and `MARK_CLOSE`, invisible
    characters spelled out (`U+00A0`), each at most about `limit` characters around the first difference.

    Resident ID numbers are masked in both first: marks inside one would split it where the masking of the
    whole reason could no longer find it.

    >>> marked_pair("9123\u00a00402", "9123?0402")
    ('9123⟦U+00A0⟧0402', '9123⟦?⟧0402')
    >>> marked_pair("12230402MAY6QU9D11", "230402199001011237")[1]  # what the clerk typed shows only the masked part
    '⟦⟧230402⟦********⟧1⟦237⟧'
    """
    sent, returned = mask_personal_ids(sent), mask_personal_ids(returned)
    def shown(text: str) -> str:
        text = text.replace(MARK_OPEN, "[").replace(MARK_CLOSE, "]")
        return "".join(f"U+{ord(ch):04X}" if (ch.isspace() and ch != " ") or unicodedata.category(ch) in ("Cc", "Cf")
                       else ch for ch in text)

    head = len(_common_prefix(sent, returned))
    tail = len(_common_prefix(sent[head:][::-1], returned[head:][::-1]))
    a, b = sent[head:len(sent) - tail], returned[head:len(returned) - tail]
    if len(a) > 2 * limit or len(b) > 2 * limit:  # a whole different text: marked as one, not diffed
        pairs = [(a, b, True)]
    else:
        pairs = [(a[i1:i2], b[j1:j2], op != "equal")
                 for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()]
    before, after = sent[:head], sent[len(sent) - tail:]

    def side(index: int) -> str:
        middle = "".join(f"{MARK_OPEN}{shown(p[index])}{MARK_CLOSE}" if p[2] else shown(p[index]) for p in pairs)
        lead = shown(before[-40:]) if len(before) > 40 else shown(before)
        text = ("…" if len(before) > 40 else "") + lead + middle + shown(after)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        if cut.count(MARK_OPEN) > cut.count(MARK_CLOSE):
            cut += MARK_CLOSE
        return cut + "…"

    return side(0), side(1)


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """What a clerk typed, as a reason quotes it: at most `limit` characters, then `…`."""
    return text if len(text) <= limit else text[:limit] + "…"


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]

__all__ = ["unaltered", "marked_pair", "quoted", "spreadsheet_number_of", "MARK_OPEN", "MARK_CLOSE", "QUOTE_LIMIT"]
