"""Vectorized GB 32100 checks over a polars column: the hot path of every run.

ASCII cells (nearly all) are judged here with string expressions and numpy
lookup tables over a fixed-width byte matrix; the rare non-ASCII cell goes
through the scalar `validators.uscc.check` once per distinct value. Both
paths read the same tables, and property tests hold them equal.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from validators import regions
from validators.tables import (
    ALPHABET,
    CHECK_WEIGHTS,
    DEPARTMENTS,
    EXCEL_FLOAT_RE,
    EXCEL_SCIENTIFIC_RE,
    ID_CHECK_CHARS,
    ID_WEIGHTS,
    KINDS,
    ORG_WEIGHTS,
    PLACEHOLDER_REPEATED_RE,
    PLACEHOLDERS,
    STRIP_CHARS,
    TRIM_CHARS,
)

#: Bit of each kind in the flags column, in the order kinds are listed.
KIND_ORDER = (
    "missing", "excel_mangled", "personal_id", "legacy_number", "allowlisted", "bad_length",
    "bad_charset", "bad_department", "bad_category", "bad_region", "bad_org_check", "bad_check_char",
    "formatting",
)
BIT = {kind: 1 << i for i, kind in enumerate(KIND_ORDER)}
#: bad_region is an error or a warning depending on the region; this bit marks "error".
REGION_ERROR_BIT = 1 << len(KIND_ORDER)
ERROR_MASK = sum(BIT[k] for k in KIND_ORDER if KINDS[k].severity == "error" and k != "bad_region") | REGION_ERROR_BIT

_ASCII_STRIP = "".join(ch for ch in STRIP_CHARS if ord(ch) < 128)
_ASCII_SPACES = "".join(ch for ch in _ASCII_STRIP if ch.isspace())
_NOT_ALPHABET_RE = f"[^{ALPHABET}]"
_LEGACY_ORG_RE = r"^[0-9A-Z]{8}[0-9X]$"


def _lookup_tables():
    value = np.full(256, -1, dtype=np.int16)
    for i, ch in enumerate(ALPHABET):
        value[ord(ch)] = i
    department = np.zeros(256, dtype=bool)
    category = np.zeros((256, 256), dtype=bool)
    for dept, (_, categories) in DEPARTMENTS.items():
        department[ord(dept)] = True
        for cat in categories:
            category[ord(dept), ord(cat)] = True
    org_value = np.zeros(256, dtype=np.int64)
    for ch in "0123456789":
        org_value[ord(ch)] = int(ch)
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        org_value[ord(ch)] = ord(ch) - 55
    org_check = np.array([ord(c) for c in "0123456789X0"], dtype=np.uint8)  # index = 11 - sum%11 … see below
    return value, department, category, org_value, org_check


_VALUE, _DEPARTMENT, _CATEGORY, _ORG_VALUE, _ORG_CHECK = _lookup_tables()
_W = np.array(CHECK_WEIGHTS, dtype=np.int64)
_OW = np.array(ORG_WEIGHTS, dtype=np.int64)
_IW = np.array(ID_WEIGHTS, dtype=np.int64)
_ID_CHECK = np.array([ord(c) for c in ID_CHECK_CHARS], dtype=np.uint8)
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _byte_matrix(series: pl.Series, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of a column whose every value is `width` ASCII bytes."""
    if len(series) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    array = series.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    return np.frombuffer(data, dtype=np.uint8)[offsets[0]: offsets[-1]].reshape(-1, width)


def _structure_flags(matrix: np.ndarray) -> np.ndarray:
    """Flags of the positional rules (and the personal-ID / zeroed-float forms) for 18-byte codes."""
    n = len(matrix)
    flags = np.zeros(n, dtype=np.int64)
    value = _VALUE[matrix]
    bad = value < 0
    any_bad = bad.any(axis=1)
    flags |= np.where(any_bad, BIT["bad_charset"], 0)

    dept_char_ok = ~bad[:, 0]
    is_dept = _DEPARTMENT[matrix[:, 0]]
    flags |= np.where(dept_char_ok & ~is_dept, BIT["bad_department"], 0)
    flags |= np.where(is_dept & ~bad[:, 1] & ~_CATEGORY[matrix[:, 0], matrix[:, 1]], BIT["bad_category"], 0)

    region_chars = matrix[:, 2:8]
    region_ok_chars = ~bad[:, 2:8].any(axis=1)
    digits = (region_chars >= 48) & (region_chars <= 57)
    region_is_digits = digits.all(axis=1)
    region_int = ((region_chars.astype(np.int64) - 48) * np.array([100000, 10000, 1000, 100, 10, 1])).sum(axis=1)
    status = np.where(region_is_digits, regions.status_table()[np.clip(region_int, 0, 999_999)], regions.NOT_DIGITS)
    region_flagged = region_ok_chars & (status != regions.OK)
    region_error = region_ok_chars & ((status == regions.UNKNOWN_PROVINCE) | (status == regions.NOT_DIGITS))
    flags |= np.where(region_flagged, BIT["bad_region"], 0) | np.where(region_error, REGION_ERROR_BIT, 0)

    org_ok_chars = ~bad[:, 8:17].any(axis=1)
    remainder = 11 - (_ORG_VALUE[matrix[:, 8:16]] * _OW).sum(axis=1) % 11
    expected_org = _ORG_CHECK[remainder]
    flags |= np.where(org_ok_chars & (expected_org != matrix[:, 16]), BIT["bad_org_check"], 0)

    total = ((value[:, :17].astype(np.int64) * _W).sum(axis=1) + value[:, 17]) % 31
    flags |= np.where(~any_bad & (total != 0), BIT["bad_check_char"], 0)

    has_error = (flags & ERROR_MASK) != 0
    all_digits = ((matrix >= 48) & (matrix <= 57)).all(axis=1)
    personal = has_error & _looks_like_personal_id(matrix)
    zeroed = has_error & ~personal & all_digits & (matrix[:, 15:18] == 48).all(axis=1)
    flags = np.where(personal, BIT["personal_id"], flags)
    flags = np.where(zeroed, BIT["excel_mangled"], flags)
    return flags


