"""USCC (统一社会信用代码, Unified Social Credit Code), GB 32100-2015.

An 18-character code: registration department (1), organization category (2),
region of the registering authority (3–8, GB/T 2260), subject identifier
(9–17, a GB 11714 organization code with its own check digit) and a mod-31
check character (18).

This module is the single source of truth for the standard and the public
face for one code, in the python-stdnum shape. Columns (polars) have their
own public module, `validators.column` (`is_valid_column`, `check_column`),
which agrees with this one on every input (`tests/test_vectorized_agrees.py`);
it imports this module for the rare cell only the scalar path judges, never
the other way round.

Why this module is long: it is the standard, read in one place — every rule
with the Chinese message a clerk reads, and the repairs, which re-run the same
rules on candidates. Split, the rules and their repairs would import each other.

>>> compact(' 9111 0000 6000 3734 1l ')
'91110000600037341L'
>>> validate('91110000600037341L')
'91110000600037341L'
>>> is_valid('12100000400002697C'), is_valid('91110000600037341O')
(True, False)
>>> calc_check_char('91110000600037341')
'L'
>>> [f.kind for f in check('91110000600037340L').findings]
['bad_org_check', 'bad_check_char']
>>> check('230402199001011234').findings[0].kind
'personal_id'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from operator import mul

from validators import regions
from validators.tables import (
    ALPHABET,
    CHECK_WEIGHTS,
    CONFUSABLES,
    DEPARTMENTS,
    EXCEL_FLOAT_RE,
    EXCEL_SCIENTIFIC_RE,
    EXCEL_SIGNIFICANT_DIGITS,
    EXCEL_ZEROED_SUFFIX,
    ID_CHECK_CHARS,
    ID_WEIGHTS,
    KINDS,
    ORG_WEIGHTS,
    PLACEHOLDER_REPEATED_RE,
    PLACEHOLDERS,
    STRIP_CHARS,
    TRIM_CHARS,
    VALUE,
)

__all__ = [
    "mask_personal_ids",
    "Finding",
    "Suggestion",
    "Report",
    "InvalidCode",
    "compact",
    "validate",
    "is_valid",
    "check",
    "calc_check_char",
    "calc_org_check_char",
    "formatting_fix",
    "mask",
    "repair_candidates",
    "single_edit_neighbors",
]

_STRIP_TABLE = str.maketrans("", "", STRIP_CHARS)
_SPACE_TABLE = str.maketrans("", "", "".join(ch for ch in STRIP_CHARS if ch.isspace() or ch in "\u200b\u200c\u200d\u2060\ufeff"))
_SCIENTIFIC = re.compile(EXCEL_SCIENTIFIC_RE)
_FLOAT = re.compile(EXCEL_FLOAT_RE)
_REPEATED_PLACEHOLDER = re.compile(PLACEHOLDER_REPEATED_RE)
_ORG_BODY = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class Finding:
    """One failed rule: its kind, severity, Chinese message and 1-based positions."""

    kind: str
    severity: str
    message: str
    positions: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "message": self.message,
                "positions": list(self.positions)}


@dataclass(frozen=True)
class Suggestion:
    """A candidate code with the reason behind it; never a fact on its own."""

    code: str
    reason: str
    confidence: str  # high | medium | low

    def to_dict(self) -> dict:
        return {"code": self.code, "reason": self.reason, "confidence": self.confidence}


@dataclass(frozen=True)
class Report:
    """Everything the standard says about one input (what `uscc check --json` prints)."""

    input: str
    code: str
    valid: bool
    findings: tuple[Finding, ...] = ()
    suggestions: tuple[Suggestion, ...] = field(default=())

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    @property
    def is_personal_id(self) -> bool:
        return "personal_id" in self.kinds

    def to_dict(self) -> dict:
        """JSON-ready dict; a resident ID number is masked (it is personal data)."""
        hide = mask if self.is_personal_id else (lambda s: s)
        return {
            "input": hide(self.input),
            "code": hide(self.code),
            "valid": self.valid,
            "findings": [f.to_dict() for f in self.findings],
            "suggestions": [s.to_dict() for s in self.suggestions],
        }


class InvalidCode(ValueError):
    """Raised by `validate`; `report` holds every failed rule."""

    def __init__(self, report: Report):
        self.report = report
        errors = [f.message for f in report.findings if f.severity == "error"]
        super().__init__("；".join(errors) or "代码无效")

    @property
    def kinds(self) -> list[str]:
        return self.report.kinds


# --------------------------------------------------------------------------- primitives

def compact(code: object) -> str:
    """Normalize: NFKC (full-width → half-width), drop spaces, NBSP, zero-width
    characters, hyphens and dots, upper-case."""
    text = "" if code is None else str(code)
    return unicodedata.normalize("NFKC", text).translate(_STRIP_TABLE).upper()


def calc_check_char(first17: str) -> str:
    """GB 32100 position-18 check character of the first 17 characters."""
    total = sum(map(mul, map(VALUE.__getitem__, first17[:17]), CHECK_WEIGHTS))
    return ALPHABET[-total % 31]


def _org_value(ch: str) -> int:
    return int(ch) if ch in _DIGITS else ord(ch) - 55  # GB 11714: A=10 … Z=35


#: `_org_value` of each character GB 11714 has, and the check character of each remainder.
_ORG_VALUE = {ch: _org_value(ch) for ch in _ORG_BODY}
_ORG_CHECK = {remainder: {10: "X", 11: "0"}.get(remainder, str(remainder)) for remainder in range(1, 12)}


def calc_org_check_char(body8: str) -> str:
    """GB 11714 check character of an organization code's 8 body characters."""
    try:
        total = sum(map(mul, map(_ORG_VALUE.__getitem__, body8[:8]), ORG_WEIGHTS))
    except KeyError:  # a character GB 11714 does not have: valued as before, for callers outside the rules
        total = sum(_org_value(ch) * w for ch, w in zip(body8, ORG_WEIGHTS))
    return _ORG_CHECK[11 - total % 11]


