"""The GB 32100 positional rules compiled (numba), over an Arrow string column's buffers.

One pass per code over its 18 bytes, straight from the Arrow string-view and
data buffers polars holds (no copy, no temporaries): per-position tables fold value × weight
(the mod-31 check of GB 32100 §5, the region as an integer, the GB 11714 sum
of positions 9–16), small tables turn each sum into flag bits, and a code
breaking an error rule is looked at as a resident ID number (GB 11643) or an
18-digit number Excel zeroed. The tables are `validators.column`'s, so this
kernel and the numpy path give the same flags by construction (and
`tests/test_vectorized_agrees.py` holds them equal).

numba comes as a wheel (nothing is compiled on the user's machine beyond
numba's own JIT, cached in `__pycache__`); without it `KERNEL` is None and
`validators.column` uses its numpy path, with the same answers.
"""

from __future__ import annotations

import threading

try:  # an optional speed-up, never a different answer
    import numba
except ImportError:  # pragma: no cover - exercised by tests that hide numba
    numba = None

prange = numba.prange if numba is not None else range


def _number(data, start, width):
    """The decimal number written by `width` digit bytes."""
    value = 0
    for k in range(width):
        value = value * 10 + (data[start + k] - 48)
    return value


def _judge(views, data, buffer_starts, base, skip, text, check_t, region_t, org_t, dept_cat, region_status, region_flags,
           org_expected, max_org, in_alphabet, days, bits, flags, handled):
    """Flags and "handled" marks of every 18-byte cell.

    views: the (n, 4) int32 views of an Arrow string_view array (length, prefix, buffer, offset);
    data: its data buffers one after the other, buffer k from `buffer_starts[k]`;
    rows `base` … `base + n - 1` of `skip`, `text`, `flags` and `handled`. `skip` rows and other
    lengths are left unhandled (a null slot's view is never read).

    bits: charset, check char, department, category, org check, personal id, excel mangled, error mask,
    not-in-alphabet sentinel, region letter, region foreign, org foreign.
    """
    (_, b_check, b_dept, b_cat, b_org, b_personal, b_excel, error_mask,
     not_in_alphabet, region_letter, region_foreign, ok_status) = (
        bits[0], bits[1], bits[2], bits[3], bits[4], bits[5], bits[6], bits[7], bits[8], bits[9], bits[10], bits[11])
    n = views.shape[0]
    has_skip = len(skip) > 0
    has_text = len(text) > 0
    for j in prange(n):
        i = base + j
        if views[j, 0] != 18 or (has_skip and skip[i]):
            continue
        start = buffer_starts[views[j, 2]] + views[j, 3]
        total = 0
        for k in range(18):
            total += check_t[k, data[start + k]]
        if total >= not_in_alphabet:
            continue  # foreign bytes need clean-up: the exact path
        f = 0
        if total % 31 != 0:
            f |= b_check
        dc = dept_cat[data[start] * 256 + data[start + 1]]
        if dc == 1:
            f |= b_dept
        elif dc == 2:
            f |= b_cat
        region = 0
        for k in range(6):
            region += region_t[k, data[start + 2 + k]]
        if region >= region_foreign:
            state = 5
        elif region >= region_letter:
            state = 4  # NOT_DIGITS
        else:
            state = region_status[region]
        f |= region_flags[state]
        org = 0
        for k in range(8):
            org += org_t[k, data[start + 8 + k]]
        expected = org_expected[min(org, max_org + 1)]
        pos17 = data[start + 16]
        if expected != pos17 and expected != 0 and in_alphabet[pos17]:
            f |= b_org
        if f & error_mask:
            digits = 0
            for k in range(18):
                if 48 <= data[start + k] <= 57:
                    digits += 1
            first17 = digits - (1 if 48 <= data[start + 17] <= 57 else 0) == 17
            personal = False
            if first17 and (48 <= data[start + 17] <= 57 or data[start + 17] == 88):
                province = _number(data, start, 2)
                year = _number(data, start + 6, 4)
                month = _number(data, start + 10, 2)
                day = _number(data, start + 12, 2)
                if region_status[province * 10_000] == ok_status and 1900 <= year <= 2099 and 1 <= month <= 12:
                    leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
                    last = days[month] + (1 if month == 2 and leap else 0)
                    personal = 1 <= day <= last
            if personal:
                f = b_personal
            elif digits == 18 and data[start + 15] == 48 and data[start + 16] == 48 and data[start + 17] == 48 \
                    and not (has_text and text[i]):
                f = b_excel
        flags[i] = f
        handled[i] = data[start] != 48  # a leading "0" may be the placeholder 000…0: the exact way


_number_python = _number


def _compiled(cache: bool):
    """The kernel compiled by numba (lazily, at its first call), its machine code cached on disk when `cache`."""
    global _number
    _number = numba.njit(inline="always", cache=cache)(_number_python)
    return numba.njit(parallel=True, nogil=True, cache=cache)(_judge)


KERNEL = None
if numba is not None:
    for _cache in (True, False):
        try:  # numba refuses to cache where neither the package folder nor the user's cache folder is writable
            KERNEL = _compiled(_cache)
            break
        except RuntimeError:
            KERNEL = None

#: One caller of the kernel at a time: it uses every core already, and numba's fallback threading layer
#: (`workqueue`, where neither OpenMP nor TBB is installed) kills the process when two threads enter at once —
#: the nightly flow reads its sources in parallel threads.
KERNEL_LOCK = threading.Lock()
