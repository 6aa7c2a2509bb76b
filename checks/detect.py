"""Every finding of SPEC §2 over the canonical frame: one findings frame.

Stages (each pure, frames in, findings out):
    1. record level     — the GB 32100 rules on each code (validators)
    2. in context       — department / category / region against the record
    3. across records   — duplicate codes, duplicate records, one entity with
                          many codes, names that disagree (checks.linking)
    4. repairs          — suggestions backed by evidence from other registries

Ownership (SPEC §2, §8): a finding goes to the record that must change; the
registry whose department matches a code's position 1 is presumed right;
when none can be presumed right every holder gets the finding, with no
suggestion (待核).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

import polars as pl

from checks.categories import expected_category, expected_category_column
from checks.linking import MOVED, build_groups, candidate_pairs, score_pairs
from checks.names import name_core_expr, normalize_name_expr
from checks.settings import Settings
from validators import regions
from validators.column import BIT, classify
from validators.tables import DEPARTMENTS, KINDS, TERMINAL_KINDS, VALUE
from validators.uscc import Suggestion, calc_check_char, check, formatting_fix, mask, single_edit_neighbors

#: Columns of the findings frame (findings.csv carries them, SPEC §5) and their types.
FINDING_SCHEMA = {
    "finding_id": pl.String, "source": pl.String, "record_id": pl.String, "uscc": pl.String, "name": pl.String,
    "kind": pl.String, "severity": pl.String, "message": pl.String, "positions": pl.String,
    "suggested_code": pl.String, "confidence": pl.String, "suggestion_reason": pl.String, "related": pl.String,
    "related_detail": pl.String, "group_size": pl.Int64, "weakest_score": pl.Float64, "evidence": pl.String,
    "status": pl.String, "file": pl.String, "row": pl.Int64,
}
FINDING_COLUMNS = tuple(FINDING_SCHEMA)
_TERMINAL_BITS = sum(BIT[k] for k in TERMINAL_KINDS)


@dataclass
class Finding:
    idx: int
    kind: str
    message: str
    severity: str | None = None
    positions: tuple[int, ...] = ()
    suggestion: Suggestion | None = None
    related: list[int] = field(default_factory=list)
    group_size: int | None = None
    weakest_score: float | None = None
    evidence: str = ""


def finding_id(source: str, record_id: str, kind: str, code: str) -> str:
    """Stable id: the same problem on the same record has the same id every night."""
    return hashlib.sha1(f"{source}\x1f{record_id}\x1f{kind}\x1f{code}".encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- preparation

#: File types whose cells carry a type (a text cell was not rounded by this file); a CSV has none:
#: Excel writes numbers into a CSV as it shows them, so 18 digits ending in 000 may be its damage.
TYPED_CELL_SUFFIXES = (".xlsx",)


def text_cell_expr() -> pl.Expr:
    """The code cell was stored as text in a typed sheet (an XLSX cell that is not a number)."""
    typed = pl.lit(False)
    for suffix in TYPED_CELL_SUFFIXES:
        typed = typed | pl.col("file").str.to_lowercase().str.ends_with(suffix)
    return (typed & ~pl.col("uscc_numeric")).fill_null(False)


def prepare(records: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Records with the normalized code, its flags, and the keys used for linking."""
    records = records.with_columns(uscc_text=text_cell_expr())
    classified = classify(records["uscc_raw"], records["uscc_numeric"], settings.allowlist, records["uscc_text"])
    prefixes = settings.city.name_prefixes
    frame = records.with_columns(
        # a partition keeps the indexes of the whole run (checks.partition)
        idx=pl.col("idx") if "idx" in records.columns else pl.int_range(pl.len(), dtype=pl.Int64),
        norm=classified["code"],
        flags=classified["flags"],
        valid=classified["valid"],
    )
    terminal = (pl.col("flags") & _TERMINAL_BITS) != 0
    is18 = (pl.col("norm").str.len_chars() == 18) & ~terminal
    org_ok = is18 & ((pl.col("flags") & (BIT["bad_org_check"] | BIT["bad_charset"])) == 0)
    frame = frame.with_columns(
        code=pl.when(is18).then(pl.col("norm")),
        org=pl.when(org_ok).then(pl.col("norm").str.slice(8, 9)),
        legacy_org=pl.when(((pl.col("flags") & BIT["legacy_number"]) != 0) & (pl.col("norm").str.len_chars() == 9))
        .then(pl.col("norm")),
        name_norm=normalize_name_expr(pl.col("name"), prefixes),
        rep=pl.col("legal_rep").str.replace_all(r"\s", ""),
        address_norm=normalize_name_expr(pl.col("address"), prefixes),
    )
    weak = (pl.col("entity_type").fill_null("").str.contains("个体")
            | (pl.col("code").str.slice(0, 2) == "92").fill_null(False)
            | (pl.col("name_norm").str.len_chars() <= 4)
            | (pl.col("name_norm") == pl.col("rep")).fill_null(False))
    return frame.with_columns(weak=weak, name_core=name_core_expr(pl.col("name_norm")))