def _looks_like_personal_id(matrix: np.ndarray) -> np.ndarray:
    first17 = matrix[:, :17]
    shape_ok = ((first17 >= 48) & (first17 <= 57)).all(axis=1) & (
        ((matrix[:, 17] >= 48) & (matrix[:, 17] <= 57)) | (matrix[:, 17] == ord("X")))
    d = matrix.astype(np.int64) - 48
    province = d[:, 0] * 10 + d[:, 1]
    province_ok = regions.status_table()[np.clip(province, 0, 99) * 10_000] == regions.OK
    year = d[:, 6] * 1000 + d[:, 7] * 100 + d[:, 8] * 10 + d[:, 9]
    month = d[:, 10] * 10 + d[:, 11]
    day = d[:, 12] * 10 + d[:, 13]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS[np.clip(month, 0, 12)] + np.where((month == 2) & leap, 1, 0)
    date_ok = (year >= 1900) & (year <= 2099) & month_ok & (day >= 1) & (day <= days)
    return shape_ok & province_ok & date_ok


def personal_id_checksum_ok(matrix: np.ndarray) -> np.ndarray:
    total = ((matrix[:, :17].astype(np.int64) - 48) * _IW).sum(axis=1) % 11
    return _ID_CHECK[total] == matrix[:, 17]


def _ascii_flags(trimmed: pl.Series, numeric: pl.Series, allow: frozenset[str]) -> tuple[pl.Series, np.ndarray]:
    """Normalized code and flags for ASCII-only cells."""
    frame = pl.DataFrame({"trimmed": trimmed, "numeric": numeric})
    frame = frame.with_columns(
        normalized=pl.col("trimmed").str.replace_all(f"[{_re_escape(_ASCII_STRIP)}]", "").str.to_uppercase(),
        spaceless=pl.col("trimmed").str.replace_all(f"[{_re_escape(_ASCII_SPACES)}]", "").str.to_uppercase(),
    ).with_columns(length=pl.col("normalized").str.len_bytes())
    is_digits = pl.col("normalized").str.contains(r"^[0-9]+$")
    frame = frame.with_columns(
        missing=(pl.col("length") == 0) | pl.col("spaceless").is_in(list(PLACEHOLDERS))
        | pl.col("spaceless").str.contains(PLACEHOLDER_REPEATED_RE),
        excel_form=pl.col("spaceless").str.contains(EXCEL_SCIENTIFIC_RE) | pl.col("spaceless").str.contains(EXCEL_FLOAT_RE),
        numeric_lost=pl.col("numeric") & (pl.col("length") >= 16) & is_digits,
        legacy=((pl.col("length") == 15) & is_digits) | ((pl.col("length") == 9) & pl.col("normalized").str.contains(_LEGACY_ORG_RE)),
        foreign=pl.col("normalized").str.contains(_NOT_ALPHABET_RE),
        allowlisted=pl.col("normalized").is_in(list(allow)) if allow else pl.lit(False),
        changed=pl.col("trimmed") != pl.col("normalized"),
    )
    n = len(frame)
    missing = frame["missing"].to_numpy()
    excel_form = frame["excel_form"].to_numpy() & ~missing
    numeric_lost = frame["numeric_lost"].to_numpy() & ~missing & ~excel_form
    legacy = frame["legacy"].to_numpy() & ~missing & ~excel_form & ~numeric_lost
    terminal = missing | excel_form | numeric_lost | legacy
    length = frame["length"].to_numpy()
    is18 = (length == 18) & ~terminal

    flags = np.zeros(n, dtype=np.int64)
    flags[missing] = BIT["missing"]
    flags[excel_form | numeric_lost] = BIT["excel_mangled"]
    flags[legacy] = BIT["legacy_number"]
    short = ~terminal & ~is18
    flags |= np.where(short, BIT["bad_length"], 0) | np.where(short & frame["foreign"].to_numpy(), BIT["bad_charset"], 0)
    idx18 = np.flatnonzero(is18)
    if len(idx18):
        flags[idx18] = _structure_flags(_byte_matrix(frame["normalized"].gather(idx18), 18))
    became_terminal = (flags & (BIT["personal_id"] | BIT["excel_mangled"])) != 0
    open_ = ~terminal & ~became_terminal
    allowed = open_ & frame["allowlisted"].to_numpy()
    flags = np.where(allowed, BIT["allowlisted"], flags)
    flags |= np.where(open_ & frame["changed"].to_numpy(), BIT["formatting"], 0)
    return frame["normalized"], flags


