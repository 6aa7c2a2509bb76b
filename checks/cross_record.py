"""Detection stage 3, across records: duplicate codes (重码), duplicate records, one entity under
several codes (一主体多码) and names that disagree, from the candidate pairs of `checks.linking`.

Ownership: a finding goes to the record that must change; the registry whose department
matches a code's position 1 is presumed right; when none can be presumed right every holder gets
the finding, with no suggestion (待核). `Context` is what stage 4 (`checks.repairs`) and the golden
register read: the involved rows, the groups and the scored links.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import islice

import polars as pl

from checks.findings import RecordFinding
from checks.linking import (MAX_BLOCK, MOVED, build_groups, candidate_pairs, in_block, repeated, row_dicts,
                            score_pairs)
from checks.settings import Settings
from validators.column import BIT, single_edit_codes_column
from validators.uscc import Suggestion

#: Holders of one code beyond which the code is crowded (a placeholder a registry filled in): as many as a block
#: compares (`checks.linking.MAX_BLOCK`). Each holder's 重码 finding then lists only the first `CROWDED_RELATED`
#: other holders (the message counts the records), and the golden register takes each of its holders that has a 重码
#: finding as an entity apart from the other holders (`checks.register.entities`).
CROWDED = MAX_BLOCK
CROWDED_RELATED = 10


def neighbor_candidates(frame: pl.DataFrame) -> pl.DataFrame:
    """(idx, candidate): the codes one edit away from each invalid code that pass the check."""
    invalid = frame.filter(~pl.col("valid") & pl.col("code").is_not_null()).select("idx", "code")
    found = single_edit_codes_column(invalid["code"])
    return found.select(idx=invalid["idx"].gather(found["row"]), candidate="candidate")


def neighbor_pairs_from(candidates: pl.DataFrame, holders: pl.DataFrame, legacy: pl.DataFrame) -> pl.DataFrame:
    """Pairs (a, b): an invalid code one edit from the code `holders` record b holds (the first
    holder), and a legacy organization code equal to the positions 9–17 of a valid code; like every block, at
    most the first `MAX_BLOCK` records of each side.

    `holders` and `legacy` may be the whole frame or the records of one key bucket (checks.partition).
    """
    valid = holders.select("idx", "code", "org", "valid").filter(pl.col("valid"))  # never copy the wide frame
    # only the codes some candidate names are grouped: grouping every valid code took 8 s at 10^7
    hit = valid.filter(pl.col("code").is_in(candidates["candidate"].implode()))
    first = hit.group_by("code").agg(pl.col("idx").min().alias("holder"))
    # a block like the others: a valid code's first `MAX_BLOCK` neighbours (a placeholder one edit from a real code
    # on 30,000 records linked them all to its holder)
    near = candidates.join(first, left_on="candidate", right_on="code") \
        .select(pl.col("idx").alias("a"), pl.col("holder").alias("b")) \
        .filter(in_block("b", member="a"))
    # a legacy code and the valid codes it is positions 9–17 of: a block like the others, its first `MAX_BLOCK` of
    # each side (5,000 records on either side of one organization code made 25 M pairs); only the organization
    # codes some legacy code names are ranked (ranking every valid code's took 5 s at 10^7)
    legacy = legacy.filter(pl.col("legacy_org").is_not_null()).select("idx", "legacy_org") \
        .filter(in_block("legacy_org"))
    named = valid.filter(pl.col("org").is_in(legacy["legacy_org"].implode())).select("idx", "org") \
        .filter(in_block("org"))
    old = legacy.join(named, left_on="legacy_org", right_on="org", suffix="_b") \
        .select(pl.col("idx").alias("a"), pl.col("idx_b").alias("b"))
    return pl.concat([near, old])


def neighbor_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Invalid codes one edit away from a valid code held by another record, and legacy codes."""
    return neighbor_pairs_from(neighbor_candidates(frame), frame, frame)


#: Columns of the records that findings, links and repairs read.
ROW_COLUMNS = ("idx", "source", "record_id", "code", "norm", "valid", "flags", "name", "name_norm", "entity_type",
               "uscc_raw", "uscc_numeric", "uscc_text", "file", "row")