def mask(text: str) -> str:
    """Mask a resident ID number for display: `230402********1234`."""
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


#: 18 digits (ASCII or full-width, the last may be X), single spaces or hyphens between them allowed, not part of a
#: longer number: where a resident ID number may hide inside free text.
_ID_IN_TEXT = re.compile(r"(?<![0-9０-９])[0-9０-９](?:[ \u00a0\u3000-]?[0-9０-９]){16}[ \u00a0\u3000-]?[0-9０-９XxＸｘ]"
                         r"(?![0-9０-９])")
_ID_SEPARATORS = str.maketrans("", "", " \u00a0\u3000-")


def mask_personal_ids(text: str | None) -> str | None:
    """Mask every resident ID number (GB 11643 shape, `looks_like_personal_id`) inside free text.

    A valid USCC of the same shape is left alone (the rule `check` applies to a code cell).

    >>> mask_personal_ids("经办人身份证 230402 19900101 1237，已核对")
    '经办人身份证 230402********1237，已核对'
    >>> mask_personal_ids("91230402MA1B2C3D4X 与 912304021234567890")
    '91230402MA1B2C3D4X 与 912304021234567890'
    """
    if not text:
        return text

    def hide(match: re.Match) -> str:
        number = unicodedata.normalize("NFKC", match.group(0)).translate(_ID_SEPARATORS).upper()
        return mask(number) if looks_like_personal_id(number) and not is_valid(number) else match.group(0)

    return _ID_IN_TEXT.sub(hide, text)


def looks_like_personal_id(code: str) -> bool:
    """GB 11643 shape: 17 digits + digit/X, a known province and a real birth date.

    The ID's own check digit is not required: a mistyped ID number is still
    personal data and must be masked.
    """
    if len(code) != 18 or not all(ch in _DIGITS for ch in code[:17]) or code[17] not in "0123456789X":
        return False
    if regions.region_status(code[:2] + "0000") != regions.OK:
        return False
    year, month, day = int(code[6:10]), int(code[10:12]), int(code[12:14])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


def personal_id_check_char(first17: str) -> str:
    """GB 11643 check character of a resident ID number's first 17 digits."""
    return ID_CHECK_CHARS[sum(int(ch) * w for ch, w in zip(first17[:17], ID_WEIGHTS)) % 11]


def personal_id_checksum_ok(code: str) -> bool:
    return personal_id_check_char(code) == code[17]


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


# --------------------------------------------------------------------------- rules

def _finding(kind: str, message: str, positions=(), severity: str | None = None) -> Finding:
    return Finding(kind, severity or KINDS[kind].severity, message, tuple(positions))


