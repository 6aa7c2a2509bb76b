"""Chinese organization names: normalization, distinguishing parts, similarity.

Normalization sees through what does not change the entity: full-width vs
half-width, bracket styles, whitespace, province/city prefixes and legal-form
variants. It keeps what does: branch suffixes, ordinal numbers, district and
county names, operator names. Two names whose distinguishing parts differ are
never the same entity, however similar they look.

>>> normalize_name("黑龙江省鹤岗市 宏发商贸有限责任公司", ("黑龙江省", "鹤岗市"))
'宏发商贸有限公司'
>>> distinguishers("鹤岗市第十一中学").ordinals, distinguishers("鹤岗一中").ordinals
((11,), (1,))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial

import polars as pl
from rapidfuzz import fuzz

#: Legal-form variants → one spelling (longest first).
LEGAL_FORMS = (
    ("股份有限公司", "股份公司"),
    ("有限责任公司", "有限公司"),
    ("有限公司", "有限公司"),
)
#: Suffixes that make a different entity of the same name (a branch is not its head office).
BRANCH_SUFFIXES = ("分公司", "分店", "分所", "分厂", "分院", "分行", "支行", "营业部", "分部", "分中心", "办事处", "分社",
                   "门市部", "经营部", "分理处", "服务站")
BRANCH_RE = re.compile(rf"([^()司]{{0,6}}?)({'|'.join(BRANCH_SUFFIXES)})")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUM = "零〇一二两三四五六七八九十百千"
ORDINAL_RE = re.compile(rf"第([0-9{_CN_NUM}]+)|([0-9{_CN_NUM}]+)(?=中学|小学|中(?!心|国|华|医|学)|小(?!学)|幼儿园|医院|分局|派出所|连队|大队|中队)")
#: District and county names anywhere in the name (generic: any …区/…县/…市/…镇/…乡 before a unit word).
PLACE_RE = re.compile(r"([\u4e00-\u9fff]{2,3}?(?:区|县|旗|镇|乡|街道))")
#: Each match of a pattern above holds one of its characters here: a text with none of them is not searched (at
#: 10^7 the patterns ran on millions of names and addresses, most of which hold none).
_BRANCH_CHARS = frozenset(suffix[0] for suffix in BRANCH_SUFFIXES)
_ORDINAL_CHARS = frozenset("0123456789" + _CN_NUM)
_PLACE_CHARS = frozenset("区县旗镇乡街")


def chinese_number(text: str) -> int | None:
    """`十一` → 11, `一百零二` → 102, `12` → 12; None when it isn't a number."""
    if text.isdigit():
        return int(text)
    total, section, current = 0, 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch in "十百千":
            unit = {"十": 10, "百": 100, "千": 1000}[ch]
            section += (current or 1) * unit
            current = 0
        else:
            return None
    return total + section + current


_BRACKETS_RE = r"[()（）\[\]【】〔〕{}「」『』<>《》\"'“”‘’]"
#: What a name is compared without: whitespace and brackets, dropped in one pass.
_DROPPED_RE = r"[\s" + _BRACKETS_RE[1:]
_LEGAL_SUFFIX_RE = r"(股份公司|有限公司|公司|有限合伙|合伙企业|个人独资企业)$"


def normalize_name_expr(name: pl.Expr, prefixes: tuple[str, ...] = ()) -> pl.Expr:
    """Polars expression of `normalize_name` (the one definition; the scalar evaluates it)."""
    text = name.str.normalize("NFKC").str.replace_all(_DROPPED_RE, "")
    if prefixes:
        alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
        # over the text made once: as one expression, polars made it twice (with the one pass above, a province's
        # names took 5.6 s instead of 10.1)
        text = text.map_batches(partial(_without_prefixes, pattern=f"^(?:{alternatives})+"), return_dtype=pl.String,
                                is_elementwise=True)
    for variant, canonical in LEGAL_FORMS:
        if variant != canonical:
            text = text.str.replace_all(variant, canonical, literal=True)
    return text.fill_null("")


def _without_prefixes(text: pl.Series, pattern: str) -> pl.Series:
    """`text` without the prefixes `pattern` matches at its start, unless fewer than two characters would be left."""
    stripped = text.str.replace(pattern, "")
    return stripped.zip_with((stripped.str.len_chars() >= 2).fill_null(False), text)