# --------------------------------------------------------------------------- stage 1: record level

def record_level(frame: pl.DataFrame, allowlist: dict[str, str] | None = None) -> list[Finding]:
    """The validator's findings on every flagged code (one scalar check per distinct cell)."""
    flagged = frame.filter(pl.col("flags") != 0).select("idx", "uscc_raw", "uscc_numeric", "uscc_text")
    findings: list[Finding] = []
    reports: dict[tuple, object] = {}
    for idx, raw, numeric, text in flagged.iter_rows():
        report = reports.get((raw, numeric, text))
        if report is None:
            report = reports[(raw, numeric, text)] = check(raw, numeric=numeric, text=text, allowlist=allowlist,
                                                          suggest=False)
        for f in report.findings:
            findings.append(Finding(idx, f.kind, f.message, f.severity, f.positions))
    return findings


# --------------------------------------------------------------------------- stage 2: in context

def context_level(frame: pl.DataFrame, settings: Settings) -> list[Finding]:
    """department_mismatch, category_mismatch, region_outside: decided over the whole
    column at once, worded for the few rows they flag."""
    prefix = settings.city.jurisdiction_prefix
    dept, cat = pl.col("code").str.slice(0, 1), pl.col("code").str.slice(1, 1)
    own = pl.lit(False)
    for source in settings.sources:
        own = pl.when(pl.col("source") == source.key).then(dept.is_in(list(source.departments))).otherwise(own)
    valid_pairs = [d + c for d, (_, cats) in DEPARTMENTS.items() for c in cats]
    region = pl.col("code").str.slice(2, 6)
    columns = frame.select("idx", "source", "code", "flags", "entity_type", "name").with_columns(
        _expected=expected_category_column(frame["entity_type"], frame["name"]))
    flagged = columns.filter(pl.col("code").is_not_null()).with_columns(
        _dept=dept.is_in(list(DEPARTMENTS)) & ~own,
    ).with_columns(
        _cat=(pl.col("_expected").str.slice(0, 1) == dept) & (pl.col("_expected").str.slice(1, 1) != cat)
        & ((pl.col("flags") & BIT["bad_category"]) == 0) & pl.col("code").str.slice(0, 2).is_in(valid_pairs),
        _region=region.str.contains(r"^[0-9]{6}$") & ((pl.col("flags") & BIT["bad_region"]) == 0)
        & ~region.str.starts_with(prefix),
    ).filter(pl.col("_dept") | pl.col("_cat").fill_null(False) | pl.col("_region"))
    departments = {s.key: s.departments for s in settings.sources}
    findings: list[Finding] = []
    for r in flagged.iter_rows(named=True):
        code, idx = r["code"], r["idx"]
        if r["_dept"]:
            owners = "、".join(departments[r["source"]])
            findings.append(Finding(idx, "department_mismatch",
                                    f"代码第 1 位“{code[0]}”表示{DEPARTMENTS[code[0]][0]}部门登记，"
                                    f"而本单位登记的主体应为“{owners}”开头", positions=(1,)))
        if r["_cat"]:
            exp_cat, by_type = r["_expected"][1], r["_expected"][2] == "T"
            names = DEPARTMENTS[code[0]][1]
            said = f"主体类型“{r['entity_type']}”" if by_type else f"名称“{r['name']}”"
            findings.append(Finding(idx, "category_mismatch",
                                    f"{said}表明为{names[exp_cat]}，代码第 2 位应为“{exp_cat}”，"
                                    f"现为“{code[1]}”（{names[code[1]]}）", positions=(2,)))
        if r["_region"]:
            where = regions.region_name(code[2:8]) or code[2:8]
            findings.append(Finding(idx, "region_outside",
                                    f"代码第 3–8 位“{code[2:8]}”（{where}）不在本市辖区（{prefix}）", positions=range(3, 9)))
    return findings