#: Deletes every character of the alphabet: what remains of a code is what is outside it.
_NOT_ALPHABET = str.maketrans("", "", "".join(VALUE))


def _structure(code: str) -> list[Finding]:
    """Positional rules on an 18-character code; a rule whose positions hold
    characters outside the alphabet is skipped (the charset finding covers them)."""
    findings: list[Finding] = []
    bad = [i for i, ch in enumerate(code) if ch not in VALUE] if code.translate(_NOT_ALPHABET) else []
    if bad:
        listed = "、".join(f"第 {i + 1} 位“{code[i]}”" for i in bad)
        findings.append(_finding("bad_charset", f"{listed}不是代码允许的字符", [i + 1 for i in bad]))
    dept = code[0]
    if dept in VALUE:
        if dept not in DEPARTMENTS:
            findings.append(_finding("bad_department", f"第 1 位“{dept}”不是登记管理部门代码", [1]))
        elif code[1] in VALUE and code[1] not in DEPARTMENTS[dept][1]:
            dept_name, categories = DEPARTMENTS[dept]
            allowed = "、".join(f"{k}（{v}）" for k, v in categories.items())
            findings.append(_finding(
                "bad_category",
                f"第 2 位“{code[1]}”不是{dept_name}部门（第 1 位“{dept}”）下的机构类别，应为 {allowed} 之一", [2]))
    region = code[2:8]
    if not bad or all(ch in VALUE for ch in region):
        status = regions.region_status(region)
        message = _region_message(region, status)
        if message:
            findings.append(_finding("bad_region", message, range(3, 9), regions.STATUS_SEVERITY[status]))
    org = code[8:17]
    if not bad or all(ch in VALUE for ch in org):
        expected = calc_org_check_char(org[:8])
        if org[8] != expected:
            findings.append(_finding(
                "bad_org_check",
                f"第 9–17 位组织机构代码 {org[:8]}-{org[8]} 校验不通过：按 GB 11714 第 17 位应为“{expected}”，"
                "说明第 9–17 位中有字符录错", range(9, 18)))
    if not bad:
        expected = calc_check_char(code[:17])
        if code[17] != expected:
            findings.append(_finding(
                "bad_check_char",
                f"第 18 位校验码“{code[17]}”与前 17 位不符（按 GB 32100 计算应为“{expected}”），说明代码中有字符录错",
                [18]))
    return findings


def _region_message(region: str, status: int) -> str | None:
    if status == regions.OK:
        return None
    if status == regions.NOT_DIGITS:
        return f"第 3–8 位“{region}”应为 6 位数字的行政区划代码"
    if status == regions.UNKNOWN_PROVINCE:
        return f"第 3–8 位“{region}”不是行政区划代码：第 3–4 位“{region[:2]}”不是省级代码"
    if status == regions.UNKNOWN_COUNTY:
        return (f"第 3–8 位“{region}”未见于历年 GB/T 2260 行政区划代码（属{regions.province_name(region)}），"
                "可能是开发区等功能区代码，请核实")
    found = regions.regions()[region]
    return (f"第 3–8 位“{region}”（{found.name}）已于 {found.last_year + 1} 年前撤销，"
            "早于统一社会信用代码启用时间，请核实")


def _zeroed_candidates(digits: str) -> list[Suggestion]:
    """Codes whose first 15 significant digits Excel kept: the check rules leave a few."""
    if len(digits) != 18 or not digits.isascii() or not digits.isdigit():
        return []
    kept = 18 - EXCEL_SIGNIFICANT_DIGITS
    rounded = int(digits)
    out = []
    for value in range(max(rounded - 5 * 10 ** (kept - 1), 0), rounded + 5 * 10 ** (kept - 1)):
        candidate = f"{value:018d}"
        if len(candidate) == 18 and not _structure(candidate):
            out.append(Suggestion(candidate, "Excel 只保留前 15 位有效数字；此候选与保留的数字一致且通过全部校验，"
                                             "仅供查找原始记录，不能直接作为更正结果", "low"))
    return out


_SCIENTIFIC_PARTS = re.compile(r"^([0-9])(?:\.([0-9]+))?[eE]\+?([0-9]{1,3})$")


