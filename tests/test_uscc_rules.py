"""GB 32100 as the validator must read it: one behaviour per test."""

import pytest

from validators import uscc
from validators.uscc import InvalidCode, calc_check_char, check, compact, is_valid, validate

REAL_CODES = [
    "91110000600037341L",  # public example
    "12100000400002697C",  # national-level region 100000 (重庆大学)
    "51100000500002862F",  # 中国自动化学会
    "91440101MA5D693M4Q",  # 市辖区 440101
    "91220101123917070P",
    "12440300455752807L",
    "91370100705882496U",
]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_public_codes_validate(code):
    assert is_valid(code)
    assert validate(code) == code


def test_code_whose_check_char_is_zero_validates():
    first17 = next(f"91230402MA{n:07d}"[:17] for n in range(10_000)
                   if calc_check_char(f"91230402MA{n:07d}"[:17]) == "0"
                   and uscc.calc_org_check_char(f"MA{n:07d}"[:8]) == f"MA{n:07d}"[8])
    assert is_valid(first17 + "0")


@pytest.mark.parametrize("code", ["9111000060O037341L", "9I110000600037341L", "91110000600037341S",
                                  "9111000060003734IZ", "9111000060003734VL"])
def test_confusable_letter_anywhere_is_flagged_not_valued_as_digit(code):
    report = check(code)
    assert not report.valid
    assert "bad_charset" in report.kinds


def test_letter_O_for_zero_is_flagged_and_the_fix_is_suggested():
    report = check("9111000060O037341L")
    assert report.kinds == ["bad_charset"]
    assert report.findings[0].positions == (11,)
    assert any(s.code == "91110000600037341L" and s.confidence == "medium" for s in report.suggestions)


def test_codes_starting_with_N_Y_A_are_not_rejected_for_that():
    for dept, cat in (("N", "2"), ("Y", "1"), ("A", "1")):
        first17 = f"{dept}{cat}230400MA1C4B0P"
        first17 += uscc.calc_org_check_char(first17[8:16])
        code = first17 + calc_check_char(first17)
        assert is_valid(code), code


def test_resident_id_number_does_not_pass_as_a_code_and_is_masked():
    id_number = "11010519491231002X"  # GB 11643 example
    report = check(id_number)
    assert not report.valid
    assert report.kinds == ["personal_id"]
    shown = report.to_dict()
    assert "11010519491231002X" not in str(shown)
    assert shown["input"] == "110105********002X"


def test_full_width_digits_are_not_digits_until_normalized():
    full = "９１１１００００６０００３７３４１Ｌ"
    assert "９".isdigit()  # what Python says, and why we never ask it
    report = check(full)
    assert report.valid and report.kinds == ["formatting"]
    assert report.code == "91110000600037341L"


@pytest.mark.parametrize("raw", [" 9111 0000 6000 3734 1L", "91110000600037341l", "91110000-600037341-L",
                                 "91110000\u00a0600037341L", "9111\u200b0000600037341L"])
def test_code_valid_only_after_cleanup_is_a_formatting_info(raw):
    report = check(raw)
    assert report.valid
    assert [f.kind for f in report.findings] == ["formatting"]
    assert report.findings[0].severity == "info"


def test_ascii_spaces_at_the_ends_are_trimmed_without_a_finding():
    assert check("  91110000600037341L \t").findings == ()


@pytest.mark.parametrize("raw", ["", "无", "/", "-", "000000", "空", None, "  "])
def test_placeholders_are_missing(raw):
    assert check(raw).kinds == ["missing"]


@pytest.mark.parametrize("raw", ["9.12304E+17", "9.12304e17", "912304001234567000.0"])
def test_spreadsheet_number_forms_are_excel_mangled(raw):
    assert check(raw).kinds == ["excel_mangled"]


def test_zeroed_last_digits_are_excel_mangled_with_low_candidates_only():
    report = check("912304001234567000")
    assert report.kinds == ["excel_mangled"]
    assert report.suggestions and all(s.confidence == "low" for s in report.suggestions)
    assert all(s.code[:14] == "91230400123456" for s in report.suggestions)
    assert all(is_valid(s.code) for s in report.suggestions)


def test_number_cell_with_16_or_more_digits_is_excel_mangled_even_if_it_looks_valid():
    assert check("91110000600037341", numeric=True).kinds == ["excel_mangled"]


def test_legacy_numbers_say_which():
    assert "注册号" in check("230402000012345").findings[0].message
    org = check("12345678-9").findings[0]
    assert org.kind == "legacy_number" and "组织机构代码" in org.message


def test_other_lengths_are_bad_length_with_charset_too():
    assert check("9111000060003734").kinds == ["bad_length"]
    assert check("9111000060003734O").kinds == ["bad_length", "bad_charset"]


def test_every_failing_rule_is_reported_with_positions():
    report = check("B9990000600037341L")
    assert report.kinds == ["bad_department", "bad_region", "bad_check_char"]
    positions = {f.kind: f.positions for f in report.findings}
    assert positions["bad_department"] == (1,)
    assert positions["bad_region"] == (3, 4, 5, 6, 7, 8)


def test_category_rule_is_skipped_when_department_is_wrong():
    assert "bad_category" not in check("B8230400600037341L").kinds