#: What the rows as dicts hold: what findings, links and repairs read of them (`Context.rows`); the findings
#: frame reads the rest of `ROW_COLUMNS` from the frame. Five columns fewer: 0.6 GB less held across records at 10^7.
DICT_COLUMNS = ("idx", "source", "record_id", "code", "valid", "flags", "name", "name_norm", "entity_type",
                "uscc_raw")


def row_store(frame: pl.DataFrame, indexes) -> dict[int, dict]:
    """The rows that are involved in something, by index (never the whole registry as dicts)."""
    wanted = pl.DataFrame({"idx": sorted(set(indexes))}, schema={"idx": pl.Int64})
    rows = frame.select(DICT_COLUMNS).join(wanted, on="idx", how="semi")
    return {r["idx"]: r for r in row_dicts(rows, repeated=("source", "entity_type"))}


@dataclass
class Context:
    frame: pl.DataFrame
    settings: Settings
    rows: dict[int, dict]
    groups: dict[int, tuple[int, ...]]
    links: dict[tuple[int, int], dict]
    shared_codes: dict[str, list[int]]

    def release(self) -> None:
        """Let go of the rows, links, groups and shared codes (the repairs are their last reader): at 10^7 the
        dicts are 2 GB that the findings frame was built beside, 3 s slower for it."""
        self.rows.clear()
        self.links.clear()
        self.groups.clear()
        self.shared_codes.clear()

    def link(self, a: int, b: int) -> dict | None:
        return self.links.get((min(a, b), max(a, b)))

    def presumed_right(self, idx: int) -> bool:
        """The record's code is valid and was issued by its own registry's department."""
        r = self.rows[idx]
        return r["valid"] and r["code"] is not None and r["code"][0] in self.settings.source(r["source"]).departments

    def trusted_code(self, members) -> tuple[str, int, str] | None:
        """The one code of a group to be trusted, its holder and why; None when nobody can be presumed right.

        A valid code with no warning that its own registry issued comes first; failing
        that, the only valid code without a warning (the others' region parts are
        unknown to GB/T 2260).
        """
        clean = [m for m in members if self.rows[m]["valid"] and self.rows[m]["code"]
                 and not self.rows[m]["flags"] & BIT["bad_region"]]
        owned = [m for m in clean if self.presumed_right(m)]
        for pool, why in ((owned, "该代码的登记管理部门"), (clean, "唯一没有警告的有效代码")):
            if len({self.rows[m]["code"] for m in pool}) == 1:
                return self.rows[pool[0]]["code"], pool[0], why
        return None


def shared_codes_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """(code, idx list): codes held by more than one record, with their holders (sorted indexes)."""
    return repeated(frame.select("code", "idx"), "code").group_by("code").agg(pl.col("idx").sort())


def shared_codes_of(frame: pl.DataFrame) -> dict[str, list[int]]:
    """Codes held by more than one record → their holders (sorted indexes)."""
    return dict(shared_codes_frame(frame).iter_rows())


def scored_pairs(frame: pl.DataFrame, settings: Settings) -> tuple[pl.DataFrame, dict[str, list[int]]]:
    """The candidate pairs of one frame, scored (`checks.linking.score_pairs`), and the codes more than one record
    holds: the part of the findings across records that needs no record-level finding, polars for the most part
    (`checks.detect` runs the record level beside it)."""
    pairs = candidate_pairs(frame, neighbor_pairs(frame))
    shared = shared_codes_of(frame)  # before the scored pairs exist: after them, at 10^7 it peaked 1 GB higher
    # what the findings read of them, not both records' evidence (held through the findings across records)
    return score_pairs(frame, pairs, settings.city.name_prefixes).select(SCORED_COLUMNS), shared


#: What the findings across records read of a scored pair (`cross_decided`, `checks.linking.build_groups`).
SCORED_COLUMNS = ("a", "b", "score", "same", "reason", "blocks")


def cross_from(frame: pl.DataFrame, settings: Settings, involved: set[int], pairs: pl.DataFrame,
               shared_codes: dict[str, list[int]]) -> tuple[list[RecordFinding], Context]:
    """Findings across records from the candidate pairs and shared codes, however they were found (`cross_decided`
    once the pairs are scored)."""
    return cross_decided(frame, settings, involved, score_pairs(frame, pairs, settings.city.name_prefixes),
                         shared_codes)