def _excel_digits(text: str) -> str | None:
    """The 18 integer digits behind an Excel number form (`…000.0`, `9.12304001234568E+17`).

    Parsed by hand: `Decimal("1E100000000")` would spell out a hundred million zeros.
    """
    if _FLOAT.match(text):
        return text.split(".")[0]
    match = _SCIENTIFIC_PARTS.match(text)
    if not match or int(match.group(3)) != 17:
        return None
    mantissa = match.group(1) + (match.group(2) or "")
    return mantissa.ljust(18, "0") if len(mantissa) <= 18 else None


def check(code: object, *, numeric: bool = False, text: bool = False, allowlist: Mapping[str, str] | None = None,
          suggest: bool = True, least: str = "low") -> Report:
    """Every rule of GB 32100 (and docs/findings.md) on one code, with repair candidates.

    Args:
        code: the cell as read from a registry.
        numeric: the cell was stored as a number by a spreadsheet.
        text: the cell was stored as text in a sheet that keeps cell types (XLSX): this file did
            not round it, so 18 digits ending in `000` are judged by the rules, not taken for Excel
            damage (the message still says it may have been such damage upstream). Ignored when
            `numeric` is set. A CSV cell is neither: Excel saves numbers in a CSV as it shows them.
        allowlist: codes confirmed legitimate despite failing a rule → reason.
        suggest: compute repair candidates (skip for speed when only kinds matter).
        least: the lowest confidence of repair candidates wanted: `low` (all), or `medium` (skips the
            searches of every single-edit neighbour and of every code Excel may have rounded, most of a
            suggestion's cost).

    Returns:
        A `Report`; `valid` is true when no finding has severity `error`.
    """
    raw = "" if code is None else str(code)
    trimmed = raw.strip(TRIM_CHARS)
    spaceless = unicodedata.normalize("NFKC", trimmed).translate(_SPACE_TABLE).upper()
    normalized = compact(trimmed)
    suggestions: list[Suggestion] = []

    def report(findings: list[Finding]) -> Report:
        valid = not any(f.severity == "error" for f in findings)
        return Report(raw, normalized, valid, tuple(findings), tuple(suggestions) if suggest else ())

    if not normalized or spaceless in PLACEHOLDERS or _REPEATED_PLACEHOLDER.match(spaceless):
        shown = f"“{trimmed}”" if trimmed else "空白"
        return report([_finding("missing", f"代码栏为{shown}，没有填写统一社会信用代码")])

    if _SCIENTIFIC.match(spaceless) or _FLOAT.match(spaceless):
        digits = _excel_digits(spaceless)
        scientific = _SCIENTIFIC_PARTS.match(spaceless)
        # digits Excel wrote out, trailing zeros included (9.12304001234560E+17 kept 15)
        written = len(scientific.group(1) + (scientific.group(2) or "")) if scientific else 0
        if suggest and least == "low" and digits and (_FLOAT.match(spaceless) or written >= EXCEL_SIGNIFICANT_DIGITS):
            suggestions.extend(_zeroed_candidates(digits))
        return report([_finding("excel_mangled", f"代码“{trimmed}”是 Excel 把代码当作数字保存后的形式，末几位已丢失")])

    if numeric and len(normalized) >= 16 and all(ch in _DIGITS for ch in normalized):
        if suggest and least == "low":  # all low
            suggestions.extend(_zeroed_candidates(normalized))
        return report([_finding("excel_mangled", f"代码“{trimmed}”在表格中以数字保存，超过 15 位的数字已丢失")])

    if len(normalized) == 15 and all(ch in _DIGITS for ch in normalized):
        return report([_finding("legacy_number", f"“{trimmed}”是 15 位工商注册号（旧号码），不是统一社会信用代码")])
    if len(normalized) == 9 and all(ch in _ORG_BODY for ch in normalized[:8]) and normalized[8] in "0123456789X":
        ok = calc_org_check_char(normalized[:8]) == normalized[8]
        note = "其校验位正确" if ok else "且其校验位也不正确"
        return report([_finding("legacy_number", f"“{trimmed}”是 9 位组织机构代码（旧号码），{note}，不是统一社会信用代码")])

    if len(normalized) == 18:
        findings = _structure(normalized)
        has_error = any(f.severity == "error" for f in findings)
        if has_error and looks_like_personal_id(normalized):
            state = "" if personal_id_checksum_ok(normalized) else "（其校验位不符，可能另有录入错误）"
            return report([_finding("personal_id", f"代码栏填写的是居民身份证号码 {mask(normalized)}{state}，"
                                                   "不是统一社会信用代码")])
        zeroed_form = all(ch in _DIGITS for ch in normalized) and normalized.endswith(EXCEL_ZEROED_SUFFIX)
        if has_error and zeroed_form and text and not numeric:
            findings = [_note_upstream_zeroing(f) for f in findings]
        elif has_error and zeroed_form:
            if suggest and least == "low":  # all low
                suggestions.extend(_zeroed_candidates(normalized))
            return report([_finding("excel_mangled", f"代码“{normalized}”末 3 位为 000 且校验不通过，"
                                                     "是 Excel 把代码当作数字保存后丢失了末几位")])
        if suggest and has_error:
            suggestions.extend(repair_candidates(normalized, least, {f.kind for f in findings}))
    else:
        findings = [_finding("bad_length", f"代码为 {len(normalized)} 位，应为 18 位")]
        bad = [i for i, ch in enumerate(normalized) if ch not in VALUE]
        if bad:
            listed = "、".join(f"第 {i + 1} 位“{normalized[i]}”" for i in bad[:5]) + ("等" if len(bad) > 5 else "")
            findings.append(_finding("bad_charset", f"{listed}不是代码允许的字符", [i + 1 for i in bad]))

    if allowlist and normalized in allowlist:
        failed = "、".join(KINDS[f.kind].label for f in findings if f.severity != "info")
        note = f"（原本不通过：{failed}）" if failed else ""
        findings = [_finding("allowlisted", f"该代码已列入白名单：{allowlist[normalized]}{note}")]
        suggestions.clear()
    if trimmed != normalized:
        broken = any(f.severity == "error" for f in findings)
        findings.append(_finding("formatting", _formatting_message(trimmed, broken)))
        if not broken:
            suggestions.insert(0, formatting_fix(trimmed))
    return report(findings)