def name_core_expr(normalized: pl.Expr) -> pl.Expr:
    """A normalized name without its trailing legal form: what similarity is scored on,
    so that `…有限公司` shared by every company does not make two of them alike."""
    core = normalized.str.replace(_LEGAL_SUFFIX_RE, "")
    return pl.when(core != "").then(core).otherwise(normalized)


def normalize_name(name: str | None, prefixes: tuple[str, ...] = ()) -> str:
    """The name as compared: NFKC, no whitespace or brackets, no leading province/city
    prefixes (unless fewer than two characters would be left), one spelling per legal form."""
    if not name:
        return ""
    return pl.select(normalize_name_expr(pl.lit(name, dtype=pl.String), prefixes)).item()


def name_core(normalized: str) -> str:
    """Scalar `name_core_expr`."""
    return pl.select(name_core_expr(pl.lit(normalized, dtype=pl.String))).item()


@dataclass(frozen=True)
class Distinguishers:
    """Parts of a name that tell two similar names apart."""

    branch: str  # "向阳分公司", or "" for a head office
    ordinals: tuple[int, ...]
    places: tuple[str, ...]

    def conflict(self, other: "Distinguishers") -> str | None:
        """Why two names are different entities, in Chinese; None if nothing tells them apart."""
        if self.branch != other.branch:
            a, b = self.branch or "总机构", other.branch or "总机构"
            return f"分支机构不同（{a} / {b}）"
        if self.ordinals != other.ordinals:
            return f"序号不同（{'、'.join(map(str, self.ordinals)) or '无'} / {'、'.join(map(str, other.ordinals)) or '无'}）"
        if self.places != other.places:
            return f"所含区县不同（{'、'.join(self.places) or '无'} / {'、'.join(other.places) or '无'}）"
        return None


@lru_cache(maxsize=200_000)
def distinguishers(normalized: str) -> Distinguishers:
    chars = set(normalized)
    branch_match = None
    for branch_match in BRANCH_RE.finditer(normalized) if chars & _BRANCH_CHARS else ():
        pass  # the last branch suffix is the one that names this unit
    branch = branch_match.group(0) if branch_match else ""
    numbers = ORDINAL_RE.findall(normalized) if chars & _ORDINAL_CHARS else ()
    ordinals = tuple(n for n in (chinese_number(a or b) for a, b in numbers) if n is not None)
    return Distinguishers(branch, ordinals, _places(normalized, chars))


@lru_cache(maxsize=200_000)
def places(normalized: str) -> tuple[str, ...]:
    """`distinguishers(normalized).places`, alone: what an address is compared by."""
    return _places(normalized, set(normalized))


def _places(normalized: str, chars: set[str]) -> tuple[str, ...]:
    return tuple(sorted(set(PLACE_RE.findall(normalized)))) if chars & _PLACE_CHARS else ()


def distinctive_similarity(a: str, b: str) -> float:
    """Similarity of what two names do not share at their ends (the 字号 between a shared
    place prefix and a shared industry suffix): `萝北县春兴村大豆种植专业合作社` vs
    `萝北县兴达恒村大豆种植专业合作社` → 春兴 vs 兴达恒."""
    k = 0
    while k < min(len(a), len(b)) and a[-1 - k] == b[-1 - k]:
        k += 1
    a, b = a[: len(a) - k], b[: len(b) - k]
    j = 0
    while j < min(len(a), len(b)) and a[j] == b[j]:
        j += 1
    rest_a, rest_b = a[j:], b[j:]
    if not rest_a and not rest_b:
        return 100.0
    if not rest_a or not rest_b:
        return 0.0  # one 字号 extends the other (丰昌诚 / 丰昌诚通): two different 字号
    return fuzz.ratio(rest_a, rest_b)


def similarity(a: str, b: str) -> float:
    """0–100 similarity of two normalized names (rapidfuzz ratio)."""
    return fuzz.ratio(a, b)


__all__ = ["normalize_name", "normalize_name_expr", "name_core", "name_core_expr", "distinctive_similarity", "distinguishers", "Distinguishers", "places", "similarity", "chinese_number"]