def test_category_must_fit_the_department():
    first17 = "94230400MA1C4B0P"
    first17 += uscc.calc_org_check_char(first17[8:16])
    report = check(first17 + calc_check_char(first17))
    assert report.kinds == ["bad_category"]
    assert "工商" in report.findings[0].message


def test_region_special_values_and_warning_split():
    def code_for(region):
        first17 = f"91{region}MA1C4B0P"
        first17 += uscc.calc_org_check_char(first17[8:16])
        return first17 + calc_check_char(first17)

    assert is_valid(code_for("100000"))  # national
    assert is_valid(code_for("230401"))  # 鹤岗市市辖区
    assert is_valid(code_for("110103"))  # 崇文区, abolished 2010 but codes are for life
    unknown_county = check(code_for("230499"))
    assert unknown_county.valid and unknown_county.findings[0].severity == "warning"
    no_province = check(code_for("990000"))
    assert not no_province.valid and no_province.kinds == ["bad_region"]


def test_org_code_check_failure_is_its_own_kind():
    report = check("91110000600037340L")
    assert report.kinds == ["bad_org_check", "bad_check_char"]
    assert any(s.code == "91110000600037341L" for s in report.suggestions)
    assert all(s.confidence != "high" for s in report.suggestions)


def test_wrong_check_char_suggests_the_computed_one_at_medium():
    report = check("91110000600037341X")
    assert report.kinds == ["bad_check_char"]
    assert report.suggestions[0].code == "91110000600037341L"
    assert report.suggestions[0].confidence == "medium"


def test_allowlisted_code_gets_an_info_note_not_an_error():
    allow = {"91350100M0001TGQXM": "厦门试点代码"}
    assert not is_valid("91350100M0001TGQXM")
    report = check("91350100M0001TGQXM", allowlist=allow)
    assert report.valid
    assert report.kinds == ["allowlisted"]
    assert "厦门试点代码" in report.findings[0].message and "校验码错误" in report.findings[0].message


def test_validate_raises_a_typed_error_with_every_kind():
    with pytest.raises(InvalidCode) as err:
        validate("91110000600037340L")
    assert err.value.kinds == ["bad_org_check", "bad_check_char"]
    assert isinstance(err.value, ValueError)


def test_compact_normalizes():
    assert compact(" ９１-1100.00600037341l ") == "91110000600037341L"


def test_huge_exponent_is_not_spelled_out_nor_taken_for_excel():
    """No spreadsheet writes an exponent of more than three digits (a double ends at E+308): `1E100000000` is
    a wrong code, not Excel's form of a number, and must not build a hundred-million-digit string."""
    report = check("1E100000000")
    assert report.kinds == ["bad_length"] and report.suggestions == ()
    assert check("9.1E+308").kinds == ["excel_mangled"]
    assert check("1E2304020000000007").kinds == ["bad_category", "bad_check_char"]  # E in position 2: a code


def test_scientific_form_with_15_digits_left_offers_low_candidates():
    report = check("9.12304001234567E+17")
    assert report.kinds == ["excel_mangled"]
    assert report.suggestions and all(s.code.startswith("912304001234") for s in report.suggestions)


def test_a_15_digit_mantissa_ending_in_zero_still_counts_15_digits():
    """Excel wrote out 15 digits; the last is a 0, not a missing digit."""
    report = check("9.12304001234560E+17")
    assert report.kinds == ["excel_mangled"]
    assert report.suggestions and all(abs(int(s.code) - 912304001234560000) <= 500 for s in report.suggestions)
    assert check("9.12304E+17").suggestions == ()  # six digits kept: nothing to narrow down


# --------------------------------------------------------------------------- formatting fixes (issue 13.1)

def test_a_code_valid_after_clean_up_has_its_clean_form_as_a_sure_fix():
    report = check(" ９１１１0000 600037341l")
    assert report.kinds == ["formatting"] and report.valid
    assert report.suggestions[0].code == "91110000600037341L" and report.suggestions[0].confidence == "high"


def test_a_code_broken_after_clean_up_offers_no_formatting_fix():
    report = check("91110000 600037341X")
    assert report.kinds == ["bad_check_char", "formatting"]
    assert all(s.confidence != "high" for s in report.suggestions)
    assert "仍有错误" in report.findings[-1].message


# --------------------------------------------------------------------------- text cells (issue 13.4)

def test_a_text_cell_of_digits_ending_in_000_is_judged_by_every_rule():
    report = check("112304316562995000", text=True)
    assert report.kinds == ["bad_region", "bad_check_char"] and not report.valid
    assert "Excel" in report.findings[-1].message  # said as a possibility, not as the finding


def test_the_same_digits_from_a_csv_or_a_number_cell_are_excel_damage():
    assert check("112304316562995000").kinds == ["excel_mangled"]
    assert check("112304316562995000", numeric=True, text=True).kinds == ["excel_mangled"]



def test_asking_for_medium_repairs_only_gives_every_candidate_but_the_low_ones():
    from hypothesis import given, settings

    from tests.test_vectorized_agrees import ANY_INPUT, mutated_codes

    @settings(max_examples=400)
    @given(ANY_INPUT, mutated_codes())
    def agree(value, mutated):
        for code in (value, mutated):
            full = check(code).suggestions
            assert check(code, least="medium").suggestions == tuple(s for s in full if s.confidence != "low")

    agree()
    with pytest.raises(ValueError):
        check("91230402MA1XYZ0000", least="high")
