"""What a record's entity type or name says its code's positions 1–2 should be.

One table (`CATEGORY_WORDS`), read top to bottom; the first row whose words
match wins. Each row names a GB 32100 category (department + category code,
labelled by `validators.tables.DEPARTMENTS`) and the words registries use for
it: in the entity-type column (the registry's own classification, matched
first) and, for the few words that leave no doubt, in the name (a 律师事务所
is a law firm). Rows that must win over a shorter word come first
(民办非企业单位 before 企业, 军队事业单位 before 事业单位, 村股份经济合作社
before 合作社).

An entity type that no row matches and that is not a known "no category"
word (其他, 其他组织…) is unrecognized: the check is skipped for it and the
overview counts it (`unrecognized_types`), so a new word is added here rather
than silently ignored.

>>> expected_category("群众团体", "鹤岗市归国华侨联合会").dept_cat
'13'
>>> expected_category("民办非企业单位", None).label
'民办非企业单位'
>>> expected_category(None, "黑龙江宏发律师事务所").label
'律师执业机构'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from validators.tables import DEPARTMENTS


@dataclass(frozen=True)
class Expectation:
    dept: str
    cat: str
    by_type: bool  # matched on the entity type (else on the name)

    @property
    def dept_cat(self) -> str:
        return self.dept + self.cat

    @property
    def label(self) -> str:
        """The category's name in GB 32100 (the clerk's message)."""
        return DEPARTMENTS[self.dept][1][self.cat]


#: (positions 1–2, entity-type words, name words or None) — the first row that matches wins.
CATEGORY_WORDS: tuple[tuple[str, str, str | None], ...] = (
    # 司法行政 (justice)
    ("31", r"律师事务所|律师执业|律所", r"律师事务所$"),
    ("32", r"公证", r"公证处$"),
    ("33", r"法律服务所", r"法律服务所$"),
    ("34", r"司法鉴定", r"司法鉴定(所|中心|院)$"),
    ("35", r"仲裁委员会|仲裁机构", r"仲裁委员会$"),
    # 农业: collective economic organizations (before 合作社, which they contain)
    ("N1", r"组级集体经济组织|村民小组", None),
    ("N2", r"村级集体经济组织|村股份经济合作社|村经济合作社|经济联合社|村集体经济", None),
    ("N3", r"乡镇级集体经济组织|乡级集体经济|镇级集体经济", None),
    # 民政 (before 企业: 民办非企业单位 contains it)
    ("51", r"社会团体|社团", None),
    ("52", r"民办非企业|民非|社会服务机构", None),
    ("53", r"基金会", r"基金会$"),
    # 宗教, 工会, 外交, 文化, 旅游
    ("71", r"宗教活动场所", None),
    ("72", r"宗教院校", None),
    ("81", r"工会", None),
    ("21", r"外国常驻新闻机构", None),
    ("41", r"外国在华文化中心", None),
    ("61", r"外国旅游部门常驻代表机构", None),
    ("62", r"港澳台地区旅游部门", None),
    # 市场监管 (market regulation)
    ("92", r"个体", None),
    ("93", r"专业合作社|合作社|联合社", r"专业合作社$"),
    ("91", r"公司|企业|个人独资|合伙|全民所有制|集体所有制|股份合作|联营", None),
    # 机构编制 (editorial): army units before 事业单位, people's organizations, organs
    ("A1", r"军队事业单位", None),
    ("13", r"群众团体|人民团体|群团", None),
    ("12", r"事业单位|事业法人|公益一类|公益二类|生产经营类|参照公务员法管理的事业", None),
    ("11", r"机关(法人|单位)?$|^(行政|党政|党的|人大|政协|审判|检察|民主党派)?机关", None),
)

#: Entity types that name no category of their own (the check has nothing to compare): not unrecognized.
NO_CATEGORY_RE = r"^(其他|其它)(组织|单位|机构|类)?$"

_ROWS = tuple((dc[0], dc[1], re.compile(t), re.compile(n) if n else None) for dc, t, n in CATEGORY_WORDS)
assert all(d in DEPARTMENTS and c in DEPARTMENTS[d][1] for d, c, _, _ in _ROWS), "a row names no GB 32100 category"


def expected_category(entity_type: str | None, name: str | None) -> Expectation | None:
    """Positions 1–2 the record's type (or, failing that, its name) call for."""
    if entity_type:
        for dept, cat, type_words, _ in _ROWS:
            if type_words.search(entity_type):
                return Expectation(dept, cat, True)
    if name:
        for dept, cat, _, name_words in _ROWS:
            if name_words is not None and name_words.search(name):
                return Expectation(dept, cat, False)
    return None