def formatting_fix(text: str) -> Suggestion:
    """The fix of a `formatting` finding whose clean code passes every rule: the clean code itself
    (`high`: normalization is exact, nothing is guessed), with what was cleaned.

    >>> formatting_fix("9111 0000 6000 3734 1l").code
    '91110000600037341L'
    """
    return Suggestion(compact(text), f"清理代码中的{_formatting_parts(text)}后即为此代码（已通过全部校验），"
                                     "在登记系统中改正格式即可", "high")


def _note_upstream_zeroing(finding: Finding) -> Finding:
    """A text cell of digits ending in 000 that fails the check: the rules stand, the possibility is said."""
    if finding.kind != "bad_check_char":
        return finding
    return Finding(finding.kind, finding.severity, finding.message + "。末 3 位为 000：若该代码曾被 Excel 当作数字保存，"
                   "末几位可能已丢失，请以原始证照为准", finding.positions)


def _formatting_message(text: str, broken: bool = False) -> str:
    found = _formatting_parts(text)
    if broken:
        return f"代码含有{found}，清理后为 {compact(text)}，但清理后仍有错误，请按本记录的其他提示更正"
    return f"代码含有{found}，清理后为 {compact(text)}"


def _formatting_parts(text: str) -> str:
    """What clean-up removes or changes in a cell, in Chinese: `空格、小写字母`."""
    parts = []
    if any(ch.isspace() or ch == "\u00a0" for ch in text):
        parts.append("空格")
    if any(ch in "\u200b\u200c\u200d\u2060\ufeff" for ch in text):
        parts.append("不可见字符")
    if any(unicodedata.normalize("NFKC", ch) != ch for ch in text if not ch.isspace()):
        parts.append("全角字符")
    if any(ch.islower() for ch in text):
        parts.append("小写字母")
    if any(ch in "-‐‑‒–—―−ー－._·・" for ch in text):
        parts.append("连字符或点")
    return "、".join(parts) or "多余字符"


# --------------------------------------------------------------------------- repairs

