"""What a record's entity type or name says its code's positions 1–2 should be.

One table, read top to bottom; the first pattern that matches wins. Entity
types are matched first (they are the registry's own classification); names
only for the words that leave no doubt (a 律师事务所 is a law firm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Expectation:
    dept: str
    cat: str
    label: str  # the words that matched, for the clerk's message


#: (regex, department, category, Chinese label) — matched against the entity type.
TYPE_TABLE = (
    (r"律师事务所|律师执业", "3", "1", "律师事务所"),
    (r"公证", "3", "2", "公证处"),
    (r"法律服务所", "3", "3", "基层法律服务所"),
    (r"司法鉴定", "3", "4", "司法鉴定机构"),
    (r"仲裁委员会", "3", "5", "仲裁委员会"),
    (r"个体", "9", "2", "个体工商户"),
    (r"专业合作社|合作社", "9", "3", "农民专业合作社"),
    (r"公司|企业|个人独资|合伙", "9", "1", "企业"),
    (r"^机关|行政机关|党政机关", "1", "1", "机关"),
    (r"事业单位", "1", "2", "事业单位"),
    (r"社会团体", "5", "1", "社会团体"),
    (r"民办非企业|社会服务机构", "5", "2", "民办非企业单位"),
    (r"基金会", "5", "3", "基金会"),
    (r"基层工会|工会", "8", "1", "基层工会"),
)

#: Name words that decide the category by themselves.
NAME_TABLE = (
    (r"律师事务所$", "3", "1", "律师事务所"),
    (r"公证处$", "3", "2", "公证处"),
    (r"法律服务所$", "3", "3", "法律服务所"),
    (r"司法鉴定(所|中心|院)$", "3", "4", "司法鉴定机构"),
    (r"仲裁委员会$", "3", "5", "仲裁委员会"),
    (r"专业合作社$", "9", "3", "专业合作社"),
    (r"基金会$", "5", "3", "基金会"),
)

_TYPE = tuple((re.compile(p), d, c, label) for p, d, c, label in TYPE_TABLE)
_NAME = tuple((re.compile(p), d, c, label) for p, d, c, label in NAME_TABLE)


def expected_category(entity_type: str | None, name: str | None) -> Expectation | None:
    """Positions 1–2 the record's type (or, failing that, its name) call for."""
    for table, text in ((_TYPE, entity_type), (_NAME, name)):
        if text:
            for pattern, dept, cat, label in table:
                if pattern.search(text):
                    return Expectation(dept, cat, label)
    return None


def expected_category_expr(entity_type: pl.Expr, name: pl.Expr) -> pl.Expr:
    """Polars form of `expected_category` over whole columns, from the same tables:
    `"<dept><cat><label>"` or null."""
    result = pl.lit(None, dtype=pl.String)
    for table, column in ((NAME_TABLE, name), (TYPE_TABLE, entity_type)):  # built inside out: types win
        for pattern, dept, cat, label in reversed(table):
            result = pl.when(column.fill_null("").str.contains(pattern)).then(pl.lit(dept + cat + label)).otherwise(result)
    return result
