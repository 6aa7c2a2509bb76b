"""Vectorized GB 32100 checks over a polars column: the hot path of every run.

The public face for columns: `is_valid_column` and `check_column` (one code at a
time: `validators.uscc`). `classify`, `BIT` and `kinds_of_flags` are the internal
form `checks/` reads.

Three paths, one truth:
  * a cell of exactly 18 alphabet bytes (nearly all) needs no clean-up: its bytes
    are read in place as byte pairs and judged with lookup tables (`_judge_dense`);
  * other ASCII cells are cleaned with string expressions, then judged the same way
    (`_ascii_flags`);
  * the rare non-ASCII cell goes through the scalar `validators.uscc.check` once per
    distinct value.
All read the tables of `validators.tables`; property tests hold them equal to the
scalar API on every input. `single_edit_codes_column` is the column form of the
one-edit neighbour search (`validators.uscc.single_edit_codes`), held equal the same way.

Why this module is long: the three paths share one set of lookup tables and one
flag layout (`BIT_ORDER`), and a reader checking that they agree needs them side by
side; the compiled kernel (`validators.kernel`) is apart because it is optional.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pyarrow as pa

from validators import regions
from validators.kernel import KERNEL, KERNEL_LOCK
from validators.tables import (
    ALPHABET,
    CHECK_WEIGHTS,
    DEPARTMENTS,
    EXCEL_FLOAT_RE,
    EXCEL_SCIENTIFIC_RE,
    KINDS,
    ORG_WEIGHTS,
    PLACEHOLDER_REPEATED_RE,
    PLACEHOLDERS,
    STRIP_CHARS,
    TRIM_CHARS,
)

__all__ = ["is_valid_column", "check_column", "classify", "compact_expr", "kinds_column", "kinds_of_flags",
           "single_edit_codes_column",
           "BIT", "ERROR_MASK", "BIT_ORDER"]

#: Bit of each kind in the flags column, in the order kinds are listed.
BIT_ORDER = (
    "missing", "excel_mangled", "personal_id", "legacy_number", "allowlisted", "bad_length",
    "bad_charset", "bad_department", "bad_category", "bad_region", "bad_org_check", "bad_check_char",
    "formatting",
)
BIT = {kind: 1 << i for i, kind in enumerate(BIT_ORDER)}
#: bad_region is an error or a warning depending on the region; this bit marks "error".
REGION_ERROR_BIT = 1 << len(BIT_ORDER)
assert REGION_ERROR_BIT < 1 << 16, "flags are uint16"
ERROR_MASK = sum(BIT[k] for k in BIT_ORDER if KINDS[k].severity == "error" and k != "bad_region") | REGION_ERROR_BIT

_ASCII_STRIP = "".join(ch for ch in STRIP_CHARS if ord(ch) < 128)
_ASCII_SPACES = "".join(ch for ch in _ASCII_STRIP if ch.isspace())
_NOT_ALPHABET_RE = f"[^{ALPHABET}]"
_LEGACY_ORG_RE = r"^[0-9A-Z]{8}[0-9X]$"


_NOT_IN_ALPHABET = 1 << 15  # added to the check sum by a character outside the alphabet
_REGION_LETTER = 1 << 24  # an alphabet letter in positions 3–8: not a region (error)
_REGION_FOREIGN = 1 << 28  # a character outside the alphabet there: rule skipped (charset covers it)
_ORG_FOREIGN = 1 << 20


def _position_tables():
    """Per-position lookup tables folding value × weight, with sentinels for foreign bytes.

    One sum of table lookups then gives the mod-31 check (GB 32100), whether
    every byte is in the alphabet, the region as an integer, and the GB 11714 sum.
    """
    in_alphabet = np.zeros(256, dtype=bool)
    value = np.zeros(256, dtype=np.int64)
    for i, ch in enumerate(ALPHABET):
        in_alphabet[ord(ch)] = True
        value[ord(ch)] = i
    check = np.full((18, 256), _NOT_IN_ALPHABET, dtype=np.uint32)
    for pos, weight in enumerate(CHECK_WEIGHTS + (1,)):
        check[pos, in_alphabet] = value[in_alphabet] * weight
    region = np.full((6, 256), _REGION_FOREIGN, dtype=np.uint32)
    for k in range(6):
        region[k, in_alphabet] = _REGION_LETTER
        for d in range(10):
            region[k, 48 + d] = d * 10 ** (5 - k)
    org_value = np.zeros(256, dtype=np.int64)
    org_value[48:58] = np.arange(10)
    org_value[65:91] = np.arange(10, 36)
    org = np.full((8, 256), _ORG_FOREIGN, dtype=np.uint32)
    for k, weight in enumerate(ORG_WEIGHTS):
        org[k, in_alphabet] = org_value[in_alphabet] * weight
    # positions 1–2: 0 fine or skipped, 1 bad department, 2 bad category
    dept_cat = np.zeros((256, 256), dtype=np.uint8)
    for b0 in range(256):
        if not in_alphabet[b0]:
            continue
        dept = chr(b0)
        if dept not in DEPARTMENTS:
            dept_cat[b0, :] = 1
            continue
        for b1 in range(256):
            if in_alphabet[b1] and chr(b1) not in DEPARTMENTS[dept][1]:
                dept_cat[b0, b1] = 2
    org_check = np.array([ord(c) for c in "0123456789X0"], dtype=np.uint8)  # by 11 - sum % 11
    return in_alphabet, check, region, org, dept_cat.reshape(-1), org_check


_IN_ALPHABET, _CHECK_T, _REGION_T, _ORG_T, _DEPT_CAT, _ORG_CHECK = _position_tables()


def _pair_tables():
    """The position tables combined for two adjacent bytes read as one little-endian uint16:
    half as many lookups. Pair k holds positions 2k+1 and 2k+2 (1-based)."""
    lo = np.arange(65536) & 0xFF
    hi = np.arange(65536) >> 8
    check = np.stack([_CHECK_T[2 * k][lo] + _CHECK_T[2 * k + 1][hi] for k in range(9)]).astype(np.uint32)
    region = np.stack([_REGION_T[2 * k][lo] + _REGION_T[2 * k + 1][hi] for k in range(3)]).astype(np.uint32)
    org = np.stack([_ORG_T[2 * k][lo] + _ORG_T[2 * k + 1][hi] for k in range(4)]).astype(np.uint32)
    dept_cat = _DEPT_CAT.reshape(256, 256)[lo, hi]
    return check, region, org, dept_cat


_CHECK_P, _REGION_P, _ORG_P, _DEPT_CAT_P = _pair_tables()


def _result_tables():
    """Tables from a sum straight to flag bits (uint16), so no rule needs a modulo or a compare."""
    max_total = 18 * _NOT_IN_ALPHABET + 18 * 30 * 30
    total = np.arange(max_total + 1)
    check = np.where(total >= _NOT_IN_ALPHABET, BIT["bad_charset"],
                     np.where(total % 31 != 0, BIT["bad_check_char"], 0)).astype(np.uint16)
    dept_cat = np.select([_DEPT_CAT_P == 1, _DEPT_CAT_P == 2], [BIT["bad_department"], BIT["bad_category"]], 0)
    max_org = 35 * sum(ORG_WEIGHTS)
    org_sum = np.arange(max_org + 2)
    expected = _ORG_CHECK[11 - (org_sum % 11)]
    expected[max_org + 1] = 0  # foreign characters in positions 9–16: rule skipped
    status = np.zeros(6, dtype=np.uint16)  # by region status; 5 = skipped
    status[regions.ABOLISHED_EARLY] = status[regions.UNKNOWN_COUNTY] = BIT["bad_region"]
    status[regions.UNKNOWN_PROVINCE] = status[regions.NOT_DIGITS] = BIT["bad_region"] | REGION_ERROR_BIT
    return check, dept_cat.astype(np.uint16), expected.astype(np.uint8), max_org, status


_CHECK_FLAGS, _DEPT_CAT_FLAGS, _ORG_EXPECTED, _MAX_ORG, _REGION_FLAGS = _result_tables()
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
#: Rows per block of the fast path: keeps temporaries small at 10^7 codes.
BLOCK = 1 << 19


def _buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and bytes of a large_string array, without copying."""
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _pairs_of(series: pl.Series) -> np.ndarray:
    """(9, n) byte pairs of a column whose every value is 18 bytes."""
    offsets, data = _buffers(_large_strings(series))
    start, n = int(offsets[0]) if len(offsets) else 0, len(series)
    chunk = np.ascontiguousarray(data[start: start + 18 * n])
    return chunk.view("<u2").reshape(n, 9).T