# --------------------------------------------------------------------------- stage 3: across records

def neighbor_candidates(frame: pl.DataFrame) -> pl.DataFrame:
    """(idx, candidate): the codes one edit away from each invalid code that pass the check."""
    rows_a, candidates = [], []
    for idx, code in frame.filter(~pl.col("valid") & pl.col("code").is_not_null()).select("idx", "code").iter_rows():
        for candidate, _ in single_edit_neighbors(code):
            rows_a.append(idx)
            candidates.append(candidate)
    return pl.DataFrame({"idx": rows_a, "candidate": candidates}, schema={"idx": pl.Int64, "candidate": pl.String})


def neighbor_pairs_from(candidates: pl.DataFrame, holders: pl.DataFrame, legacy: pl.DataFrame) -> pl.DataFrame:
    """Pairs (a, b): an invalid code one edit from the code `holders` record b holds (the first
    holder), and a legacy organization code equal to the positions 9–17 of a valid code.

    `holders` and `legacy` may be the whole frame or the records of one key bucket (checks.partition).
    """
    valid = holders.filter(pl.col("valid"))
    first = valid.filter(pl.col("code").is_not_null()).group_by("code").agg(pl.col("idx").min().alias("holder"))
    near = candidates.join(first, left_on="candidate", right_on="code") \
        .select(pl.col("idx").alias("a"), pl.col("holder").alias("b"))
    old = legacy.filter(pl.col("legacy_org").is_not_null()).select("idx", "legacy_org") \
        .join(valid.filter(pl.col("org").is_not_null()).select("idx", "org"), left_on="legacy_org", right_on="org",
              suffix="_b") \
        .select(pl.col("idx").alias("a"), pl.col("idx_b").alias("b"))
    return pl.concat([near, old])