def expected_category_expr(entity_type: pl.Expr, name: pl.Expr) -> pl.Expr:
    """Polars form of `expected_category` over whole columns, from the same table:
    `"<dept><cat>T"` (by type) or `"<dept><cat>N"` (by name), or null."""
    return pl.coalesce(_words_expr(entity_type, "T"), _words_expr(name, "N"))


def expected_category_column(entity_type: pl.Series, name: pl.Series) -> pl.Series:
    """`expected_category_expr` of two columns, the type words matched once per distinct type
    (a registry uses a few dozen types over millions of records)."""
    types = entity_type.fill_null("").unique()
    by_type = pl.select(types.alias("t"), _words_expr(pl.lit(types), "T").alias("e"))
    mapping = dict(zip(by_type["t"].to_list(), by_type["e"].to_list()))
    expected = entity_type.fill_null("").replace_strict(mapping, return_dtype=pl.String).alias("expected")
    untyped = expected.is_null().arg_true()  # names only where the type said nothing
    if len(untyped):
        by_name = pl.select(_words_expr(pl.lit(name.cast(pl.String).gather(untyped)), "N"))[:, 0]
        expected = expected.scatter(untyped, by_name)
    return expected


def _words_expr(column: pl.Expr, mark: str) -> pl.Expr:
    """`"<dept><cat><mark>"` of the first row whose type (T) or name (N) words match, or null."""
    rows = [(d, c, t.pattern if mark == "T" else (n.pattern if n else None)) for d, c, t, n in _ROWS]
    result = pl.lit(None, dtype=pl.String)
    for dept, cat, pattern in reversed([r for r in rows if r[2]]):  # built inside out: the first row wins
        result = pl.when(column.fill_null("").str.contains(pattern)).then(pl.lit(dept + cat + mark)).otherwise(result)
    return result


def is_recognized_type_expr(entity_type: pl.Expr) -> pl.Expr:
    """The entity type is empty, matches a row of the table, or is a known "no category" word."""
    text = entity_type.fill_null("").str.strip_chars()
    known = pl.lit(False)
    for _, _, type_words, _ in _ROWS:
        known = known | text.str.contains(type_words.pattern)
    return (text == "") | known | text.str.contains(NO_CATEGORY_RE)


def unrecognized_types(records: pl.DataFrame) -> list[dict]:
    """Entity-type values the category check does not know, per source (for the overview).

    Args:
        records: canonical records (`source`, `entity_type`).

    Returns:
        `{"source", "value", "count"}` per distinct value, most frequent first.
    """
    if records.height == 0 or "entity_type" not in records.columns:
        return []
    unknown = (records.select("source", pl.col("entity_type").str.strip_chars().alias("value"))
               .group_by("source", "value").len("count")  # a few dozen values: the words are matched once each
               .filter(~is_recognized_type_expr(pl.col("value")))
               .sort(["count", "source", "value"], descending=[True, False, False]))
    return unknown.to_dicts()


__all__ = ["CATEGORY_WORDS", "Expectation", "expected_category", "expected_category_expr", "expected_category_column",
           "unrecognized_types"]
