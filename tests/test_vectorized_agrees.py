"""The vectorized column API and the scalar API are one truth: equal on every input."""

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from validators import uscc
from validators.column import check_column, is_valid_column, single_edit_codes_column
from validators.tables import ALPHABET, DEPARTMENTS

REGIONS = ["230400", "230401", "230402", "230421", "110105", "100000", "440101", "239999", "990000", "12AB34"]


@st.composite
def valid_codes(draw):
    dept = draw(st.sampled_from(sorted(DEPARTMENTS)))
    cat = draw(st.sampled_from(sorted(DEPARTMENTS[dept][1])))
    region = draw(st.sampled_from(REGIONS[:6]))
    body = draw(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=8, max_size=8))
    first17 = dept + cat + region + body + uscc.calc_org_check_char(body)
    return first17 + uscc.calc_check_char(first17)


@st.composite
def mutated_codes(draw):
    code = draw(valid_codes())
    how = draw(st.sampled_from(["sub", "swap", "confusable", "case", "space", "fullwidth", "cut", "id"]))
    i = draw(st.integers(0, 16))
    if how == "sub":
        return code[:i] + draw(st.sampled_from(ALPHABET + "IOSVZ*")) + code[i + 1:]
    if how == "swap":
        return code[:i] + code[i + 1] + code[i] + code[i + 2:]
    if how == "confusable":
        return code.replace("0", "O", 1).replace("1", "I", 1)
    if how == "case":
        return code.lower()
    if how == "space":
        return code[:i] + draw(st.sampled_from([" ", "\u00a0", "\u200b", "-", "\t"])) + code[i:]
    if how == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in code)
    if how == "cut":
        return code[:i]
    return f"2304{draw(st.integers(10, 99))}19{draw(st.integers(50, 99))}0{draw(st.integers(1, 9))}1{draw(st.integers(0, 9))}123X"


ANY_INPUT = st.one_of(valid_codes(), mutated_codes(), st.text(max_size=24),
                      st.text(alphabet="0123456789.E+-", max_size=20), st.sampled_from(["", "无", "9.12304E+17"]))


def _agree(values, numeric=None, text=None):
    frame = check_column(pl.Series(values, dtype=pl.String),
                         numeric=pl.Series(numeric) if numeric is not None else None,
                         text=pl.Series(text) if text is not None else None,
                         allowlist={"91350100M0001TGQXM": "试点"})
    for i, value in enumerate(values):
        report = uscc.check(value, numeric=bool(numeric[i]) if numeric else False,
                            text=bool(text[i]) if text else False,
                            allowlist={"91350100M0001TGQXM": "试点"}, suggest=False)
        row = frame.row(i, named=True)
        assert row["kinds"] == report.kinds, (value, row, report)
        assert row["valid"] == report.valid, value
        assert row["code"] == report.code, value


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_INPUT, min_size=1, max_size=40))
def test_column_and_scalar_agree_on_any_input(values):
    _agree(values)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.one_of(valid_codes(), st.text(alphabet="0123456789", min_size=14, max_size=19)),
                          st.booleans()), min_size=1, max_size=20))
def test_column_and_scalar_agree_on_number_cells(pairs):
    _agree([p[0] for p in pairs], [p[1] for p in pairs])


@st.composite
def zeroed_codes(draw):
    """18 digits ending in 000, as Excel leaves a code it rounded, or as someone typed it."""
    return draw(st.text(alphabet="0123456789", min_size=15, max_size=15)) + "000"


@settings(max_examples=150)
@given(st.lists(st.tuples(st.one_of(valid_codes(), mutated_codes(), zeroed_codes(), st.sampled_from(
    ["112304316562995000", " 112304316562995000", "１１２３０４３１６５６２９９５０００"])),
    st.booleans(), st.booleans()), min_size=1, max_size=30))
@example([("112304316562995000", False, True), ("912304000000043000", False, True), ("112304316562995000", False, False)])
def test_column_and_scalar_agree_on_text_and_number_cells(cells):
    _agree([c[0] for c in cells], [c[1] for c in cells], [c[2] for c in cells])


@settings(max_examples=300)
@given(valid_codes())
def test_every_generated_valid_code_validates(code):
    assert uscc.is_valid(code)
    assert is_valid_column(pl.Series([code])).to_list() == [True]