def neighbor_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Invalid codes one edit away from a valid code held by another record, and legacy codes."""
    return neighbor_pairs_from(neighbor_candidates(frame), frame, frame)


#: Columns of the records that findings, links and repairs read.
ROW_COLUMNS = ("idx", "source", "record_id", "code", "norm", "valid", "flags", "name", "name_norm", "entity_type",
               "uscc_raw", "uscc_numeric", "uscc_text", "file", "row")


def row_store(frame: pl.DataFrame, indexes) -> dict[int, dict]:
    """The rows that are involved in something, by index (never the whole registry as dicts)."""
    wanted = pl.DataFrame({"idx": sorted(set(indexes))}, schema={"idx": pl.Int64})
    rows = frame.select(ROW_COLUMNS).join(wanted, on="idx", how="semi")
    return {r["idx"]: r for r in rows.iter_rows(named=True)}


@dataclass
class Context:
    frame: pl.DataFrame
    settings: Settings
    rows: dict[int, dict]
    groups: dict[int, tuple[int, ...]]
    links: dict[tuple[int, int], dict]
    shared_codes: dict[str, list[int]]

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


def shared_codes_of(frame: pl.DataFrame) -> dict[str, list[int]]:
    """Codes held by more than one record → their holders (sorted indexes)."""
    shared = (frame.filter(pl.col("code").is_not_null() & (pl.len().over("code") > 1))
              .group_by("code").agg(pl.col("idx").sort()))
    return dict(shared.iter_rows())


def cross_level(frame: pl.DataFrame, settings: Settings, involved: set[int]) -> tuple[list[Finding], Context]:
    """Findings across records; `involved` are the records that already have findings."""
    pairs = candidate_pairs(frame, neighbor_pairs(frame))
    return cross_from(frame, settings, involved, pairs, shared_codes_of(frame))


def cross_from(frame: pl.DataFrame, settings: Settings, involved: set[int], pairs: pl.DataFrame,
               shared_codes: dict[str, list[int]]) -> tuple[list[Finding], Context]:
    """Findings across records from the candidate pairs and shared codes, however they were found.

    `frame` needs only the records involved: those with findings, in a pair or sharing a code.
    """
    scored = score_pairs(frame, pairs)
    links = {(r["a"], r["b"]): r for r in scored.select("a", "b", "score", "same", "reason", "blocks").iter_rows(named=True)}
    indexes = involved | {i for pair in links for i in pair} | {i for ids in shared_codes.values() for i in ids}
    ctx = Context(frame, settings, row_store(frame, indexes), build_groups(scored), links, shared_codes)
    findings: list[Finding] = []
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


def _duplicate_codes(ctx: Context) -> list[Finding]:
    """重码: one code on records that are different entities."""
    findings = []
    for code, holders in ctx.shared_codes.items():
        entities: list[list[int]] = []
        for idx in holders:
            for entity in entities:
                link = ctx.link(entity[0], idx)
                if link and link["same"]:
                    entity.append(idx)
                    break
            else:
                entities.append([idx])
        if len(entities) < 2:
            continue
        owner = ctx.settings.owner_of_department(code[0])
        right = [e for e in entities if any(ctx.rows[i]["source"] == owner for i in e)] if owner else []
        must_change = [e for e in entities if e not in right] if len(right) == 1 else entities
        names = "；".join(f"{ctx.settings.source_names[ctx.rows[e[0]]['source']]} {ctx.rows[e[0]]['record_id']} "
                         f"{ctx.rows[e[0]]['name'] or ''}" for e in entities[:5])
        doubt = [ctx.link(a[0], b[0]) for i, a in enumerate(entities) for b in entities[i + 1:]]
        evidence = "；".join(sorted({d["reason"] for d in doubt if d}))[:300]
        for entity in must_change:
            for idx in entity:
                others = [i for i in holders if i not in entity]
                note = ("本代码按第 1 位应由"
                        f"{ctx.settings.source_names[owner]}登记，以其记录为准，请核实本单位记录的正确代码"
                        if len(right) == 1 else "无法判断哪一方正确，请各持有单位核实")
                findings.append(Finding(idx, "duplicate_code",
                                        f"代码同时被 {len(entities)} 个不同主体使用（{names}）。{note}",
                                        related=others, group_size=len(holders), evidence=evidence))
    return findings


def _group_findings(ctx: Context, members: tuple[int, ...]) -> list[Finding]:
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
            findings.append(Finding(r["idx"], "duplicate_record",
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
            findings.append(Finding(r["idx"], "name_mismatch", message, related=related(r["idx"]),
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
                                        "high" if _strong(ctx, r["idx"], holder_idx) else "medium")
                message = f"同一主体还以代码 {listed} 登记；应以 {code} 为准（{why}）"
            else:
                suggestion = None
                message = f"同一主体还以代码 {listed} 登记，无法判断哪个代码正确，请各方核实"
            findings.append(Finding(r["idx"], "multiple_codes", message, suggestion=suggestion,
                                    related=related(r["idx"]), group_size=size, weakest_score=weakest,
                                    evidence=weakest_reason))
    return findings


def _strong(ctx: Context, a: int, b: int) -> bool:
    link = ctx.link(a, b)
    return bool(link) and link["same"] and (link["score"] >= 100 or "org" in link["blocks"]
                                            or "neighbor" in link["blocks"])


# --------------------------------------------------------------------------- stage 4: repairs

def attach_repairs(findings: list[Finding], ctx: Context) -> None:
    """Give record-level and context findings the best suggestion there is, with its reason."""
    by_record: dict[int, list[Finding]] = defaultdict(list)
    for f in findings:
        by_record[f.idx].append(f)
    cross_listed = _cross_listed(ctx)
    for idx, items in by_record.items():
        kinds = {f.kind for f in items}
        if "department_mismatch" in kinds and idx in cross_listed:
            items[:] = [f for f in items if f.kind != "department_mismatch"]
            kinds.discard("department_mismatch")
        if not kinds & _REPAIRABLE:
            continue
        evidence = _evidence_suggestion(ctx, idx)
        fallback: dict[bool, Suggestion | None] = {}  # by "is a department/category finding", computed once
        for f in items:
            if f.kind not in _REPAIRABLE or KINDS[f.kind].severity != "error" or f.suggestion:
                continue
            if evidence:
                f.suggestion, f.related = evidence[0], f.related or evidence[1]
                continue
            by_type = f.kind in ("department_mismatch", "category_mismatch")
            if by_type not in fallback:
                fallback[by_type] = (_expected_category_suggestion(ctx, idx) if by_type
                                     else _structural_suggestion(ctx, idx, kinds))
            f.suggestion = fallback[by_type]
    findings[:] = [f for items in by_record.values() for f in items]


def attach_formatting_fixes(findings: list[Finding], ctx: Context) -> None:
    """A `formatting` finding carries the clean code as its fix (`high`) when that code passes every
    rule and the record has no error of any other kind; otherwise the record's other findings say
    what the right code is, and one record never shows two different fixes."""
    wrong = {f.idx for f in findings if (f.severity or KINDS[f.kind].severity) == "error"}
    for f in findings:
        if f.kind == "formatting" and f.idx not in wrong and ctx.rows[f.idx]["valid"]:
            f.suggestion = formatting_fix(ctx.rows[f.idx]["uscc_raw"])


_REPAIRABLE = {"missing", "excel_mangled", "personal_id", "legacy_number", "bad_length", "bad_charset",
               "bad_department", "bad_category", "bad_region", "bad_org_check", "bad_check_char",
               "department_mismatch", "category_mismatch"}


def _cross_listed(ctx: Context) -> set[int]:
    """Records whose code's owning registry holds the same entity (SPEC §8: no department_mismatch)."""
    out = set()
    for members in set(ctx.groups.values()):
        for m in members:
            code = ctx.rows[m]["code"]
            owner = ctx.settings.owner_of_department(code[0]) if code else None
            if owner and any(ctx.rows[o]["source"] == owner for o in members if o != m):
                out.add(m)
    return out