def cross_decided(frame: pl.DataFrame, settings: Settings, involved: set[int], scored: pl.DataFrame,
                  shared_codes: dict[str, list[int]]) -> tuple[list[RecordFinding], Context]:
    """Findings across records from the scored pairs and shared codes.

    `frame` needs only the records involved: those with findings, in a pair or sharing a code. `involved`: the
    records whose findings' repairs read their row (`checks.repairs.READS_ROW`); rows are kept as dicts only for
    those and for the records in a pair or sharing a code (at a province, a row per finding was gigabytes).
    """
    links = {(r["a"], r["b"]): r for r in row_dicts(scored.select(SCORED_COLUMNS), repeated=("blocks",))}
    indexes = involved | {i for pair in links for i in pair} | {i for ids in shared_codes.values() for i in ids}
    ctx = Context(frame, settings, row_store(frame, indexes), build_groups(scored), links, shared_codes)
    findings: list[RecordFinding] = []
    findings += _duplicate_codes(ctx)
    for members in set(ctx.groups.values()):
        findings += _group_findings(ctx, members)
    return findings, ctx


def _group_stats(ctx: Context, members) -> tuple[int, float | None, str]:
    scores, reasons = [], []
    for i, a in enumerate(members):
        for b in members[i + 1:]:
            link = ctx.link(a, b)
            if link:
                scores.append(link["score"])
                reasons.append(link["reason"])
    weakest = min(scores) if scores else None
    return len(members), weakest, (min(zip(scores, reasons))[1] if scores else "")


def _duplicate_codes(ctx: Context) -> list[RecordFinding]:
    """重码: one code on records that are different entities.

    Each holder joins the first entity (in holder order) whose first holder it has a "same" link with. The links
    are looked up from each holder's own (a few), never against every entity: a code a registry filled into
    thousands of records (a placeholder) made that, and the evidence between every two entities, quadratic.
    A crowded code's holders (more than `CROWDED` of them) each list only the first `CROWDED_RELATED` others, and
    its message counts records instead of entities.
    """
    holding = {i for holders in ctx.shared_codes.values() for i in holders}
    same: dict[int, list[int]] = defaultdict(list)  # holder → the holders a "same" link joins it to
    near: dict[int, list[int]] = defaultdict(list)  # holder → the holders any link joins it to
    for (a, b), link in ctx.links.items():
        if a not in holding or b not in holding:
            continue
        near[a].append(b)
        near[b].append(a)
        if link["same"]:
            same[a].append(b)
            same[b].append(a)
    findings = []
    for code, holders in ctx.shared_codes.items():
        entities: list[list[int]] = []
        first_of: dict[int, int] = {}  # an entity's first holder → the entity's place in `entities`
        for idx in holders:
            at = min((first_of[n] for n in same.get(idx, ()) if n in first_of), default=None)
            if at is None:
                first_of[idx] = len(entities)
                entities.append([idx])
            else:
                entities[at].append(idx)
        if len(entities) < 2:
            continue
        owner = ctx.settings.owner_of_department(code[0])
        right = [e for e in entities if any(ctx.rows[i]["source"] == owner for i in e)] if owner else []
        must_change = [e for e in entities if e is not right[0]] if len(right) == 1 else entities
        names = "；".join(f"{ctx.settings.source_names[ctx.rows[e[0]]['source']]} {ctx.rows[e[0]]['record_id']} "
                         f"{ctx.rows[e[0]]['name'] or ''}" for e in entities[:5])
        # the reasons of the links between two entities' first holders (the doubt that made them two)
        reasons = {ctx.link(a, b)["reason"] for a in first_of for b in near.get(a, ()) if b in first_of}
        evidence = "；".join(sorted(reasons))[:300]
        note = ("本代码按第 1 位应由"
                f"{ctx.settings.source_names[owner]}登记，以其记录为准，请核实本单位记录的正确代码"
                if len(right) == 1 else "无法判断哪一方正确，请各持有单位核实")
        crowded = len(holders) > CROWDED
        # a crowded code's holders beyond a block were never compared with each other: counted as records, not
        # as entities, and the clerk is told what such a code usually is
        if crowded:
            message = (f"代码同时被 {len(holders)} 条记录使用（如 {names}），远多于一个代码应有的持有记录，"
                       f"可能是占位或批量误填的代码。{note}")
        else:
            message = f"代码同时被 {len(entities)} 个不同主体使用（{names}）。{note}"
        for entity in must_change:
            mine = set(entity)
            # once per entity, shared by its holders' findings; a crowded code's first others only (never all)
            others = tuple(islice((i for i in holders if i not in mine), CROWDED_RELATED if crowded else None))
            findings += (RecordFinding(idx, "duplicate_code", message, related=others, group_size=len(holders),
                                       evidence=evidence) for idx in entity)
    return findings