def repair_candidates(code: str, least: str = "low", kinds: set[str] | None = None) -> list[Suggestion]:
    """Repair candidates for an invalid 18-character code, each with its reason.

    The computed check character (medium, only when every other rule passes),
    confusable characters fixed (medium, only when the result validates), and
    every code one substitution or one adjacent transposition away that passes
    every structural rule (low). None is `high`: that takes evidence from
    another registry (see `checks.repairs`). With `least="medium"` the low ones are not searched for.
    `kinds`: the kinds of the code's structural findings, when the caller has them already.
    """
    if least not in ("low", "medium"):
        raise ValueError(f"least must be 'low' or 'medium', not {least!r}")
    found: dict[str, Suggestion] = {}

    def add(candidate: str, reason: str, confidence: str) -> None:
        if candidate != code and candidate not in found:
            found[candidate] = Suggestion(candidate, reason, confidence)

    bad = [i for i, ch in enumerate(code) if ch not in VALUE]
    if bad:
        options = [CONFUSABLES.get(code[i], ()) for i in bad]
        if all(options):
            for choice in product(*options):
                chars = list(code)
                for i, ch in zip(bad, choice):
                    chars[i] = ch
                candidate = "".join(chars)
                if not _structure(candidate):
                    fixed = "、".join(f"第 {i + 1} 位“{code[i]}”改为“{ch}”" for i, ch in zip(bad, choice))
                    add(candidate, f"易混字符：{fixed}后全部校验通过", "medium")
        return list(found.values())

    if kinds is None:
        kinds = {f.kind for f in _structure(code)}
    if kinds == {"bad_check_char"}:
        add(code[:17] + calc_check_char(code[:17]),
            "前 17 位全部校验通过，按 GB 32100 重新计算第 18 位校验码；也可能是前 17 位中有字符录错，请核对证照",
            "medium")
    if least == "medium":
        return list(found.values())
    for candidate, reason in single_edit_neighbors(code):
        if not _structure(candidate):
            add(candidate, f"{reason}后全部校验通过", "low")
    return list(found.values())


def single_edit_neighbors(code: str) -> list[tuple[str, str]]:
    """Codes one substitution or one adjacent transposition away that pass the
    position-18 check (other rules not applied: cheap, for matching against
    codes held elsewhere). Each with its reason in Chinese.

    Only a code of 18 alphabet characters has neighbors.
    """
    out = []
    for candidate in single_edit_codes(code):
        i = next(k for k in range(18) if candidate[k] != code[k])
        if i < 17 and candidate[i + 1] != code[i + 1]:
            out.append((candidate, f"第 {i + 1}、{i + 2} 位对调"))
        else:
            out.append((candidate, f"第 {i + 1} 位“{code[i]}”改为“{candidate[i]}”"))
    return out


def single_edit_codes(code: str) -> list[str]:
    """`single_edit_neighbors` without the reasons (what matching against other registries needs):
    the substitutions by position, then the transpositions."""
    if len(code) != 18 or any(ch not in VALUE for ch in code):
        return []
    values = [VALUE[ch] for ch in code]
    total = sum(v * w for v, w in zip(values, _ALL_WEIGHTS)) % 31
    if not total:
        return []
    out = [code[:i] + ALPHABET[(values[i] - total * inverse) % 31] + code[i + 1:]
           for i, inverse in enumerate(_INVERSE_WEIGHTS)]
    for i in range(17):
        # swapping positions i and i+1 changes the weighted total by (v[i+1] - v[i]) * (w[i] - w[i+1])
        if values[i] != values[i + 1] and \
                (total + (values[i + 1] - values[i]) * (_ALL_WEIGHTS[i] - _ALL_WEIGHTS[i + 1])) % 31 == 0:
            out.append(code[:i] + code[i + 1] + code[i] + code[i + 2:])
    return out


#: The weight of each of the 18 positions in the check equation (position 18 counts once), and the inverses mod 31.
_ALL_WEIGHTS = CHECK_WEIGHTS + (1,)
_INVERSE_WEIGHTS = tuple(pow(w, -1, 31) for w in _ALL_WEIGHTS)


# --------------------------------------------------------------------------- stdnum shape

def validate(code: object, *, allowlist: Mapping[str, str] | None = None) -> str:
    """Return the normalized code, or raise `InvalidCode` listing every failed rule."""
    result = check(code, allowlist=allowlist, suggest=False)
    if not result.valid:
        raise InvalidCode(result)
    return result.code


def is_valid(code: object, *, allowlist: Mapping[str, str] | None = None) -> bool:
    """True when the code has no error-severity finding."""
    return check(code, allowlist=allowlist, suggest=False).valid