def _evidence_suggestion(ctx: Context, idx: int) -> tuple[Suggestion, list[int]] | None:
    """The same entity's valid code elsewhere: high when one edit away or the org code matches."""
    members = ctx.groups.get(idx)
    r = ctx.rows[idx]
    if members:
        trusted = ctx.trusted_code([m for m in members if m != idx])
        if trusted and trusted[0] != r["code"]:
            m = trusted[1]
            other = ctx.rows[m]
            near = r["code"] is not None and any(c == other["code"] for c, _ in single_edit_neighbors(r["code"]))
            strong = _strong(ctx, idx, m)
            why = "与本代码仅差一个字符" if near else ("组织机构代码相同" if strong else "名称等信息一致")
            confidence = "high" if (near or strong) else "medium"
            link = ctx.link(idx, m) or {}
            return Suggestion(other["code"], f"{ctx.settings.source_names[other['source']]}记录 {other['record_id']}"
                                             f"（{other['name']}）为同一主体，持有此代码，{why}。{link.get('reason', '')}",
                              confidence), [m]
    return None


def _expected_category_suggestion(ctx: Context, idx: int) -> Suggestion | None:
    """Positions 1–2 as the record's type or name calls for, check character recomputed (medium)."""
    r = ctx.rows[idx]
    expected = expected_category(r["entity_type"], r["name"])
    if not expected or not r["code"] or any(ch not in VALUE for ch in r["code"]):
        return None
    first17 = expected.dept_cat + r["code"][2:17]
    basis = (f"按主体类型“{r['entity_type']}”（{expected.label}）" if expected.by_type
             else f"按名称（{expected.label}）")
    return Suggestion(first17 + calc_check_char(first17),
                      f"{basis}，第 1–2 位应为“{expected.dept_cat}”，并重新计算校验码；"
                      "请以证照为准", "medium")