@settings(max_examples=200)
@given(valid_codes(), st.integers(0, 17), st.sampled_from(ALPHABET))
def test_every_single_substitution_is_flagged(code, i, ch):
    if code[i] == ch:
        return
    assert not uscc.is_valid(code[:i] + ch + code[i + 1:])


@settings(max_examples=200)
@given(valid_codes(), st.integers(0, 16))
def test_every_adjacent_transposition_is_flagged(code, i):
    if code[i] == code[i + 1]:
        return
    assert not uscc.is_valid(code[:i] + code[i + 1] + code[i] + code[i + 2:])


@settings(max_examples=100)
@given(valid_codes(), st.integers(0, 17))
def test_single_edit_repairs_contain_the_original(code, i):
    ch = ALPHABET[(ALPHABET.index(code[i]) + 7) % 31]
    broken = code[:i] + ch + code[i + 1:]
    assert code in {s.code for s in uscc.check(broken).suggestions}


def test_exhaustive_department_category_pairs_validate():
    codes = []
    for dept, (_, categories) in DEPARTMENTS.items():
        for cat in categories:
            first17 = dept + cat + "230402" + "MA1C4B0P"
            first17 += uscc.calc_org_check_char(first17[8:16])
            codes.append(first17 + uscc.calc_check_char(first17))
    assert all(is_valid_column(pl.Series(codes)).to_list())


def test_null_cells_are_missing():
    frame = check_column(pl.Series([None, "91110000600037341L"], dtype=pl.String))
    assert frame["kinds"].to_list() == [["missing"], []]


@settings(max_examples=150)
@given(st.lists(st.one_of(valid_codes(), mutated_codes().filter(lambda c: len(c) == 18)), min_size=1, max_size=60))
@example(values=["1E2304020000000007"])  # read as Excel's scientific form by the single-code check alone
def test_agree_when_every_cell_is_18_bytes(values):
    """The in-place fast path (every cell 18 bytes) agrees with the scalar truth too."""
    _agree(values)


@settings(max_examples=100)
@given(st.lists(valid_codes(), min_size=2, max_size=30), st.text(max_size=3))
def test_agree_on_a_sliced_column_with_an_odd_byte_offset(values, head):
    series = pl.Series([head] + values, dtype=pl.String)[1:]
    frame = check_column(series)
    assert frame["kinds"].to_list() == [uscc.check(v, suggest=False).kinds for v in values]
    assert frame["code"].to_list() == values



def test_a_blank_cell_whose_arrow_slot_still_holds_a_code_is_missing():
    """Arrow leaves a null slot's bytes undefined; polars' parquet reader can leave a neighbour's code there.
    Read as a code it made blank cells valid codes (and, beside an allowlist, crashed the night)."""
    import numpy as np
    import pyarrow as pa

    from validators.column import BIT, classify

    code = b"91110000600037341L"
    offsets = np.array([0, 18, 36], dtype=np.int64)
    validity = pa.py_buffer(np.packbits([1, 0], bitorder="little").tobytes())  # second cell null, its bytes a code
    array = pa.Array.from_buffers(pa.large_string(), 2, [validity, pa.py_buffer(offsets.tobytes()),
                                                          pa.py_buffer(code * 2)], null_count=1)
    series = pl.from_arrow(array)
    assert series.to_list() == [code.decode(), None]
    for allowlist in (None, {"91350100M0001TGQXM": "试点"}):
        result = classify(series, allowlist=allowlist)
        assert result["flags"].to_list() == [0, BIT["missing"]] and result["valid"].to_list() == [True, False]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated_codes(), valid_codes(), st.text(max_size=20), st.none()), max_size=40))
@example(["91230402MA1C4B0P61", "91230402MA1C4B0P6", "中" * 18, "", None, "91230402MA1C4B0P60"])
def test_single_edit_codes_column_is_the_scalar_search_on_every_code(codes):
    """Detection looks up every invalid code's one-edit neighbours over the column: the same candidates, in the
    same order, as the scalar search finds for each code."""
    got = single_edit_codes_column(pl.Series(codes, dtype=pl.String))
    expected = [(row, c) for row, code in enumerate(codes) if code is not None for c in uscc.single_edit_codes(code)]
    assert list(zip(got["row"].to_list(), got["candidate"].to_list())) == expected
