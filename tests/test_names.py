"""Name normalization keeps what tells entities apart and drops what does not."""

import re

import polars as pl
import pytest

from checks import names
from checks.names import chinese_number, distinguishers, normalize_name, places, similarity

PREFIXES = ("黑龙江省", "黑龙江", "鹤岗市", "鹤岗")


@pytest.mark.parametrize("a,b", [
    ("黑龙江省鹤岗市宏发商贸有限责任公司", "宏发商贸有限公司"),
    ("鹤岗市 宏发（鹤岗）商贸有限公司", "宏发(鹤岗)商贸有限公司"),
    ("鹤岗市宏发商贸有限公司", "鹤岗市宏发商贸有限公司\u3000"),
])
def test_same_entity_spellings_normalize_equal(a, b):
    assert normalize_name(a, PREFIXES) == normalize_name(b, PREFIXES)


def test_the_citys_prefixes_are_dropped_only_where_two_characters_are_left_in_a_whole_column():
    column = pl.Series(["黑龙江省鹤岗市", "鹤岗市一中", "鹤岗市鹤岗一中", "鹤岗 市", None, ""], dtype=pl.String)
    got = pl.select(names.normalize_name_expr(pl.lit(column), PREFIXES)).to_series().to_list()
    assert got == ["黑龙江省鹤岗市", "一中", "一中", "鹤岗市", "", ""]


@pytest.mark.parametrize("a,b,why", [
    ("鹤岗市宏发商贸有限公司", "鹤岗市宏发商贸有限公司向阳分公司", "分支机构"),
    ("鹤岗市第一中学", "鹤岗市第十一中学", "序号"),
    ("鹤岗市第1中学", "鹤岗市第十一中学", "序号"),
    ("鹤岗市向阳区人民法院", "鹤岗市工农区人民法院", "区县"),
    ("向阳区张伟烧烤店", "工农区张伟烧烤店", "区县"),
])
def test_near_miss_names_conflict(a, b, why):
    da = distinguishers(normalize_name(a, PREFIXES))
    db = distinguishers(normalize_name(b, PREFIXES))
    assert why in da.conflict(db)


@pytest.mark.parametrize("pattern,chars", [(names.BRANCH_RE, names._BRANCH_CHARS),
                                           (names.ORDINAL_RE, names._ORDINAL_CHARS),
                                           (names.PLACE_RE, names._PLACE_CHARS)])
def test_a_text_is_searched_for_a_distinguisher_whenever_it_could_hold_one(pattern, chars):
    # names and addresses are searched only when they hold a character every match of the pattern holds: each
    # literal the pattern knows, in a name, is found (a pattern given a new word without its character fails here)
    words = [w for w in re.split(r"[^\u4e00-\u9fff]+", pattern.pattern) if w] + ["第1", "第十二", "12中学", "3连队"]
    for word in words:
        for text in (f"鹤岗市宏发{word}", f"鹤岗市宏发{word}中学", f"向阳{word}大队"):
            if pattern.search(text):
                assert set(text) & chars, (pattern.pattern, text)


def test_an_address_is_compared_by_the_places_its_distinguishers_hold():
    for text in ("鹤岗市向阳区红军路12号", "工农区", "光明街道3号", "宏发商贸", "萝北县名山镇", ""):
        assert places(text) == distinguishers(text).places


def test_arabic_and_chinese_ordinals_agree():
    a = distinguishers(normalize_name("鹤岗市第1中学", PREFIXES))
    b = distinguishers(normalize_name("鹤岗市第一中学", PREFIXES))
    assert a.conflict(b) is None


@pytest.mark.parametrize("text,value", [("十一", 11), ("一百零二", 102), ("二十", 20), ("12", 12), ("两", 2)])
def test_chinese_numbers(text, value):
    assert chinese_number(text) == value


def test_similarity_is_a_rapidfuzz_ratio():
    assert similarity("宏发商贸", "宏发商贸") == 100
    assert similarity("宏发司法鉴定所", "宏发司法鉴定中心") == pytest.approx(80)


def test_a_trade_name_that_extends_another_is_a_different_trade_name():
    from checks.names import distinctive_similarity

    assert distinctive_similarity("丰昌诚文化传媒", "丰昌诚通文化传媒") == 0
    assert distinctive_similarity("春兴村大豆种植专业合作社", "春兴村大豆种植专业合作社") == 100
    assert distinctive_similarity("萝北县春兴村大豆种植专业合作社", "萝北县兴达恒村大豆种植专业合作社") < 50