def _structural_suggestion(ctx: Context, idx: int, kinds: set[str]) -> Suggestion | None:
    """No evidence elsewhere: what the rules alone can fix, never above `medium`."""
    if kinds & set(TERMINAL_KINDS):
        return None  # never invent a code for a missing, mangled, legacy or personal-ID cell (SPEC §8)
    r = ctx.rows[idx]
    report = check(r["uscc_raw"], numeric=r["uscc_numeric"], text=r["uscc_text"], allowlist=ctx.settings.allowlist)
    medium = [s for s in report.suggestions if s.confidence == "medium"]
    if len(medium) == 1:
        return medium[0]
    return None


# --------------------------------------------------------------------------- assembly

def assemble(record_findings: list[Finding], cross: list[Finding], ctx: Context) -> pl.DataFrame:
    """Repairs on the record findings, then every finding as the findings frame."""
    attach_repairs(record_findings, ctx)
    findings = record_findings + cross
    attach_formatting_fixes(findings, ctx)
    return to_frame(findings, ctx)


def detect(records: pl.DataFrame, settings: Settings, stats: dict | None = None) -> pl.DataFrame:
    """The findings frame (columns `FINDING_COLUMNS`) of a canonical frame.

    Args:
        stats: if given, filled with seconds per stage and the number of candidate pairs.
    """
    if records.height == 0:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    clock = _Clock(stats)
    frame = prepare(records, settings)
    clock.lap("prepare (validate + keys)")
    findings = record_level(frame, settings.allowlist)
    clock.lap("record level")
    findings += context_level(frame, settings)
    clock.lap("in context")
    cross, ctx = cross_level(frame, settings, {f.idx for f in findings})
    clock.lap("across records")
    attach_repairs(findings, ctx)
    findings += cross
    attach_formatting_fixes(findings, ctx)
    clock.lap("repairs")
    result = to_frame(findings, ctx)
    clock.lap("findings frame")
    if stats is not None:
        stats["pairs"] = len(ctx.links)
        stats["same_links"] = sum(1 for link in ctx.links.values() if link["same"])
    return result


class _Clock:
    def __init__(self, stats: dict | None):
        self.stats = stats
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stats is not None:
            self.stats.setdefault("seconds", {})[stage] = now - self.last
        self.last = now


def to_frame(findings: list[Finding], ctx: Context) -> pl.DataFrame:
    rows = ctx.rows
    names = ctx.settings.source_names

    def personal(i: int) -> bool:
        return bool(rows[i]["flags"] & BIT["personal_id"])

    def shown(i: int) -> str:
        value = rows[i]["uscc_raw"] or ""
        return mask(value.strip()) if personal(i) else value

    out = []
    kind_order = list(KINDS)
    for f in sorted(findings, key=lambda f: (f.idx, kind_order.index(f.kind))):
        m = rows[f.idx]
        code_key = mask(m["norm"]) if personal(f.idx) else m["norm"]
        related = [rows[i] for i in f.related]
        detail = [{"source": x["source"], "source_name": names.get(x["source"], x["source"]),
                   "record_id": x["record_id"], "name": x["name"], "code": shown(x["idx"])} for x in related]
        s = f.suggestion
        out.append({
            "finding_id": finding_id(m["source"], m["record_id"], f.kind, code_key),
            "source": m["source"], "record_id": m["record_id"], "uscc": shown(f.idx), "name": m["name"],
            "kind": f.kind, "severity": f.severity or KINDS[f.kind].severity, "message": f.message,
            "positions": ",".join(str(p) for p in f.positions),
            "suggested_code": s.code if s else None, "confidence": s.confidence if s else None,
            "suggestion_reason": s.reason if s else None,
            "related": ";".join(f"{x['source']}:{x['record_id']}" for x in related),
            "related_detail": json.dumps(detail, ensure_ascii=False),
            "group_size": f.group_size, "weakest_score": f.weakest_score, "evidence": f.evidence,
            "status": "open", "file": m["file"], "row": m["row"],
        })
    return pl.DataFrame(out, schema=FINDING_SCHEMA) if out else pl.DataFrame(schema=FINDING_SCHEMA)


__all__ = ["detect", "prepare", "finding_id", "FINDING_COLUMNS", "FINDING_SCHEMA"]