def _re_escape(chars: str) -> str:
    return "".join("\\" + ch if ch in r"\^]-[" else ch for ch in chars).replace("\t", r"\t").replace(
        "\n", r"\n").replace("\r", r"\r").replace("\f", r"\f").replace("\v", r"\x0B")


def _scalar_flags(values: list[str], numerics: list[bool], allow: Mapping[str, str] | None):
    from validators.uscc import check  # the scalar truth, for the rare non-ASCII cell

    codes, flags = [], []
    for value, numeric in zip(values, numerics):
        report = check(value, numeric=numeric, allowlist=allow, suggest=False)
        bits = 0
        for finding in report.findings:
            bits |= BIT[finding.kind]
            if finding.kind == "bad_region" and finding.severity == "error":
                bits |= REGION_ERROR_BIT
        codes.append(report.code)
        flags.append(bits)
    return codes, flags


def classify(series: pl.Series, numeric: pl.Series | None = None,
             allowlist: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Normalized code and kind flags of every cell (internal form of `check_column`).

    Returns:
        Frame with `code` (normalized), `flags` (bit per kind, see `BIT`) and `valid`.
    """
    values = series.cast(pl.String).fill_null("")
    numeric = (numeric if numeric is not None else pl.Series([False] * len(values))).cast(pl.Boolean).fill_null(False)
    trimmed = values.str.strip_chars(TRIM_CHARS)
    ascii_rows = trimmed.str.contains(r"^[\x00-\x7F]*$").to_numpy()
    codes = np.empty(len(values), dtype=object)
    flags = np.zeros(len(values), dtype=np.int64)

    idx = np.flatnonzero(ascii_rows)
    if len(idx):
        norm, bits = _ascii_flags(trimmed.gather(idx), numeric.gather(idx), frozenset(allowlist or ()))
        flags[idx] = bits
        codes_ascii = norm
    else:
        codes_ascii = pl.Series([], dtype=pl.String)
    other = np.flatnonzero(~ascii_rows)
    if len(other):
        pairs = pl.DataFrame({"v": values.gather(other), "n": numeric.gather(other)})
        distinct = pairs.unique(maintain_order=True)
        c, f = _scalar_flags(distinct["v"].to_list(), distinct["n"].to_list(), allowlist)
        joined = pairs.join(distinct.with_columns(code=pl.Series(c, dtype=pl.String), flags=pl.Series(f, dtype=pl.Int64)),
                            on=["v", "n"], how="left", maintain_order="left")
        flags[other] = joined["flags"].to_numpy()
    # assemble the code column without a Python loop over ASCII rows
    code = pl.repeat(None, len(values), dtype=pl.String, eager=True) if len(other) else codes_ascii
    if len(other):
        code = code.scatter(idx, codes_ascii).scatter(other, joined["code"])
    return pl.DataFrame({
        "code": code.alias("code"),
        "flags": flags,
        "valid": (flags & ERROR_MASK) == 0,
    })


def kinds_expr(flags: pl.Expr) -> pl.Expr:
    """List of kind keys from a flags column, in `KIND_ORDER`."""
    parts = [pl.when((flags & BIT[k]) != 0).then(pl.lit(k)) for k in KIND_ORDER]
    return pl.concat_list(parts).list.drop_nulls()


def is_valid_column(series: pl.Series, *, allowlist: Mapping[str, str] | None = None) -> pl.Series:
    """True per cell when the code has no error-severity finding."""
    return classify(series, allowlist=allowlist)["valid"].alias(series.name or "valid")


def check_column(series: pl.Series, *, numeric: pl.Series | None = None,
                 allowlist: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per input: `input`, normalized `code`, `valid`, `kinds` (list of kind keys)."""
    result = classify(series, numeric, allowlist)
    return pl.DataFrame({"input": series.cast(pl.String)}).with_columns(
        code=result["code"], valid=result["valid"],
        kinds=kinds_expr(pl.lit(result["flags"])),
    )