def _group_findings(ctx: Context, members: tuple[int, ...]) -> list[RecordFinding]:
    """Findings inside one group of records that are the same entity."""
    findings = []
    size, weakest, weakest_reason = _group_stats(ctx, members)
    rows = [ctx.rows[i] for i in members]
    valid_codes = {r["code"] for r in rows if r["valid"] and r["code"]}

    def related(idx):
        return [m for m in members if m != idx]

    # 重复记录: same code twice in one registry; every copy after the first must go.
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["code"]:
            by_key[(r["source"], r["code"])].append(r)
    for (source, code), copies in by_key.items():
        copies.sort(key=lambda r: r["record_id"])
        for r in copies[1:]:
            link = ctx.link(r["idx"], copies[0]["idx"]) or {}
            todo = ("；两条记录" + MOVED + "，请核实现住所，保留地址正确的一条，删除另一条"
                    if MOVED in (link.get("reason") or "") else "，请合并或删除重复记录")
            findings.append(RecordFinding(r["idx"], "duplicate_record",
                                    f"与本单位记录 {copies[0]['record_id']}（{copies[0]['name']}）为同一主体、同一代码"
                                    f"{todo}", related=[c["idx"] for c in copies if c is not r],
                                    group_size=size, weakest_score=weakest, evidence=weakest_reason))

    # 名称不一致: same code in two registries, names differ after normalization.
    by_code: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["code"]:
            by_code[r["code"]].append(r)
    for code, holders in by_code.items():
        sources = {r["source"] for r in holders}
        if len(sources) < 2 or len({r["name_norm"] for r in holders}) < 2:
            continue
        owner = ctx.settings.owner_of_department(code[0])
        reference = [r for r in holders if r["source"] == owner]
        for r in holders:
            if r["source"] == owner:
                continue
            if reference and r["name_norm"] == reference[0]["name_norm"]:
                continue
            if reference:
                ref = reference[0]
                message = (f"本单位登记名称“{r['name']}”与{ctx.settings.source_names[owner]}（该代码的登记管理部门）"
                           f"登记的“{ref['name']}”不一致，请核实现用名称")
            else:
                others = "、".join(f"“{h['name']}”" for h in holders if h is not r)
                message = f"同一代码在其他部门登记的名称为{others}，与本单位“{r['name']}”不一致，请各方核实"
            findings.append(RecordFinding(r["idx"], "name_mismatch", message, related=related(r["idx"]),
                                    group_size=size, weakest_score=weakest, evidence=weakest_reason))

    # 一主体多码: the same entity under two or more valid codes.
    if len(valid_codes) > 1:
        trusted = ctx.trusted_code(members)
        single_anchor = trusted[0] if trusted else None
        for r in rows:
            if not (r["valid"] and r["code"]) or r["code"] == single_anchor:
                continue
            listed = "、".join(sorted(valid_codes - {r["code"]}))
            if trusted:
                code, holder_idx, why = trusted
                holder = ctx.rows[holder_idx]
                suggestion = Suggestion(code, f"同一主体在{ctx.settings.source_names[holder['source']]}"
                                              f"登记的代码（{why}），记录 {holder['record_id']}",
                                        "high" if strong_link(ctx, r["idx"], holder_idx) else "medium")
                message = f"同一主体还以代码 {listed} 登记；应以 {code} 为准（{why}）"
            else:
                suggestion = None
                message = f"同一主体还以代码 {listed} 登记，无法判断哪个代码正确，请各方核实"
            findings.append(RecordFinding(r["idx"], "multiple_codes", message, suggestion=suggestion,
                                    related=related(r["idx"]), group_size=size, weakest_score=weakest,
                                    evidence=weakest_reason))
    return findings


def strong_link(ctx: Context, a: int, b: int) -> bool:
    """A same-entity link that proves the code: identical names, or the org code or a one-edit code agree."""
    link = ctx.link(a, b)
    return bool(link) and link["same"] and (link["score"] >= 100 or "org" in link["blocks"]
                                            or "neighbor" in link["blocks"])
