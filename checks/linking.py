"""Which records are the same entity: blocking, pair evidence, groups.

Pairs are proposed only inside blocks (never all pairs):
    same code · same organization code (positions 9–17) · same normalized
    name · same legal representative with similar names · an invalid code one
    edit away from a code held elsewhere.
Each pair gets evidence (name score, distinguishing parts, legal
representative, address, date) and a decision with its reason. Groups are
cliques of "same" links: A~B and B~C make a group with C only if A~C holds
on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import polars as pl
from rapidfuzz import fuzz, process

from checks.names import distinctive_similarity, distinguishers, normalize_name_expr, places

#: Pairs from one block at most (a bigger block is sub-sampled to its first members).
MAX_BLOCK = 200
#: Name similarity at which a name alone (with no contradicting evidence) links two records.
SAME_NAME = 100.0
#: Similarity that links with supporting evidence (legal representative or address).
SIMILAR_NAME = 85.0
#: Similarity that links, with one more piece of evidence, when the codes are the same (renamed names).
SAME_CODE_NAME = 50.0
#: Similarity that links when the org-code part or a single-edit code says so.
CODE_EVIDENCE_NAME = 60.0
ADDRESS_SAME = 90.0


def repeated(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The rows of `frame` whose `key` another row holds too (a null key is no key), in `frame`'s order.

    The keys' 64-bit hashes are sorted and the rows of a repeated hash kept first; only those few rows are then
    grouped by the key itself (two keys that share a hash are told apart there). Grouping a province's 10^7 codes
    or names at once took 2.9 s, this 1.1 s.
    """
    hashes = frame[key].hash()
    ordered = hashes.sort()
    twice = ordered.filter((ordered == ordered.shift(1)) | (ordered == ordered.shift(-1)))
    maybe = frame.filter(hashes.is_in(twice.implode()) & frame[key].is_not_null())
    return maybe.filter(pl.len().over(key) > 1)


def in_block(key: str, member: str = "idx") -> pl.Expr:
    """Whether a row is among the first `MAX_BLOCK` (by `member`, a record index) of those sharing `key`: the rows a
    block compares."""
    return pl.col(member).rank("ordinal").over(key) <= MAX_BLOCK


def pairs_within(frame: pl.DataFrame, key: str, *, different_code: bool, block: str) -> pl.DataFrame:
    """Index pairs (a < b) of records sharing `key`."""
    keyed = frame.select(list(dict.fromkeys(["idx", key, "code"])))  # never copy the wide frame
    # the empty key is no key: dropped from the repeated rows (the keys another row holds are the same without them),
    # not from the whole frame first (a copy of it: at 10^7, hundreds of MB more held)
    keyed = repeated(keyed, key).filter(pl.col(key) != "")
    if keyed.height == 0:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64, "block": pl.String})
    keyed = keyed.filter(in_block(key))
    pairs = keyed.join(keyed, on=key, suffix="_b").filter(pl.col("idx") < pl.col("idx_b"))
    if different_code:  # a record without a code differs from every code
        pairs = pairs.filter(pl.col("code").ne_missing(pl.col("code_b")))
    return pairs.select(pl.col("idx").alias("a"), pl.col("idx_b").alias("b"), pl.lit(block).alias("block"))


def rep_block_expr() -> pl.Expr:
    """The legal-representative block key: representative | first two | last two characters of the name."""
    return pl.col("rep") + "|" + pl.col("name_core").str.slice(0, 2) + "|" + pl.col("name_core").str.slice(-2, 2)