def _large_strings(series: pl.Series) -> pa.Array:
    array = series.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == pa.large_string() else array.cast(pa.large_string())


def _structure_flags(pairs: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """Flags (uint16) of the positional rules, and the personal-ID / zeroed-float forms, of 18-byte codes.

    Args:
        pairs: (9, n) uint16, pair k = bytes 2k and 2k+1 of each code, little-endian (`_pairs`).
        text: per code, True when the cell was stored as text in a typed sheet (XLSX): no zeroed-float form.
    """
    total = _CHECK_P[0][pairs[0]]
    for k in range(1, 9):
        total += _CHECK_P[k][pairs[k]]
    flags = _CHECK_FLAGS[total]
    flags |= _DEPT_CAT_FLAGS[pairs[0]]

    region = _REGION_P[0][pairs[1]]
    region += _REGION_P[1][pairs[2]]
    region += _REGION_P[2][pairs[3]]
    state = regions.status_table()[np.minimum(region, 999_999)]
    odd = region >= _REGION_LETTER
    if odd.any():
        state[odd] = np.where(region[odd] >= _REGION_FOREIGN, 5, regions.NOT_DIGITS)
    flags |= _REGION_FLAGS[state]

    org = _ORG_P[0][pairs[4]]
    for k in range(1, 4):
        org += _ORG_P[k][pairs[4 + k]]
    expected = _ORG_EXPECTED[np.minimum(org, _MAX_ORG + 1)]
    pos17 = (pairs[8] & 0xFF).astype(np.uint8)
    flags |= ((expected != pos17) & (expected != 0) & _IN_ALPHABET[pos17]).astype(np.uint16) * np.uint16(
        BIT["bad_org_check"])

    errors = np.flatnonzero(flags & ERROR_MASK)
    if len(errors):
        sub = np.ascontiguousarray(pairs[:, errors].T).astype("<u2").view(np.uint8).reshape(-1, 18)
        personal = _looks_like_personal_id(sub)
        zeroed = ~personal & ((sub >= 48) & (sub <= 57)).all(axis=1) & (sub[:, 15:18] == 48).all(axis=1)
        if text is not None:
            zeroed &= ~text[errors]
        flags[errors[personal]] = BIT["personal_id"]
        flags[errors[zeroed]] = BIT["excel_mangled"]
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


def _ascii_flags(trimmed: pl.Series, numeric: pl.Series, allow: frozenset[str],
                 text: np.ndarray) -> tuple[pl.Series, np.ndarray]:
    """Normalized code and flags for ASCII-only cells that need clean-up or are not 18 characters."""
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

    flags = np.zeros(n, dtype=np.uint16)
    flags[missing] = BIT["missing"]
    flags[excel_form | numeric_lost] = BIT["excel_mangled"]
    flags[legacy] = BIT["legacy_number"]
    short = ~terminal & ~is18
    flags |= (np.where(short, BIT["bad_length"], 0) | np.where(short & frame["foreign"].to_numpy(), BIT["bad_charset"], 0)).astype(np.uint16)
    idx18 = np.flatnonzero(is18)
    if len(idx18):
        flags[idx18] = _structure_flags(_pairs_of(frame["normalized"].gather(idx18)), text[idx18])
    became_terminal = (flags & (BIT["personal_id"] | BIT["excel_mangled"])) != 0
    open_ = ~terminal & ~became_terminal
    allowed = open_ & frame["allowlisted"].to_numpy()
    flags = np.where(allowed, BIT["allowlisted"], flags).astype(np.uint16)
    flags |= (open_ & frame["changed"].to_numpy()).astype(np.uint16) * np.uint16(BIT["formatting"])
    return frame["normalized"], flags


def compact_expr(codes: pl.Expr) -> pl.Expr:
    """Polars twin of `validators.uscc.compact`: NFKC, no spaces, NBSP, zero-width chars,
    hyphens or dots, upper case (the key two spellings of one code share).

    >>> pl.select(compact_expr(pl.lit(" ９１２３-0402\u200b")).alias("c")).item()
    '91230402'
    """
    return codes.str.normalize("NFKC").str.replace_all(f"[{_re_escape(STRIP_CHARS)}]", "").str.to_uppercase()


def _re_escape(chars: str) -> str:
    return "".join("\\" + ch if ch in r"\^]-[" else ch for ch in chars).replace("\t", r"\t").replace(
        "\n", r"\n").replace("\r", r"\r").replace("\f", r"\f").replace("\v", r"\x0B")


def _scalar_flags(values: list[str], numerics: list[bool], texts: list[bool], allow: Mapping[str, str] | None):
    from validators.uscc import check  # the scalar truth, for the rare non-ASCII cell

    codes, flags = [], []
    for value, numeric, text in zip(values, numerics, texts):
        report = check(value, numeric=numeric, text=text, allowlist=allow, suggest=False)
        bits = 0
        for finding in report.findings:
            bits |= BIT[finding.kind]
            if finding.kind == "bad_region" and finding.severity == "error":
                bits |= REGION_ERROR_BIT
        codes.append(report.code)
        flags.append(bits)
    return codes, flags


def _judge_dense(array: pa.Array, text: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flags (uint16) and "fast" marks of an array whose every value is 18 bytes.

    The bytes are read in place as byte pairs (no copy). Blocks of `BLOCK`
    rows bound memory and run on both cores (numpy releases the GIL here).
    """
    offsets, data = _buffers(array)
    n = len(array)
    flags = np.zeros(n, dtype=np.uint16)
    fast = np.zeros(n, dtype=bool)
    if n == 0:
        return flags, fast
    start = int(offsets[0])
    if start % 2:  # keep byte pairs aligned with positions 1–2, 3–4, …
        data = np.ascontiguousarray(data[start: start + 18 * n])
        start = 0
    matrix = data[start: start + 18 * n].view("<u2").reshape(n, 9)

    def block(i: int) -> None:
        rows = slice(i, min(i + BLOCK, n))
        pairs = matrix[rows].T
        flags[rows] = _structure_flags(pairs, text[rows] if text is not None else None)
        # foreign bytes need clean-up; a leading "0" may be the placeholder 000…0: both go the exact way
        fast[rows] = ((flags[rows] & BIT["bad_charset"]) == 0) & ((pairs[0] & 0xFF) != ord("0"))

    starts = range(0, n, BLOCK)
    if len(starts) == 1:
        block(0)
    else:
        with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
            list(pool.map(block, starts))
    return flags, fast


def _fast_rows(values: pl.Series, numeric: np.ndarray | None,
               text: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Judge every cell that is exactly 18 alphabet bytes (nearly all): flags and a "handled" mark.

    Such a cell needs no clean-up: its code is the cell itself and the
    positional rules decide everything. Other cells are left for the exact path.
    """
    # Arrow leaves a null slot's bytes undefined: after a parquet round trip they may be a code
    null = values.is_null().to_numpy() if values.null_count() else None
    if _KERNEL is not None:
        return _compiled_rows(values, null, numeric, text)
    array = _large_strings(values)
    offsets, data = _buffers(array)
    is18 = np.diff(offsets) == 18
    if null is not None:
        is18 &= ~null
    if numeric is not None:
        is18 &= ~numeric
    if is18.all():
        return _judge_dense(array, text)
    flags = np.zeros(len(values), dtype=np.uint16)
    handled = np.zeros(len(values), dtype=bool)
    if is18.any():
        sub_flags, sub_fast = _judge_dense(_large_strings(values.filter(pl.Series(is18))),
                                           text[is18] if text is not None else None)
        flags[is18] = sub_flags
        handled[is18] = sub_fast
    return flags, handled


#: The compiled kernel (`validators.kernel`), or None: then the numpy path above, same answers.
_KERNEL = None if os.environ.get("USCC_NUMPY_KERNEL") else KERNEL
_KERNEL_BITS = np.array([BIT["bad_charset"], BIT["bad_check_char"], BIT["bad_department"], BIT["bad_category"],
                         BIT["bad_org_check"], BIT["personal_id"], BIT["excel_mangled"], ERROR_MASK,
                         _NOT_IN_ALPHABET, _REGION_LETTER, _REGION_FOREIGN, regions.OK], dtype=np.int64)
_NO_ROWS = np.zeros(0, dtype=bool)
_NO_BYTES = np.zeros(0, dtype=np.uint8)


def _compiled_rows(values: pl.Series, null: np.ndarray | None, numeric: np.ndarray | None,
                   text: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """`_fast_rows` by the compiled kernel: one pass over the string views polars holds (no copy), both cores."""
    n = len(values)
    skip = null if numeric is None else (numeric if null is None else null | numeric)
    skip = _NO_ROWS if skip is None else skip
    text = _NO_ROWS if text is None else text
    flags = np.zeros(n, dtype=np.uint16)
    handled = np.zeros(n, dtype=bool)
    array = values.to_arrow(compat_level=pl.CompatLevel.newest())
    base = 0
    for chunk in array.chunks if isinstance(array, pa.ChunkedArray) else [array]:
        if chunk.type != pa.string_view():
            chunk = chunk.cast(pa.string_view())
        buffers = chunk.buffers()
        if len(chunk) and buffers[1] is not None:
            views = np.frombuffer(buffers[1], dtype=np.int32).reshape(-1, 4)[chunk.offset: chunk.offset + len(chunk)]
            # the data buffers (polars holds many small ones) one after the other: one copy of the bytes
            parts = [np.frombuffer(b, dtype=np.uint8) if b is not None else _NO_BYTES for b in buffers[2:]]
            starts = np.zeros(len(parts) + 1, dtype=np.int64)
            np.cumsum([len(p) for p in parts], out=starts[1:])
            data = np.concatenate(parts) if parts else _NO_BYTES
            with KERNEL_LOCK:
                _KERNEL(views, data, starts, base, skip, text, _CHECK_T, _REGION_T, _ORG_T, _DEPT_CAT,
                        regions.status_table(), _REGION_FLAGS, _ORG_EXPECTED, _MAX_ORG, _IN_ALPHABET, _DAYS,
                        _KERNEL_BITS, flags, handled)
        base += len(chunk)
    return flags, handled


def _flags(values: pl.Series, numeric: np.ndarray | None, allowlist: Mapping[str, str] | None,
           with_codes: bool, text: np.ndarray | None = None) -> tuple[np.ndarray, pl.Series | None]:
    """Flags (uint16) of every cell, and the normalized codes when asked for."""
    if text is not None and numeric is not None:
        text = text & ~numeric  # a number cell is a number, whatever else is said of it
    flags, handled = _fast_rows(values, numeric, text)
    flags[~handled] = 0
    if allowlist:
        errors = np.flatnonzero(handled & ((flags & ERROR_MASK) != 0))
        listed = errors[values.gather(errors).is_in(list(allowlist)).to_numpy()]
        flags[listed] = BIT["allowlisted"]
    slow_idx = np.flatnonzero(~handled)
    if not len(slow_idx):
        return flags, values if with_codes else None
    raw = values.gather(slow_idx).fill_null("")
    numeric_slow = pl.Series(numeric[slow_idx] if numeric is not None else np.zeros(len(slow_idx), bool))
    text_slow = text[slow_idx] if text is not None else np.zeros(len(slow_idx), bool)
    trimmed = raw.str.strip_chars(TRIM_CHARS)
    ascii_rows = trimmed.str.contains(r"^[\x00-\x7F]*$").to_numpy()
    slow_codes = pl.Series("code", [None] * len(slow_idx), dtype=pl.String)
    idx = np.flatnonzero(ascii_rows)
    if len(idx):
        norm, bits = _ascii_flags(trimmed.gather(idx), numeric_slow.gather(idx), frozenset(allowlist or ()),
                                  text_slow[idx])
        flags[slow_idx[idx]] = bits
        slow_codes = slow_codes.scatter(idx, norm)
    other = np.flatnonzero(~ascii_rows)
    if len(other):
        c, f = _scalar_flags(raw.gather(other).to_list(), numeric_slow.gather(other).to_list(),
                             text_slow[other].tolist(), allowlist)
        flags[slow_idx[other]] = f
        slow_codes = slow_codes.scatter(other, pl.Series(c, dtype=pl.String))
    return flags, values.clone().scatter(slow_idx, slow_codes) if with_codes else None


def classify(series: pl.Series, numeric: pl.Series | None = None,
             allowlist: Mapping[str, str] | None = None, text: pl.Series | None = None) -> pl.DataFrame:
    """Normalized code and kind flags of every cell (internal form of `check_column`).

    Args:
        numeric: per cell, stored as a number by a spreadsheet (see `validators.uscc.check`).
        text: per cell, stored as text in a sheet that keeps cell types (XLSX).

    Returns:
        Frame with `code` (normalized), `flags` (UInt16, bit per kind, see `BIT`) and `valid`.
    """
    values = series.cast(pl.String).rename("code")
    numeric_np = numeric.cast(pl.Boolean).fill_null(False).to_numpy() if numeric is not None else None
    text_np = text.cast(pl.Boolean).fill_null(False).to_numpy() if text is not None else None
    flags, code = _flags(values, numeric_np, allowlist, with_codes=True, text=text_np)
    return pl.DataFrame({"code": code, "flags": flags, "valid": (flags & ERROR_MASK) == 0})


def kinds_of_flags(bits: int) -> list[str]:
    """Kind keys set in one flags value, in `BIT_ORDER`."""
    return [k for k in BIT_ORDER if bits & BIT[k]]


def kinds_column(flags: pl.Series) -> pl.Series:
    """List of kind keys per flags value (few distinct values: mapped once each)."""
    mapping = {int(v): kinds_of_flags(int(v)) for v in flags.unique().to_list()}
    return flags.replace_strict(mapping, return_dtype=pl.List(pl.String)).alias("kinds")


def is_valid_column(series: pl.Series, *, allowlist: Mapping[str, str] | None = None) -> pl.Series:
    """True per cell when the code has no error-severity finding."""
    flags, _ = _flags(series.cast(pl.String), None, allowlist, with_codes=False)
    return pl.Series(series.name or "valid", (flags & ERROR_MASK) == 0)


def check_column(series: pl.Series, *, numeric: pl.Series | None = None, text: pl.Series | None = None,
                 allowlist: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per input: `input`, normalized `code`, `valid`, `kinds` (list of kind keys).

    `numeric` and `text` say how a spreadsheet stored each cell (`validators.uscc.check`)."""
    result = classify(series, numeric, allowlist, text)
    return pl.DataFrame({"input": series.cast(pl.String), "code": result["code"], "valid": result["valid"],
                         "kinds": kinds_column(result["flags"])})


#: Each byte's value in the GB 32100 alphabet (-1 outside it), the alphabet as bytes, the 18 positions' weights in
#: the check equation (position 18 counts once) and their inverses mod 31 (`validators.uscc.single_edit_codes`).
_BYTE_VALUE = np.full(256, -1, dtype=np.int64)
_BYTE_VALUE[np.frombuffer(ALPHABET.encode(), dtype=np.uint8)] = np.arange(31)
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_EDIT_WEIGHTS = np.array(CHECK_WEIGHTS + (1,), dtype=np.int64)
_EDIT_INVERSES = np.array([pow(int(w), -1, 31) for w in _EDIT_WEIGHTS], dtype=np.int64)


def single_edit_codes_column(codes: pl.Series) -> pl.DataFrame:
    """`validators.uscc.single_edit_codes` of every code at once: (`row`, `candidate`), `row` the code's position
    in `codes`; each code's candidates in that function's order (the substitutions by position, then the
    transpositions). Codes that are not 18 alphabet characters, or pass the check equation, have none."""
    empty = pl.DataFrame(schema={"row": pl.Int64, "candidate": pl.String})
    codes = codes.cast(pl.String)
    rows = np.flatnonzero((codes.str.len_bytes() == 18).fill_null(False).to_numpy())
    if not len(rows):
        return empty
    raw = np.frombuffer(b"".join(codes.gather(rows).cast(pl.Binary).to_list()), dtype=np.uint8).reshape(-1, 18)
    values = _BYTE_VALUE[raw]
    alphabet = (values >= 0).all(axis=1)
    total = (values * _EDIT_WEIGHTS).sum(axis=1) % 31
    keep = alphabet & (total != 0)
    rows, raw, values, total = rows[keep], raw[keep], values[keep], total[keep]
    n = len(rows)
    if not n:
        return empty
    # the substitution at position i: the one character that makes the weighted sum 0 mod 31
    replaced = _ALPHABET_BYTES[(values - total[:, None] * _EDIT_INVERSES) % 31]
    subs = np.repeat(raw[:, None, :], 18, axis=1)
    at = np.arange(18)
    subs[:, at, at] = replaced
    parts = [(np.repeat(rows, 18), np.tile(at, n), subs.reshape(-1, 18))]
    # swapping positions i and i+1 changes the weighted sum by (v[i+1] - v[i]) * (w[i] - w[i+1])
    step = values[:, 1:] - values[:, :-1]
    swaps = (step != 0) & ((total[:, None] + step * (_EDIT_WEIGHTS[:-1] - _EDIT_WEIGHTS[1:])) % 31 == 0)
    code_at, i = np.nonzero(swaps)
    if len(code_at):
        swapped = raw[code_at].copy()
        swapped[np.arange(len(i)), i], swapped[np.arange(len(i)), i + 1] = raw[code_at, i + 1], raw[code_at, i]
        parts.append((rows[code_at], 18 + i, swapped))
    row = np.concatenate([p[0] for p in parts])
    order = np.concatenate([p[1] for p in parts])
    text = np.concatenate([p[2] for p in parts])
    frame = pl.DataFrame({"row": row.astype(np.int64), "_k": order.astype(np.int64),
                          "candidate": pl.Series(text.view("S18").ravel(), dtype=pl.Binary).cast(pl.String)})
    return frame.sort("row", "_k").drop("_k")