def fuzzy_rep_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Same legal representative and similar names, scored in one rapidfuzz batch (`cpdist`).

    A representative's name is shared by hundreds of people in a province, so the
    block is the representative together with the first and the last two characters
    of the name. A link across different codes needs the 字号 and the whole name to
    agree at 85 or more (`decide`), which such names do at both ends.
    """
    # the block key of every record (null where it has none) rather than the records with one copied first
    eligible = pl.col("rep").is_not_null() & (pl.col("rep") != "") & (pl.col("name_core").str.len_chars() >= 4)
    keyed = frame.select("idx", "code", _block=pl.when(eligible).then(rep_block_expr()))
    pairs = pairs_within(keyed, "_block", different_code=True, block="rep")
    if pairs.height == 0:
        return pairs
    names = frame.select("idx", "name_core")
    joined = pairs.join(names, left_on="a", right_on="idx").join(names, left_on="b", right_on="idx", suffix="_b")
    scores = process.cpdist(joined["name_core"].to_list(), joined["name_core_b"].to_list(), scorer=fuzz.ratio,
                            workers=-1)
    return joined.filter(pl.Series(scores >= SIMILAR_NAME)).select("a", "b", "block")


def block_pairs(records_of: Callable[[str | pl.Expr], pl.DataFrame], neighbor_pairs: pl.DataFrame) -> pl.DataFrame:
    """Pairs (a, b, block) that each block proposes, before merging.

    Args:
        records_of: the records a block looks at, by its key (a column name, or the legal-representative
            block's expression): the whole frame in one process, the records whose key hashes to one bucket
            in `checks.partition`.
        neighbor_pairs: invalid codes one edit away from a valid code, and legacy codes (`checks.cross_record`).
    """
    parts = [
        pairs_within(records_of("code"), "code", different_code=False, block="code"),
        pairs_within(records_of("org"), "org", different_code=True, block="org"),
        pairs_within(records_of("name_norm"), "name_norm", different_code=True, block="name"),
        fuzzy_rep_pairs(records_of(rep_block_expr())),
        neighbor_pairs.select("a", "b", pl.lit("neighbor").alias("block")),
    ]
    return pl.concat([p.select("a", "b", "block") for p in parts])


def merge_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """Each pair once (a < b) with the blocks that proposed it (`code,name`)."""
    pairs = pairs.with_columns(
        a=pl.min_horizontal("a", "b"), b=pl.max_horizontal("a", "b")).filter(pl.col("a") != pl.col("b"))
    return pairs.group_by("a", "b").agg(pl.col("block").unique().sort().str.join(",").alias("blocks"))


def candidate_pairs(frame: pl.DataFrame, neighbor_pairs: pl.DataFrame) -> pl.DataFrame:
    """All proposed pairs of one frame with the blocks that proposed them."""
    return merge_pairs(block_pairs(lambda key: frame, neighbor_pairs))


def score_pairs(frame: pl.DataFrame, pairs: pl.DataFrame, prefixes: tuple[str, ...]) -> pl.DataFrame:
    """Evidence of every pair and the decision "same entity" with its reason (`prefixes`: the city's name
    prefixes, `normalize_name_expr`)."""
    cols = ["idx", "code", "name_norm", "name_core", "rep", "address_norm", "established", "org", "weak", "source"]
    # addresses are compared for the records in a pair only: normalizing every address took a tenth of detection;
    # only the columns compared are taken of them (the wide frame's rows were copied whole)
    paired = frame.select(*[c for c in cols if c != "address_norm"], "address") \
        .filter(pl.col("idx").is_in(pl.concat([pairs["a"], pairs["b"]]).unique().implode())) \
        .with_columns(address_norm=normalize_name_expr(pl.col("address"), prefixes))
    left = paired.select(cols)
    right = paired.select(cols).rename({c: f"{c}_b" for c in cols})
    joined = pairs.join(left, left_on="a", right_on="idx").join(right, left_on="b", right_on="idx_b")
    if joined.height == 0:
        return joined.with_columns(score=pl.lit(None, pl.Float64), address_score=pl.lit(None, pl.Float64),
                                   same=pl.lit(None, pl.Boolean), reason=pl.lit(None, pl.String))
    name_score = process.cpdist(joined["name_core"].to_list(), joined["name_core_b"].to_list(), scorer=fuzz.ratio,
                                workers=1)
    address_score = process.cpdist(joined["address_norm"].fill_null("").to_list(),
                                   joined["address_norm_b"].fill_null("").to_list(), scorer=fuzz.ratio, workers=1)
    joined = joined.with_columns(score=pl.Series(name_score, dtype=pl.Float64),
                                 address_score=pl.Series(address_score, dtype=pl.Float64))
    same, reasons = [], []
    decided = joined.select(_DECIDE_READS)
    # a slice's rows as dicts at a time: every row's values as Python objects at once were 0.9 GB at 10^7
    for start in range(0, decided.height, _DECIDED_AT_ONCE):
        for r in row_dicts(decided.slice(start, _DECIDED_AT_ONCE)):
            decision, reason = decide(r)
            same.append(decision)
            reasons.append(reason)
    return joined.with_columns(same=pl.Series(same, dtype=pl.Boolean), reason=pl.Series(reasons, dtype=pl.String))


def row_dicts(frame: pl.DataFrame, repeated: tuple[str, ...] = ()) -> Iterator[dict]:
    """The rows of a frame as dicts, as `iter_rows(named=True)` gives them, from whole columns (that built
    each row value by value: at 10^6, 1.0 s for the pairs where this takes 0.6).

    `repeated`: text columns of few distinct values, each value one string object in every row (a string per
    row and column is 50–90 bytes; with the record findings' slots, 0.3 GB less at 10^7).
    """
    names = frame.columns
    return (dict(zip(names, values)) for values in zip(*(_shared(frame[name].to_list()) if name in repeated
                                                         else frame[name].to_list() for name in names)))


def _shared(values: list) -> list:
    """`values` with each distinct value one object."""
    one: dict = {}
    return [one.setdefault(v, v) for v in values]


#: Pairs whose values `score_pairs` holds as Python objects at once.
_DECIDED_AT_ONCE = 50_000
#: What `decide` reads of a scored pair.
_DECIDE_READS = ("name_norm", "name_norm_b", "name_core", "name_core_b", "score", "rep", "rep_b", "address_norm",
                 "address_norm_b", "address_score", "established", "established_b", "code", "code_b", "org",
                 "org_b", "blocks", "weak", "weak_b")


def _numbers(text: str) -> list[str]:
    """House, building and room numbers: two addresses that differ in one are different places
    (as are two that name different districts or counties, see `decide`)."""
    return re.findall(r"\d+", text)


def decide(r: dict) -> tuple[bool, str]:
    """Same entity or not, and why (in Chinese): the explanation a reviewer reads."""
    conflict = distinguishers(r["name_norm"]).conflict(distinguishers(r["name_norm_b"]))
    score = r["score"]
    rep_same = bool(r["rep"]) and r["rep"] == r["rep_b"]
    rep_conflict = bool(r["rep"]) and bool(r["rep_b"]) and r["rep"] != r["rep_b"]
    address_same = (bool(r["address_norm"]) and bool(r["address_norm_b"]) and r["address_score"] >= ADDRESS_SAME
                    and _numbers(r["address_norm"]) == _numbers(r["address_norm_b"])
                    and places(r["address_norm"]) == places(r["address_norm_b"]))
    date_same = r["established"] is not None and r["established"] == r["established_b"]
    contradicted = rep_conflict and not address_same  # different people at different places
    same_code = r["code"] is not None and r["code"] == r["code_b"]
    org_same = r["org"] is not None and r["org"] == r["org_b"]
    neighbor = "neighbor" in r["blocks"]
    evidence = [f"名称相似度 {score:.0f}"]
    if rep_same:
        evidence.append("法定代表人/负责人相同")
    elif rep_conflict:
        evidence.append("法定代表人/负责人不同")
    if address_same:
        evidence.append("地址相同")
    if date_same:
        evidence.append("成立日期相同")
    if org_same and not same_code:
        evidence.append("代码第 9–17 位（组织机构代码）相同")
    if neighbor:
        evidence.append("两个代码仅差一个字符")
    text = "；".join(evidence)
    if conflict:
        return False, f"不是同一主体：{conflict}（{text}）"
    if r["weak"] or r["weak_b"]:
        if same_code:
            return _decide_weak_same_code(r, text, address_same, rep_same, date_same)
        # Individual businesses and person-named entities: a name proves nothing.
        ok = address_same and (rep_same or date_same)
        return ok, ("同一主体：" if ok else "不能认定为同一主体（个体户或以人名命名，需地址等佐证）：") + text
    if same_code:
        if contradicted and score >= SIMILAR_NAME:
            distinct = distinctive_similarity(r["name_core"], r["name_core_b"])
            if distinct < SIMILAR_NAME:
                return False, f"不是同一主体：字号相似度仅 {distinct:.0f}，负责人、地址均不同（{text}）"
        ok = (score >= SIMILAR_NAME or (rep_same and address_same)
              or (score >= SAME_CODE_NAME and (rep_same or address_same or date_same)))
        if ok and _moved(r, address_same):
            text += "；" + MOVED
        return ok, ("同一主体：" if ok else "不是同一主体（名称不同且无其他佐证）：") + text
    if r["name_norm"] == r["name_norm_b"] or score >= SAME_NAME:
        return not contradicted, ("同一主体：" if not contradicted else
                                  "不能认定为同一主体（同名但负责人、地址均不同）：") + text
    if (org_same or neighbor) and score >= CODE_EVIDENCE_NAME:
        return True, "同一主体：" + text
    if score >= SIMILAR_NAME and (rep_same or address_same) and not contradicted:
        distinct = distinctive_similarity(r["name_core"], r["name_core_b"])
        if distinct >= SIMILAR_NAME:
            return True, "同一主体：" + text
        return False, f"不是同一主体：名称的区别部分（字号）相似度仅 {distinct:.0f}（{text}）"
    return False, "证据不足，不认定为同一主体：" + text


#: Shown when two records of one entity (same code) differ only in their address.
MOVED = "地址不同，可能已迁址"


def _moved(r: dict, address_same: bool) -> bool:
    """Both records give an address and the addresses differ."""
    return bool(r["address_norm"]) and bool(r["address_norm_b"]) and not address_same


def _decide_weak_same_code(r: dict, text: str, address_same: bool, rep_same: bool, date_same: bool) -> tuple[bool, str]:
    """An individual business or person-named entity twice under one code.

    The shared code is evidence in itself (a collision takes a clerk's slip), but a
    name alone says nothing about such entities. At one address, the operator or a
    similar name makes one entity (a changed operator keeps the code). At different
    addresses the business may have moved: the name, the operator and the date of
    establishment must all agree. Different operators at different places, or a
    different name or date elsewhere, are two entities sharing a code (重码).
    """
    name_same = r["name_norm"] == r["name_norm_b"] or (
        r["score"] >= SIMILAR_NAME and distinctive_similarity(r["name_core"], r["name_core_b"]) >= SIMILAR_NAME)
    if address_same:
        ok = rep_same or r["score"] >= SAME_CODE_NAME
        return ok, ("同一主体：" if ok else "不是同一主体（同一地址，但名称不同，经营者不同或缺失）：") + text
    if name_same and rep_same and date_same:
        return True, "同一主体：" + text + ("；" + MOVED if _moved(r, address_same) else "")
    differ = "、".join(label for label, agree in (("名称", name_same), ("经营者", rep_same), ("成立日期", date_same))
                      if not agree)
    return False, f"不能认定为同一主体（个体户或以人名命名，地址不同或缺失，且{differ}不一致或缺失）：" + text


def build_groups(scored: pl.DataFrame) -> dict[int, tuple[int, ...]]:
    """Groups of records that are pairwise the same entity (no chaining through weak links).

    Connected components of "same" links are split greedily into cliques: a
    record joins a clique only if it is linked to every member.
    """
    same = scored.filter(pl.col("same"))
    edges: dict[int, set[int]] = {}
    for a, b in same.select("a", "b").iter_rows():
        edges.setdefault(a, set()).add(b)
        edges.setdefault(b, set()).add(a)
    seen: set[int] = set()
    groups: dict[int, tuple[int, ...]] = {}
    for start in sorted(edges):
        if start in seen:
            continue
        component, stack = [], [start]
        seen.add(start)
        while stack:
            node = stack.pop()
            component.append(node)
            for nxt in edges[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        # a record joins the first clique (in the order they were made) all of whose members it is linked to: only
        # the cliques of its own neighbours can be that one, so only those are tried (trying every clique made so far
        # was quadratic in a component: one record linked to 30,000 placeholders took 150 s)
        cliques: list[list[int]] = []
        clique_of: dict[int, int] = {}
        for node in sorted(component, key=lambda n: (-len(edges[n]), n)):
            linked = edges[node]
            for at in sorted({clique_of[n] for n in linked if n in clique_of}):
                if all(m in linked for m in cliques[at]):
                    cliques[at].append(node)
                    clique_of[node] = at
                    break
            else:
                clique_of[node] = len(cliques)
                cliques.append([node])
        for clique in cliques:
            if len(clique) > 1:
                members = tuple(sorted(clique))
                for m in members:
                    groups[m] = members
    return groups
